"""When the next poll is due: a fixed rate, in the pump's slot of a shared line.

The schedule is fixed-rate (each poll due one period after the last was due, not after it
ended), so a slow poll does not push every later one back. A controller that falls behind
polls at once and does not try to catch up the polls it missed. On a line shared with other
pumps the driver hands out a slot (`pumpd/drivers/slots.py`): a poll due off its slot is
brought forward onto it — sooner, never later than the period says — so the pumps of one
line poll one after another through the period instead of queueing for the line together.
A read the kernel wants sooner (pumpd's own stop falling due before the next poll) is taken
at its time; the slot is found again by the next regular poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pumpd.drivers import PollSlot, PumpDriver, SharesLine


class PollSchedule:
    """The due time of the next poll, on the event loop's clock."""

    def __init__(self, now: Callable[[], float], slot: PollSlot | None) -> None:
        self._now = now
        self._slot = slot
        self._due = now()

    @classmethod
    def for_driver(cls, driver: PumpDriver) -> PollSchedule:
        """On the running loop's clock, in the driver's slot if its line has one."""
        slot = driver.poll_slot if isinstance(driver, SharesLine) else None
        return cls(asyncio.get_running_loop().time, slot)

    def delay_s(self, step_s: float, period_s: float) -> float:
        """After a poll: how long to wait for the next, due ``step_s`` after this one was
        (``step_s`` ≤ ``period_s``; shorter when a read is wanted sooner)."""
        due = self._due + step_s
        if self._slot is not None and step_s >= period_s:
            due = max(self._slot.at_or_before(due, period_s), self._due)
        now = self._now()
        if due < now:
            due = now  # behind: poll at once, and do not catch up the polls missed
        self._due = due
        return due - now

    def extra_poll(self, step_s: float) -> None:
        """A poll out of turn (a pushed alarm) was made: the regular one keeps its time."""
        self._due -= step_s
