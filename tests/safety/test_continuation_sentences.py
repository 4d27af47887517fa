"""The continuation rule's refusals as a nurse and an auditor read them.

Each refusal is checked whole: its code, its severity, the rule the audit names and the
sentence the nurse reads. The input checks name the fact that was wrong, and the accepted
side of every boundary is checked next to the refused one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from test_continuation import IDLE, NOW, inputs
from test_tick_nominal import VITALS_RULES, reading

from safety.continuation import (
    InvalidContinuationInput,
    check_continuation,
    check_resume_cause,
)
from safety.pump import PumpAlarm, PumpMode
from safety.verdicts import Severity, Verdict


def verdicts(**overrides: Any) -> tuple[Verdict, ...]:
    return check_continuation(VITALS_RULES, inputs(**overrides)).verdicts


def hard(code: str, message: str, rule: str) -> Verdict:
    return Verdict(code, Severity.HARD, message, rule)


def test_no_recorded_cause_says_to_end_the_session() -> None:
    assert verdicts(interrupted_by=()) == (
        hard(
            "continue.cause_unknown",
            "Nothing on record says why delivery ended, so it cannot be continued; "
            "end the session (pumpctl end).",
            "continue.cause",
        ),
    )


def test_every_barred_cause_is_named_once_in_order() -> None:
    found = verdicts(
        interrupted_by=(
            "tick.comm.lost",
            "nurse.stop",
            "tick.volume.over_infusion",
            "tick.comm.lost",
        )
    )
    assert found == (
        hard(
            "continue.not_continuable",
            "The infusion was ended by tick.comm.lost, tick.volume.over_infusion: after that "
            "it is not known exactly what the patient received, so it cannot be continued; "
            "end the session and observe the patient (pumpctl end).",
            "continue.cause",
        ),
    )


def test_a_paused_delivery_accuracy_fault_is_not_resumed_in_words() -> None:
    found = check_resume_cause(
        ("tick.rate.mismatch", "nurse.pause", "tick.pump.rebooted", "tick.rate.mismatch")
    )
    assert found == [
        hard(
            "continue.not_continuable",
            "The infusion was interrupted by tick.rate.mismatch, tick.pump.rebooted: the pump "
            "did not deliver as commanded, so it is not resumed; stop it and observe the "
            "patient.",
            "continue.cause",
        )
    ]


def test_nothing_left_names_the_plan_and_the_larger_figure() -> None:
    assert verdicts(delivered_ul=100_000, expected_ul=99_000) == (
        hard(
            "continue.nothing_left",
            "The planned 100000 µL are given by the account (100000 µL); nothing is left to "
            "continue.",
            "continue.volume",
        ),
    )
    # the account above the plan: the larger figure is the one named, nothing is negative
    found = check_continuation(VITALS_RULES, inputs(delivered_ul=90_000, expected_ul=100_500))
    assert found.remaining_ul == 0
    assert found.verdicts[0].message == (
        "The planned 100000 µL are given by the account (100500 µL); nothing is left to continue."
    )


def test_one_microlitre_left_may_still_continue() -> None:
    found = check_continuation(VITALS_RULES, inputs(delivered_ul=99_999, expected_ul=99_998))
    assert found.allowed
    assert found.remaining_ul == 1


def test_too_long_an_interruption_is_told_in_minutes_under_its_rule() -> None:
    assert verdicts(interrupted_before_s=900.0, interrupted_s=1000.0) == (
        hard(
            "continue.interruption_too_long",
            "Delivery has been interrupted for 31.7 min in all; the protocol ends an infusion "
            "paused for 30.0 min.",
            "continue.interruption",
        ),
    )


def test_a_remainder_beyond_the_maximum_duration_is_told_whole() -> None:
    # 91 800 µL at 150 mL/h take 2203.2 s, rounded up to 2204 s; 797 + 2204 > 3000
    assert verdicts(delivery_elapsed_s=797.0) == (
        hard(
            "continue.duration_exceeded",
            "The infusion has delivered for 13.3 min and the remaining 91800 µL need 36.7 min "
            "more, beyond the 50.0 min this session may run.",
            "continue.duration",
        ),
    )


def test_both_time_limits_are_reported_together() -> None:
    found = verdicts(interrupted_s=1800.0, delivery_elapsed_s=2000.0)
    assert [(v.code, v.rule) for v in found] == [
        ("continue.interruption_too_long", "continue.interruption"),
        ("continue.duration_exceeded", "continue.duration"),
    ]


@pytest.mark.parametrize(
    ("vitals", "expected"),
    [
        (
            None,
            hard(
                "continue.vitals.missing",
                "No vital signs were recorded; record them before continuing.",
                "continue.vitals",
            ),
        ),
        (
            reading(taken_at=NOW - dt.timedelta(minutes=31)),
            hard(
                "continue.vitals.stale",
                "Vital signs are 31 min old; the protocol accepts at most 30 min.",
                "continue.vitals",
            ),
        ),
        (
            reading(taken_at=NOW - dt.timedelta(minutes=1), spo2_percent=90),
            hard(
                "continue.vitals.spo2_percent.below_min",
                "SpO2 90 % is below the minimum of 94 % allowed to continue.",
                "continue.vitals",
            ),
        ),
        (
            reading(taken_at=NOW - dt.timedelta(minutes=1), heart_rate_bpm=None),
            hard(
                "continue.vitals.incomplete",
                "Vital signs lack hr; the protocol requires bp, hr, spo2.",
                "continue.vitals",
            ),
        ),
    ],
)
def test_vitals_refusals_speak_of_continuing(vitals: object, expected: Verdict) -> None:
    assert verdicts(vitals=vitals) == (expected,)


@pytest.mark.parametrize(
    ("pump", "expected"),
    [
        (None, hard("continue.pump.unreachable", "The pump does not answer.", "continue.pump")),
        (
            dataclasses.replace(IDLE, mode=PumpMode.ALARM),
            hard(
                "continue.pump.not_idle",
                "The pump is alarm; it must be idle, its alarm cleared at the pump, before the "
                "infusion continues.",
                "continue.pump",
            ),
        ),
        (
            dataclasses.replace(IDLE, alarms=PumpAlarm.OCCLUSION_DOWNSTREAM),
            hard(
                "continue.pump.alarm.occlusion_downstream",
                "The pump still reports occlusion downstream; clear the cause at the pump.",
                "continue.pump",
            ),
        ),
        (
            dataclasses.replace(IDLE, rate_actual_ml_h=Decimal("0.1")),
            hard(
                "continue.pump.flowing",
                "The pump reports a flow of 0.1 mL/h while stopped.",
                "continue.pump",
            ),
        ),
    ],
)
def test_pump_refusals_are_told_whole(pump: object, expected: Verdict) -> None:
    assert verdicts(pump=pump) == (expected,)


def test_a_rate_below_one_ml_h_is_a_rate() -> None:
    # 91 800 µL at 0.5 mL/h would take days: refused by the duration, not as input
    found = verdicts(rate_ml_h=Decimal("0.5"))
    assert [v.code for v in found] == ["continue.duration_exceeded"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"interrupted_by": ["nurse.stop"]}, "interrupted_by must be a tuple of codes"),
        ({"vtbi_ul": -5}, "vtbi_ul must be an integer ≥ 0, got -5"),
        ({"vtbi_ul": 0}, "vtbi_ul must be > 0"),
        ({"delivered_ul": -1}, "delivered_ul must be an integer ≥ 0, got -1"),
        ({"expected_ul": 1.5}, "expected_ul must be an integer ≥ 0, got 1.5"),
        ({"rate_ml_h": Decimal(0)}, "rate_ml_h must be a Decimal > 0, got Decimal('0')"),
        (
            {"delivery_elapsed_s": float("nan")},
            "delivery_elapsed_s must be a finite number of seconds, got nan",
        ),
        ({"max_delivery_s": "10"}, "max_delivery_s must be a finite number of seconds, got '10'"),
        ({"interrupted_before_s": -1}, "interrupted_before_s must be ≥ 0 s, got -1"),
        ({"interrupted_s": -0.5}, "interrupted_s must be ≥ 0 s, got -0.5"),
        ({"pause_limit_s": True}, "pause_limit_s must be a finite number of seconds, got True"),
        ({"vitals": "120/80"}, "vitals must be a VitalsReading, got '120/80'"),
        ({"now": "2026-03-02"}, "now must be an aware UTC datetime, got '2026-03-02'"),
        ({"pump": "idle"}, "pump must be a PumpSnapshot, got 'idle'"),
    ],
)
def test_a_wrong_fact_is_named_in_the_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidContinuationInput) as raised:
        inputs(**overrides)
    assert str(raised.value) == message


def test_the_rule_says_what_it_needs() -> None:
    with pytest.raises(InvalidContinuationInput) as raised:
        check_continuation(VITALS_RULES, "inputs")  # type: ignore[arg-type]
    assert str(raised.value) == "check_continuation needs VitalsRules and its inputs"
