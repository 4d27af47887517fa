"""The tick's rules about the people at the bedside: vital signs out of their band or
overdue, and an input a person owes (a double-check, a start, an acknowledgement) that is
re-alerted while it waits. Each rule only *adds* actions (``safety.tick.evaluate``).
"""

from __future__ import annotations

from collections.abc import Iterator

from safety.actions import Action, ActionKind, Priority
from safety.supervision import (
    DELIVERY_PHASES,
    PendingInput,
    SessionPhase,
    SupervisionLimits,
    TickInputs,
)
from safety.vitals import VitalsRules, breaches, missing_kinds

_PENDING_WORDS: dict[PendingInput, tuple[str, str]] = {
    PendingInput.DOUBLE_CHECK: ("The programmed infusion", "for its double-check"),
    PendingInput.START: ("The checked infusion", "to be started"),
    PendingInput.ADJUST_CONFIRMATION: ("The proposed adjustment", "to be confirmed or cancelled"),
    PendingInput.ACKNOWLEDGEMENT: ("The latched alarm", "to be acknowledged"),
}
_VITALS_PHASES = frozenset(
    {SessionPhase.INFUSING, SessionPhase.PAUSED, SessionPhase.KVO, SessionPhase.OBSERVATION}
)


def rule_input_pending(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """GIP 2.2.1: while a person's input is pending, re-alert every interval.

    A double-check, a start, an adjustment's confirmation or an alarm's acknowledgement
    left waiting reminds at each full ``input_remind_every_s`` of waiting; the number in
    the code makes each a new reminder. Low priority (awareness) unless an alarm is
    latched: then the reminder carries that alarm's priority, since the alarm still waits.
    """
    kind, since = inputs.pending_input, inputs.input_pending_since_s
    if kind is None or since is None:
        return
    waited_s = inputs.now_s - since
    every_s = limits.input_remind_every_s
    if waited_s < every_s:
        return
    number = int(waited_s // every_s)
    what, waits_for = _PENDING_WORDS[kind]
    yield Action(
        ActionKind.REMIND,
        inputs.latched_alarm_priority or Priority.LOW,
        f"tick.input.{kind.value}.reminder.{number}",
        f"{what} has waited {waited_s / 60:.0f} min {waits_for} (reminder {number}, every "
        f"{every_s / 60:.0f} min).",
        "tick.input",
    )


def _vitals_rules(limits: SupervisionLimits, inputs: TickInputs) -> VitalsRules | None:
    if limits.vitals is None or inputs.phase not in _VITALS_PHASES:
        return None
    return limits.vitals


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def rule_vitals_range(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Vitals outside the stop band stop, outside the pause band pause (alarm when idle)."""
    rules = _vitals_rules(limits, inputs)
    reading = inputs.vitals
    if rules is None or reading is None:
        return
    delivering = inputs.phase in DELIVERY_PHASES
    stop_effect = "the infusion is stopped" if delivering else "see the patient now"
    pause_effect = "the infusion is paused" if delivering else "see the patient"
    # Not delivering: an alarm, once; after its acknowledgement a reminder until a new
    # reading (the nurse is not made to acknowledge the same reading again and again).
    idle_kind = ActionKind.REMIND if inputs.vitals_acknowledged else ActionKind.ALARM
    stop_found = breaches(rules.stop, reading)
    stop_measures = {b.measure for b in stop_found}
    for breach in stop_found:
        yield Action(
            ActionKind.STOP if delivering else idle_kind,
            Priority.HIGH,
            f"tick.vitals.stop.{breach.code_suffix}",
            _sentence(f"{breach.describe()} of the stop band; {stop_effect}."),
            "tick.vitals.range",
        )
    for breach in breaches(rules.pause, reading):
        if breach.measure in stop_measures:
            continue
        yield Action(
            ActionKind.PAUSE if delivering else idle_kind,
            Priority.MEDIUM,
            f"tick.vitals.pause.{breach.code_suffix}",
            _sentence(f"{breach.describe()} of the pause band; {pause_effect}."),
            "tick.vitals.range",
        )


def rule_vitals_due(limits: SupervisionLimits, inputs: TickInputs) -> Iterator[Action]:
    """Vitals are due every interval while infusing and observing; overdue ones remind louder."""
    rules = _vitals_rules(limits, inputs)
    if rules is None:
        return
    rule = "tick.vitals.due"
    if inputs.vitals is None or inputs.vitals_taken_s is None:
        yield Action(
            ActionKind.REMIND,
            Priority.MEDIUM,
            "tick.vitals.none",
            "No vital signs are recorded for this session; record them now.",
            rule,
        )
        return
    age_s = inputs.now_s - inputs.vitals_taken_s
    due_s = rules.interval_min * 60
    if age_s > due_s + rules.overdue_grace_min * 60:
        yield Action(
            ActionKind.REMIND,
            Priority.MEDIUM,
            "tick.vitals.overdue",
            f"Vital signs are {age_s / 60:.0f} min old; they are due every "
            f"{rules.interval_min} min and now overdue.",
            rule,
        )
    elif age_s >= due_s:
        yield Action(
            ActionKind.REMIND,
            Priority.LOW,
            "tick.vitals.due",
            f"Vital signs are due (every {rules.interval_min} min).",
            rule,
        )
    missing = missing_kinds(rules, inputs.vitals)
    if missing:
        yield Action(
            ActionKind.REMIND,
            Priority.LOW,
            "tick.vitals.incomplete",
            f"The last vital signs lack {', '.join(missing)}.",
            rule,
        )
