"""How the daemon's parts are made from its configuration: the clock, the database engine,
the audit writer, each controller's settings, the library's hash."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy import event as sa_event

from pumpd.audit import AsyncAuditWriter, AuditStore, SpoolError
from pumpd.clock import Clock, ScaledClock, SystemClock
from pumpd.config import DaemonConfig, PumpConfig
from pumpd.controller import ControllerConfig
from pumpd.db import make_engine
from pumpd.drivers import loaded_syringe
from pumpd.protocols import Library
from safety.tick import DEFAULT_POLICY

log = structlog.get_logger("pumpd.daemon")

SQLITE_BUSY_TIMEOUT_MS = 5000
"""The daemon's SQLite busy timeout: a lock held longer sends events to the spool instead
of holding every acknowledgement for the library's 30 s (docs/audit-spool.md)."""


class StartupError(RuntimeError):
    """The daemon cannot start; the message says what to fix."""


def library_sha256(library: Library) -> str:
    """One hash over the library: each file's name and sha256, in name order."""
    lines = sorted(f"{e.path.name} {e.sha256}\n" for e in library)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def controller_config(config: DaemonConfig, pump: PumpConfig) -> ControllerConfig:
    """The controller's settings, in clock seconds.

    Link timings (poll period, the pump's heartbeat failsafe, the kernel's communication
    timeout, checkpoints) are real seconds in the configuration: a wire is not faster in a
    simulation. At a time scale they are multiplied by it, so the simulated pump, which
    runs at the same scale, sees the same real-time behaviour as a real one.
    """
    scale = config.time_scale
    return ControllerConfig(
        pump_id=pump.id,
        poll_period_s=scale / config.poll_hz,
        heartbeat_timeout_s=max(1, round(pump.heartbeat_timeout_s * scale)),
        checkpoint_every_s=10.0 * scale,
        policy=dataclasses.replace(
            DEFAULT_POLICY, comm_timeout_s=DEFAULT_POLICY.comm_timeout_s * scale
        ),
        syringe=loaded_syringe(pump.syringe, pump.syringe_diameter_mm, pump.syringe_capacity_ul),
        simulation=config.simulation,
        accept_no_pump_watchdog=pump.accept_no_pump_watchdog,
    )


def make_clock(config: DaemonConfig, epoch_utc: datetime | None = None) -> Clock:
    """The real clock, or in a simulation the scaled one; ``epoch_utc`` (the audit log's
    first event) makes a restarted daemon continue its predecessor's simulated time."""
    if config.time_scale != 1:
        if not config.simulation:  # load_config refuses this; never trust one layer alone
            raise StartupError("time_scale > 1 is allowed only in simulation mode")
        if epoch_utc is not None and epoch_utc > datetime.now(UTC):
            log.warning(
                "simulation epoch is in the future (the wall clock went back); simulated "
                "time starts now instead",
                epoch=epoch_utc.isoformat(),
            )
            epoch_utc = None
        return ScaledClock(config.time_scale, epoch_utc=epoch_utc)
    return SystemClock()


def make_daemon_engine(url: str) -> Engine:
    """The daemon's engine: as every engine (pumpd/db.py), but a shorter SQLite busy
    timeout, so a lock sends events to the spool in seconds instead of holding every
    acknowledgement for 30 s. Its writes begin IMMEDIATE; its reads (recovery, staff
    lookups, course history, the store's head and tail) go through ``pumpd.db.reader`` of
    it and begin DEFERRED, so none of them holds the lock the audit writer needs."""
    engine = make_engine(url, pool_pre_ping=False)
    if engine.dialect.name == "sqlite":

        @sa_event.listens_for(engine, "connect")
        def _busy(dbapi_con: Any, _record: Any) -> None:
            dbapi_con.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    return engine


def make_writer(config: DaemonConfig, store: AuditStore) -> AsyncAuditWriter:
    """The daemon's audit writer, with its spool unless switched off. The spool's place is
    checked now and a spool left by a previous run is loaded (drained before any new
    event); a refusal names the key."""
    if config.audit_spool is None:
        return AsyncAuditWriter(store)
    try:
        return AsyncAuditWriter(store, spool=config.audit_spool, outage_record=True)
    except SpoolError as exc:
        raise type(exc)(f"daemon.audit_spool: {exc}") from exc


def same_file_system(spool: Path, database: str) -> bool:
    """True when the spool's directory is on the file system of an SQLite database."""
    from sqlalchemy.engine import make_url

    url = make_url(database)
    if not url.get_backend_name().startswith("sqlite") or not url.database:
        return False
    try:
        return os.stat(spool.parent).st_dev == os.stat(Path(url.database).parent).st_dev
    except OSError:
        return False


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
