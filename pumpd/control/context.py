"""What the control socket needs from the daemon, handed in as one object.

The daemon (``pumpd/daemon``) builds it; nothing in ``pumpd/control`` imports the daemon.
``controllers`` is a callable so the socket always sees the supervisor's live set;
``library`` and ``roles`` may be replaced by a configuration reload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy

from pumpd.audit import AsyncAuditWriter
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
    timezone: str = "UTC"
    """The clinic's IANA zone (``[daemon] timezone``), told to clients for what people read."""
    reload: Callable[[], Awaitable[dict[str, str]]] | None = None
    forwarding: Callable[[], Mapping[str, Any] | None] | None = None
    """The forwarder's state (lag, acknowledged seq) for ``status``; None: not forwarding."""

    audit_notices: Callable[[], Sequence[str]] = tuple
    """The daemon's standing warnings about its audit log (no chain key, no spool), one
    sentence each; every status view carries them."""

    unsupervised: Callable[[], Mapping[str, str]] = dict
    """Pump id → why that configured pump is not supervised now (connecting, waiting for
    the audit database, recovery failed); live, as the daemon's own view."""
