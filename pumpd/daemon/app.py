"""The daemon: start-up in a fixed order, supervision, reload, and a safe exit.

Start-up: check or upgrade the audit schema; load and hash the configuration and the
protocol library and write both down (``config.loaded``, ``protocol_library.loaded``,
``daemon.started``; every event flagged simulated in simulation mode); connect the pumps
(one shared line per serial device, in the driver) and hand each to the supervisor, which
arms its failsafe and recovers its session from the log; open the control socket; then
READY=1 and the ready line on stdout. A pump that cannot be reached at start-up is retried
in the background: the others are supervised meanwhile.

SIGTERM/SIGINT: close the socket (no new commands), announce (``daemon.announced``), pause
every infusing session as ``pumpd``, stop supervising, write ``daemon.stopped``, drain the
writer, exit 0. SIGHUP (or ``config.reload`` on the socket): re-read roles, staff settings
and the protocol library, audited; pumps and paths need a restart.

The audit database going away (docs/audit-spool.md): the writer has a local durable spool
(``audit_spool``), so the daemon's own records are made durable there (``log``) and no
signal, announcement or reload waits for the database. Only the start-up records wait for
a commit (bounded), so a spool left by a killed daemon is in the database before recovery
reads the sessions from it. STATUS= says when the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog
from sqlalchemy import Engine
from sqlalchemy import event as sa_event
from sqlalchemy.exc import SQLAlchemyError

from pumpd import __version__
from pumpd.audit import migrate
from pumpd.audit.heads import HeadPublisher, HeadSink, LogHeadSink
from pumpd.audit.keys import ChainKey
from pumpd.audit.spool import SpoolError
from pumpd.audit.store import Actor, AuditStore, NewEvent
from pumpd.audit.writer import AsyncAuditWriter
from pumpd.central.forwarder import Conflict, ForwardStatus
from pumpd.central.heads import CentralHeadSink
from pumpd.central.task import ForwardTask
from pumpd.central.task import summary as forward_summary
from pumpd.clock import Clock, ScaledClock, SystemClock
from pumpd.config import DaemonConfig, PumpConfig, load_config
from pumpd.controller import Controller, ControllerConfig
from pumpd.daemon import logs
from pumpd.daemon.chainkey import (
    KEY_EVENT,
    NO_KEY_NOTICE,
    NO_KEY_STATUS,
    chain_key_state,
    key_change,
    load_chain_key,
)
from pumpd.daemon.control import ControlHandle, start_control
from pumpd.daemon.notify import Notifier, NotifyError
from pumpd.daemon.watchdog import Verdict, Watchdog
from pumpd.db import make_engine
from pumpd.drivers.base import DriverError, PumpDriver
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.regmap_driver import RegisterMapDriver, register_map
from pumpd.protocols import Library, load_library
from pumpd.reloading import needing_restart, reloaded
from pumpd.session import State
from pumpd.supervisor import Supervisor
from safety.tick import DEFAULT_POLICY

log = structlog.get_logger("pumpd.daemon")

DAEMON = "pumpd"
SHUTDOWN_REASON = "daemon.shutdown"
PAUSE_BOUND_S = 30.0
"""How long SIGTERM waits for the pauses (each is bounded by the controller itself)."""
RETRY_MAX_S = 30.0
STATUS_EVERY_S = 5.0
AUDIT_CHECK_S = 1.0
"""How often STATUS= is checked for a change of the audit writer's state (sent at once)."""
STARTUP_COMMIT_S = 60.0
"""How long start-up waits for its records (and a leftover spool before them) to commit."""
CLOSE_BOUND_S = 5.0
"""How long shutdown waits for the pumps' queued audit events before closing the writer
(during an outage they are in the spool already and drained at the next start)."""
SQLITE_BUSY_TIMEOUT_MS = 5000
"""The daemon's SQLite busy timeout: a lock held longer sends events to the spool instead
of holding every acknowledgement for the library's 30 s (docs/audit-spool.md)."""


