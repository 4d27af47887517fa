"""Tests written for mutants that survived `make mutation` and were real gaps.

Each test names the mutant it kills; docs/safety/verification.md classifies every survivor.
Verdicts and decisions are the kernel's own (``check_pump``, ``evaluate``), not hand-made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from test_tick_input_pending import waiting
from test_tick_nominal import decide, inputs, limits, snapshot

from safety.actions import ActionKind, Priority
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.start import check_pump
from safety.tick import PendingInput, rule_input_pending
from safety.verdicts import Severity, needs_override, refused
from safety.vitals import ImplausibleVitals, VitalsReading, check_entry

PRIME_UL = 15_000


def _idle(**overrides: Any) -> PumpSnapshot:
    base = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0), volume_infused_ul=0)
    return dataclasses.replace(base, **overrides)


def test_a_refused_start_with_a_soft_finding_needs_no_override() -> None:
    """Kills safety.verdicts.x_needs_override__mutmut_3 (``and`` → ``or``).

    A pump that is infusing (hard) and low on battery (soft): the start is refused, and an
    override cannot make it acceptable, so no override may be asked for.
    """
    verdicts = check_pump(
        _idle(
            mode=PumpMode.INFUSING,
            rate_actual_ml_h=Decimal(150),
            warnings=PumpWarning.LOW_BATTERY,
        ),
        PRIME_UL,
        True,
    )
    severities = {v.severity for v in verdicts}
    assert severities == {Severity.HARD, Severity.SOFT}
    assert refused(verdicts)
    assert not needs_override(verdicts)


def test_a_clean_start_needs_no_override() -> None:
    """Kills the same mutant from the other side: no finding at all needs no override."""
    verdicts = check_pump(_idle(), PRIME_UL, True)
    assert verdicts == []
    assert not needs_override(verdicts)


def test_a_soft_finding_alone_needs_an_override() -> None:
    verdicts = check_pump(_idle(warnings=PumpWarning.LOW_BATTERY), PRIME_UL, True)
    assert [v.severity for v in verdicts] == [Severity.SOFT]
    assert needs_override(verdicts)


def test_within_one_kind_the_most_urgent_action_comes_first() -> None:
    """Kills safety.tick.x_evaluate__mutmut_13 (priority sorted ascending within a kind).

    An occlusion (STOP, high) at the moment the VTBI is reached with the pump still
    infusing (STOP, low): both stop, and the controller takes the first action's code and
    sentence as the stop's reason and the interlock record's detail, so the occlusion
    must come first, not the normal end.
    """
    decision = decide(
        snapshot=snapshot(alarms=PumpAlarm.OCCLUSION_DOWNSTREAM, volume_infused_ul=100_000),
        expected_volume_ul=100_000,
    )
    stops = [a for a in decision.actions if a.kind is ActionKind.STOP]
    assert {a.code for a in stops} >= {"tick.pump.alarm.occlusion_downstream", "tick.vtbi.reached"}
    assert {a.priority for a in stops} >= {Priority.HIGH, Priority.LOW}
    assert decision.actions[0].code == "tick.pump.alarm.occlusion_downstream"
    ranks = [a.priority.rank for a in stops]
    assert ranks == sorted(ranks, reverse=True)


# -- survivors of the run on c41efed (2026-12-06): the kernel code added since 4534d3d ----


def test_a_restart_before_anything_was_delivered_says_zero() -> None:
    """Kills safety.delivery_rules.x_rule_counters__mutmut_20 (``max(0, …)`` → ``max(1, …)``).

    The nurse and the audit read how much had been delivered before the pump lost its
    counter; a restart before the start (or with bookkeeping below the new counter) is
    0 µL, never a made-up 1 µL."""
    rebooted = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0), volume_infused_ul=0)
    for at_start_ul in (0, 500):  # delivered 0, and below 0 (clamped)
        decision = decide(
            previous_snapshot=snapshot(volume_infused_ul=0, uptime_s=10_000),
            snapshot=dataclasses.replace(rebooted, uptime_s=3),
            volume_at_start_ul=at_start_ul,
            expected_volume_ul=0,
        )
        [action] = [a for a in decision.actions if a.code == "tick.pump.rebooted"]
        assert "volume counter was lost; 0 µL had been delivered;" in action.message


def test_a_long_wait_and_a_long_interval_are_said_in_whole_minutes() -> None:
    """Kills safety.bedside_rules.x_rule_input_pending__mutmut_25 and _27 (``/ 60`` → ``/ 61``
    in the sentence): at 15 min both divisions round alike; at 120 min of waiting with an hourly
    interval they do not (118 and 59)."""
    lim = limits(input_remind_every_s=3600.0)
    [action] = rule_input_pending(lim, inputs(**waiting(PendingInput.START, 7200.0)))
    assert action.message == (
        "The checked infusion has waited 120 min to be started (reminder 2, every 60 min)."
    )


def test_an_implausible_reading_is_refused_in_one_whole_sentence() -> None:
    """Kills safety.vitals.x_check_entry__mutmut_44, _45 and _48 (the refusal's opening and
    closing words): the nurse reads the whole sentence at the bedside."""
    reading = VitalsReading(taken_at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC), spo2_percent=9)
    with pytest.raises(ImplausibleVitals) as refused:
        check_entry(reading)
    assert str(refused.value) == (
        "not a plausible reading, probably a typing error: SpO2 (spo2_percent) 9 % is below "
        "the plausible minimum of 50 %. Nothing was recorded; enter the reading again."
    )
