"""The forwarder under the daemon: an asyncio task that drives it in a process of its own.

Every step's work (the site's rows, the batch's parameters, psycopg, the hash checks, the
mark) runs in the forwarding process (pumpd/central/worker.py), never in the daemon's
interpreter, so it takes no lock, thread or event-loop turn from a pump loop or a halt;
the task only asks for a step, reads the reply (a status snapshot) and decides what comes
next: the pause that paces a catch-up, the backoff at an unreachable centre, the tamper
alarm, the lag notice, and restarting a process that died. Stopping never waits for the
network: the process is killed (its step committed at the centre or did not; the mark is
never ahead of the centre, so the rows are sent again at most). Why a process and not a
thread, and a task and not a unit, is in docs/central.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog

from pumpd.central.child import ChildGone, ForwarderChild
from pumpd.central.forwarder import Backoff, Conflict, ForwardSettings, ForwardStatus
from pumpd.central.ipc import StepReply

log = structlog.get_logger("pumpd.forward")

PROGRESS_EVERY_S = 60.0
"""How often the lag is logged while nothing changes."""


def catch_up_pause_s(step_s: float, duty_cycle: float) -> float:
    """The pause after a full batch that keeps the forwarder's share of wall time at
    ``duty_cycle``: its process competes with the pump loops for the CPUs."""
    if duty_cycle >= 1.0 or step_s <= 0.0:
        return 0.0
    return step_s * (1.0 - duty_cycle) / duty_cycle


class ForwardTask:
    """Runs the forwarding process until cancelled; tells the daemon about conflicts and
    lag. ``database`` is the site's audit database URL (the process opens its own engine)."""

    def __init__(
        self,
        settings: ForwardSettings,
        database: str,
        *,
        on_conflict: Callable[[Conflict], Awaitable[None]],
        on_lag: Callable[[ForwardStatus], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self._database = database
        self._on_conflict = on_conflict
        self._on_lag = on_lag
        self._child: ForwarderChild | None = None
        self._status = ForwardStatus(settings.site, "starting", 0, 0, 0, 0.0)
        self._shipped_before = 0
        """Events acknowledged by earlier forwarding processes of this daemon."""
        self._told_conflict: tuple[str, int] | None = None
        self._lag_alerted = False
        self._last_state = ""
        self._last_progress = 0.0
        self.pauses: list[tuple[float, float]] = []
        """The last catch-up (step_s, pause_s) pairs, newest last (bounded)."""
        self.restarts = 0
        """Forwarding processes started after one ended unexpectedly."""

    def status(self) -> ForwardStatus:
        return self._status

    @property
    def child(self) -> ForwarderChild | None:
        """The forwarding process now running, if any."""
        return self._child

    async def run(self) -> None:
        settings = self.settings
        backoff = Backoff(settings.retry_max_s)
        while True:
            wait_s = settings.interval_s
            try:
                child = await self._running_child()
                started = time.monotonic()  # the step alone, not the process's start
                reply = await self._step(child)
            except ChildGone as exc:
                wait_s = backoff.failed()
                self.restarts += 1
                self._status = replace(self._status, error=f"forwarding process: {exc}"[:300])
                log.error(
                    "the forwarding process ended; starting another",
                    error=str(exc),
                    exit_code=exc.exit_code,
                    restart_in_s=wait_s,
                    site=settings.site,
                )
            else:
                self._status = replace(
                    reply.status, shipped=self._shipped_before + reply.status.shipped
                )
                if reply.outcome == "unavailable":
                    wait_s = backoff.failed()
                elif reply.outcome == "conflict":
                    if reply.conflict is not None:
                        await self._conflict(reply.conflict)
                    wait_s = settings.retry_max_s
                elif reply.outcome == "error":  # a bug here must not end forwarding silently
                    log.error("forwarding step failed", error=reply.error)
                    wait_s = backoff.failed()
                else:
                    backoff.reset()
                    self._told_conflict = None
                    if reply.full:
                        step_s = time.monotonic() - started
                        wait_s = catch_up_pause_s(step_s, settings.duty_cycle)
                        self.pauses.append((step_s, wait_s))
                        del self.pauses[:-64]
            await self._observe()
            await asyncio.sleep(wait_s)

    async def _running_child(self) -> ForwarderChild:
        if self._child is None:
            self._child = await ForwarderChild.start(self.settings, self._database)
            log.debug("forwarding process started", pid=self._child.pid)
        return self._child

    async def _step(self, child: ForwarderChild) -> StepReply:
        try:
            return await child.step()
        except ChildGone:
            self._shipped_before = self._status.shipped
            self._child = None
            raise

    async def _conflict(self, conflict: Conflict) -> None:
        key = (conflict.kind, conflict.seq)
        if key == self._told_conflict:
            return
        self._told_conflict = key
        log.critical(
            "TAMPER ALARM: forwarding to the central store stopped",
            kind=conflict.kind,
            seq=conflict.seq,
            detail=conflict.detail,
            site=self.settings.site,
        )
        try:
            await self._on_conflict(conflict)
        except Exception as exc:
            log.error("forwarding conflict not announced", error=str(exc))

    async def _observe(self) -> None:
        st = self._status
        now = time.monotonic()
        fields = {
            "site": st.site,
            "state": st.state,
            "lag_events": st.lag_events,
            "lag_s": round(st.lag_s, 1),
            "acked_seq": st.acked_seq,
        }
        if st.state != self._last_state:
            self._last_state = st.state
            self._last_progress = now
            if st.state == "unreachable":
                log.warning(
                    "central store unreachable; events wait in the local log",
                    error=st.error,
                    **fields,
                )
            elif st.state != "conflict":
                log.info("forwarding", **fields)
        elif now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            log.info("forwarding", **fields)
        over = st.lag_s > self.settings.alert_after_s
        if over and not self._lag_alerted:
            self._lag_alerted = True
            try:
                await self._on_lag(st)
            except Exception as exc:
                log.error("forwarding lag not announced", error=str(exc))
        elif not over and self._lag_alerted and st.lag_events == 0:
            self._lag_alerted = False
            log.info("forwarding caught up", **fields)

    def close(self) -> None:
        """Never waits: the forwarding process is killed, a step in flight with it."""
        if self._child is not None:
            self._child.kill()

    async def wait_closed(self) -> None:
        """After :meth:`close`: until the process has ended (tests, the benchmark)."""
        if self._child is not None:
            await self._child.wait_closed()


def summary(status: ForwardStatus, alert_after_s: float) -> str:
    """The forwarding part of STATUS=."""
    lag = f"lag {status.lag_events} events/{status.lag_s:.0f} s"
    if status.state == "conflict":
        where = (
            "?"
            if status.conflict is None
            else f"{status.conflict.kind} at seq {status.conflict.seq}"
        )
        return f"FORWARDING STOPPED ({where}); {lag}"
    if status.state == "unreachable":
        return f"CENTRAL STORE UNREACHABLE, {lag}"
    if status.lag_s > alert_after_s:
        return f"FORWARDING BEHIND, {lag}"
    return f"forwarding {status.state}, {lag}"
