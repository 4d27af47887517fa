"""JSON-RPC 2.0 framing for the control socket: one request per line, one answer per line.

Only what the contract (docs/control-socket.md) allows gets through ``parse_request``:
a single object with ``jsonrpc: "2.0"``, a string ``method``, an ``id`` (string or
integer; notifications are refused because every request must get an answer) and
``params`` as an object when present. Everything else becomes an :class:`RpcError` with
the standard code, so a malformed line is answered and changes nothing.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

MAX_LINE_BYTES = 64 * 1024
"""The longest request line accepted (newline included); longer ones close the connection."""


class Code(enum.IntEnum):
    """Error codes: the JSON-RPC envelope's, then the application's (-32001..-32015)."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    FORBIDDEN = -32001
    LOGIN_REQUIRED = -32002
    REFUSED = -32010
    INVALID_STATE = -32011
    NO_SUCH_PUMP = -32012
    NO_SESSION = -32013
    AUDIT_UNAVAILABLE = -32014
    PUMP_NOT_ANSWERING = -32015

    @property
    def kind(self) -> str:
        """The ``data.kind`` word, which is also the audit ``outcome_code``."""
        return self.name.lower()


RequestId = str | int


class RpcError(Exception):
    """An answer that is an error; ``data`` always carries ``kind``."""

    def __init__(self, code: Code, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: dict[str, Any] = {"kind": code.kind, **data}
        self.request_id: RequestId | None = None


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)


def parse_request(line: bytes) -> Request:
    """One request line → :class:`Request`, or :class:`RpcError` (parse or envelope).

    The id of a request with a bad envelope is kept on the error when it can be read,
    so the client can match the answer.
    """
    try:
        text = line.decode("utf-8")
        obj = json.loads(text, parse_float=_no_float, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RpcError(Code.PARSE_ERROR, f"the request is not valid JSON: {_short(exc)}") from None
    if isinstance(obj, list):
        raise RpcError(Code.INVALID_REQUEST, "batches are not accepted; send one request per line")
    if not isinstance(obj, dict):
        raise RpcError(Code.INVALID_REQUEST, "a request must be a JSON object")
    rid = obj.get("id")
    good_id = isinstance(rid, str | int) and not isinstance(rid, bool)
    err_id = rid if good_id else None
    if obj.get("jsonrpc") != "2.0":
        raise _with_id(RpcError(Code.INVALID_REQUEST, 'jsonrpc must be "2.0"'), err_id)
    if "id" not in obj:
        raise RpcError(
            Code.INVALID_REQUEST, "notifications are not accepted: every request needs an id"
        )
    if not good_id or (isinstance(rid, str) and len(rid) > 100):
        raise RpcError(
            Code.INVALID_REQUEST, "id must be a string (at most 100 characters) or an integer"
        )
    assert isinstance(rid, str | int)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise _with_id(RpcError(Code.INVALID_REQUEST, "method must be a non-empty string"), rid)
    extra = set(obj) - {"jsonrpc", "id", "method", "params"}
    if extra:
        raise _with_id(
            RpcError(
                Code.INVALID_REQUEST, f"unknown request member(s): {', '.join(sorted(extra))}"
            ),
            rid,
        )
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _with_id(
            RpcError(Code.INVALID_PARAMS, "params must be an object (named parameters)"), rid
        )
    return Request(id=rid, method=method, params=params)


def _no_float(text: str) -> Any:
    """Numbers with a fraction stay exact: the daemon reads them as text, never as floats."""
    return text


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number")


def _short(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:200]


def _with_id(err: RpcError, rid: RequestId | None) -> RpcError:
    err.request_id = rid
    return err


def result_line(rid: RequestId, result: Any) -> bytes:
    return _line({"jsonrpc": "2.0", "id": rid, "result": result})


def error_line(rid: RequestId | None, err: RpcError) -> bytes:
    body = {"code": int(err.code), "message": err.message, "data": err.data}
    return _line({"jsonrpc": "2.0", "id": rid, "error": body})


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"
