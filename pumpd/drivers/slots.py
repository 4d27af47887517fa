"""Each pump on a shared line polls in its own slot of the period, not all at once.

Sixteen controllers started together, each on its own fixed-rate schedule, all ask for the
line in the same instant every period: fifteen reads queue behind the first, and the read
that would find a fault on the last pump waits for the other fifteen before it goes out.
That queue is the line's whole period of work squeezed into one burst, every period. So a
line hands each pump that joins it a slot: the pumps' polls are spread over the period
(slot ``k`` of ``n`` starts ``k / n`` of a period after the line's origin), and a read
finds the line idle instead of behind a queue. Nothing here delays a poll: a controller
moves its next poll onto its slot only by polling earlier (`PollSlot.at_or_before`), never
later than its period says.

The slot count is the most pumps the line has held at once (a daemon's pumps join at start
and stay), and a pump that leaves frees its slot for the next to join, so the spacing
settles at the configured number of pumps on the line. Times are the event loop's clock
(``loop.time()``, monotonic), the clock the controller schedules its polls on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class PollSlots:
    """The slots of one line: which are taken, and how many the period is cut into."""

    def __init__(self, origin_s: float) -> None:
        self.origin_s = origin_s
        self.count = 0
        """The most slots taken at once since the line opened: the period's divisions."""
        self._taken: set[int] = set()

    def take(self) -> PollSlot:
        index = next(i for i in range(len(self._taken) + 1) if i not in self._taken)
        self._taken.add(index)
        self.count = max(self.count, len(self._taken))
        return PollSlot(self, index)

    def give_back(self, slot: PollSlot) -> None:
        self._taken.discard(slot.index)


@dataclass(frozen=True, slots=True)
class PollSlot:
    """One pump's place in its line's period."""

    slots: PollSlots
    index: int

    def at_or_before(self, t_s: float, period_s: float) -> float:
        """The latest start of this slot at or before ``t_s`` on a grid of ``period_s``:
        within one period before ``t_s``, so a poll moved onto it comes sooner, by less than
        a period, and never later."""
        if not (math.isfinite(period_s) and period_s > 0):
            return t_s
        share = self.index / self.slots.count if self.slots.count else 0.0
        first = self.slots.origin_s + share * period_s
        # A time on the grid, reached by adding periods in floating point, may fall a hair
        # short of its point; it belongs to that point, not to the one a period before.
        return first + math.floor((t_s - first) / period_s + _ON_GRID) * period_s


_ON_GRID = 1e-6
"""A share of a period within which a time counts as at its grid point."""
