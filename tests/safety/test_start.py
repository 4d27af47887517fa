"""Start checks: pump, double-check, baseline vitals and course together, every boundary of
the pump and double-check rules (vitals and course have their own files)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from test_tick_nominal import T0, VITALS_RULES, reading, snapshot

from safety.course import CourseRules, Outcome, PriorSession
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.start import (
    InvalidStartInput,
    StartInputs,
    StartRequirements,
    check_double_check,
    check_pump,
    check_start,
)
from safety.verdicts import Severity, Verdict, needs_override, refused

NOW = T0 + dt.timedelta(minutes=5)
COURSE = CourseRules(
    min_interval_h=Decimal(24),
    window_days=28,
    max_sessions_in_window=8,
    max_cumulative_dose_mg_per_kg_in_window=Decimal(6),
    planned_series=6,
    planned_span_days=21,
)
REQ = StartRequirements(
    prime_volume_ul=15_000, double_check_required=True, vitals=VITALS_RULES, course=COURSE
)


def idle(**overrides: Any) -> PumpSnapshot:
    base = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0), volume_infused_ul=0)
    return dataclasses.replace(base, **overrides)


def start_inputs(**overrides: Any) -> StartInputs:
    values: dict[str, Any] = {
        "snapshot": idle(),
        "primed_confirmed": False,
        "operator_id": "nurse:ana",
        "double_checker_id": "nurse:ben",
        "baseline_vitals": reading(),
        "prior_sessions": (),
        "planned_dose_mg_per_kg": Decimal("0.5"),
        "now": NOW,
    }
    values.update(overrides)
    return StartInputs(**values)


RULE_OF_CODE = [
    ("start.pump.", "start.pump"),
    ("start.double_check.", "start.double_check"),
    ("start.vitals.", "start.vitals.baseline"),
    ("course.", "start.course"),
]


def assert_well_formed(verdict: Verdict) -> None:
    """A nurse-readable sentence from the documented rule."""
    message = verdict.message
    assert message[0].isupper(), message
    assert message.endswith("."), message
    assert message != message.upper(), message
    assert "XX" not in message, message
    assert verdict.rule == next(r for p, r in RULE_OF_CODE if verdict.code.startswith(p))


def codes(req: StartRequirements = REQ, **overrides: Any) -> list[str]:
    verdicts = check_start(req, start_inputs(**overrides)).verdicts
    for verdict in verdicts:
        assert_well_formed(verdict)
    return [v.code for v in verdicts]


def test_a_good_start_has_only_the_series_note() -> None:
    result = check_start(REQ, start_inputs())
    assert [v.code for v in result.verdicts] == ["course.series.position"]
    assert not refused(result.verdicts)
    assert result.course.position == "infusion 1 of 6"


@pytest.mark.parametrize(
    ("snap", "primed_confirmed", "expected"),
    [
        (None, False, ["start.pump.unreachable"]),
        (idle(mode=PumpMode.INFUSING), False, ["start.pump.not_idle"]),
        (idle(mode=PumpMode.PAUSED), False, ["start.pump.not_idle"]),
        (idle(alarms=PumpAlarm.DOOR_OPEN), False, ["start.pump.alarm.door_open"]),
        (
            idle(mode=PumpMode.ALARM, alarms=PumpAlarm.AIR_IN_LINE | PumpAlarm.SYSTEM_FAULT),
            False,
            [
                "start.pump.not_idle",
                "start.pump.alarm.air_in_line",
                "start.pump.alarm.system_fault",
            ],
        ),
        (idle(rate_actual_ml_h=Decimal("0.01")), False, ["start.pump.flowing"]),
        (idle(volume_primed_ul=15_000), False, []),
        (idle(volume_primed_ul=14_999), False, ["start.pump.not_primed"]),
        (idle(volume_primed_ul=0), True, []),
    ],
)
def test_pump_rule(snap: PumpSnapshot | None, primed_confirmed: bool, expected: list[str]) -> None:
    verdicts = check_pump(snap, 15_000, primed_confirmed)
    assert [v.code for v in verdicts] == expected
    for verdict in verdicts:
        assert_well_formed(verdict)
    assert all(v.severity is Severity.HARD and v.rule == "start.pump" for v in verdicts)


def test_low_battery_is_soft_and_needs_an_override() -> None:
    verdicts = check_pump(idle(warnings=PumpWarning.LOW_BATTERY), 15_000, False)
    for verdict in verdicts:
        assert_well_formed(verdict)
    assert [(v.code, v.severity) for v in verdicts] == [("start.pump.battery_low", Severity.SOFT)]
    assert needs_override(verdicts)


def test_alarm_message_names_the_alarm_in_words() -> None:
    (verdict,) = check_pump(idle(alarms=PumpAlarm.AIR_IN_LINE), 15_000, False)
    assert verdict.message == "The pump reports the alarm air in line; clear it before starting."


def test_not_primed_message_has_both_volumes() -> None:
    (verdict,) = check_pump(idle(volume_primed_ul=2_000), 15_000, False)
    assert "2000 µL" in verdict.message
    assert "15000 µL" in verdict.message


@pytest.mark.parametrize(
    ("required", "checker", "expected"),
    [
        (True, "nurse:ben", []),
        (True, None, ["start.double_check.missing"]),
        (True, "   ", ["start.double_check.missing"]),
        (True, "nurse:ana", ["start.double_check.same_person"]),
        (False, None, []),
        (False, "nurse:ana", []),
    ],
)
def test_double_check_rule(required: bool, checker: str | None, expected: list[str]) -> None:
    if expected == ["start.double_check.same_person"]:
        (same,) = check_double_check(required, "nurse:ana", checker)
        assert same.message == (
            "The double-check was recorded by the same person who started the infusion; "
            "it must be a second person."
        )
    verdicts = check_double_check(required, "nurse:ana", checker)
    assert [v.code for v in verdicts] == expected
    for verdict in verdicts:
        assert_well_formed(verdict)
    assert all(v.severity is Severity.HARD for v in verdicts)


def test_identities_are_compared_exactly_not_normalised() -> None:
    # Opaque identities: "Nurse:Ana" is a different identity from "nurse:ana" to the kernel;
    # the authentication layer decides what an identity is.
    assert check_double_check(True, "nurse:ana", "Nurse:Ana") == []


def test_start_reports_every_family_at_once() -> None:
    prior = (
        PriorSession(NOW - dt.timedelta(hours=2), Decimal(40), Decimal("0.5"), Outcome.COMPLETED),
    )
    found = codes(
        snapshot=idle(mode=PumpMode.INFUSING),
        double_checker_id=None,
        baseline_vitals=reading(systolic_mmhg=170),
        prior_sessions=prior,
    )
    assert found == [
        "start.pump.not_idle",
        "start.double_check.missing",
        "start.vitals.systolic_mmhg.above_max",
        "course.interval.too_short",
        "course.series.position",
    ]


def test_start_without_double_check_requirement() -> None:
    req = dataclasses.replace(REQ, double_check_required=False)
    assert codes(req, double_checker_id=None) == ["course.series.position"]


def test_start_without_baseline_vitals_is_refused() -> None:
    assert "start.vitals.missing" in codes(baseline_vitals=None)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"operator_id": ""}, "operator_id"),
        ({"operator_id": "  "}, "operator_id"),
        ({"operator_id": None}, "operator_id"),
        ({"double_checker_id": 7}, "double_checker_id"),
        ({"primed_confirmed": "yes"}, "primed_confirmed"),
    ],
)
def test_start_inputs_refuse_bad_shapes(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidStartInput, match=match):
        start_inputs(**overrides)


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_requirements_refuse_a_bad_prime_volume(bad: object) -> None:
    with pytest.raises(InvalidStartInput, match="prime_volume_ul"):
        StartRequirements(bad, True, VITALS_RULES, COURSE)  # type: ignore[arg-type]


def test_start_uses_the_manual_prime_and_the_operator_identity() -> None:
    unprimed = idle(volume_primed_ul=0)
    assert codes(snapshot=unprimed, primed_confirmed=True) == ["course.series.position"]
    assert codes(snapshot=unprimed, primed_confirmed=False)[0] == "start.pump.not_primed"
    assert codes(double_checker_id="nurse:ana")[0] == "start.double_check.same_person"


def test_a_protocol_without_priming_needs_no_prime_volume() -> None:
    req = dataclasses.replace(REQ, prime_volume_ul=0)
    assert codes(req, snapshot=idle(volume_primed_ul=0)) == ["course.series.position"]
