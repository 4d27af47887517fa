"""Independent volume accounting: what should have been delivered, from the commanded
rates and the clock alone, never from the pump's counter.

The kernel compares the two every tick; only an independent figure can catch a pump whose
counter agrees with its own wrong mechanism (a runaway) or stops counting (a stuck sensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

UL_PER_S_PER_ML_H = Decimal(1000) / Decimal(3600)


@dataclass(slots=True)
class VolumeAccount:
    """Expected µL since the start: a sum of segments of constant commanded rate.

    ``volume_at_start_ul`` is the pump counter when this session's start was commanded, so
    delivered = counter − that. A pump that restarted (or whose counter went back) counts
    again from its new counter: what was delivered before is kept in
    ``delivered_before_ul`` and the start is re-anchored on the new counter
    (:meth:`counter_restarted`), so delivered = delivered_before + counter − start. Times
    are the controller's monotonic clock seconds.
    """

    volume_at_start_ul: int
    rate_ml_h: Decimal
    rate_since_s: float
    closed_ul: Decimal = Decimal(0)
    closed_delivery_s: float = 0.0
    delivered_before_ul: int = 0

    def delivered_ul(self, counter_ul: int) -> int:
        """Delivered to this session when the pump's counter reads ``counter_ul``."""
        return self.delivered_before_ul + counter_ul - self.volume_at_start_ul

    def counter_restarted(self, known_ul: int, anchor_ul: int) -> None:
        """The pump's counter was lost: ``known_ul`` had been delivered, and from now on
        the counter's rise above ``anchor_ul`` is added to it. The expected volume is not
        touched: it never came from the counter."""
        self.delivered_before_ul = max(0, known_ul)
        self.volume_at_start_ul = max(0, anchor_ul)

    def set_rate(self, rate_ml_h: Decimal, at_s: float) -> None:
        """Close the running segment at ``at_s`` and run at ``rate_ml_h`` from then on."""
        at = max(at_s, self.rate_since_s)
        self.closed_ul += self._segment_ul(at)
        if self.rate_ml_h > 0:
            self.closed_delivery_s += at - self.rate_since_s
        self.rate_ml_h = rate_ml_h
        self.rate_since_s = at

    def _segment_ul(self, now_s: float) -> Decimal:
        span = Decimal(max(0.0, now_s - self.rate_since_s))
        return self.rate_ml_h * UL_PER_S_PER_ML_H * span

    def reached_s(self, volume_ul: int, now_s: float) -> float:
        """When the expected volume reached ``volume_ul`` (``now_s`` if it has not yet).

        Used to switch to the KVO rate at the moment the plan's volume was due rather than
        at the later moment pumpd noticed it: the KVO that follows is then accounted from
        when it began, by the commanded rates alone.
        """
        if self.expected_ul(now_s) < volume_ul or self.rate_ml_h <= 0:
            return now_s
        missing = Decimal(volume_ul) - self.closed_ul
        if missing <= 0:
            return self.rate_since_s
        span = missing / (self.rate_ml_h * UL_PER_S_PER_ML_H)
        return min(now_s, self.rate_since_s + float(span))

    def expected_ul(self, now_s: float) -> int:
        total = self.closed_ul + self._segment_ul(now_s)
        return int(total.to_integral_value(rounding=ROUND_FLOOR))

    def delivery_elapsed_s(self, now_s: float) -> float:
        running = now_s - self.rate_since_s if self.rate_ml_h > 0 else 0.0
        return self.closed_delivery_s + max(0.0, running)
