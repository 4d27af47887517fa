"""tick.input: GIP 2.2.1 "re-alert every 15 min while input is pending".

A double-check, a start, an adjustment's confirmation or an alarm's acknowledgement that a
person leaves waiting reminds at every full interval of waiting (the number in the code
makes each reminder new), at low priority unless an alarm is latched.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_limits import load, plan_for
from test_tick_nominal import inputs, limits, snapshot
from test_tick_rules import assert_well_formed

from safety.actions import ActionKind, Priority
from safety.pump import PumpMode
from safety.tick import (
    DEFAULT_POLICY,
    InvalidTickInput,
    Outcome,
    PendingInput,
    SessionPhase,
    SupervisionLimits,
    evaluate,
    rule_input_pending,
    supervision_limits,
)

IDLE = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0), volume_infused_ul=0)
NOW_S = 10_000.0


def waiting(
    kind: PendingInput, waited_s: float, latched: Priority | None = None, **over: Any
) -> dict[str, Any]:
    """A session before its start (pump idle, nothing delivered) waiting ``waited_s``."""
    now_s = over.pop("now_s", NOW_S)
    values: dict[str, Any] = {
        "now_s": now_s,
        "phase": SessionPhase.READY,
        "commanded_rate_ml_h": Decimal(0),
        "rate_commanded_at_s": 0.0,
        "snapshot": IDLE,
        "previous_snapshot": IDLE,
        "last_good_comm_s": NOW_S,
        "delivery_elapsed_s": None,
        "expected_volume_ul": 0,
        "vitals": None,
        "vitals_taken_s": None,
        "pending_input": kind,
        "input_pending_since_s": now_s - waited_s,
        "latched_alarm_priority": latched,
    }
    values.update(over)
    return values


def reminders(lim: SupervisionLimits | None = None, **over: Any) -> list[Any]:
    decision = evaluate(lim or limits(), inputs(**over))
    for action in decision.actions:
        assert_well_formed(action)
    return [a for a in decision.actions if a.rule == "tick.input"]


@pytest.mark.parametrize(
    ("waited_s", "code"),
    [
        (0.0, None),
        (899.999, None),
        (900.0, "tick.input.double_check.reminder.1"),
        (1799.999, "tick.input.double_check.reminder.1"),
        (1800.0, "tick.input.double_check.reminder.2"),
        (2700.0, "tick.input.double_check.reminder.3"),
    ],
)
def test_double_check_reminds_at_each_full_fifteen_minutes(
    waited_s: float, code: str | None
) -> None:
    found = reminders(**waiting(PendingInput.DOUBLE_CHECK, waited_s))
    assert [a.code for a in found] == ([code] if code else [])
    for action in found:
        assert action.kind is ActionKind.REMIND
        assert action.priority is Priority.LOW


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (
            PendingInput.DOUBLE_CHECK,
            "The programmed infusion has waited 15 min for its double-check",
        ),
        (PendingInput.START, "The checked infusion has waited 15 min to be started"),
        (
            PendingInput.ADJUST_CONFIRMATION,
            "The proposed adjustment has waited 15 min to be confirmed or cancelled",
        ),
    ],
)
def test_each_pending_input_says_what_waits(kind: PendingInput, words: str) -> None:
    [action] = reminders(**waiting(kind, 900.0))
    assert action.code == f"tick.input.{kind.value}.reminder.1"
    assert action.message == f"{words} (reminder 1, every 15 min)."
    assert action.priority is Priority.LOW


@pytest.mark.parametrize("latched", list(Priority))
def test_a_latched_alarm_waiting_for_acknowledgement_reminds_at_its_priority(
    latched: Priority,
) -> None:
    assert reminders(**waiting(PendingInput.ACKNOWLEDGEMENT, 899.0, latched)) == []
    [action] = reminders(**waiting(PendingInput.ACKNOWLEDGEMENT, 1800.0, latched))
    assert action.code == "tick.input.acknowledgement.reminder.2"
    assert action.priority is latched
    assert action.message.startswith("The latched alarm has waited 30 min to be acknowledged")


def test_an_adjustment_waiting_during_an_infusion_reminds_and_the_infusion_continues() -> None:
    decision = evaluate(
        limits(),
        inputs(pending_input=PendingInput.ADJUST_CONFIRMATION, input_pending_since_s=1000.0),
    )
    assert decision.outcome is Outcome.REMIND
    assert decision.codes == ("tick.input.adjust_confirmation.reminder.1",)


def test_nothing_pending_reminds_of_nothing() -> None:
    nothing = waiting(PendingInput.START, 5000.0, pending_input=None, input_pending_since_s=None)
    assert reminders(**nothing) == []


def test_the_interval_comes_from_the_limits() -> None:
    lim = limits(input_remind_every_s=600.0)
    assert [a.code for a in reminders(lim, **waiting(PendingInput.START, 1200.0))] == [
        "tick.input.start.reminder.2"
    ]


def test_the_policy_default_is_fifteen_minutes() -> None:
    protocol = load("ketamine-trd-standard")
    plan = plan_for(protocol)
    assert supervision_limits(protocol, plan).input_remind_every_s == 900.0
    policy = dataclasses.replace(DEFAULT_POLICY, input_reminder_every_s=300.0)
    assert supervision_limits(protocol, plan, policy).input_remind_every_s == 300.0


GO_TOGETHER = "^pending_input and input_pending_since_s go together$"


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"pending_input": PendingInput.START, "input_pending_since_s": None}, GO_TOGETHER),
        ({"pending_input": None, "input_pending_since_s": 100.0}, GO_TOGETHER),
        (
            {"pending_input": "start", "input_pending_since_s": 100.0},
            "^pending_input must be a PendingInput or None, got 'start'$",
        ),
        (
            {"pending_input": PendingInput.START, "input_pending_since_s": NOW_S + 1},
            r"^input_pending_since_s \(10001.0\) is after now_s \(10000.0\)$",
        ),
        (
            {"pending_input": PendingInput.START, "input_pending_since_s": float("nan")},
            "^input_pending_since_s must be a finite time in seconds, got nan$",
        ),
        (
            {"pending_input": PendingInput.ACKNOWLEDGEMENT, "input_pending_since_s": 100.0},
            "^an acknowledgement is pending only while an alarm is latched$",
        ),
        (
            {"latched_alarm_priority": "high"},
            "^latched_alarm_priority must be a Priority, got 'high'$",
        ),
    ],
)
def test_contradictory_pending_input_is_refused(over: dict[str, Any], says: str) -> None:
    """Each refusal in its own words: the controller puts them in the high
    ``controller.bookkeeping`` alarm that stops the infusion."""
    values = waiting(PendingInput.START, 100.0)
    values.update(over)
    with pytest.raises(InvalidTickInput, match=says):
        inputs(**values)


@pytest.mark.parametrize(
    ("every", "says"),
    [
        (0.0, "^input_remind_every_s must be at least 1 s$"),
        (0.5, "^input_remind_every_s must be at least 1 s$"),
        (-1.0, "^input_remind_every_s must be finite and ≥ 0 s, got -1.0$"),
        (float("inf"), "^input_remind_every_s must be a finite time in seconds, got inf$"),
        ("900", "^input_remind_every_s must be a number of seconds, got '900'$"),
    ],
)
def test_an_interval_below_a_second_or_not_a_time_is_refused(every: object, says: str) -> None:
    with pytest.raises(InvalidTickInput, match=says):
        limits(input_remind_every_s=every)


@given(
    kind=st.sampled_from(PendingInput),
    waited_s=st.floats(min_value=0, max_value=10 * 86_400),
    every_s=st.floats(min_value=1, max_value=7_200),
    latched=st.sampled_from(list(Priority)),
    later_s=st.floats(min_value=0, max_value=86_400),
)
def test_one_reminder_per_full_interval_never_stronger_than_a_reminder(
    kind: PendingInput, waited_s: float, every_s: float, latched: Priority, later_s: float
) -> None:
    """Reminded exactly when a full interval has passed, numbered by the intervals passed,
    never more than a reminder, at low priority unless an alarm is latched; waiting longer
    never lowers the number, and a shorter interval never reminds less."""
    priority = latched if kind is PendingInput.ACKNOWLEDGEMENT else None
    lim = limits(input_remind_every_s=every_s)
    now = inputs(**waiting(kind, waited_s, priority, now_s=NOW_S + 10 * 86_400))
    found = list(rule_input_pending(lim, now))
    assert bool(found) == (now.now_s - (now.input_pending_since_s or 0) >= every_s)
    numbers = [int(a.code.rsplit(".", 1)[1]) for a in found]
    for action, number in zip(found, numbers, strict=True):
        assert action.kind is ActionKind.REMIND
        assert action.priority is (priority or Priority.LOW)
        assert number == int((now.now_s - (now.input_pending_since_s or 0)) // every_s) >= 1
    later = dataclasses.replace(now, now_s=now.now_s + later_s)
    later_numbers = [int(a.code.rsplit(".", 1)[1]) for a in rule_input_pending(lim, later)]
    assert later_numbers >= numbers
    shorter = dataclasses.replace(lim, input_remind_every_s=max(1.0, every_s / 2))
    assert len(list(rule_input_pending(shorter, now))) >= len(found)
