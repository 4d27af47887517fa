"""What the control socket needs from the daemon, handed in as one object.

The daemon (``pumpd/daemon``) builds it; nothing in ``pumpd/control`` imports the daemon.
``controllers`` is a callable so the socket always sees the supervisor's live set;
``library`` and ``roles`` may be replaced by a configuration reload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import sqlalchemy

from pumpd.audit.writer import AsyncAuditWriter
from pumpd.clock import Clock
from pumpd.controller import Controller
from pumpd.protocols import Library


@dataclass(frozen=True)
class PumpInfo:
    pump_id: str
    transport: str
    """``"modbus-tcp"`` or ``"modbus-rtu"``."""
    address: str
    """``"127.0.0.1:5020"`` or ``"/dev/pts/3@19200"``."""
    unit: int


@dataclass
class ControlContext:
    controllers: Callable[[], Mapping[str, Controller]]
    pumps: Mapping[str, PumpInfo]
    library: Library
    roles: Mapping[str, frozenset[str]]
    """Role name → Unix group names (``[roles]`` of the configuration)."""
    writer: AsyncAuditWriter
    engine: sqlalchemy.Engine
    clock: Clock
    simulated: bool
    staff_idle_timeout_s: float = 600.0
    staff_max_failures: int = 5
    staff_lockout_s: float = 900.0
    reload: Callable[[], Awaitable[dict[str, str]]] | None = None
    unsupervised: Callable[[], Mapping[str, str]] = dict
    """Pump id → why that configured pump is not supervised now (connecting, waiting for
    the audit database, recovery failed); live, as the daemon's own view."""
