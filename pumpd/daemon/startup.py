"""The daemon's start-up in its fixed order: the instance lock, the schema, the chain key
and head publishing, the records of what was loaded, the spool's findings, each pump
brought up (retried in the background), the control socket, the watchdog, forwarding."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pumpd import __version__
from pumpd.audit import AsyncAuditWriter, AuditStore, HeadPublisher, HeadSink, LogHeadSink, migrate
from pumpd.config import PumpConfig
from pumpd.daemon import lines, liveuse, logs
from pumpd.daemon.chainkey import (
    KEY_EVENT,
    NO_KEY_NOTICE,
    chain_key_state,
    key_change,
    load_chain_key,
)
from pumpd.daemon.control import start_control
from pumpd.daemon.reload import DaemonReload
from pumpd.daemon.watchdog import Verdict, Watchdog
from pumpd.daemon.wiring import (
    StartupError,
    _safe_url,
    controller_config,
    make_clock,
    make_daemon_engine,
    make_writer,
    same_file_system,
)
from pumpd.drivers import DriverError, make_driver
from pumpd.protocols import load_library
from pumpd.supervisor import Supervisor

if TYPE_CHECKING:
    from pumpd.central.forwarder import Conflict, ForwardStatus

# pumpd.central (the forwarder, its SQL and the central schema) is imported only when
# [forward] is configured: most sites never forward, and a restart should not load it.

log = structlog.get_logger("pumpd.daemon")

RETRY_MAX_S = 30.0


class DaemonStartup(DaemonReload):
    """Start-up: ``start`` and the steps it takes, each in the order the module names."""

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
        refused, risk_notes = liveuse.review(cfg)
        for note in risk_notes:
            log.warning("pump capability", note=note)
        lines_refused, line_warnings = lines.review(cfg)
        for warning in line_warnings:
            log.warning("line oversubscribed", note=warning)
        said = [f"{r.key}: {r.message}" for r in refused]
        said += [f"{r.key}: {r.message}" for r in lines_refused]
        if said:
            raise StartupError("; ".join(said))
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
            from pumpd.central.heads import CentralHeadSink

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
                                "detail": str(exc) or "no reply",
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
                payload = liveuse.connected_payload(pump, driver.capabilities)
                await self._audit("pump.connected", payload, pump=pump.id)
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
        from pumpd.central.task import ForwardTask

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

    def _watchdog_changed(self, verdict: Verdict) -> None:
        if verdict.healthy:
            log.info("watchdog: pings resumed", reason=verdict.reason)
            return
        log.error("watchdog: pings withheld", reason=verdict.reason, stale=list(verdict.stale))
        self._tasks.append(asyncio.create_task(self._announce("watchdog.withheld", verdict.reason)))
        self._update_status()


def _first_line(text: str) -> str:
    """The first line of a driver's error, bounded: enough to name the cause."""
    return (text.strip().splitlines() or ["?"])[0][:160]
