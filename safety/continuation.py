"""Continuing an interrupted infusion: whether the same session may deliver again.

A kinked line is routine: the pump alarms (occlusion), pumpd stops the infusion, a nurse
clears the cause at the pump and acknowledges. Ending the session there would leave the
patient with part of the dose and, through the course rules, no treatment for a day. So a
nurse may continue the same session; this rule says when that is safe:

- **what interrupted it** is continuable: the pump's own mechanical alarms (occlusion up-
  or downstream, air in line, door open), which the pump detects and stops itself for, and
  a nurse's own stop. Every other interruption is about the accuracy of delivery or the
  state of the patient (over-infusion, rate mismatch, VTBI overrun, counter anomalies, a
  pump that rebooted or stopped answering while delivering, vitals outside the stop band,
  a pause that lasted too long): after those nobody knows what the patient got, so the
  session ends in observation;
- **the remaining volume** comes from the independent account: the planned volume less
  the larger of what the pump's counter says and what the commanded rates and the clock
  say was due. A pump that under-counts cannot make the remainder larger than the truth;
  nothing is left: nothing to continue;
- **the total interruption** (this one and every earlier one) stays within the protocol's
  pause limit, the time after which a paused infusion is ended: a series of short
  interruptions must not stretch an infusion beyond what one pause may;
- **the session's maximum duration**: the delivery time already spent plus the time the
  remainder needs at the plan's rate stays within the maximum the tick supervises with;
- **fresh vitals**: a reading no older than the protocol's baseline age, complete and
  inside the start band, as for a start;
- **the pump** answers, is idle, alarm-free and not flowing (its alarm cleared at the pump).
  The program is written and read back before the start command, by the controller as for
  every command that moves fluid.

An interruption about delivery accuracy ends the session by itself instead
(:func:`delivery_ended`): once the pump's halt is confirmed the observation starts, with no
nurse's ``end`` needed; a nurse still acknowledges the alarm.

Pure, like the rest of the kernel: the controller and the session pass the facts in.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from safety.pump import PumpMode, PumpSnapshot, flag_names
from safety.verdicts import Severity, Verdict
from safety.vitals import VitalsReading, VitalsRules, check_baseline

RULE = "continue"

CONTINUABLE: frozenset[str] = frozenset(
    {
        "tick.pump.alarm.occlusion_downstream",
        "tick.pump.alarm.occlusion_upstream",
        "tick.pump.alarm.air_in_line",
        "tick.pump.alarm.door_open",
        "nurse.stop",
    }
)
"""The interruptions after which the same session may deliver again: the pump's mechanical
alarms, which it detects and stops itself for, and a nurse's own stop."""


DELIVERY_ACCURACY: frozenset[str] = frozenset(
    {
        "tick.rate.mismatch",
        "tick.volume.over_infusion",
        "tick.vtbi.exceeded",
        "tick.vtbi.commanded_above_plan",
        "tick.pump.rebooted",
        "tick.pump.counter_backwards",
        "tick.pump.counter_below_start",
        "tick.comm.lost",
        "tick.comm.volume_due",
        "pump.state_lost",
        "pump.vtbi_ignored",
        "controller.bookkeeping",
    }
)
"""The interruptions about the accuracy of delivery. Most of them stop the infusion (and
only :data:`CONTINUABLE` causes may continue a stopped one); a rate mismatch pauses it,
and :func:`check_resume_cause` keeps such a pause from being resumed."""


