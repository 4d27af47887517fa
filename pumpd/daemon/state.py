"""What one pumpd process holds, and how it writes itself down and reports: its daemon
records and notices, sd_notify's STATUS=, the summary, health and forwarding views."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from sqlalchemy import Engine

from pumpd.audit import Actor, AsyncAuditWriter, AuditStore, ChainKey, HeadPublisher, NewEvent
from pumpd.clock import Clock
from pumpd.config import DaemonConfig
from pumpd.daemon.chainkey import NO_KEY_NOTICE, NO_KEY_STATUS
from pumpd.daemon.control import ControlHandle
from pumpd.daemon.notify import Notifier, NotifyError
from pumpd.daemon.watchdog import Watchdog
from pumpd.daemon.wiring import StartupError, make_clock
from pumpd.drivers import PumpDriver
from pumpd.protocols import Library
from pumpd.supervisor import Supervisor

if TYPE_CHECKING:
    # Only set with [forward]; pumpd.central is imported by the start-up that creates them.
    from pumpd.central.heads import CentralHeadSink
    from pumpd.central.task import ForwardTask

log = structlog.get_logger("pumpd.daemon")

STATUS_EVERY_S = 5.0
AUDIT_CHECK_S = 1.0
"""How often STATUS= is checked for a change of the audit writer's state (sent at once)."""
STARTUP_COMMIT_S = 60.0
"""How long start-up waits for its records (and a leftover spool before them) to commit."""


class DaemonState:
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
            from pumpd.central.task import summary as forward_summary

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
            await self._audit("daemon.announced", {"notice_code": code, "message": message})
        except Exception as exc:  # a notice never blocks what it announces
            log.error("announcement not written", notice=code, error=str(exc))
