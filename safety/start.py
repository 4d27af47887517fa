"""Start checks: everything that must hold before the first drop reaches the patient.

Each check is its own function returning verdicts, so a reviewer can read one hazard at a
time; ``check_start`` runs them all and never stops at the first failure, because the nurse
needs the whole list to fix a start in one go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from safety.course import CourseAssessment, CourseRules, PriorSession, evaluate_course
from safety.protocol import Protocol
from safety.pump import PumpMode, PumpSnapshot, PumpWarning, flag_names
from safety.verdicts import Severity, Verdict
from safety.vitals import VitalsReading, VitalsRules, check_baseline


class InvalidStartInput(ValueError):
    """Start-check input of the wrong type or shape (a caller bug, not a patient finding)."""


@dataclass(frozen=True, slots=True)
class StartRequirements:
    """What the protocol and the plan demand of a start."""

    prime_volume_ul: int
    double_check_required: bool
    vitals: VitalsRules
    course: CourseRules

    def __post_init__(self) -> None:
        v = self.prime_volume_ul
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidStartInput(f"prime_volume_ul must be an integer ≥ 0, got {v!r}")


def start_requirements(protocol: Protocol) -> StartRequirements:
    """The start requirements of ``protocol``; the prime volume is rounded up to whole µL."""
    prime_ul = (protocol.priming.volume_ml * 1000).to_integral_value(rounding=ROUND_CEILING)
    return StartRequirements(
        prime_volume_ul=int(prime_ul),
        double_check_required=protocol.double_check_required,
        vitals=protocol.vitals,
        course=protocol.course,
    )


@dataclass(frozen=True, slots=True)
class StartInputs:
    """The facts at the bedside when the nurse asks to start.

    ``primed_confirmed`` is the nurse's confirmation that the line was primed by hand (the
    pump's prime counter then says nothing). Identities are opaque strings from the caller's
    authentication; the kernel only compares them.
    """

    snapshot: PumpSnapshot | None
    primed_confirmed: bool
    operator_id: str
    double_checker_id: str | None
    baseline_vitals: VitalsReading | None
    prior_sessions: Sequence[PriorSession]
    planned_dose_mg_per_kg: Decimal
    now: dt.datetime

    def __post_init__(self) -> None:
        if not isinstance(self.operator_id, str) or not self.operator_id.strip():
            raise InvalidStartInput(
                f"operator_id must be a non-empty string, got {self.operator_id!r}"
            )
        checker = self.double_checker_id
        if checker is not None and not isinstance(checker, str):
            raise InvalidStartInput(f"double_checker_id must be a string or None, got {checker!r}")
        if not isinstance(self.primed_confirmed, bool):
            raise InvalidStartInput(
                f"primed_confirmed must be a bool, got {self.primed_confirmed!r}"
            )


@dataclass(frozen=True, slots=True)
class StartAssessment:
    """All start verdicts, and the course position for the session record."""

    verdicts: tuple[Verdict, ...]
    course: CourseAssessment


def check_pump(
    snapshot: PumpSnapshot | None, prime_volume_ul: int, primed_confirmed: bool
) -> list[Verdict]:
    """The pump is reachable, idle, alarm-free, not flowing, and its line is primed."""
    rule = "start.pump"
    if snapshot is None:
        return [
            Verdict(
                "start.pump.unreachable",
                Severity.HARD,
                "The pump does not answer; a start needs a pump whose state is known.",
                rule,
            )
        ]
    verdicts: list[Verdict] = []
    if snapshot.mode is not PumpMode.IDLE:
        verdicts.append(
            Verdict(
                "start.pump.not_idle",
                Severity.HARD,
                f"The pump is in mode {snapshot.mode.value}; it must be idle to start.",
                rule,
            )
        )
    for name in flag_names(snapshot.alarms):
        verdicts.append(
            Verdict(
                f"start.pump.alarm.{name}",
                Severity.HARD,
                f"The pump reports the alarm {name.replace('_', ' ')}; clear it before starting.",
                rule,
            )
        )
    if snapshot.rate_actual_ml_h > 0:
        verdicts.append(
            Verdict(
                "start.pump.flowing",
                Severity.HARD,
                f"The pump reports a flow of {snapshot.rate_actual_ml_h} mL/h before the start.",
                rule,
            )
        )
    if PumpWarning.LOW_BATTERY in snapshot.warnings:
        verdicts.append(
            Verdict(
                "start.pump.battery_low",
                Severity.SOFT,
                "The pump battery is low; connect mains power or give a reason to start anyway.",
                rule,
            )
        )
    if not primed_confirmed and snapshot.volume_primed_ul < prime_volume_ul:
        verdicts.append(
            Verdict(
                "start.pump.not_primed",
                Severity.HARD,
                f"The line is primed with {snapshot.volume_primed_ul} µL; the protocol "
                f"requires {prime_volume_ul} µL (or a confirmed manual prime).",
                rule,
            )
        )
    return verdicts


def check_double_check(required: bool, operator_id: str, checker_id: str | None) -> list[Verdict]:
    """When required, a second, different identity has checked the order and the pump."""
    rule = "start.double_check"
    if not required:
        return []
    if checker_id is None or not checker_id.strip():
        return [
            Verdict(
                "start.double_check.missing",
                Severity.HARD,
                "This protocol requires an independent double-check by a second person.",
                rule,
            )
        ]
    if checker_id == operator_id:
        return [
            Verdict(
                "start.double_check.same_person",
                Severity.HARD,
                "The double-check was recorded by the same person who started the infusion; "
                "it must be a second person.",
                rule,
            )
        ]
    return []


def check_start(req: StartRequirements, inputs: StartInputs) -> StartAssessment:
    """Every start rule, in the order a nurse would fix them: pump, people, patient, course."""
    verdicts: list[Verdict] = []
    verdicts += check_pump(inputs.snapshot, req.prime_volume_ul, inputs.primed_confirmed)
    verdicts += check_double_check(
        req.double_check_required, inputs.operator_id, inputs.double_checker_id
    )
    verdicts += check_baseline(req.vitals, inputs.baseline_vitals, inputs.now)
    course = evaluate_course(
        req.course, inputs.prior_sessions, inputs.now, inputs.planned_dose_mg_per_kg
    )
    verdicts += course.verdicts
    return StartAssessment(tuple(verdicts), course)