class StartupError(RuntimeError):
    """The daemon cannot start; the message says what to fix."""


def library_sha256(library: Library) -> str:
    """One hash over the library: each file's name and sha256, in name order."""
    lines = sorted(f"{e.path.name} {e.sha256}\n" for e in library)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def modbus_config(pump: PumpConfig) -> ModbusConfig:
    if pump.transport == "modbus-tcp":
        return ModbusConfig(
            transport="tcp",
            host=pump.host,
            port=pump.port or 502,
            unit=pump.unit,
            profile=pump.profile,
        )
    return ModbusConfig(
        transport="rtu",
        device=pump.device,
        baudrate=pump.baudrate or 19200,
        unit=pump.unit,
        profile=pump.profile,
        parity=pump.serial.parity,
        stopbits=pump.serial.stopbits,
        bytesize=pump.serial.bytesize,
    )


def make_driver(
    pump: PumpConfig, time_scale: float = 1.0
) -> ModbusPumpDriver | NewEraPumpDriver | RegisterMapDriver:
    """The driver for a pump's transport. A New Era pump counts its SAF watchdog in wall
    seconds, so its driver divides the controller's (scaled) seconds back."""
    if pump.transport == "newera-serial":
        assert pump.device is not None
        assert pump.syringe_diameter_mm is not None
        return NewEraPumpDriver(
            NewEraConfig(
                device=pump.device,
                address=pump.unit,
                baudrate=pump.baudrate or 19200,
                syringe_diameter_mm=pump.syringe_diameter_mm,
                heartbeat_timeout_s=pump.heartbeat_timeout_s,
                clock_scale=time_scale,
            )
        )
    rmap = register_map(pump.profile)
    if rmap is not None:
        return RegisterMapDriver(
            modbus_config(pump),
            rmap,
            heartbeat_timeout_s=pump.heartbeat_timeout_s,
            clock_scale=time_scale,
        )
    return ModbusPumpDriver(modbus_config(pump))


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


