"""Actions: what the controller must do after a tick, each traceable to one rule.

Kinds are ordered by how much they change the infusion (remind < alarm < pause < stop);
priorities follow IEC 60601-1-8 (high: immediate response, risk of serious harm;
medium: prompt response; low: awareness). A decision's outcome is the strongest kind among
its actions, so adding a rule's finding can only tighten it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ActionKind(enum.Enum):
    """What to do; ``rank`` orders them from least to most binding."""

    REMIND = "remind"
    ALARM = "alarm"
    PAUSE = "pause"
    STOP = "stop"

    @property
    def rank(self) -> int:
        return _KIND_RANK[self]


_KIND_RANK = {ActionKind.REMIND: 1, ActionKind.ALARM: 2, ActionKind.PAUSE: 3, ActionKind.STOP: 4}


class Priority(enum.Enum):
    """IEC 60601-1-8 alarm priority of the signal that goes with an action."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}


@dataclass(frozen=True, slots=True)
class Action:
    """One rule's demand. A STOP or PAUSE also alerts the nurse at ``priority``."""

    kind: ActionKind
    priority: Priority
    code: str
    message: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "priority": self.priority.value,
            "code": self.code,
            "message": self.message,
            "rule": self.rule,
        }
