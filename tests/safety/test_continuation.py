"""The continuation rule (safety/continuation.py) alone: every verdict at its boundary, the
input checks, and the properties that define it (never more than the plan, never after a
delivery-accuracy alarm, never past the pause limit)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import T0, VITALS_RULES, reading, snapshot

from safety.continuation import (
    CONTINUABLE,
    DELIVERY_ACCURACY,
    ContinuationInputs,
    InvalidContinuationInput,
    check_continuation,
    check_resume_cause,
)
from safety.pump import PumpAlarm, PumpMode
from safety.verdicts import Severity

NOW = T0 + dt.timedelta(minutes=5)
IDLE = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0))


def inputs(**overrides: Any) -> ContinuationInputs:
    values: dict[str, Any] = {
        "interrupted_by": ("tick.pump.alarm.occlusion_downstream",),
        "vtbi_ul": 100_000,
        "delivered_ul": 8_000,
        "expected_ul": 8_200,
        "rate_ml_h": Decimal(150),
        "delivery_elapsed_s": 200.0,
        "max_delivery_s": 3000.0,
        "interrupted_before_s": 60.0,
        "interrupted_s": 120.0,
        "pause_limit_s": 1800.0,
        "vitals": reading(taken_at=NOW - dt.timedelta(minutes=1)),
        "now": NOW,
        "pump": IDLE,
    }
    values.update(overrides)
    return ContinuationInputs(**values)


def codes(**overrides: Any) -> list[str]:
    return [v.code for v in check_continuation(VITALS_RULES, inputs(**overrides)).verdicts]


def test_a_cleared_occlusion_with_fresh_vitals_and_an_idle_pump_may_continue() -> None:
    found = check_continuation(VITALS_RULES, inputs())
    assert found.allowed
    assert found.verdicts == ()
    # the larger figure of what was given decides: the account's 8 200 µL, not the pump's
    assert found.remaining_ul == 100_000 - 8_200


@pytest.mark.parametrize("code", sorted(CONTINUABLE))
def test_the_mechanical_alarms_and_a_nurse_stop_are_continuable(code: str) -> None:
    assert codes(interrupted_by=(code,)) == []


@pytest.mark.parametrize(
    "code",
    [
        "tick.volume.over_infusion",
        "tick.rate.mismatch",
        "tick.vtbi.exceeded",
        "tick.pump.counter_backwards",
        "tick.pump.rebooted",
        "tick.comm.lost",
        "tick.pump.alarm.system_fault",
        "tick.vitals.stop.spo2_percent.below_min",
        "tick.pause.too_long",
        "pump.state_lost",
    ],
)
def test_delivery_accuracy_and_patient_stops_are_not_continuable(code: str) -> None:
    found = check_continuation(
        VITALS_RULES,
        inputs(interrupted_by=("tick.pump.alarm.occlusion_downstream", code, code)),
    )
    assert [v.code for v in found.verdicts] == ["continue.not_continuable"]
    verdict = found.verdicts[0]
    assert verdict.severity is Severity.HARD
    assert verdict.rule == "continue.cause"
    assert f"ended by {code}:" in verdict.message


@pytest.mark.parametrize(
    "cause",
    [
        (),
        ("nurse.pause",),
        ("tick.vitals.pause.spo2_percent.below_min",),
        ("tick.volume.under_infusion",),
    ],
)
def test_a_pause_for_the_patient_or_the_line_is_resumed(cause: tuple[str, ...]) -> None:
    assert check_resume_cause(cause) == []


def test_a_pause_for_a_rate_mismatch_is_never_resumed() -> None:
    [verdict] = check_resume_cause(
        ("tick.vitals.pause.x", "tick.rate.mismatch", "tick.rate.mismatch")
    )
    assert verdict.code == "continue.not_continuable"
    assert verdict.severity is Severity.HARD
    assert "interrupted by tick.rate.mismatch:" in verdict.message
    assert not DELIVERY_ACCURACY & CONTINUABLE


def test_no_recorded_cause_is_not_continuable() -> None:
    assert codes(interrupted_by=()) == ["continue.cause_unknown"]


def test_nothing_left_by_the_larger_figure() -> None:
    assert codes(delivered_ul=100_000, expected_ul=0) == ["continue.nothing_left"]
    assert codes(delivered_ul=0, expected_ul=100_000) == ["continue.nothing_left"]
    assert codes(delivered_ul=99_999, expected_ul=0) == []


def test_the_total_interruption_is_bounded_by_the_pause_limit_inclusive() -> None:
    assert codes(interrupted_before_s=600.0, interrupted_s=1200.0) == []
    found = check_continuation(
        VITALS_RULES, inputs(interrupted_before_s=600.0, interrupted_s=1200.5)
    ).verdicts
    assert [v.code for v in found] == ["continue.interruption_too_long"]
    assert found[0].message == (
        "Delivery has been interrupted for 30.0 min in all; the protocol ends an infusion "
        "paused for 30.0 min."
    )


def test_the_remainder_must_fit_in_the_maximum_duration() -> None:
    # 91 800 µL at 150 mL/h take 2203.2 s, rounded up to 2204 s
    assert codes(delivery_elapsed_s=796.0) == []
    found = check_continuation(VITALS_RULES, inputs(delivery_elapsed_s=796.5)).verdicts
    assert [v.code for v in found] == ["continue.duration_exceeded"]
    assert "remaining 91800 µL need 36.7 min more" in found[0].message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"vitals": None}, ["continue.vitals.missing"]),
        ({"vitals": reading(taken_at=NOW - dt.timedelta(minutes=31))}, ["continue.vitals.stale"]),
        (
            {"vitals": reading(taken_at=NOW - dt.timedelta(minutes=1), spo2_percent=90)},
            ["continue.vitals.spo2_percent.below_min"],
        ),
        (
            {"vitals": reading(taken_at=NOW - dt.timedelta(minutes=1), heart_rate_bpm=None)},
            ["continue.vitals.incomplete"],
        ),
    ],
)
def test_vitals_must_be_fresh_complete_and_inside_the_start_band(
    overrides: dict[str, Any], expected: list[str]
) -> None:
    found = check_continuation(VITALS_RULES, inputs(**overrides)).verdicts
    assert [v.code for v in found] == expected
    assert all(v.rule == "continue.vitals" for v in found)
    assert all("start" not in v.message and "Baseline" not in v.message for v in found)


@pytest.mark.parametrize(
    ("pump", "expected"),
    [
        (None, ["continue.pump.unreachable"]),
        (dataclasses.replace(IDLE, mode=PumpMode.ALARM), ["continue.pump.not_idle"]),
        (dataclasses.replace(IDLE, mode=PumpMode.PAUSED), ["continue.pump.not_idle"]),
        (
            dataclasses.replace(IDLE, alarms=PumpAlarm.OCCLUSION_DOWNSTREAM),
            ["continue.pump.alarm.occlusion_downstream"],
        ),
        (dataclasses.replace(IDLE, rate_actual_ml_h=Decimal("0.1")), ["continue.pump.flowing"]),
    ],
)
def test_the_pump_must_answer_idle_alarm_free_and_still(pump: object, expected: list[str]) -> None:
    assert codes(pump=pump) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"interrupted_by": ["nurse.stop"]},
        {"interrupted_by": (1,)},
        {"vtbi_ul": 0},
        {"vtbi_ul": True},
        {"delivered_ul": -1},
        {"expected_ul": 1.5},
        {"rate_ml_h": Decimal(0)},
        {"rate_ml_h": 150},
        {"rate_ml_h": Decimal("NaN")},
        {"delivery_elapsed_s": -1.0},
        {"max_delivery_s": float("inf")},
        {"interrupted_s": "10"},
        {"interrupted_before_s": True},
        {"vitals": "120/80"},
        {"now": dt.datetime(2026, 3, 2, 9, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
        {"now": "2026-03-02"},
        {"pump": "idle"},
    ],
)
def test_untrustworthy_inputs_are_refused_as_input(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidContinuationInput):
        inputs(**overrides)


def test_the_rule_needs_its_types() -> None:
    with pytest.raises(InvalidContinuationInput):
        check_continuation(VITALS_RULES, "inputs")  # type: ignore[arg-type]
    with pytest.raises(InvalidContinuationInput):
        check_continuation(None, inputs())  # type: ignore[arg-type]


CODES = st.sampled_from(
    [*sorted(CONTINUABLE), "tick.volume.over_infusion", "tick.rate.mismatch", "tick.comm.lost"]
)
VOLUMES = st.integers(min_value=0, max_value=150_000)
SECONDS = st.floats(min_value=0, max_value=4000, allow_nan=False)


@given(
    cause=st.lists(CODES, max_size=3).map(tuple),
    delivered=VOLUMES,
    expected=VOLUMES,
    before=SECONDS,
    this=SECONDS,
    elapsed=SECONDS,
)
def test_properties_of_an_allowed_continuation(
    cause: tuple[str, ...],
    delivered: int,
    expected: int,
    before: float,
    this: float,
    elapsed: float,
) -> None:
    found = check_continuation(
        VITALS_RULES,
        inputs(
            interrupted_by=cause,
            delivered_ul=delivered,
            expected_ul=expected,
            interrupted_before_s=before,
            interrupted_s=this,
            delivery_elapsed_s=elapsed,
        ),
    )
    # never more than the plan, by either figure of what was already given
    assert found.remaining_ul + max(delivered, expected) <= 100_000 or found.remaining_ul == 0
    if found.allowed:
        assert cause
        assert set(cause) <= CONTINUABLE
        assert before + this <= 1800.0
        assert found.remaining_ul > 0
        assert elapsed + float(found.remaining_ul) * 3.6 / 150 <= 3000.0 + 1
    assert all(v.severity is Severity.HARD for v in found.verdicts)
