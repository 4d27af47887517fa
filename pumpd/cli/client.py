"""The control-socket client: JSON-RPC 2.0, one request per line, over pumpd's Unix socket.

It knows the wire (``docs/control-socket.md``) and nothing clinical: it sends a method and
its params, and returns the result or raises the daemon's error as :class:`RpcError`, whose
``exit_code`` is the pumpctl exit status the contract gives that error. A daemon that cannot
be reached is :class:`DaemonUnreachable` (exit 5); a reply that breaks the framing is
:class:`BadReply` (exit 1). Blocking sockets on purpose: a command line does one thing at a
time, and every wait has a bound.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

DEFAULT_SOCKET: Final = "/run/pumpd/pumpd.sock"
SOCKET_ENV: Final = "PUMPD_SOCKET"
MAX_LINE_BYTES: Final = 64 * 1024 * 16
"""A reply may be larger than a request (a long status); a bound all the same."""

EXIT_OK: Final = 0
EXIT_OTHER: Final = 1
EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3
EXIT_NOT_AUTHORIZED: Final = 4
EXIT_UNREACHABLE: Final = 5

_EXIT_OF_CODE: Final[dict[int, int]] = {
    -32700: EXIT_USAGE,  # parse_error
    -32600: EXIT_USAGE,  # invalid_request
    -32601: EXIT_USAGE,  # method_not_found
    -32602: EXIT_USAGE,  # invalid_params
    -32603: EXIT_OTHER,  # internal_error
    -32001: EXIT_NOT_AUTHORIZED,  # forbidden
    -32002: EXIT_NOT_AUTHORIZED,  # login_required
    -32010: EXIT_REFUSED,  # refused by a safety rule
    -32011: EXIT_REFUSED,  # invalid_state
    -32012: EXIT_USAGE,  # no_such_pump
    -32013: EXIT_REFUSED,  # no_session
    -32014: EXIT_REFUSED,  # audit_unavailable
    -32015: EXIT_OTHER,  # pump_not_answering
}


def default_socket_path() -> str:
    """``$PUMPD_SOCKET`` if set, else the packaged default under /run/pumpd."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


class ClientError(Exception):
    """Base of everything the client raises; ``exit_code`` is pumpctl's exit status."""

    exit_code: int = EXIT_OTHER


class DaemonUnreachable(ClientError):
    """No daemon answers on the socket (missing file, refused, or it went away)."""

    exit_code = EXIT_UNREACHABLE


class SocketPermissionDenied(ClientError):
    """The socket exists but this account may not open it (not in its group)."""

    exit_code = EXIT_NOT_AUTHORIZED


class BadReply(ClientError):
    """The daemon's reply is not a JSON-RPC response to our request (a bug somewhere)."""

    exit_code = EXIT_OTHER


@dataclass(frozen=True)
class Verdict:
    """One reason the kernel gave, as the daemon sends it."""

    rule: str
    code: str
    severity: str
    message: str

    @classmethod
    def from_wire(cls, raw: object) -> Verdict:
        d = raw if isinstance(raw, dict) else {}
        return cls(
            rule=str(d.get("rule", "")),
            code=str(d.get("code", "")),
            severity=str(d.get("severity", "")),
            message=str(d.get("message", raw)),
        )


@dataclass
class RpcError(ClientError):
    """A JSON-RPC error from the daemon: its code, sentence, kind and the kernel's verdicts."""

    code: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def verdicts(self) -> list[Verdict]:
        raw = self.data.get("verdicts") or []
        return [Verdict.from_wire(v) for v in raw] if isinstance(raw, list) else []

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return _EXIT_OF_CODE.get(self.code, EXIT_OTHER)


class Client:
    """One connection to pumpd; requests are answered in order on it.

    ``token`` is the staff login token (``pumpctl login``): when set it goes into every
    request's params as ``auth``, which is how the daemon knows the acting person.
    """

    def __init__(self, path: str, *, token: str | None = None, timeout_s: float = 120.0) -> None:
        self.path = path
        self.token = token
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 1

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(self.path)
        except PermissionError as exc:
            sock.close()
            raise SocketPermissionDenied(
                f"permission denied on {self.path}: this account is not in the socket's group"
            ) from exc
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonUnreachable(
                f"pumpd is not running or not listening on {self.path} ({exc.strerror})"
            ) from exc
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(f"cannot reach pumpd on {self.path}: {exc}") from exc
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request and return its ``result``; raise :class:`RpcError` on an error."""
        self.connect()
        assert self._sock is not None
        body = dict(params or {})
        if self.token is not None:
            body["auth"] = {"token": self.token}
        request_id = self._next_id
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": body}
        line = json.dumps(request, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
            reply = self._read_line()
        except TimeoutError as exc:
            raise DaemonUnreachable(
                f"pumpd did not answer {method} within {self.timeout_s:g} s"
            ) from exc
        except OSError as exc:
            raise DaemonUnreachable(f"connection to pumpd lost during {method}: {exc}") from exc
        return _result_of(reply, request_id)

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise BadReply(f"reply longer than {MAX_LINE_BYTES} bytes")
            chunk = self._sock.recv(65536)
            if not chunk:
                raise DaemonUnreachable("pumpd closed the connection without answering")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _result_of(line: bytes, request_id: int) -> Any:
    try:
        reply = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadReply(f"reply is not JSON: {line[:80]!r}") from exc
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        raise BadReply(f"reply is not a JSON-RPC 2.0 response: {line[:80]!r}")
    if "error" in reply:
        err = reply["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise BadReply(f"malformed error object: {err!r}")
        data = err.get("data")
        return_data = data if isinstance(data, dict) else {}
        raise RpcError(int(err["code"]), str(err.get("message", "")), return_data)
    if reply.get("id") != request_id:
        raise BadReply(f"reply to request {reply.get('id')!r}, expected {request_id}")
    if "result" not in reply:
        raise BadReply("reply has neither result nor error")
    return reply["result"]
