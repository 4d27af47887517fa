"""One simulated time for the simulator and the controller, in which a stall of the test
process does not count.

Why: the simulator and the controller share this process and its event loop, and both
derive simulated time from the real monotonic clock times the time scale. A stall of the
process (CPU contention from other jobs, a long garbage collection: 100-700 ms measured on
the shared 2-core machine) is then multiplied by the scale: at scale 800 a 300 ms stall is
four simulated minutes in which the simulated pump runs on and nobody supervises it, and
a 15 ms stall between the controller stamping a moment and the simulator acting on the
request already moves the pump's counter by more than the kernel's 500 µL volume band
(150 mL/h). The pump's heartbeat failsafe (0.6 s real) and the kernel's comm timeout
(0.4 s real) trip the same way. A real pump and a real daemon do not share a CPU, so such a
stall has no counterpart in the world the tests model.

:class:`StallFreeClock` is a real monotonic clock that lets at most ``max_step_s`` pass
between two readings by anyone: while the process runs, the reads are milliseconds apart
and it is the real clock; across a stall it advances by ``max_step_s`` only, for both the
simulator and the controller, so the two never disagree and no stall is magnified. The
tests get slower on a loaded machine, never wrong; waits are bounded generously.
"""

from __future__ import annotations

import datetime as dt
import time
from fractions import Fraction

from pumpd.clock import ScaledClock


class StallFreeClock:
    """A base :class:`~pumpd.clock.Clock`: real time, each step between readings capped."""

    def __init__(self, max_step_s: float = 0.005) -> None:
        if not max_step_s > 0:
            raise ValueError(f"max_step_s must be > 0, got {max_step_s}")
        self.max_step_s = max_step_s
        self._real_last = time.monotonic()
        self._mono0 = self._real_last
        self._mono = self._real_last
        self._utc0 = dt.datetime.now(dt.UTC)
        self.stalls_absorbed_s = 0.0

    def monotonic(self) -> float:
        real = time.monotonic()
        step = real - self._real_last
        self._real_last = real
        if step > self.max_step_s:
            self.stalls_absorbed_s += step - self.max_step_s
            step = self.max_step_s
        self._mono += max(0.0, step)
        return self._mono

    def now_utc(self) -> dt.datetime:
        return self._utc0 + dt.timedelta(seconds=self.monotonic() - self._mono0)


class SimulatorTime:
    """The simulator's clock interface (``now_s`` as an exact Fraction, ``time_scale``) on
    the same base as the controller's :class:`~pumpd.clock.ScaledClock`."""

    def __init__(self, base: StallFreeClock, time_scale: float, start_s: Fraction) -> None:
        self.time_scale = time_scale
        self._base = base
        self._scale = Fraction(time_scale)
        self._mono0 = base.monotonic()
        self._start_s = start_s

    def now_s(self) -> Fraction:
        return self._start_s + Fraction(self._base.monotonic() - self._mono0) * self._scale


def shared_clocks(scale: float, max_step_s: float = 0.005) -> tuple[StallFreeClock, ScaledClock]:
    """The base clock and the controller's scaled clock on it."""
    base = StallFreeClock(max_step_s)
    return base, ScaledClock(scale, base=base)
