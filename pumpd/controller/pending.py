"""What a session waits for from a person, and since when: the kernel's input for GIP 2.2.1.

The kernel (``safety.bedside_rules.rule_input_pending``) re-alerts every interval while a person's
input is pending; the controller says which input and since when, on the monotonic clock,
from the session's own stamps, so a restart (which rebases them) keeps the waiting time.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpd.session import Session, State
from safety.actions import Priority
from safety.tick import PendingInput

_WAITING_FOR_START = frozenset({State.VERIFIED, State.PRIMED})


@dataclass(frozen=True, slots=True)
class Pending:
    kind: PendingInput
    since_s: float
    latched_alarm_priority: Priority | None = None


def pending_input(s: Session) -> Pending | None:
    """The input the session waits for, most urgent first: an alarm's acknowledgement, an
    adjustment's confirmation, the double-check, the start."""
    d = s.data
    if s.state is State.ALARM and d.alarms:
        return Pending(
            PendingInput.ACKNOWLEDGEMENT,
            min(a.at.mono_s for a in d.alarms),
            max((a.priority for a in d.alarms), key=lambda p: p.rank),
        )
    if d.pending_adjustment is not None:
        return Pending(PendingInput.ADJUST_CONFIRMATION, d.pending_adjustment.proposed_at.mono_s)
    if s.state is State.PROGRAMMED and d.confirmed_by is None:
        if s.protocol.protocol.double_check_required:
            return Pending(PendingInput.DOUBLE_CHECK, d.programmed_at.mono_s)
        return None
    if s.state in _WAITING_FOR_START:
        stamps = (d.programmed_at, d.confirmed_at, d.primed_at)
        return Pending(PendingInput.START, max(t.mono_s for t in stamps if t is not None))
    return None
