"""Petting systemd's watchdog only while the daemon really supervises every pump.

A watchdog that pings from a timer proves only that the timer runs. Here each ping is
earned: every pump's poll loop must have completed a poll within ``stale_after_s`` (real
seconds), and the event loop itself must not be lagging by more than that. When either
fails the pings stop, systemd kills and restarts the daemon (``WatchdogSec=``,
``Restart=on-failure``), recovery takes the pumps over, and meanwhile each pump's own
heartbeat failsafe stops it if nobody heartbeats it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a ping is earned, and if not, why (one sentence for logs and STATUS=)."""

    healthy: bool
    reason: str
    stale: tuple[str, ...] = ()


def judge(ages_s: Mapping[str, float], lag_s: float, stale_after_s: float) -> Verdict:
    """The verdict for poll-loop ages (real seconds) and the event loop's lag."""
    stale = tuple(
        sorted(
            pump for pump, age in ages_s.items() if not math.isfinite(age) or age > stale_after_s
        )
    )
    if stale:
        ages = ", ".join(
            f"{pump} {'dead' if not math.isfinite(ages_s[pump]) else f'{ages_s[pump]:.1f} s'}"
            for pump in stale
        )
        return Verdict(False, f"poll loop stalled: {ages}", stale)
    if lag_s > stale_after_s:
        return Verdict(False, f"event loop lagging by {lag_s:.1f} s")
    return Verdict(True, "all poll loops fresh")


class Watchdog:
    """Checks health every ``interval_s`` and pings (``ping``) only when healthy.

    ``on_change`` hears each change of verdict (the daemon logs, audits and updates
    STATUS=); an exception from ``ping`` is passed to ``on_ping_error`` and the loop goes on
    (pings that do not arrive are themselves the failsafe).
    """

    def __init__(
        self,
        *,
        health: Callable[[], Mapping[str, float]],
        stale_after_s: float,
        interval_s: float,
        ping: Callable[[], None] | None,
        on_change: Callable[[Verdict], None] | None = None,
        on_ping_error: Callable[[Exception], None] | None = None,
    ) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be finite and > 0, got {interval_s!r}")
        self._health = health
        self._stale_after_s = stale_after_s
        self._interval_s = interval_s
        self._ping = ping
        self._on_change = on_change
        self._on_ping_error = on_ping_error
        self.pings = 0
        self.withheld = 0
        self.verdict = Verdict(True, "not checked yet")

    def check(self, lag_s: float) -> Verdict:
        """Judge now; ping if healthy; report a change of verdict."""
        try:
            ages = self._health()
        except Exception as exc:  # a health check that fails is no proof of health
            verdict = Verdict(False, f"health check failed: {exc!r}")
        else:
            verdict = judge(ages, lag_s, self._stale_after_s)
        changed = verdict.healthy != self.verdict.healthy or verdict.stale != self.verdict.stale
        self.verdict = verdict
        if changed and self._on_change is not None:
            self._on_change(verdict)
        if not verdict.healthy:
            self.withheld += 1
            return verdict
        if self._ping is not None:
            try:
                self._ping()
            except Exception as exc:
                if self._on_ping_error is None:
                    raise
                self._on_ping_error(exc)
            else:
                self.pings += 1
        return verdict

    async def run(self) -> None:
        """Check forever; the lag is how late each wake-up came."""
        while True:
            expected = time.monotonic() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self.check(max(0.0, time.monotonic() - expected))
