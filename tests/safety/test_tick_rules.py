"""Every tick rule, both sides of every boundary, from a nominal infusion that changes one
thing at a time. Each row asserts the exact set of codes and the outcome, so a rule that
fires too early, too late or not at all fails here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from test_tick_nominal import decide, limits, reading, snapshot

from safety.actions import Action, ActionKind, Priority
from safety.pump import PumpAlarm, PumpMode, PumpWarning
from safety.tick import Outcome, SessionPhase

NOW = 2000.0
D = Decimal

# code prefix -> the rule that must have produced it (first match wins)
RULE_OF_CODE = [
    ("tick.pump.alarm", "tick.pump_alarm"),
    ("tick.pump.battery_low", "tick.pump_alarm"),
    ("tick.comm.volume_due", "tick.comm.volume_due"),
    ("tick.comm.", "tick.comm"),
    ("tick.pump.delivering_unexpectedly", "tick.phase"),
    ("tick.pump.flow_while_stopped", "tick.phase"),
    ("tick.pump.not_delivering", "tick.phase"),
    ("tick.pump.rebooted", "tick.counters"),
    ("tick.pump.counter_", "tick.counters"),
    ("tick.vtbi.", "tick.vtbi"),
    ("tick.rate.", "tick.rate"),
    ("tick.volume.", "tick.volume"),
    ("tick.pause.", "tick.pause"),
    ("tick.vitals.stop.", "tick.vitals.range"),
    ("tick.vitals.pause.", "tick.vitals.range"),
    ("tick.vitals.", "tick.vitals.due"),
    ("tick.duration.", "tick.duration"),
    ("tick.input.", "tick.input"),
]

# code prefix -> (kind, priority) while the session is delivering
KIND_OF_CODE = [
    ("tick.pump.alarm", ActionKind.STOP, Priority.HIGH),
    ("tick.pump.battery_low", ActionKind.ALARM, Priority.LOW),
    ("tick.comm.lost", ActionKind.STOP, Priority.HIGH),
    ("tick.comm.volume_due", ActionKind.STOP, Priority.HIGH),
    ("tick.pump.delivering_unexpectedly", ActionKind.STOP, Priority.HIGH),
    ("tick.pump.flow_while_stopped", ActionKind.STOP, Priority.HIGH),
    ("tick.pump.not_delivering", ActionKind.ALARM, Priority.MEDIUM),
    ("tick.pump.rebooted", ActionKind.STOP, Priority.HIGH),
    ("tick.pump.counter_", ActionKind.STOP, Priority.HIGH),
    ("tick.vtbi.reached", ActionKind.STOP, Priority.LOW),
    ("tick.vtbi.kvo_complete", ActionKind.STOP, Priority.LOW),
    ("tick.vtbi.", ActionKind.STOP, Priority.HIGH),
    ("tick.rate.mismatch", ActionKind.PAUSE, Priority.HIGH),
    ("tick.volume.over_infusion", ActionKind.STOP, Priority.HIGH),
    ("tick.volume.under_infusion", ActionKind.PAUSE, Priority.MEDIUM),
    ("tick.pause.too_long", ActionKind.STOP, Priority.MEDIUM),
    ("tick.pause.reminder", ActionKind.REMIND, None),
    ("tick.vitals.stop.", None, Priority.HIGH),
    ("tick.vitals.pause.", None, Priority.MEDIUM),
    ("tick.vitals.none", ActionKind.REMIND, Priority.MEDIUM),
    ("tick.vitals.overdue", ActionKind.REMIND, Priority.MEDIUM),
    ("tick.vitals.due", ActionKind.REMIND, Priority.LOW),
    ("tick.vitals.incomplete", ActionKind.REMIND, Priority.LOW),
    ("tick.duration.exceeded", ActionKind.ALARM, Priority.MEDIUM),
    ("tick.input.", ActionKind.REMIND, None),
]


def assert_well_formed(action: Action) -> None:
    """A nurse-readable sentence, the documented rule, and the documented kind/priority."""
    message = action.message
    assert message[0].isupper() or message[0].isdigit(), message
    assert message.endswith("."), message
    assert message != message.upper(), message
    assert "XX" not in message, message
    rule = next(r for prefix, r in RULE_OF_CODE if action.code.startswith(prefix))
    assert action.rule == rule, action
    kind, priority = next((k, p) for prefix, k, p in KIND_OF_CODE if action.code.startswith(prefix))
    if kind is not None:
        assert action.kind is kind, action
    if priority is not None:
        assert action.priority is priority, action


# id, limit overrides, input overrides, expected codes, expected outcome
CASES: list[tuple[str, dict[str, Any], dict[str, Any], set[str], Outcome]] = [
    # -- communication
    ("comm at timeout", {}, {"last_good_comm_s": NOW - 5.0}, set(), Outcome.CONTINUE),
    ("comm past timeout", {}, {"last_good_comm_s": NOW - 5.01}, {"tick.comm.lost"}, Outcome.STOP),
    ("unreachable within timeout", {}, {"snapshot": None}, set(), Outcome.CONTINUE),
    (
        "unreachable past timeout",
        {},
        {"snapshot": None, "last_good_comm_s": NOW - 6},
        {"tick.comm.lost"},
        Outcome.STOP,
    ),
    # -- the plan's volume due on a silent pump whose stop at it is pumpd's (safety/runon.py)
    (
        "volume due while unanswered, pumpd's stop primary",
        {},
        {"snapshot": None, "volume_stop_primary": True, "expected_volume_ul": 100_000},
        {"tick.comm.volume_due"},
        Outcome.STOP,
    ),
    (
        "volume one µL short while unanswered",
        {},
        {"snapshot": None, "volume_stop_primary": True, "expected_volume_ul": 99_999},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "volume due while unanswered, the pump's own stop",
        {},
        {"snapshot": None, "expected_volume_ul": 100_000},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "volume due while unanswered and past the comm timeout",
        {},
        {
            "snapshot": None,
            "volume_stop_primary": True,
            "expected_volume_ul": 100_400,
            "last_good_comm_s": NOW - 6,
        },
        {"tick.comm.volume_due", "tick.comm.lost"},
        Outcome.STOP,
    ),
    # -- pump alarm mode and warnings
    (
        "alarm mode without flag",
        {},
        {"snapshot": snapshot(mode=PumpMode.ALARM, rate_actual_ml_h=D(0))},
        {"tick.pump.alarm_mode"},
        Outcome.STOP,
    ),
    (
        "low battery",
        {},
        {"snapshot": snapshot(warnings=PumpWarning.LOW_BATTERY)},
        {"tick.pump.battery_low"},
        Outcome.ALARM,
    ),
    (
        "vtbi complete warning alone",
        {},
        {"snapshot": snapshot(warnings=PumpWarning.VTBI_COMPLETE)},
        set(),
        Outcome.CONTINUE,
    ),
    # -- rate: commanded 150 mL/h, band max(5 % = 7.5, 0.5) = 7.5
    (
        "rate at upper band",
        {},
        {"snapshot": snapshot(rate_actual_ml_h=D("157.50"))},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "rate above band",
        {},
        {"snapshot": snapshot(rate_actual_ml_h=D("157.51"))},
        {"tick.rate.mismatch"},
        Outcome.PAUSE,
    ),
    (
        "rate at lower band",
        {},
        {"snapshot": snapshot(rate_actual_ml_h=D("142.50"))},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "rate below band",
        {},
        {"snapshot": snapshot(rate_actual_ml_h=D("142.49"))},
        {"tick.rate.mismatch"},
        Outcome.PAUSE,
    ),
    (
        "slow rate uses absolute band (inside)",
        {},
        {"commanded_rate_ml_h": D("5.00"), "snapshot": snapshot(rate_actual_ml_h=D("5.50"))},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "slow rate uses absolute band (outside)",
        {},
        {"commanded_rate_ml_h": D("5.00"), "snapshot": snapshot(rate_actual_ml_h=D("5.51"))},
        {"tick.rate.mismatch"},
        Outcome.PAUSE,
    ),
    (
        "rate still settling",
        {},
        {"rate_commanded_at_s": NOW - 9.99, "snapshot": snapshot(rate_actual_ml_h=D("100"))},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "rate settled",
        {},
        {"rate_commanded_at_s": NOW - 10.0, "snapshot": snapshot(rate_actual_ml_h=D("100"))},
        {"tick.rate.mismatch"},
        Outcome.PAUSE,
    ),
    (
        "rate not judged in kvo mode",
        {},
        {"snapshot": snapshot(mode=PumpMode.KVO, rate_actual_ml_h=D("1.00"))},
        set(),
        Outcome.CONTINUE,
    ),
    # -- volume: expected 50 000 µL, band max(5 % = 2500, 500) = 2500
    (
        "volume at over band",
        {},
        {"snapshot": snapshot(volume_infused_ul=52_500)},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "over-infusion",
        {},
        {"snapshot": snapshot(volume_infused_ul=52_501)},
        {"tick.volume.over_infusion"},
        Outcome.STOP,
    ),
    (
        "volume at under band",
        {},
        {"snapshot": snapshot(volume_infused_ul=47_500), "previous_snapshot": None},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "under-infusion",
        {},
        {"snapshot": snapshot(volume_infused_ul=47_499), "previous_snapshot": None},
        {"tick.volume.under_infusion"},
        Outcome.PAUSE,
    ),
    (
        "early infusion uses absolute band (inside)",
        {},
        {
            "expected_volume_ul": 1000,
            "snapshot": snapshot(volume_infused_ul=1500),
            "previous_snapshot": None,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "early infusion uses absolute band (outside)",
        {},
        {
            "expected_volume_ul": 1000,
            "snapshot": snapshot(volume_infused_ul=1501),
            "previous_snapshot": None,
        },
        {"tick.volume.over_infusion"},
        Outcome.STOP,
    ),
    (
        "counter offset at session start is subtracted",
        {},
        {"volume_at_start_ul": 10_000, "snapshot": snapshot(volume_infused_ul=60_000)},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "volume not judged before the infusion",
        {},
        {
            "phase": SessionPhase.PRIMING,
            "snapshot": snapshot(mode=PumpMode.PRIMING, volume_infused_ul=0),
            "previous_snapshot": None,
            "expected_volume_ul": 0,
        },
        set(),
        Outcome.CONTINUE,
    ),
    # -- VTBI 100 000 µL, overrun allowance 200 µL
    (
        "vtbi just short",
        {},
        {"snapshot": snapshot(volume_infused_ul=99_999), "expected_volume_ul": 99_999},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "vtbi reached while pump still infusing",
        {},
        {"snapshot": snapshot(volume_infused_ul=100_000), "expected_volume_ul": 100_000},
        {"tick.vtbi.reached"},
        Outcome.STOP,
    ),
    (
        "vtbi reached, pump went to kvo by itself",
        {},
        {
            "snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=100_000),
            "expected_volume_ul": 100_000,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "vtbi at overrun allowance",
        {},
        {
            "snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=100_200),
            "expected_volume_ul": 100_000,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "vtbi exceeded",
        {},
        {
            "snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=100_201),
            "expected_volume_ul": 100_000,
        },
        {"tick.vtbi.exceeded"},
        Outcome.STOP,
    ),
    (
        "kvo phase allows the kvo volume",
        {"kvo_max_ul": 1000},
        {
            "phase": SessionPhase.KVO,
            "commanded_rate_ml_h": D(1),
            "snapshot": snapshot(
                mode=PumpMode.KVO, volume_infused_ul=100_999, rate_actual_ml_h=D(1)
            ),
            "expected_volume_ul": 100_999,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "kvo allowance used by the counter",
        {"kvo_max_ul": 1000},
        {
            "phase": SessionPhase.KVO,
            "commanded_rate_ml_h": D(1),
            "snapshot": snapshot(
                mode=PumpMode.KVO, volume_infused_ul=101_000, rate_actual_ml_h=D(1)
            ),
            "expected_volume_ul": 100_999,
        },
        {"tick.vtbi.kvo_complete"},
        Outcome.STOP,
    ),
    (
        "kvo allowance used by the clock",
        {"kvo_max_ul": 1000},
        {
            "phase": SessionPhase.KVO,
            "commanded_rate_ml_h": D(1),
            "snapshot": snapshot(
                mode=PumpMode.KVO, volume_infused_ul=100_999, rate_actual_ml_h=D(1)
            ),
            "expected_volume_ul": 101_000,
        },
        {"tick.vtbi.kvo_complete"},
        Outcome.STOP,
    ),
    (
        "kvo phase beyond the kvo volume",
        {"kvo_max_ul": 1000},
        {
            "phase": SessionPhase.KVO,
            "commanded_rate_ml_h": D(1),
            "snapshot": snapshot(
                mode=PumpMode.KVO, volume_infused_ul=101_201, rate_actual_ml_h=D(1)
            ),
            "expected_volume_ul": 101_201,
        },
        {"tick.vtbi.exceeded"},
        Outcome.STOP,
    ),
    ("commanded vtbi at plan", {}, {"commanded_vtbi_ul": 100_000}, set(), Outcome.CONTINUE),
    (
        "commanded vtbi above plan",
        {},
        {"commanded_vtbi_ul": 100_001},
        {"tick.vtbi.commanded_above_plan"},
        Outcome.STOP,
    ),
    # -- phase vs pump mode
    (
        "pump infusing while session paused",
        {},
        {"phase": SessionPhase.PAUSED, "paused_since_s": NOW - 10},
        {"tick.pump.delivering_unexpectedly"},
        Outcome.STOP,
    ),
    (
        "pump priming while session ready",
        {},
        {"phase": SessionPhase.READY, "snapshot": snapshot(mode=PumpMode.PRIMING)},
        {"tick.pump.delivering_unexpectedly"},
        Outcome.STOP,
    ),
    (
        "pump priming while session priming",
        {},
        {
            "phase": SessionPhase.PRIMING,
            "snapshot": snapshot(mode=PumpMode.PRIMING),
            "expected_volume_ul": 0,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "pump kvo in infusing phase",
        {},
        {"snapshot": snapshot(mode=PumpMode.KVO, rate_actual_ml_h=D(1))},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "flow reported while paused",
        {},
        {
            "phase": SessionPhase.PAUSED,
            "paused_since_s": NOW - 10,
            "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D("0.01")),
        },
        {"tick.pump.flow_while_stopped"},
        Outcome.STOP,
    ),
    (
        "pump paused while session infusing",
        {},
        {"snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D(0))},
        {"tick.pump.not_delivering"},
        Outcome.ALARM,
    ),
    (
        "pump idle while session infusing",
        {},
        {"snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0))},
        {"tick.pump.not_delivering"},
        Outcome.ALARM,
    ),
    # -- counters
    (
        "uptime unchanged",
        {},
        {"previous_snapshot": snapshot(uptime_s=10_000)},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "uptime went down",
        {},
        {"previous_snapshot": snapshot(uptime_s=10_001)},
        {"tick.pump.rebooted"},
        Outcome.STOP,
    ),
    (
        "volume unchanged",
        {},
        {"previous_snapshot": snapshot(volume_infused_ul=50_000)},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "volume went backwards",
        {},
        {"previous_snapshot": snapshot(volume_infused_ul=50_001)},
        {"tick.pump.counter_backwards"},
        Outcome.STOP,
    ),
    (
        "counter below the session's start value",
        {},
        {"volume_at_start_ul": 50_001, "expected_volume_ul": 0},
        {"tick.pump.counter_below_start"},
        Outcome.STOP,
    ),
    # -- pause ladder: remind at 300 s, every 120 s, stop at 1800 s
    *[
        (
            f"paused {paused_s} s",
            {},
            {
                "phase": SessionPhase.PAUSED,
                "paused_since_s": NOW - paused_s,
                "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D(0)),
            },
            codes,
            outcome,
        )
        for paused_s, codes, outcome in [
            (299.99, set(), Outcome.CONTINUE),
            (300.0, {"tick.pause.reminder.1"}, Outcome.REMIND),
            (419.99, {"tick.pause.reminder.1"}, Outcome.REMIND),
            (420.0, {"tick.pause.reminder.2"}, Outcome.REMIND),
            (1799.99, {"tick.pause.reminder.13"}, Outcome.REMIND),
            (1800.0, {"tick.pause.too_long"}, Outcome.STOP),
        ]
    ],
    # -- vitals range: pause band systolic ≥ 85, stop band ≥ 80
    ("systolic at pause limit", {}, {"vitals": reading(systolic_mmhg=85)}, set(), Outcome.CONTINUE),
    (
        "systolic below pause limit",
        {},
        {"vitals": reading(systolic_mmhg=84)},
        {"tick.vitals.pause.systolic_mmhg.below_min"},
        Outcome.PAUSE,
    ),
    (
        "systolic at stop limit",
        {},
        {"vitals": reading(systolic_mmhg=80)},
        {"tick.vitals.pause.systolic_mmhg.below_min"},
        Outcome.PAUSE,
    ),
    (
        "systolic below stop limit",
        {},
        {"vitals": reading(systolic_mmhg=79)},
        {"tick.vitals.stop.systolic_mmhg.below_min"},
        Outcome.STOP,
    ),
    (
        "heart rate above stop limit",
        {},
        {"vitals": reading(heart_rate_bpm=141)},
        {"tick.vitals.stop.heart_rate_bpm.above_max"},
        Outcome.STOP,
    ),
    (
        "spo2 in pause band and diastolic in stop band",
        {},
        {"vitals": reading(spo2_percent=91, diastolic_mmhg=121)},
        {"tick.vitals.pause.spo2_percent.below_min", "tick.vitals.stop.diastolic_mmhg.above_max"},
        Outcome.STOP,
    ),
    (
        "stop breach in observation raises an alarm",
        {},
        {
            "phase": SessionPhase.OBSERVATION,
            "snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0)),
            "vitals": reading(systolic_mmhg=79),
        },
        {"tick.vitals.stop.systolic_mmhg.below_min"},
        Outcome.ALARM,
    ),
    (
        "pause breach while paused raises an alarm",
        {},
        {
            "phase": SessionPhase.PAUSED,
            "paused_since_s": NOW - 10,
            "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D(0)),
            "vitals": reading(systolic_mmhg=84),
        },
        {"tick.vitals.pause.systolic_mmhg.below_min"},
        Outcome.ALARM,
    ),
    (
        "vitals not judged before the session",
        {},
        {
            "phase": SessionPhase.READY,
            "snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0)),
            "vitals": reading(systolic_mmhg=50),
            "vitals_taken_s": 0.0,
        },
        set(),
        Outcome.CONTINUE,
    ),
    (
        "no vitals rules in the limits",
        {"vitals": None},
        {"vitals": None, "vitals_taken_s": None},
        set(),
        Outcome.CONTINUE,
    ),
    # -- vitals due every 15 min (900 s), overdue after 5 min more grace (1200 s)
    ("vitals just before due", {}, {"vitals_taken_s": NOW - 899.99}, set(), Outcome.CONTINUE),
    ("vitals due", {}, {"vitals_taken_s": NOW - 900.0}, {"tick.vitals.due"}, Outcome.REMIND),
    (
        "vitals due at end of grace",
        {},
        {"vitals_taken_s": NOW - 1200.0},
        {"tick.vitals.due"},
        Outcome.REMIND,
    ),
    (
        "vitals overdue",
        {},
        {"vitals_taken_s": NOW - 1200.01},
        {"tick.vitals.overdue"},
        Outcome.REMIND,
    ),
    (
        "no vitals at all",
        {},
        {"vitals": None, "vitals_taken_s": None},
        {"tick.vitals.none"},
        Outcome.REMIND,
    ),
    (
        "vitals lack a required reading",
        {},
        {"vitals": reading(spo2_percent=None)},
        {"tick.vitals.incomplete"},
        Outcome.REMIND,
    ),
    (
        "vitals lack an optional reading",
        {},
        {"vitals": reading(resp_rate_per_min=None)},
        set(),
        Outcome.CONTINUE,
    ),
    # -- delivery duration: at most 3600 s
    ("delivery at its limit", {}, {"delivery_elapsed_s": 3600.0}, set(), Outcome.CONTINUE),
    (
        "delivery past its limit",
        {},
        {"delivery_elapsed_s": 3600.01},
        {"tick.duration.exceeded"},
        Outcome.ALARM,
    ),
    ("delivery time unknown", {}, {"delivery_elapsed_s": None}, set(), Outcome.CONTINUE),
    (
        "no duration limit",
        {"max_delivery_s": None},
        {"delivery_elapsed_s": 99_999.0},
        set(),
        Outcome.CONTINUE,
    ),
    (
        "duration not judged in observation",
        {},
        {
            "phase": SessionPhase.OBSERVATION,
            "snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0)),
            "delivery_elapsed_s": 99_999.0,
        },
        set(),
        Outcome.CONTINUE,
    ),
]


@pytest.mark.parametrize(
    ("limit_overrides", "input_overrides", "codes", "outcome"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_rule_boundary(
    limit_overrides: dict[str, Any],
    input_overrides: dict[str, Any],
    codes: set[str],
    outcome: Outcome,
) -> None:
    decision = decide(limits(**limit_overrides), **input_overrides)
    assert set(decision.codes) == codes
    assert decision.outcome is outcome
    for action in decision.actions:
        assert_well_formed(action)


@pytest.mark.parametrize("alarm", list(PumpAlarm.__members__.values())[1:])
def test_every_alarm_flag_stops_with_high_priority(alarm: PumpAlarm) -> None:
    decision = decide(snapshot=snapshot(alarms=alarm))
    name = str(alarm.name).lower()
    assert decision.outcome is Outcome.STOP
    assert decision.priority is Priority.HIGH
    assert f"tick.pump.alarm.{name}" in decision.codes
    action = next(a for a in decision.actions if a.code == f"tick.pump.alarm.{name}")
    assert action.kind is ActionKind.STOP
    assert name.replace("_", " ") in action.message


def test_several_alarm_flags_each_listed() -> None:
    flags = PumpAlarm.AIR_IN_LINE | PumpAlarm.DOOR_OPEN
    decision = decide(snapshot=snapshot(alarms=flags, mode=PumpMode.ALARM, rate_actual_ml_h=D(0)))
    assert set(decision.codes) == {"tick.pump.alarm.air_in_line", "tick.pump.alarm.door_open"}


def test_every_contributing_rule_is_listed_strongest_first() -> None:
    # Over-infusion (60,000 µL for 50,000 expected): the volume rule contributes beside the
    # pump's alarm (an under-infusion would not: the pump's stop explains the deficit).
    decision = decide(
        snapshot=snapshot(
            alarms=PumpAlarm.OCCLUSION_DOWNSTREAM,
            warnings=PumpWarning.LOW_BATTERY,
            volume_infused_ul=60_000,
        ),
        previous_snapshot=snapshot(volume_infused_ul=60_000),
        vitals_taken_s=NOW - 1000,
    )
    assert decision.rules == ("tick.pump_alarm", "tick.volume", "tick.vitals.due")
    kinds = [a.kind.rank for a in decision.actions]
    assert kinds == sorted(kinds, reverse=True)
    assert decision.actions[0].priority is Priority.HIGH
    assert decision.actions[-1].code == "tick.vitals.due"


def test_last_pause_reminder_before_the_stop_is_medium() -> None:
    paused: dict[str, Any] = {
        "phase": SessionPhase.PAUSED,
        "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D(0)),
    }
    early = decide(paused_since_s=NOW - 300, **paused)
    late = decide(paused_since_s=NOW - 1680, **paused)
    just_before_last = decide(paused_since_s=NOW - 1679.99, **paused)
    assert early.priority is Priority.LOW
    assert late.priority is Priority.MEDIUM
    assert just_before_last.priority is Priority.LOW


def test_messages_carry_value_limit_and_unit() -> None:
    decision = decide(snapshot=snapshot(rate_actual_ml_h=D("170.00")))
    (action,) = decision.actions
    assert "170.00 mL/h" in action.message
    assert "150.00 mL/h" in action.message
    assert "±7.50 mL/h" in action.message
    assert action.as_dict() == {
        "kind": "pause",
        "priority": "high",
        "code": "tick.rate.mismatch",
        "message": action.message,
        "rule": "tick.rate",
    }


def test_outcomes_are_ordered_from_continue_to_stop() -> None:
    ordered = [Outcome.CONTINUE, Outcome.REMIND, Outcome.ALARM, Outcome.PAUSE, Outcome.STOP]
    assert [o.rank for o in ordered] == [0, 1, 2, 3, 4]


def test_vitals_messages_say_what_happens_to_the_infusion() -> None:
    (stop,) = decide(vitals=reading(systolic_mmhg=79)).actions
    assert stop.message == (
        "Systolic pressure 79 mmHg is below the minimum of 80 mmHg of the stop band; "
        "the infusion is stopped."
    )
    (pause,) = decide(vitals=reading(spo2_percent=91)).actions
    assert pause.message == (
        "SpO2 91 % is below the minimum of 92 % of the pause band; the infusion is paused."
    )
    observing: dict[str, Any] = {
        "phase": SessionPhase.OBSERVATION,
        "snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0)),
    }
    (stop_alarm,) = decide(vitals=reading(heart_rate_bpm=141), **observing).actions
    assert stop_alarm.message.endswith("of the stop band; see the patient now.")
    (pause_alarm,) = decide(vitals=reading(heart_rate_bpm=121), **observing).actions
    assert pause_alarm.message.endswith("of the pause band; see the patient.")


PAUSED_PUMP: dict[str, Any] = {
    "phase": SessionPhase.PAUSED,
    "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D(0)),
}

# Each message a nurse reads: the value, the limit, the unit and what happens.
MESSAGES: list[tuple[dict[str, Any], str]] = [
    (
        {"last_good_comm_s": NOW - 7.25},
        "No answer from the pump for 7.2 s (limit 5.0 s); stop the infusion at the pump and "
        "check the connection.",
    ),
    (
        {"snapshot": snapshot(mode=PumpMode.ALARM, rate_actual_ml_h=D(0))},
        "The pump is in its alarm mode without a known alarm flag; the infusion is stopped.",
    ),
    (
        {"snapshot": snapshot(warnings=PumpWarning.LOW_BATTERY)},
        "The pump battery is low; connect mains power.",
    ),
    (
        {"phase": SessionPhase.PAUSED, "paused_since_s": NOW - 10},
        "The pump is infusing while the session is paused; the infusion is stopped.",
    ),
    (
        {
            **PAUSED_PUMP,
            "paused_since_s": NOW - 10,
            "snapshot": snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=D("0.01")),
        },
        "The pump reports 0.01 mL/h while paused; the infusion is stopped.",
    ),
    (
        {"snapshot": snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=D(0))},
        "The pump is idle although the session is infusing; check the pump.",
    ),
    (
        {"previous_snapshot": snapshot(uptime_s=10_001)},
        "The pump restarted (uptime 10001 s → 10000 s): its program is gone and its volume "
        "counter was lost; 50000 µL had been delivered; the infusion is stopped.",
    ),
    (
        {"previous_snapshot": snapshot(volume_infused_ul=50_001)},
        "The pump's infused volume went down (50001 µL → 50000 µL); the infusion is stopped.",
    ),
    (
        {"volume_at_start_ul": 50_001, "expected_volume_ul": 0},
        "The pump's infused volume (50000 µL) is below its value at the start of this session "
        "(50001 µL); the infusion is stopped.",
    ),
    (
        {"commanded_vtbi_ul": 100_001},
        "The pump was commanded a VTBI of 100001 µL, above the plan's 100000 µL; the infusion "
        "is stopped.",
    ),
    (
        {
            "snapshot": snapshot(mode=PumpMode.KVO, volume_infused_ul=100_201),
            "expected_volume_ul": 100_000,
        },
        "100201 µL delivered, more than the 100200 µL allowed (VTBI 100000 µL); the infusion "
        "is stopped.",
    ),
    (
        {"snapshot": snapshot(volume_infused_ul=100_000), "expected_volume_ul": 100_000},
        "100000 µL delivered: the VTBI of 100000 µL is reached and the pump is still "
        "infusing; stop it.",
    ),
    (
        {"snapshot": snapshot(volume_infused_ul=52_501)},
        "52501 µL delivered but 50000 µL expected (tolerance +2500 µL); over-infusion, the "
        "infusion is stopped.",
    ),
    (
        {"snapshot": snapshot(volume_infused_ul=47_499), "previous_snapshot": None},
        "47499 µL delivered but 50000 µL expected (tolerance −2500 µL); under-infusion, the "
        "infusion is paused: check the line for occlusion or leak.",
    ),
    (
        {**PAUSED_PUMP, "paused_since_s": NOW - 1830},
        "Paused for 30.5 min, the limit is 30.0 min; the infusion is ended.",
    ),
    (
        {**PAUSED_PUMP, "paused_since_s": NOW - 450},
        "Paused for 7.5 min (reminder 2); the infusion ends at 30.0 min of pause.",
    ),
    (
        {"vitals": None, "vitals_taken_s": None},
        "No vital signs are recorded for this session; record them now.",
    ),
    (
        {"now_s": 4000.0, "last_good_comm_s": 3999.0, "vitals_taken_s": 1600.0},
        "Vital signs are 40 min old; they are due every 15 min and now overdue.",
    ),
    ({"vitals_taken_s": NOW - 960}, "Vital signs are due (every 15 min)."),
    (
        {"vitals": reading(spo2_percent=None, heart_rate_bpm=None)},
        "The last vital signs lack hr, spo2.",
    ),
    (
        {"delivery_elapsed_s": 3690.0},
        "The infusion has run 61.5 min, longer than the 60.0 min allowed; review it.",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), MESSAGES)
def test_message_text(overrides: dict[str, Any], message: str) -> None:
    (action,) = decide(**overrides).actions
    assert action.message == message
