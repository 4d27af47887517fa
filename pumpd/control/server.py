"""The control socket server: a Unix stream socket, one task per connection.

- The socket file is made safely: a stale file left by a dead daemon is removed, a live
  socket (another pumpd answers) or a file that is not a socket is refused by name. The
  socket is bound under a temporary name, given its mode and group, and only then renamed
  into place and listened on, so no one ever connects through looser permissions.
- Each connection reads its peer's credentials once (``peercred.py``), then serves one
  request line at a time, in order. Lines are limited to ``MAX_LINE_BYTES`` (an overlong
  line is answered ``-32600`` and the connection closed); a connection silent for
  ``idle_timeout_s`` is closed; a client that does not read its answers is cut off after
  ``write_timeout_s``. At most ``max_connections`` are served at once. Closing lets the
  requests being served finish (bounded), so a command is never cut off halfway.
- Nothing here blocks the event loop: PIN hashing and registry reads run in threads,
  audit records are queued, so a bad client holds only its own task and the pump loops
  keep their pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import socket
import stat
from typing import Any

import structlog

from pumpd.audit import Actor, NewEvent
from pumpd.staff import StaffRegistry

from .context import ControlContext
from .dispatch import Dispatcher, Peer, audit_now
from .identity import caller_of
from .peercred import PeerCredError, peer_credentials
from .record import Recorder
from .rpc import MAX_LINE_BYTES, Code, RpcError, error_line
from .service import Service
from .tokens import LoginTokens

log = structlog.get_logger("pumpd.control")

REQUEST_GRACE_S = 10.0
"""How long closing waits for the requests being served before it cuts them off: a halt
ends within its attempts' confirmation timeouts (3 × 2 s by default)."""


class ControlSocketError(Exception):
    """The socket cannot be made (in use, not a socket, unknown group)."""


class ControlServer:
    def __init__(
        self,
        ctx: ControlContext,
        *,
        path: str,
        group: str | None,
        mode: int = 0o660,
        idle_timeout_s: float = 300.0,
        write_timeout_s: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.group = group
        self.mode = mode
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self.max_connections = max_connections
        self.recorder = Recorder(ctx.writer)
        self.service = Service(
            ctx=ctx,
            registry=StaffRegistry(
                ctx.engine,
                ctx.clock,
                max_failures=ctx.staff_max_failures,
                lockout_s=ctx.staff_lockout_s,
            ),
            tokens=LoginTokens(ctx.clock, ctx.staff_idle_timeout_s),
            recorder=self.recorder,
        )
        self.dispatcher = Dispatcher(self.service)
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        """Connections serving a request right now (a subset of ``_connections``)."""
        self._closing = False
        self.refused_connections = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Remove a stale socket file, bind, set mode and group, listen."""
        gid = self._gid()
        remove_stale_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(tmp).st_mode):
                    os.unlink(tmp)
            sock.bind(tmp)
            os.chmod(tmp, self.mode)
            if gid is not None:
                os.chown(tmp, -1, gid)
            os.rename(tmp, self.path)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            sock.listen(128)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._on_connect, sock=sock, limit=MAX_LINE_BYTES
            )
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        log.info("control socket listening", path=self.path, mode=oct(self.mode), group=self.group)

    async def close(self) -> None:
        """Stop accepting, close every connection, unlink our socket file.

        A request being served ends first, with its answer and its audit (a nurse's STOP
        on its way to the pump is not cut off between its intent and its result), waited
        for at most ``REQUEST_GRACE_S``; idle connections are closed at once, and a
        connection takes no new request once closing has begun.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections - self._busy):
            task.cancel()
        if self._busy:
            await asyncio.wait(list(self._busy), timeout=REQUEST_GRACE_S)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5.0)
            self._server = None
        self._unlink_own()
        await self.recorder.flush()

    def _gid(self) -> int | None:
        if self.group is None:
            return None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise ControlSocketError(f"socket_group {self.group!r} is not a group here") from None

    def _unlink_own(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._inode:
            os.unlink(self.path)

    # -- connections ----------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > self.max_connections:
                self.refused_connections += 1
                err = RpcError(Code.INVALID_REQUEST, "too many connections; try again")
                await self._send(writer, error_line(None, err))
                return
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("control connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            cred = peer_credentials(sock)
        except PeerCredError as exc:
            log.warning("control connection without credentials", error=str(exc))
            return
        peer = Peer(caller_of(cred, self.ctx.roles), opened_at=audit_now())
        end_code = "error"
        try:
            end_code = await self._requests(peer, reader, writer)
        except asyncio.CancelledError:
            end_code = "daemon_stopping"
            raise
        finally:
            self.dispatcher.connection_closed(peer, end_code)

    async def _requests(
        self, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> str:
        """Answer one line after another; returns why the connection ended."""
        while True:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self.idle_timeout_s)
            except TimeoutError:
                return "idle_timeout"
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    err = RpcError(Code.INVALID_REQUEST, "the request line has no newline")
                    await self._send(writer, error_line(None, err))
                    return "request_error"
                return "client_closed"
            except asyncio.LimitOverrunError:
                self.dispatcher.malformed_line(peer, "(too large)", "too_large")
                err = RpcError(
                    Code.INVALID_REQUEST, f"request too large (limit {MAX_LINE_BYTES} bytes)"
                )
                await self._send(writer, error_line(None, err))
                return "request_error"
            except ConnectionError:
                return "client_closed"
            if not line.strip():
                continue
            if self._closing:
                return "daemon_stopping"
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                answer = await self.dispatcher.handle(peer, line)
            finally:
                self._busy.discard(task)
            if not await self._send(writer, answer):
                return "write_failed"
            if self._closing:
                return "daemon_stopping"

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.write_timeout_s)
        except (TimeoutError, ConnectionError):
            return False
        return True

    # -- housekeeping ---------------------------------------------------------------

    def expire_idle_logins(self) -> int:
        """End idle staff logins now (audited); the daemon may call it periodically."""
        gone = self.service.tokens.expire_idle()
        for login in gone:
            self.recorder.submit(
                NewEvent(
                    "staff.login.ended",
                    {"staff_id": login.staff_id, "uid": login.uid, "reason_code": "idle_timeout"},
                    Actor.daemon(),
                )
            )
        return len(gone)


def remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse anything else there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        log.info("stale control socket removed", path=path)
        return
    except OSError as exc:
        raise ControlSocketError(f"{path}: cannot tell whether it is in use ({exc})") from None
    finally:
        probe.close()
    raise ControlSocketError(f"{path} is in use by a running daemon; not starting a second one")
