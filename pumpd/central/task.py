"""The forwarder inside the daemon: an asyncio task that drives it in a thread of its own.

Every database call of the forwarder (the site's log, read-only, on an engine of its own;
the centre, on another) runs in one dedicated worker thread, never on the event loop, so a
pump loop or a halt never waits for it; a centre that does not answer holds only that
thread. Stopping never waits for the network: the task is cancelled and the thread is left
to finish its step (its transaction either commits, and the mark is written, or does not,
and the rows are sent again at the next start). Why a task and not a unit of its own is in
docs/central.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from pumpd.central.forwarder import (
    Backoff,
    CentreUnavailable,
    Conflict,
    ForwardConflict,
    Forwarder,
    ForwardStatus,
)

log = structlog.get_logger("pumpd.forward")

PROGRESS_EVERY_S = 60.0
"""How often the lag is logged while nothing changes."""


def catch_up_pause_s(step_s: float, duty_cycle: float) -> float:
    """The pause after a full batch that keeps the forwarder's share of wall time at
    ``duty_cycle``: its batch work holds the GIL, and the pump loops share that lock."""
    if duty_cycle >= 1.0 or step_s <= 0.0:
        return 0.0
    return step_s * (1.0 - duty_cycle) / duty_cycle


class ForwardTask:
    """Runs ``forwarder`` until cancelled; tells the daemon about conflicts and lag."""

    def __init__(
        self,
        forwarder: Forwarder,
        *,
        on_conflict: Callable[[Conflict], Awaitable[None]],
        on_lag: Callable[[ForwardStatus], Awaitable[None]],
    ) -> None:
        self.forwarder = forwarder
        self._on_conflict = on_conflict
        self._on_lag = on_lag
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pumpd-forward")
        self._told_conflict: tuple[str, int] | None = None
        self._lag_alerted = False
        self._last_state = ""
        self._last_progress = 0.0
        self.pauses: list[tuple[float, float]] = []
        """The last catch-up (step_s, pause_s) pairs, newest last (bounded)."""

    def status(self) -> ForwardStatus:
        return self.forwarder.status()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.forwarder.settings
        backoff = Backoff(settings.retry_max_s)
        while True:
            wait_s = settings.interval_s
            started = time.monotonic()
            try:
                result = await loop.run_in_executor(self._executor, self.forwarder.step)
            except CentreUnavailable:
                wait_s = backoff.failed()
            except ForwardConflict as exc:
                await self._conflict(exc.conflict)
                wait_s = settings.retry_max_s
            except Exception as exc:  # a bug here must not end forwarding silently
                log.error("forwarding step failed", error=repr(exc))
                wait_s = backoff.failed()
            else:
                backoff.reset()
                self._told_conflict = None
                if result.full:
                    step_s = time.monotonic() - started
                    wait_s = catch_up_pause_s(step_s, settings.duty_cycle)
                    self.pauses.append((step_s, wait_s))
                    del self.pauses[:-64]
            await self._observe()
            await asyncio.sleep(wait_s)

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
            site=self.forwarder.settings.site,
        )
        try:
            await self._on_conflict(conflict)
        except Exception as exc:
            log.error("forwarding conflict not announced", error=str(exc))

    async def _observe(self) -> None:
        st = self.forwarder.status()
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
        over = st.lag_s > self.forwarder.settings.alert_after_s
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
        """Never waits: a step in flight finishes on its own thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.forwarder.close()


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
