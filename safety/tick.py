"""Tick evaluation: one pure function that says, every poll, what must happen now.

``evaluate(limits, inputs)`` reads no clock and keeps no state: the controller passes the
monotonic time and everything it has observed, and obeys the returned actions. Each rule
is a small function that only *adds* actions; the outcome is the strongest action kind, so
no rule can loosen what another demanded (the AndroidAPS constraint-chain idea), and the
decision lists every rule that contributed. See docs/safety/supervision-rules.md for the
choice and justification of every threshold.

The rules are in two modules by family: ``safety/delivery_rules.py`` (the pump, the link,
volume, rate, pause, duration) and ``safety/bedside_rules.py`` (vital signs, inputs a
person owes); what they judge is ``safety/supervision.py``. This module keeps their order
and the one function the controller calls, and names what callers import from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from safety.actions import Action
from safety.bedside_rules import rule_input_pending, rule_vitals_due, rule_vitals_range
from safety.delivery_rules import (
    VTBI_ACK_COUNTER_NOISE_UL,
    kvo_complete,
    rule_comm,
    rule_counters,
    rule_duration,
    rule_pause,
    rule_phase,
    rule_pump_alarm,
    rule_rate,
    rule_volume,
    rule_volume_due_unanswered,
    rule_vtbi,
)
from safety.supervision import (
    DEFAULT_POLICY,
    MAX_VOLUME_UL,
    InvalidTickInput,
    Outcome,
    PendingInput,
    SessionPhase,
    SupervisionLimits,
    SupervisionPolicy,
    TickDecision,
    TickInputs,
    supervision_limits,
)

__all__ = [
    "DEFAULT_POLICY",
    "MAX_VOLUME_UL",
    "RULES",
    "VTBI_ACK_COUNTER_NOISE_UL",
    "InvalidTickInput",
    "Outcome",
    "PendingInput",
    "SessionPhase",
    "SupervisionLimits",
    "SupervisionPolicy",
    "TickDecision",
    "TickInputs",
    "evaluate",
    "kvo_complete",
    "rule_input_pending",
    "supervision_limits",
]

_Rule = Callable[[SupervisionLimits, TickInputs], Iterator[Action]]


RULES: tuple[_Rule, ...] = (
    rule_pump_alarm,
    rule_comm,
    rule_volume_due_unanswered,
    rule_phase,
    rule_counters,
    rule_vtbi,
    rule_rate,
    rule_volume,
    rule_pause,
    rule_vitals_range,
    rule_vitals_due,
    rule_duration,
    rule_input_pending,
)


def evaluate(limits: SupervisionLimits, inputs: TickInputs) -> TickDecision:
    """Run every rule; the decision keeps every action, strongest and most urgent first."""
    if not isinstance(limits, SupervisionLimits):
        raise InvalidTickInput(f"limits must be SupervisionLimits, got {limits!r}")
    if not isinstance(inputs, TickInputs):
        raise InvalidTickInput(f"inputs must be TickInputs, got {inputs!r}")
    actions = [action for rule in RULES for action in rule(limits, inputs)]
    actions.sort(key=lambda a: (-a.kind.rank, -a.priority.rank))
    return TickDecision(tuple(actions))