class InvalidContinuationInput(ValueError):
    """A continuation fact of the wrong type or impossible (a caller bug, not a refusal)."""


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidContinuationInput(f"{name} must be an integer ≥ 0, got {value!r}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidContinuationInput(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise InvalidContinuationInput(f"{name} must be ≥ 0 s, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ContinuationInputs:
    """The facts a continuation is judged on, as the session and the controller know them.

    ``interrupted_by``: every stop reason and alarm code since the pump last delivered for
    this session. ``delivered_ul`` is the pump counter's figure for this session,
    ``expected_ul`` the independent account's. ``interrupted_before_s`` is the time of
    earlier interruptions that were continued, ``interrupted_s`` this one's so far.
    """

    interrupted_by: tuple[str, ...]
    vtbi_ul: int
    delivered_ul: int
    expected_ul: int
    rate_ml_h: Decimal
    delivery_elapsed_s: float
    max_delivery_s: float
    interrupted_before_s: float
    interrupted_s: float
    pause_limit_s: float
    vitals: VitalsReading | None
    now: dt.datetime
    pump: PumpSnapshot | None

    def __post_init__(self) -> None:
        if not isinstance(self.interrupted_by, tuple) or not all(
            isinstance(c, str) for c in self.interrupted_by
        ):
            raise InvalidContinuationInput("interrupted_by must be a tuple of codes")
        if _count("vtbi_ul", self.vtbi_ul) == 0:
            raise InvalidContinuationInput("vtbi_ul must be > 0")
        _count("delivered_ul", self.delivered_ul)
        _count("expected_ul", self.expected_ul)
        rate = self.rate_ml_h
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
            raise InvalidContinuationInput(f"rate_ml_h must be a Decimal > 0, got {rate!r}")
        for name in (
            "delivery_elapsed_s",
            "max_delivery_s",
            "interrupted_before_s",
            "interrupted_s",
            "pause_limit_s",
        ):
            _seconds(name, getattr(self, name))
        if self.vitals is not None and not isinstance(self.vitals, VitalsReading):
            raise InvalidContinuationInput(f"vitals must be a VitalsReading, got {self.vitals!r}")
        if not isinstance(self.now, dt.datetime) or self.now.utcoffset() != dt.timedelta(0):
            raise InvalidContinuationInput(f"now must be an aware UTC datetime, got {self.now!r}")
        if self.pump is not None and not isinstance(self.pump, PumpSnapshot):
            raise InvalidContinuationInput(f"pump must be a PumpSnapshot, got {self.pump!r}")

    @property
    def remaining_ul(self) -> int:
        """The planned volume less the larger of the two figures of what was given."""
        return max(0, self.vtbi_ul - max(self.delivered_ul, self.expected_ul))


@dataclass(frozen=True, slots=True)
class ContinuationAssessment:
    """The verdicts (empty: the session may continue) and the volume left to give."""

    verdicts: tuple[Verdict, ...]
    remaining_ul: int

    @property
    def allowed(self) -> bool:
        return not self.verdicts


def _hard(code: str, message: str, rule: str = RULE) -> Verdict:
    return Verdict(code, Severity.HARD, message, rule)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _cause(inputs: ContinuationInputs) -> list[Verdict]:
    if not inputs.interrupted_by:
        return [
            _hard(
                "continue.cause_unknown",
                "Nothing on record says why delivery ended, so it cannot be continued; "
                "end the session (pumpctl end).",
                "continue.cause",
            )
        ]
    barred = [c for c in dict.fromkeys(inputs.interrupted_by) if c not in CONTINUABLE]
    if barred:
        return [
            _hard(
                "continue.not_continuable",
                f"The infusion was ended by {', '.join(barred)}: after that it is not known "
                "exactly what the patient received, so it cannot be continued; end the "
                "session and observe the patient (pumpctl end).",
                "continue.cause",
            )
        ]
    return []


def check_resume_cause(interrupted_by: tuple[str, ...]) -> list[Verdict]:
    """A paused infusion is resumed unless the pause was about delivery accuracy.

    A pause for vitals outside the pause band, for an under-infusion (check the line) or
    a nurse's own pause is resumed once the cause is dealt with; a pump whose rate did not
    match what was commanded is not trusted to deliver again in this session.
    """
    barred = [c for c in dict.fromkeys(interrupted_by) if c in DELIVERY_ACCURACY]
    if not barred:
        return []
    return [
        _hard(
            "continue.not_continuable",
            f"The infusion was interrupted by {', '.join(barred)}: the pump did not deliver "
            "as commanded, so it is not resumed; stop it and observe the patient.",
            "continue.cause",
        )
    ]


ENDED_RULE = "continue.ended"


def delivery_ended(interrupted_by: tuple[str, ...]) -> Verdict | None:
    """Whether the interruption ends delivery for this session: the verdict that ends it,
    or None.

    An interruption about the accuracy of delivery (:data:`DELIVERY_ACCURACY`: an
    over-infusion, a rate mismatch, a VTBI overrun, a counter anomaly, a pump that
    rebooted or stopped answering while delivering) leaves nobody knowing exactly what the
    patient received, so nothing may continue the session: once the pump's halt is
    confirmed the session ends and the observation starts, without waiting for a nurse to
    say so. The verdict names those causes; the alarm stays latched until acknowledged.
    Mechanical alarms and a nurse's own stop do not end it (they may be continued), and
    neither does any other cause: a nurse ends those (``pumpctl end``). The caller asks
    only once the halt is confirmed: the rule judges the causes, not the pump.
    """
    if not isinstance(interrupted_by, tuple) or not all(isinstance(c, str) for c in interrupted_by):
        raise InvalidContinuationInput("interrupted_by must be a tuple of codes")
    ending = [c for c in dict.fromkeys(interrupted_by) if c in DELIVERY_ACCURACY]
    if not ending:
        return None
    return _hard(
        "continue.delivery_ended",
        f"Delivery was interrupted by {', '.join(ending)}: after that it is not known exactly "
        "what the patient received, so the infusion is not continued; the session has ended "
        "and the patient is observed.",
        ENDED_RULE,
    )


def _time(inputs: ContinuationInputs, remaining_ul: int) -> list[Verdict]:
    found: list[Verdict] = []
    total_s = inputs.interrupted_before_s + inputs.interrupted_s
    if total_s > inputs.pause_limit_s:
        found.append(
            _hard(
                "continue.interruption_too_long",
                f"Delivery has been interrupted for {_minutes(total_s)} in all; the protocol "
                f"ends an infusion paused for {_minutes(inputs.pause_limit_s)}.",
                "continue.interruption",
            )
        )
    # µL / (mL/h) in seconds: µL × 3.6 / rate, rounded up (the remainder takes at least that).
    needed_s = float(
        (Decimal(remaining_ul) * Decimal("3.6") / inputs.rate_ml_h).to_integral_value(
            rounding=ROUND_CEILING
        )
    )
    if inputs.delivery_elapsed_s + needed_s > inputs.max_delivery_s:
        found.append(
            _hard(
                "continue.duration_exceeded",
                f"The infusion has delivered for {_minutes(inputs.delivery_elapsed_s)} and the "
                f"remaining {remaining_ul} µL need {_minutes(needed_s)} more, beyond the "
                f"{_minutes(inputs.max_delivery_s)} this session may run.",
                "continue.duration",
            )
        )
    return found


def _vitals(rules: VitalsRules, inputs: ContinuationInputs) -> list[Verdict]:
    found = check_baseline(rules, inputs.vitals, inputs.now)
    return [
        _hard(
            "continue." + v.code.removeprefix("start."),
            v.message.replace("Baseline vital signs", "Vital signs")
            .replace("Baseline ", "")
            .replace("No baseline vital signs", "No vital signs")
            .replace("before starting", "before continuing")
            .replace("allowed to start", "allowed to continue"),
            "continue.vitals",
        )
        for v in found
    ]


def _pump(snapshot: PumpSnapshot | None) -> list[Verdict]:
    rule = "continue.pump"
    if snapshot is None:
        return [_hard("continue.pump.unreachable", "The pump does not answer.", rule)]
    found: list[Verdict] = []
    if snapshot.mode is not PumpMode.IDLE:
        found.append(
            _hard(
                "continue.pump.not_idle",
                f"The pump is {snapshot.mode.value}; it must be idle, its alarm cleared at the "
                "pump, before the infusion continues.",
                rule,
            )
        )
    for name in flag_names(snapshot.alarms):
        found.append(
            _hard(
                f"continue.pump.alarm.{name}",
                f"The pump still reports {name.replace('_', ' ')}; clear the cause at the pump.",
                rule,
            )
        )
    if snapshot.rate_actual_ml_h > 0:
        found.append(
            _hard(
                "continue.pump.flowing",
                f"The pump reports a flow of {snapshot.rate_actual_ml_h} mL/h while stopped.",
                rule,
            )
        )
    return found


def check_continuation(rules: VitalsRules, inputs: ContinuationInputs) -> ContinuationAssessment:
    """Every reason the interrupted session may not deliver again, and the volume left."""
    if not isinstance(rules, VitalsRules) or not isinstance(inputs, ContinuationInputs):
        raise InvalidContinuationInput("check_continuation needs VitalsRules and its inputs")
    remaining = inputs.remaining_ul
    verdicts = _cause(inputs)
    if remaining == 0:
        verdicts.append(
            _hard(
                "continue.nothing_left",
                f"The planned {inputs.vtbi_ul} µL are given by the account "
                f"({max(inputs.delivered_ul, inputs.expected_ul)} µL); nothing is left to "
                "continue.",
                "continue.volume",
            )
        )
    else:
        verdicts += _time(inputs, remaining)
    verdicts += _vitals(rules, inputs)
    verdicts += _pump(inputs.pump)
    return ContinuationAssessment(tuple(verdicts), remaining)
