"""Independent volume accounting: what should have been delivered, from the commanded
rates and the clock alone, never from the pump's counter.

The kernel compares the two every tick; only an independent figure can catch a pump whose
counter agrees with its own wrong mechanism (a runaway) or stops counting (a stuck sensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

_UL_PER_S_PER_ML_H = Decimal(1000) / Decimal(3600)


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
        return self.rate_ml_h * _UL_PER_S_PER_ML_H * span

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
        span = missing / (self.rate_ml_h * _UL_PER_S_PER_ML_H)
        return min(now_s, self.rate_since_s + float(span))

    def expected_ul(self, now_s: float) -> int:
        total = self.closed_ul + self._segment_ul(now_s)
        return int(total.to_integral_value(rounding=ROUND_FLOOR))

    def delivery_elapsed_s(self, now_s: float) -> float:
        running = now_s - self.rate_since_s if self.rate_ml_h > 0 else 0.0
        return self.closed_delivery_s + max(0.0, running)

    def as_dict(self, now_s: float, now_utc: str | None = None) -> dict[str, Any]:
        """JSON for a checkpoint (no floats: the audit refuses them); ``now_utc`` is the
        moment in UTC, so a restarted daemon can carry the expected volume across."""
        return {
            **({} if now_utc is None else {"at_utc": now_utc}),
            "volume_at_start_ul": self.volume_at_start_ul,
            "delivered_before_ul": self.delivered_before_ul,
            "rate_ml_h": format(self.rate_ml_h, "f"),
            "expected_ul": self.expected_ul(now_s),
            "delivery_elapsed_ms": int(self.delivery_elapsed_s(now_s) * 1000),
        }

    @classmethod
    def carried(cls, data: dict[str, Any], bridge_s: float, now_s: float) -> VolumeAccount:
        """Supervision taken over after a restart, the independent figure carried across.

        The checkpoint's expected volume plus its commanded rate for ``bridge_s``, the time
        since the checkpoint as UTC measures it (the only clock a restart leaves; the
        caller bounds it). The kernel then judges the pump's counter against it as on any
        tick, so a pump that ran away while pumpd was down is an over-infusion.
        """
        rate = Decimal(str(data["rate_ml_h"]))
        bridge = max(0.0, bridge_s)
        expected = Decimal(int(data["expected_ul"])) + rate * _UL_PER_S_PER_ML_H * Decimal(bridge)
        elapsed = int(data["delivery_elapsed_ms"]) / 1000 + (bridge if rate > 0 else 0.0)
        return cls(
            volume_at_start_ul=int(data["volume_at_start_ul"]),
            rate_ml_h=rate,
            rate_since_s=now_s,
            closed_ul=expected,
            closed_delivery_s=elapsed,
            delivered_before_ul=int(data.get("delivered_before_ul", 0)),
        )

    @classmethod
    def resumed(cls, data: dict[str, Any], delivered_ul: int, now_s: float) -> VolumeAccount:
        """Supervision taken over after a restart.

        The downtime was not accounted independently, so the expected volume is re-anchored
        on the pump's counter (``delivered_ul``); from here on the accounting is independent
        again. The checkpoint's own figure is kept in the audit record of the recovery.
        """
        return cls(
            volume_at_start_ul=int(data["volume_at_start_ul"]),
            rate_ml_h=Decimal(str(data["rate_ml_h"])),
            rate_since_s=now_s,
            closed_ul=Decimal(delivered_ul),
            closed_delivery_s=int(data["delivery_elapsed_ms"]) / 1000,
            delivered_before_ul=int(data.get("delivered_before_ul", 0)),
        )
