"""Carrying out the kernel's STOP or PAUSE, as the tick that decided it found the session.

Alarm first: the alarm's ``alarm.raised`` is queued before the halt's intent, the halt goes
to the pump, and the alarm is latched in the session once the command's round trip is over
(docs/controller.md, "One poll", step 4). The person on call's log lines of all this are
written after the halt, not between the decision and the wire (``held_while_halting``).
"""

from __future__ import annotations

from collections.abc import Sequence

from safety.actions import Action, ActionKind
from safety.pump import PumpSnapshot
from safety.runon import stop_repeats_unanswered

from .logline import held_while_halting
from .steps import SessionSteps


async def obey_halt(
    steps: SessionSteps, halting: Sequence[Action], snap: PumpSnapshot | None
) -> None:
    with held_while_halting():
        await _halt(steps, halting, snap)


async def _halt(steps: SessionSteps, halting: Sequence[Action], snap: PumpSnapshot | None) -> None:
    kind = ActionKind.STOP if halting[0].kind is ActionKind.STOP else ActionKind.PAUSE
    effect = "stopped" if kind is ActionKind.STOP else "paused"
    # Whether to command is decided on the session as this tick found it, before its alarm
    # latches (_must_command says why a pump in ALARM still gets it); a STOP into a pump
    # that does not answer is sent again at every tick when the kernel says so.
    command = steps.must_command(kind, snap) or stop_repeats_unanswered(halting)
    if snap is None or not command:
        # No reading: latched at once (a STOP into a dead link can take all its attempts
        # to fail); nothing to send: nothing to wait for.
        steps.latch(halting, effect=effect)
    else:
        # Alarm first: its event is queued now, ahead of the STOP's intent.
        steps.announce(halting, effect=effect)
    try:
        if command:
            await steps.halt(kind, halting)
    finally:
        steps.latch(halting, effect=effect)