class Daemon:
    """One pumpd process's worth of state. ``start`` then ``wait`` then ``shutdown``."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        notifier: Notifier | None = None,
        out: TextIO | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.out = sys.stdout if out is None else out
        self.clock = clock if clock is not None else make_clock(config)
        self._epoch_clock = clock is None and config.time_scale != 1
        self.engine: Engine | None = None
        self.store: AuditStore | None = None
        self.writer: AsyncAuditWriter | None = None
        self.key: ChainKey | None = None
        self.publisher: HeadPublisher | None = None
        self._publishing: asyncio.Task[None] | None = None
        self.library: Library | None = None
        self.supervisor: Supervisor | None = None
        self.control: ControlHandle | None = None
        self.watchdog: Watchdog | None = None
        self.forward: ForwardTask | None = None
        self.head_sink: CentralHeadSink | None = None
        """With ``[forward]``: the centre as a sink of published chain heads."""
        self.drivers: dict[str, PumpDriver] = {}
        self.failed: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._stop_reason = "sigterm"
        self._last_status = ""
        self._reload_lock = asyncio.Lock()
        self._lock_fd: int | None = None

    # -- start-up ------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self._lock_instance()
        log.info(
            "pumpd starting",
            version=__version__,
            config=str(cfg.path),
            simulation=cfg.simulation,
            time_scale=cfg.time_scale,
        )
        if cfg.simulation:
            log.warning(
                "SIMULATION MODE: every audit event is flagged simulated; only simulated "
                "pumps (loopback, pseudo-terminals) are accepted",
                time_scale=cfg.time_scale,
            )
        self.key = await asyncio.to_thread(load_chain_key, cfg)
        self.engine = make_daemon_engine(cfg.database)
        revision = await asyncio.to_thread(self._schema, self.engine)
        log.info("audit schema ready", revision=revision, database=_safe_url(cfg.database))
        self.store = AuditStore(
            self.engine,
            key=None if self.key is None else self.key.secret,
            simulated=cfg.simulation,
        )
        self.publisher = HeadPublisher(
            self._head_sinks(self.store),
            key=self.key,
            every_events=cfg.checkpoint_every_events,
            every_s=cfg.checkpoint_every_s,
        )
        self.store.add_commit_listener(self.publisher.note)
        self.writer = await asyncio.to_thread(make_writer, cfg, self.store)
        await self._record_key(self.writer)
        self.library = await asyncio.to_thread(load_library, cfg.protocols)
        await self._record_loaded(cfg, self.library)
        await self._spool_findings(self.writer)
        started: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "config_sha256": cfg.sha256,
        }
        if self.key is not None:
            started["key_id"] = self.key.key_id
        await self._startup_committed("daemon.started", started)
        await self._start_publishing(self.store, self.publisher)
        if self._epoch_clock:  # nothing has read the clock yet: the sessions come next
            epoch = await asyncio.to_thread(self.store.first_occurred_at)
            self.clock = make_clock(cfg, epoch)
            log.info("simulated time continues from the audit log's first event", epoch=epoch)
        self.supervisor = Supervisor(
            writer=self.writer, engine=self.engine, clock=self.clock, library=self.library
        )
        logs.set_session_lookup(self.session_of)
        firsts = []
        for pump in cfg.pumps:
            first = asyncio.Event()
            firsts.append(first)
            self._tasks.append(
                asyncio.create_task(self._bring_up(pump, first), name=f"bring-up-{pump.id}")
            )
        await asyncio.gather(*(f.wait() for f in firsts))
        await self._start_control()
        self._start_watchdog()
        self._start_forwarding()
        self._tasks.append(asyncio.create_task(self._status_forever(), name="status"))
        summary = self.summary()
        if self.notifier is not None:
            self._notify(lambda n: n.ready(summary))
        print(
            f"pumpd ready socket={cfg.socket} pumps={len(cfg.pumps)} "
            f"simulated={'true' if cfg.simulation else 'false'}",
            file=self.out,
            flush=True,
        )
        log.info("pumpd ready", status=summary, socket=str(cfg.socket))

    def _head_sinks(self, store: AuditStore) -> list[HeadSink]:
        """Where the chain head is published: the journal (the log) and, with ``[forward]``,
        the central store, so a local administrator cannot rewrite every copy."""
        sinks: list[HeadSink] = [LogHeadSink(instance_id=store.instance_id)]
        if self.config.forward is not None:
            self.head_sink = CentralHeadSink(self.config.forward.site, self.config.forward.url)
            sinks.append(self.head_sink)
        return sinks

    async def _record_key(self, writer: AsyncAuditWriter) -> None:
        """Say which key chains this run: loudly when none; ``chain.key.changed`` as the
        first event of this run when the key is not the one the chain names last."""
        assert self.engine is not None
        if self.key is not None:
            log.info("audit chain keyed", key_id=self.key.key_id, key_file=str(self.key.path))
        state = await asyncio.to_thread(chain_key_state, self.engine)
        change = key_change(state, self.key)
        if change is None:
            return
        if writer.leftover:
            raise StartupError(
                f"the chain key changes ({change['reason_code']}) but {writer.leftover} "
                f"event(s) of the previous run wait in the audit spool "
                f"{self.config.audit_spool}: they belong to the old key. Start once with "
                "the old key_file so they are written, stop, then change the key"
            )
        await self._audit(KEY_EVENT, change)
        log.warning(
            "audit chain key changed",
            reason=change["reason_code"],
            old_key_id=change.get("old_key_id"),
            new_key_id=change.get("new_key_id"),
        )

    async def _start_publishing(self, store: AuditStore, publisher: HeadPublisher) -> None:
        """The head publisher's task, from the head after the start-up records."""
        initial = await asyncio.to_thread(store.head)
        self._publishing = asyncio.create_task(publisher.run(initial), name="head-publisher")

    async def _stop_publishing(self) -> None:
        """After the writer has drained: stop the task, publish the last head."""
        task, self._publishing = self._publishing, None
        if task is None or self.publisher is None:
            return
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        try:
            await self.publisher.final()
        except Exception as exc:
            log.error("last chain head not published", error=str(exc))

    def audit_notices(self) -> list[str]:
        """The standing warnings about the audit log, for ``pumpctl status``."""
        notices = []
        if self.config.audit_key_file is None:
            notices.append(NO_KEY_NOTICE)
        if self.config.audit_spool is None:
            notices.append(
                'the audit spool is switched off (audit_spool = "off"): while the audit '
                "database is away no infusion can be started"
            )
        return notices

    def _lock_instance(self) -> None:
        """One daemon per configuration: two would both drive the same pumps (and the
        second one's exit would pause the first one's infusions). The lock sits next to the
        socket and is taken before anything else; the kernel drops it when the process dies,
        so a SIGKILLed daemon never blocks its successor."""
        path = Path(f"{self.config.socket}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(
                f"another pumpd holds {path}: it already supervises these pumps"
            ) from None
        self._lock_fd = fd

    def _unlock_instance(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _schema(self, engine: Engine) -> str:
        if self.config.upgrade_schema:
            return migrate.upgrade(engine).after
        return migrate.require_current(engine)

    async def _record_loaded(self, cfg: DaemonConfig, library: Library) -> None:
        await self._audit("config.loaded", {"path": str(cfg.path)[:500], "sha256": cfg.sha256})
        await self._audit(
            "protocol_library.loaded",
            {
                "library_sha256": library_sha256(library),
                "protocols": [
                    {
                        "protocol_id": e.protocol.id,
                        "protocol_version": str(e.protocol.version),
                        "sha256": e.sha256,
                    }
                    for e in library
                ],
            },
        )
        log.info(
            "configuration and protocol library loaded",
            config_sha256=cfg.sha256,
            library_sha256=library_sha256(library),
            protocols=len(library.entries),
        )

    async def _audit(
        self, event_type: str, payload: Mapping[str, Any], pump: str | None = None
    ) -> None:
        """Write a daemon record; returns once it is durable (in the database, or in the
        local spool while the database is away), so no signal or request waits on it."""
        assert self.writer is not None
        await self.writer.log(
            NewEvent(event_type=event_type, payload=payload, actor=Actor.daemon(), pump_id=pump)
        )

    async def _startup_committed(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """The last start-up record, committed in the database: everything queued before
        it (a leftover spool first of all) is then in the database too, which is where
        recovery reads the sessions from. Bounded: a database that goes away again
        during start-up fails the start-up rather than hang it."""
        assert self.writer is not None
        event = NewEvent(event_type=event_type, payload=payload, actor=Actor.daemon())
        try:
            async with asyncio.timeout(STARTUP_COMMIT_S):
                await self.writer.append(event)
        except TimeoutError:
            health = self.writer.health()
            raise StartupError(
                f"the audit database did not take the start-up records within "
                f"{STARTUP_COMMIT_S:g} s ({health.reason or 'no reason given'}); "
                f"{health.spooled} event(s) wait in the spool {self.config.audit_spool}"
            ) from None

    async def _spool_findings(self, writer: AsyncAuditWriter) -> None:
        """Tell (log and audit) what start-up found about the spool."""
        cfg = self.config
        if self.key is None:
            log.error(NO_KEY_NOTICE)
            await self._announce("audit.key.off", NO_KEY_NOTICE)
        if cfg.audit_spool is None:
            message = (
                'the audit spool is switched off (audit_spool = "off"): if the audit '
                "database goes away, events are held in memory only and are lost if pumpd "
                "stops; no infusion can be started until it is back"
            )
            log.error(message)
            await self._announce("audit.spool.off", message)
            return
        same = same_file_system(cfg.audit_spool, cfg.database)
        if same:
            log.warning(
                "the audit spool is on the same file system as the SQLite database: a full "
                "disk stops both; mount another file system at its directory "
                "(docs/daemon.md)",
                spool=str(cfg.audit_spool),
            )
        torn = writer.torn_tail
        if torn is not None:
            await self._announce(
                "audit.spool.torn_tail",
                f"the audit spool {cfg.audit_spool} ended in a line cut off by a crash "
                f"(line {torn.line_number}, {torn.byte_count} bytes): never acknowledged, "
                f"not applied, kept at {torn.kept_at}",
            )
        leftover = writer.leftover
        if leftover:
            await self._announce(
                "audit.spool.leftover",
                f"the audit spool {cfg.audit_spool} held {leftover} event(s) of a previous "
                "run that ended while the audit database was away; they are written to "
                "the database, in order, before any event of this run",
            )

    async def _bring_up(self, pump: PumpConfig, first: asyncio.Event) -> None:
        """Connect one pump and hand it to the supervisor; retry while it cannot be reached."""
        structlog.contextvars.bind_contextvars(pump=pump.id)
        assert self.supervisor is not None
        delay_s = 1.0
        told = False
        driver = make_driver(pump, self.config.time_scale)
        try:
            while True:
                try:
                    await driver.connect()
                    await self.supervisor.add(driver, controller_config(self.config, pump))
                except SQLAlchemyError as exc:
                    # Recovery reads the pump's session from the audit database, which is
                    # away or refuses the read (a missing grant): try again (the pump's own
                    # failsafe holds it meanwhile), and say so wherever readiness is read.
                    reason = _first_line(str(getattr(exc, "orig", None) or exc))
                    self.failed[pump.id] = f"not supervised: audit database: {reason}"
                    log.error(
                        "pump not supervised: waiting for the audit database to recover it",
                        error=str(exc),
                    )
                    first.set()
                    await driver.close()
                    await asyncio.sleep(delay_s)
                    delay_s = min(2 * delay_s, RETRY_MAX_S)
                    continue
                except DriverError as exc:
                    self.failed[pump.id] = str(exc)
                    if not told:
                        told = True
                        log.error(
                            "pump not reachable; retrying", error=str(exc), address=pump.address
                        )
                        await self._audit(
                            "pump.unreachable",
                            {
                                "error_code": "connect_failed",
                                "detail": str(exc)[:500] or "no reply",
                                "unreachable_ms": 0,
                            },
                            pump=pump.id,
                        )
                    first.set()
                    await driver.close()
                    await asyncio.sleep(delay_s)
                    delay_s = min(2 * delay_s, RETRY_MAX_S)
                    continue
                self.drivers[pump.id] = driver
                self.failed.pop(pump.id, None)
                log.info("pump supervised", address=pump.address, unit=pump.unit)
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Recovery could not rebuild the pump's session (or something worse): this pump
            # is not supervised; its own failsafe stops it when the heartbeats stop.
            self.failed[pump.id] = f"not supervised: {exc}"
            log.critical("pump left unsupervised", error=repr(exc))
            await self._announce(
                "pump.unsupervised",
                f"{pump.id} is not supervised ({str(exc)[:300]}); its own failsafe stops it",
            )
        finally:
            first.set()

    async def _start_control(self) -> None:
        assert self.supervisor is not None
        assert self.writer is not None
        assert self.engine is not None
        assert self.library is not None
        supervisor = self.supervisor
        self.control = await start_control(
            self.config,
            controllers=lambda: supervisor.controllers,
            library=self.library,
            writer=self.writer,
            engine=self.engine,
            clock=self.clock,
            reload=self.reload,
            forwarding=self.forwarding if self.config.forward is not None else None,
            audit_notices=self.audit_notices,
            unsupervised=lambda: self.failed,
        )

    def _start_watchdog(self) -> None:
        interval_s = 1.0
        ping: Callable[[], None] | None = None
        notifier = self.notifier
        if notifier is not None and notifier.watchdog_s is not None:
            interval_s = min(interval_s, notifier.watchdog_s / 2)
            ping = notifier.watchdog
        self.watchdog = Watchdog(
            health=self.health,
            stale_after_s=self.config.loop_stale_s,
            interval_s=interval_s,
            ping=ping,
            on_change=self._watchdog_changed,
            on_ping_error=lambda exc: log.error("watchdog ping failed", error=str(exc)),
        )
        self._tasks.append(asyncio.create_task(self.watchdog.run(), name="watchdog"))

    def _start_forwarding(self) -> None:
        """The forwarder (docs/central.md): a process of its own with its own engines, so it
        never shares a connection, the interpreter or the event loop with a pump loop."""
        settings = self.config.forward
        if settings is None:
            return
        if not settings.mark_file.parent.is_dir():
            raise StartupError(
                f"forward.mark_file: the directory {settings.mark_file.parent} does not exist"
            )
        self.forward = ForwardTask(
            settings,
            self.config.database,
            on_conflict=self._forward_conflict,
            on_lag=self._forward_lag,
        )
        self._tasks.append(asyncio.create_task(self.forward.run(), name="forward"))
        log.info(
            "forwarding to the central store", site=settings.site, centre=_safe_url(settings.url)
        )

    async def _forward_conflict(self, conflict: Conflict) -> None:
        await self._announce(
            "forward.conflict",
            f"TAMPER ALARM ({conflict.kind} at seq {conflict.seq}): {conflict.detail}; "
            "forwarding to the central store stopped",
        )
        self._update_status()

    async def _forward_lag(self, status: ForwardStatus) -> None:
        await self._announce(
            "forward.lag",
            f"the central store is {status.lag_events} events and {status.lag_s:.0f} s behind "
            f"this site ({status.state}); the events are safe in the local log",
        )
        self._update_status()

    def forwarding(self) -> dict[str, Any] | None:
        """The forwarding state for ``pumpctl status --json``; None when not configured."""
        if self.forward is None or self.config.forward is None:
            return None
        data = self.forward.status().as_json()
        data["alert_after_s"] = self.config.forward.alert_after_s
        return data

    def session_of(self, pump_id: str) -> str | None:
        """The open session on ``pump_id`` (every log line about the pump carries it)."""
        ctl = self.supervisor.controllers.get(pump_id) if self.supervisor is not None else None
        if ctl is None or ctl.session is None:
            return None
        return ctl.session.data.session_id

    def health(self) -> dict[str, float]:
        """Real seconds since each supervised pump's last completed poll."""
        if self.supervisor is None:
            return {}
        scale = self.config.time_scale
        return {pump: age / scale for pump, age in self.supervisor.health().items()}

    def _watchdog_changed(self, verdict: Verdict) -> None:
        if verdict.healthy:
            log.info("watchdog: pings resumed", reason=verdict.reason)
            return
        log.error("watchdog: pings withheld", reason=verdict.reason, stale=list(verdict.stale))
        self._tasks.append(
            asyncio.create_task(self._announce("watchdog.withheld", verdict.reason[:500]))
        )
        self._update_status()

    # -- running -------------------------------------------------------------------

    def summary(self) -> str:
        """One line for STATUS=: each pump's session state, or why it is not supervised."""
        parts = []
        controllers = self.supervisor.controllers if self.supervisor is not None else {}
        for pump in self.config.pumps:
            ctl = controllers.get(pump.id)
            if ctl is None:
                why = self.failed.get(pump.id)
                if why is None:
                    parts.append(f"{pump.id} starting")
                elif why.startswith("not supervised"):
                    parts.append(
                        f"{pump.id} NOT SUPERVISED ({why.removeprefix('not supervised: ')})"
                    )
                else:
                    parts.append(f"{pump.id} unreachable ({why[:120]})")
                continue
            st = ctl.status()
            if st.session_state is None:
                parts.append(f"{pump.id} idle" + ("" if st.reachable else " (no link)"))
            else:
                parts.append(
                    f"{pump.id} {st.session_state} {st.delivered_ul / 1000:.1f}/"
                    f"{(st.vtbi_ul or 0) / 1000:.1f} mL" + ("" if st.reachable else " (no link)")
                )
        text = f"{len(controllers)}/{len(self.config.pumps)} pumps: " + ", ".join(parts)
        audit = self.audit_summary()
        if audit:
            text = f"{audit}; {text}"
        if self.forward is not None and self.config.forward is not None:
            status = self.forward.status()
            text = f"{text}; {forward_summary(status, self.config.forward.alert_after_s)}"
        if self.watchdog is not None and not self.watchdog.verdict.healthy:
            text = f"UNHEALTHY ({self.watchdog.verdict.reason}); {text}"
        if self.config.simulation:
            text = f"SIMULATION x{self.config.time_scale:g}; {text}"
        return text

    def audit_summary(self) -> str:
        """The audit log's trouble for STATUS=, or "" when all is well."""
        writer = self._writer_summary()
        if self.config.audit_key_file is None:
            return f"{NO_KEY_STATUS}; {writer}" if writer else NO_KEY_STATUS
        return writer

    def _writer_summary(self) -> str:
        """The audit writer's trouble for STATUS=, or "" when it writes directly."""
        if self.config.audit_spool is None:
            return "NO AUDIT SPOOL"
        if self.writer is None:
            return ""
        h = self.writer.health()
        if h.spool_failing:
            return f"AUDIT NOT DURABLE (database and spool failing: {h.reason or '?'})"
        if h.blocked is not None:
            return f"AUDIT SPOOL BLOCKED ({h.blocked[:120]})"
        if h.degraded:
            since = "" if h.degraded_since is None else f" since {h.degraded_since:%H:%M:%SZ}"
            return f"AUDIT DATABASE UNAVAILABLE{since}: {h.spooled} events in the local spool"
        return ""

    def _update_status(self) -> None:
        text = self.summary()
        if text != self._last_status and self.notifier is not None:
            self._notify(lambda n: n.status(text))
        self._last_status = text

    async def _status_forever(self) -> None:
        """STATUS= every 5 s, and at once when the audit writer's state changes."""
        last_audit = self.audit_summary()
        waited_s = 0.0
        while True:
            await asyncio.sleep(AUDIT_CHECK_S)
            waited_s += AUDIT_CHECK_S
            audit = self.audit_summary()
            if audit != last_audit or waited_s >= STATUS_EVERY_S:
                last_audit, waited_s = audit, 0.0
                self._update_status()

    def _notify(self, act: Callable[[Notifier], None]) -> None:
        assert self.notifier is not None
        try:
            act(self.notifier)
        except NotifyError as exc:
            log.error("sd_notify failed", error=str(exc))

    async def _announce(self, code: str, message: str) -> None:
        """A daemon notice: logged and written down (``daemon.announced``)."""
        log.warning(message, notice=code)
        try:
            await self._audit("daemon.announced", {"notice_code": code, "message": message[:500]})
        except Exception as exc:  # a notice never blocks what it announces
            log.error("announcement not written", notice=code, error=str(exc))

    def request_stop(self, reason: str = "sigterm") -> None:
        self._stop_reason = reason
        self._stop.set()

    async def wait(self) -> str:
        """Until a stop is requested; the reason."""
        await self._stop.wait()
        return self._stop_reason

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "sigterm")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "sigint")
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _on_sighup(self) -> None:
        async def run() -> None:
            try:
                await self.reload()
            except Exception as exc:
                log.error("reload refused; the running configuration stays", error=str(exc))

        self._tasks.append(asyncio.create_task(run(), name="reload"))

    async def reload(self) -> dict[str, str]:
        """Re-read the file: roles, staff settings and the protocol library take effect.

        A file that does not load, or a library that does not, changes nothing (raises).
        What is taken over and what needs a restart is marked on each ``DaemonConfig`` field
        (``pumpd.reloading``); a changed restart field is reported by name.
        """
        async with self._reload_lock:
            new = await asyncio.to_thread(load_config, self.config.path)
            library = await asyncio.to_thread(load_library, new.protocols)
            fixed = needing_restart(self.config, new)
            await self._record_loaded(new, library)
            self.library = library
            self.config = reloaded(self.config, new)
            if self.control is not None:
                self.control.update(library=library, roles=new.roles, config=self.config)
            if fixed:
                log.warning("reload: these settings need a restart", keys=fixed)
            log.info("configuration reloaded", config_sha256=new.sha256)
            return {"config_sha256": new.sha256, "library_sha256": library_sha256(library)}

    # -- stopping ------------------------------------------------------------------

    def infusing(self) -> list[Controller]:
        if self.supervisor is None:
            return []
        return [
            ctl
            for ctl in self.supervisor.controllers.values()
            if ctl.session is not None and ctl.session.state is State.INFUSING
        ]

    async def shutdown(self, reason: str = "sigterm") -> None:
        """Pause what infuses, stop supervising, write it down, drain the writer."""
        if self.notifier is not None:
            self._notify(lambda n: n.stopping(f"stopping ({reason}): pausing infusions"))
        if self.control is not None:
            with contextlib.suppress(Exception):
                await self.control.close()
            self.control = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if self.forward is not None:
            self.forward.close()  # never waits for the centre
        if self.head_sink is not None:
            self.head_sink.close()
        running = self.infusing()
        names = ", ".join(ctl.config.pump_id for ctl in running) or "none"
        if self.writer is not None:
            await self._announce(
                SHUTDOWN_REASON,
                f"pumpd is stopping ({reason}); pausing running infusions: {names}",
            )
        if running:
            await self._pause_all(running)
        closing: asyncio.Task[None] | None = None
        if self.supervisor is not None:
            # Its last step waits for the pumps' queued audit events; during an outage
            # they are in the spool already, so do not wait for the database here.
            closing = asyncio.create_task(self.supervisor.close(), name="supervisor-close")
            done, _ = await asyncio.wait({closing}, timeout=CLOSE_BOUND_S)
            if not done:
                log.warning(
                    "audit events still wait for the database; they are in the spool and "
                    "written at the next start",
                    spooled=None if self.writer is None else self.writer.spooled,
                )
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        self.drivers.clear()
        if self.writer is not None:
            try:
                await self._audit("daemon.stopped", {"reason_code": reason})
            except Exception as exc:
                log.error("daemon.stopped not written", error=str(exc))
            await self.writer.aclose()
        await self._stop_publishing()
        if closing is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(closing, CLOSE_BOUND_S)
        if self.engine is not None:
            self.engine.dispose()
        log.info("pumpd stopped", reason=reason)
        logs.set_session_lookup(None)
        self._unlock_instance()

    async def _pause_all(self, running: list[Controller]) -> None:
        async def pause(ctl: Controller) -> None:
            pump = ctl.config.pump_id
            try:
                await ctl.pause(by=DAEMON, reason_code=SHUTDOWN_REASON)
            except Exception as exc:
                log.error("pause at shutdown failed", pump=pump, error=str(exc))
            else:
                state = ctl.session.state.value if ctl.session is not None else None
                log.warning("infusion paused for shutdown", pump=pump, session_state=state)

        try:
            async with asyncio.timeout(PAUSE_BOUND_S):
                await asyncio.gather(*(pause(ctl) for ctl in running))
        except TimeoutError:
            log.error("pauses at shutdown did not finish in time; pump failsafes take over")


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


async def run(config: DaemonConfig, *, notifier: Notifier | None, out: TextIO | None = None) -> int:
    """The foreground daemon: start, wait for a signal, shut down; the exit status."""
    daemon = Daemon(config, notifier=notifier, out=out)
    daemon.install_signal_handlers()
    try:
        try:
            await daemon.start()
        except BaseException:
            await daemon.shutdown("startup_failed")
            raise
        reason = await daemon.wait()
        await daemon.shutdown(reason)
    finally:
        daemon.remove_signal_handlers()
    return 0


def _first_line(text: str) -> str:
    """The first line of a driver's error, bounded: enough to name the cause."""
    return (text.strip().splitlines() or ["?"])[0][:160]
