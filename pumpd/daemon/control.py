"""The daemon's one contact with the control socket (``pumpd.control``).

The server is started exactly as docs/control-socket.md and the agreed interface say: a
``ControlContext`` and ``ControlServer(ctx, path=, group=)``. The package is imported with
this module, at start-up, never while pumps are supervised: a half-second synchronous
import on a loaded machine stalls every poll loop (it showed as a false under-infusion
alarm at time scale 60).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import Clock
from pumpd.config import DaemonConfig
from pumpd.control import ControlContext, ControlServer, PumpInfo
from pumpd.controller import Controller
from pumpd.protocols import Library


class ControlHandle:
    """The running server and the context it reads (replaced on reload)."""

    def __init__(self, server: ControlServer, context: ControlContext) -> None:
        self._server = server
        self._context = context

    @property
    def server(self) -> ControlServer:
        return self._server

    def update(
        self, *, library: Library, roles: Mapping[str, frozenset[str]], config: DaemonConfig
    ) -> None:
        self._context.library = library
        self._context.roles = roles
        self._context.staff_idle_timeout_s = config.staff_idle_timeout_s
        self._context.staff_max_failures = config.staff_max_failures
        self._context.staff_lockout_s = config.staff_lockout_s
        # The registry and the login tokens copied these when built; a SIGHUP reload must
        # reach them as config.reload on the socket does.
        service = self._server.service
        service.tokens.idle_timeout_s = config.staff_idle_timeout_s
        service.registry.max_failures = config.staff_max_failures
        service.registry.lockout_s = config.staff_lockout_s

    async def close(self) -> None:
        await self._server.close()


async def start_control(
    config: DaemonConfig,
    *,
    controllers: Callable[[], Mapping[str, Controller]],
    library: Library,
    writer: AsyncAuditWriter,
    engine: Engine,
    clock: Clock,
    reload: Callable[[], Awaitable[dict[str, str]]],
    forwarding: Callable[[], Mapping[str, Any] | None] | None = None,
    audit_notices: Callable[[], Sequence[str]] = tuple,
    unsupervised: Callable[[], Mapping[str, str]] = dict,
) -> ControlHandle:
    """Bind the socket at ``config.socket`` (mode 0660, group ``socket_group``)."""
    pumps = {
        p.id: PumpInfo(pump_id=p.id, transport=p.transport, address=p.address, unit=p.unit)
        for p in config.pumps
    }
    context = ControlContext(
        controllers=controllers,
        pumps=pumps,
        library=library,
        roles=dict(config.roles),
        writer=writer,
        engine=engine,
        clock=clock,
        simulated=config.simulation,
        staff_idle_timeout_s=config.staff_idle_timeout_s,
        staff_max_failures=config.staff_max_failures,
        staff_lockout_s=config.staff_lockout_s,
        timezone=config.timezone,
        reload=reload,
        forwarding=forwarding,
        audit_notices=audit_notices,
        unsupervised=unsupervised,
    )
    server = ControlServer(context, path=str(Path(config.socket)), group=config.socket_group)
    await server.start()
    return ControlHandle(server, context)
