"""What a tick is given and what it decides: the limits one session is supervised with
(from its protocol, its plan and the kernel's policy), the controller's view at one instant,
and the decision. Validated where they are made: a wrong type or a contradictory time is an
:class:`InvalidTickInput` before any rule reads it. The rules are in
``safety/delivery_rules.py`` and ``safety/bedside_rules.py``; ``safety.tick.evaluate`` runs them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from safety.actions import Action, ActionKind, Priority
from safety.constraints import ceiling
from safety.plan import Plan
from safety.protocol import Protocol
from safety.pump import MAX_RATE_ML_H, PumpSnapshot
from safety.vitals import VitalsReading, VitalsRules


class InvalidTickInput(ValueError):
    """Tick limits or inputs of the wrong type, or times that contradict each other.

    The controller must treat this error like a STOP with a high-priority alarm: it means
    its own bookkeeping is broken.
    """


class SessionPhase(enum.Enum):
    """The phase the controller believes the session is in."""

    READY = "ready"
    PRIMING = "priming"
    INFUSING = "infusing"
    PAUSED = "paused"
    KVO = "kvo"
    OBSERVATION = "observation"
    ENDED = "ended"


DELIVERY_PHASES = frozenset({SessionPhase.INFUSING, SessionPhase.KVO})
"""The phases in which the pump is meant to be delivering."""


class PendingInput(enum.Enum):
    """What a session waits for from a person (GIP 2.2.1 re-alerts while it waits)."""

    DOUBLE_CHECK = "double_check"
    START = "start"
    ADJUST_CONFIRMATION = "adjust_confirmation"
    ACKNOWLEDGEMENT = "acknowledgement"


def _seconds(name: str, value: object, *, positive: bool = False) -> float:
    number = _instant(name, value)
    if number < 0 or (positive and number == 0):
        bound = "> 0" if positive else "≥ 0"
        raise InvalidTickInput(f"{name} must be finite and {bound} s, got {value!r}")
    return number


def _instant(name: str, value: object) -> float:
    """A point on the controller's monotonic axis. Its origin is arbitrary (boot, or a
    process's start), so an instant may be negative: a session restored after a restart
    or a reboot holds times from before the new origin. Only its order against ``now_s``
    means something, and that is checked by the caller."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTickInput(f"{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidTickInput(f"{name} is too large to be a time in seconds") from None
    if not math.isfinite(number):
        raise InvalidTickInput(f"{name} must be a finite time in seconds, got {value!r}")
    return number


# No infusion comes near these; they keep arithmetic and messages on ordinary numbers.
MAX_VOLUME_UL = 10**12


def _microlitres(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VOLUME_UL:
        raise InvalidTickInput(
            f"{name} must be an integer between 0 and {MAX_VOLUME_UL} µL, got {value!r}"
        )
    return value


def _decimal(name: str, value: object, *, upper: Decimal | None = None) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidTickInput(f"{name} must be a finite Decimal ≥ 0, got {value!r}")
    if upper is not None and value > upper:
        raise InvalidTickInput(f"{name} must be ≤ {upper}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class SupervisionLimits:
    """Every threshold the tick applies, fixed for one session.

    Tolerances are relative *and* absolute: a band is ``max(rel × reference, abs)``, so a
    small reference (early in an infusion, a slow rate) is not judged on noise, while a
    large one is held to the relative band.
    """

    vtbi_ul: int
    vtbi_overrun_ul: int
    kvo_max_ul: int
    comm_timeout_s: float
    rate_tolerance_rel: Decimal
    rate_tolerance_abs_ml_h: Decimal
    rate_settle_s: float
    volume_tolerance_rel: Decimal
    volume_tolerance_abs_ul: int
    pause_remind_after_s: float
    pause_remind_every_s: float
    pause_stop_after_s: float
    max_delivery_s: float | None = None
    vitals: VitalsRules | None = None
    provenance: tuple[str, ...] = ()
    input_remind_every_s: float = 900.0

    def __post_init__(self) -> None:
        _microlitres("vtbi_ul", self.vtbi_ul)
        _microlitres("vtbi_overrun_ul", self.vtbi_overrun_ul)
        _microlitres("kvo_max_ul", self.kvo_max_ul)
        _microlitres("volume_tolerance_abs_ul", self.volume_tolerance_abs_ul)
        if self.vtbi_ul == 0:
            raise InvalidTickInput("vtbi_ul must be > 0")
        _seconds("comm_timeout_s", self.comm_timeout_s, positive=True)
        _seconds("rate_settle_s", self.rate_settle_s)
        _seconds("pause_remind_after_s", self.pause_remind_after_s)
        _seconds("pause_remind_every_s", self.pause_remind_every_s, positive=True)
        _seconds("pause_stop_after_s", self.pause_stop_after_s, positive=True)
        if self.max_delivery_s is not None:
            _seconds("max_delivery_s", self.max_delivery_s, positive=True)
        _decimal("rate_tolerance_rel", self.rate_tolerance_rel, upper=Decimal(1))
        _decimal("rate_tolerance_abs_ml_h", self.rate_tolerance_abs_ml_h, upper=MAX_RATE_ML_H)
        _decimal("volume_tolerance_rel", self.volume_tolerance_rel, upper=Decimal(1))
        if self.pause_remind_after_s > self.pause_stop_after_s:
            raise InvalidTickInput(
                f"pause_remind_after_s ({self.pause_remind_after_s}) is after "
                f"pause_stop_after_s ({self.pause_stop_after_s}): the stop would come first"
            )
        if self.vitals is not None and not isinstance(self.vitals, VitalsRules):
            raise InvalidTickInput(f"vitals must be VitalsRules or None, got {self.vitals!r}")
        if _seconds("input_remind_every_s", self.input_remind_every_s) < 1:
            raise InvalidTickInput("input_remind_every_s must be at least 1 s")


@dataclass(frozen=True, slots=True)
class TickInputs:
    """What the controller knows at ``now_s`` (its monotonic clock, like every ``*_s`` here).

    ``expected_volume_ul`` is integrated by the controller from the rates it commanded
    (zero while paused), independently of the pump's counter; ``volume_at_start_ul`` is the
    pump counter when this session began, so delivered = counter − that;
    ``delivery_elapsed_s`` is the time spent delivering since the start, pauses excluded.

    A pump that restarted (or whose counter went back) counts again from its new counter:
    the controller then keeps what the session had delivered before in
    ``delivered_before_ul`` and re-anchors ``volume_at_start_ul`` on the new counter, so
    delivered = delivered_before + counter − volume_at_start (docs/controller.md).
    """

    now_s: float
    phase: SessionPhase
    commanded_rate_ml_h: Decimal
    commanded_vtbi_ul: int
    rate_commanded_at_s: float
    snapshot: PumpSnapshot | None
    previous_snapshot: PumpSnapshot | None
    last_good_comm_s: float
    delivery_elapsed_s: float | None
    expected_volume_ul: int
    volume_at_start_ul: int = 0
    delivered_before_ul: int = 0
    vitals: VitalsReading | None = None
    vitals_taken_s: float | None = None
    paused_since_s: float | None = None
    pending_input: PendingInput | None = None
    input_pending_since_s: float | None = None
    latched_alarm_priority: Priority | None = None
    vitals_acknowledged: bool = False
    """A nurse has acknowledged the alarm this very reading raised (the session knows which
    reading it was): while nothing is delivered, its out-of-band values remind instead of
    alarming again, so an acknowledgement is not followed by the same alarm at the next
    tick. A new reading is judged afresh."""
    vtbi_exceeded_acknowledged_ul: int | None = None
    """The delivered volume (same account as the tick's: delivered before + counter − start)
    at which a nurse acknowledged ``tick.vtbi.exceeded`` on a pump read just then, stopped;
    None while no such alarm was acknowledged. While the pump does not deliver and the
    volume has not grown past it (by more than :data:`VTBI_ACK_COUNTER_NOISE_UL`), that
    exceedance reminds instead of stopping and alarming again; any growth, or delivery, is
    judged afresh."""
    volume_stop_primary: bool = False
    """pumpd's stop at the plan's volume is the one that ends the infusion (the pump has
    no volume stop of its own: ``safety.capability.volume_stop_role``)."""

    def __post_init__(self) -> None:
        now = _instant("now_s", self.now_s)
        if not isinstance(self.volume_stop_primary, bool):
            raise InvalidTickInput(
                f"volume_stop_primary must be a bool, got {self.volume_stop_primary!r}"
            )
        if not isinstance(self.phase, SessionPhase):
            raise InvalidTickInput(f"phase must be a SessionPhase, got {self.phase!r}")
        _decimal("commanded_rate_ml_h", self.commanded_rate_ml_h, upper=MAX_RATE_ML_H)
        _microlitres("commanded_vtbi_ul", self.commanded_vtbi_ul)
        _microlitres("expected_volume_ul", self.expected_volume_ul)
        _microlitres("volume_at_start_ul", self.volume_at_start_ul)
        _microlitres("delivered_before_ul", self.delivered_before_ul)
        if self.vtbi_exceeded_acknowledged_ul is not None:
            _microlitres("vtbi_exceeded_acknowledged_ul", self.vtbi_exceeded_acknowledged_ul)
        for snap_name in ("snapshot", "previous_snapshot"):
            snap = getattr(self, snap_name)
            if snap is not None and not isinstance(snap, PumpSnapshot):
                raise InvalidTickInput(f"{snap_name} must be a PumpSnapshot or None, got {snap!r}")
        times = {
            "rate_commanded_at_s": self.rate_commanded_at_s,
            "last_good_comm_s": self.last_good_comm_s,
            "vitals_taken_s": self.vitals_taken_s,
            "paused_since_s": self.paused_since_s,
        }
        if self.delivery_elapsed_s is not None:
            _seconds("delivery_elapsed_s", self.delivery_elapsed_s)
        for name, value in times.items():
            if value is not None and _instant(name, value) > now:
                raise InvalidTickInput(f"{name} ({value}) is after now_s ({now})")
        if self.rate_commanded_at_s is None or self.last_good_comm_s is None:
            raise InvalidTickInput("rate_commanded_at_s and last_good_comm_s are required")
        if self.vitals is not None and not isinstance(self.vitals, VitalsReading):
            raise InvalidTickInput(f"vitals must be a VitalsReading or None, got {self.vitals!r}")
        if (self.vitals is None) != (self.vitals_taken_s is None):
            raise InvalidTickInput("vitals and vitals_taken_s must be given together")
        if not isinstance(self.vitals_acknowledged, bool) or (
            self.vitals_acknowledged and self.vitals is None
        ):
            raise InvalidTickInput("vitals_acknowledged is a bool, true only with a reading")
        if (self.phase is SessionPhase.PAUSED) != (self.paused_since_s is not None):
            raise InvalidTickInput("paused_since_s must be given exactly when the phase is paused")
        self._check_pending(now)

    def _check_pending(self, now: float) -> None:
        """What a person must still do, since when, and the alarm priority that is latched."""
        kind, since = self.pending_input, self.input_pending_since_s
        if kind is not None and not isinstance(kind, PendingInput):
            raise InvalidTickInput(f"pending_input must be a PendingInput or None, got {kind!r}")
        if (kind is None) != (since is None):
            raise InvalidTickInput("pending_input and input_pending_since_s go together")
        if since is not None and _instant("input_pending_since_s", since) > now:
            raise InvalidTickInput(f"input_pending_since_s ({since}) is after now_s ({now})")
        latched = self.latched_alarm_priority
        if latched is not None and not isinstance(latched, Priority):
            raise InvalidTickInput(f"latched_alarm_priority must be a Priority, got {latched!r}")
        if kind is PendingInput.ACKNOWLEDGEMENT and latched is None:
            raise InvalidTickInput("an acknowledgement is pending only while an alarm is latched")


class Outcome(enum.Enum):
    """The decision as one word: the strongest action kind, or continue."""

    CONTINUE = "continue"
    REMIND = "remind"
    ALARM = "alarm"
    PAUSE = "pause"
    STOP = "stop"

    @property
    def rank(self) -> int:
        return 0 if self is Outcome.CONTINUE else ActionKind(self.value).rank


@dataclass(frozen=True, slots=True)
class TickDecision:
    """Every action demanded at this tick, strongest first, and the resulting outcome."""

    actions: tuple[Action, ...] = field(default=())

    @property
    def outcome(self) -> Outcome:
        if not self.actions:
            return Outcome.CONTINUE
        return Outcome(max((a.kind for a in self.actions), key=lambda k: k.rank).value)

    @property
    def priority(self) -> Priority | None:
        """The highest alarm priority to signal, or None when nothing is demanded."""
        if not self.actions:
            return None
        return max((a.priority for a in self.actions), key=lambda p: p.rank)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.actions)

    @property
    def rules(self) -> tuple[str, ...]:
        """The distinct rules that contributed, in the order of ``actions``."""
        return tuple(dict.fromkeys(a.rule for a in self.actions))


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """The kernel's own supervision thresholds: engineering choices, not clinic policy.

    docs/safety/supervision-rules.md justifies each figure. ``max_unplanned_dose_mg`` caps
    the absolute volume band by drug content, so a concentrated solution gets a narrower
    band in µL than a dilute one.
    """

    comm_timeout_s: float = 5.0
    rate_tolerance_rel: Decimal = Decimal("0.05")
    rate_tolerance_abs_ml_h: Decimal = Decimal("0.5")
    rate_settle_s: float = 10.0
    volume_tolerance_rel: Decimal = Decimal("0.05")
    volume_tolerance_abs_ul: int = 500
    max_unplanned_dose_mg: Decimal = Decimal("1")
    vtbi_overrun_ul: int = 200
    duration_overrun_rel: Decimal = Decimal("0.25")
    input_reminder_every_s: float = 900.0


DEFAULT_POLICY = SupervisionPolicy()


def _ceil_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def supervision_limits(
    protocol: Protocol, plan: Plan, policy: SupervisionPolicy = DEFAULT_POLICY
) -> SupervisionLimits:
    """The limits one session is supervised with, from its protocol, its plan and the policy.

    Where several sources bound one figure they form a constraint chain that keeps the
    strictest; each chain's explanation goes into ``provenance`` for the audit record.
    """
    if not isinstance(protocol, Protocol) or not isinstance(plan, Plan):
        raise InvalidTickInput("supervision_limits needs a Protocol and its Plan")
    volume_band = ceiling("volume_tolerance_abs", "µL").tighten(
        Decimal(policy.volume_tolerance_abs_ul), rule="policy.volume_band", reason="kernel default"
    )
    if plan.concentration_mg_per_ml > 0:
        volume_band = volume_band.tighten(
            (policy.max_unplanned_dose_mg / plan.concentration_mg_per_ml * 1000).to_integral_value(
                rounding=ROUND_FLOOR
            ),
            rule="policy.max_unplanned_dose",
            reason=f"{policy.max_unplanned_dose_mg} mg at {plan.concentration_mg_per_ml} mg/mL",
        )
    delivery = (
        ceiling("delivery_time", "min")
        .tighten(
            protocol.limits.duration_min.hard_max,
            rule="protocol.limits.duration_min.hard_max",
            reason=protocol.key,
        )
        .tighten(
            plan.duration_min * (1 + policy.duration_overrun_rel),
            rule="policy.duration_overrun",
            reason=f"planned {plan.duration_min} min + {policy.duration_overrun_rel:%}",
        )
    )
    pause = protocol.pause
    kvo_ul = protocol.kvo_rate_ml_h * protocol.observation_min / 60 * 1000
    # Both chains start from a bound, so clamping that bound yields the chain's strictest.
    band_ul = volume_band.clamp(Decimal(policy.volume_tolerance_abs_ul))
    delivery_min = delivery.clamp(protocol.limits.duration_min.hard_max)
    return SupervisionLimits(
        vtbi_ul=plan.vtbi_ul,
        vtbi_overrun_ul=policy.vtbi_overrun_ul,
        kvo_max_ul=_ceil_int(kvo_ul),
        comm_timeout_s=policy.comm_timeout_s,
        rate_tolerance_rel=policy.rate_tolerance_rel,
        rate_tolerance_abs_ml_h=policy.rate_tolerance_abs_ml_h,
        rate_settle_s=policy.rate_settle_s,
        volume_tolerance_rel=policy.volume_tolerance_rel,
        volume_tolerance_abs_ul=int(band_ul),
        pause_remind_after_s=float(pause.reminder_after_min * 60),
        pause_remind_every_s=float(pause.reminder_interval_min * 60),
        pause_stop_after_s=float(pause.stop_after_min * 60),
        max_delivery_s=float(delivery_min * 60),
        vitals=protocol.vitals,
        provenance=(volume_band.explain(), delivery.explain()),
        # GIP 2.2.1's 15 min; the protocol format has no figure of its own for it.
        input_remind_every_s=policy.input_reminder_every_s,
    )
