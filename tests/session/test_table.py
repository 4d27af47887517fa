"""Every trigger in every state: the new state, or a typed refusal that changes nothing.

EXPECTED is the specification, written by hand: for each state (reached through public
commands only) and each trigger called with ordinary arguments, the state it must lead to
or the refusal code it must raise. Every pair not listed must raise InvalidInState naming
the state and what is possible instead.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from pumpd.session import (
    TRIGGERS,
    CommandRefused,
    InvalidInState,
    PumpCommand,
    Session,
    State,
    allowed_triggers,
)
from safety.actions import Priority
from safety.plan import Order, Patient
from safety.pump import PumpMode

from .conftest import CHECKER, PROGRAMMER, Bedside, drive

S = State
Call = Callable[[Bedside, Session], object]


def _uncertain_kind(s: Session) -> PumpCommand:
    return s.data.pending_command or PumpCommand.STOP


ARGS: dict[str, Call] = {
    "program": lambda b, s: s.program(
        by=PROGRAMMER, patient=Patient(weight_kg=Decimal(80)), order=Order(), at=b.at()
    ),
    "confirm": lambda b, s: s.confirm(by=CHECKER, weight="80 kg", at=b.at()),
    "request_prime": lambda b, s: s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at()),
    "request_start": lambda b, s: s.request_start(
        by=PROGRAMMER, pump=b.pump(), prior_sessions=(), at=b.at()
    ),
    "pause": lambda b, s: s.pause(by=PROGRAMMER, at=b.at()),
    "resume": lambda b, s: s.resume(
        by=PROGRAMMER, reason="line unkinked", delivery=b.delivery(), at=b.at()
    ),
    "end": lambda b, s: s.end(by=PROGRAMMER, reason="patient prefers to stop", at=b.at()),
    "adjust": lambda b, s: s.adjust(
        by=PROGRAMMER,
        reason="patient too dissociated",
        order=Order(duration_min=Decimal(50)),
        delivered_ul=1000,
        at=b.at(),
    ),
    "confirm_adjust": lambda b, s: s.confirm_adjust(by=PROGRAMMER, at=b.at()),
    "cancel_adjust": lambda b, s: s.cancel_adjust(by=PROGRAMMER, at=b.at()),
    "approve": lambda b, s: s.approve(by=CHECKER, pump=b.pump(), at=b.at()),
    "stop": lambda b, s: s.stop(by=PROGRAMMER, reason="patient asked to stop", at=b.at()),
    "acknowledge": lambda b, s: s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at()),
    "record_vitals": lambda b, s: s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at()),
    "note": lambda b, s: s.note(by=PROGRAMMER, text="patient comfortable", at=b.at()),
    "observe": lambda b, s: s.observe(by=PROGRAMMER, at=b.at()),
    "discharge": lambda b, s: s.discharge(
        by=PROGRAMMER, checklist_confirmed=b.protocol.protocol.discharge_checklist, at=b.at()
    ),
    "abort": lambda b, s: s.abort(by=PROGRAMMER, reason="patient declined", at=b.at()),
    "prime_confirmed": lambda b, s: s.prime_confirmed(at=b.at()),
    "prime_complete": lambda b, s: s.prime_complete(volume_primed_ul=15_000, at=b.at()),
    "start_confirmed": lambda b, s: s.start_confirmed(at=b.at()),
    "pause_confirmed": lambda b, s: s.pause_confirmed(at=b.at()),
    "stop_confirmed": lambda b, s: s.stop_confirmed(at=b.at()),
    "adjust_confirmed": lambda b, s: s.adjust_confirmed(at=b.at()),
    "vtbi_reached": lambda b, s: s.vtbi_reached(at=b.at()),
    "alarm": lambda b, s: s.alarm(
        code="pump.occlusion_downstream",
        priority=Priority.HIGH,
        message="Downstream occlusion on chair-2",
        source="pump",
        at=b.at(),
    ),
    "command_uncertain": lambda b, s: s.command_uncertain(
        command=_uncertain_kind(s), detail="reply timed out", at=b.at()
    ),
    "command_failed": lambda b, s: s.command_failed(
        command=_uncertain_kind(s), detail="REJECTED_STATE", at=b.at()
    ),
    "reconciled": lambda b, s: s.reconciled(pump_mode=PumpMode.IDLE, at=b.at()),
}

# (state, trigger) -> the state it leads to, or the refusal code it must raise.
EXPECTED: dict[tuple[State, str], State | str] = {
    (S.PROGRAMMED, "program"): S.PROGRAMMED,
    (S.PROGRAMMED, "confirm"): S.VERIFIED,
    (S.PROGRAMMED, "abort"): S.ABORTED,
    (S.VERIFIED, "program"): S.PROGRAMMED,
    (S.VERIFIED, "request_prime"): S.PRIME_REQUESTED,
    (S.VERIFIED, "request_start"): "start.vitals.missing",
    (S.VERIFIED, "approve"): "approve.nothing_pending",
    (S.VERIFIED, "abort"): S.ABORTED,
    (S.PRIME_REQUESTED, "prime_confirmed"): S.PRIMING,
    (S.PRIME_REQUESTED, "stop"): S.STOP_REQUESTED,
    (S.PRIME_REQUESTED, "command_uncertain"): S.UNCERTAIN,
    (S.PRIME_REQUESTED, "command_failed"): S.ALARM,
    (S.PRIMING, "prime_complete"): S.PRIMED,
    (S.PRIMING, "stop"): S.STOP_REQUESTED,
    (S.PRIMED, "request_prime"): S.PRIME_REQUESTED,
    (S.PRIMED, "request_start"): S.START_REQUESTED,
    (S.PRIMED, "approve"): "approve.nothing_pending",
    (S.PRIMED, "abort"): S.ABORTED,
    (S.START_REQUESTED, "start_confirmed"): S.INFUSING,
    (S.START_REQUESTED, "stop"): S.STOP_REQUESTED,
    (S.START_REQUESTED, "command_uncertain"): S.UNCERTAIN,
    (S.START_REQUESTED, "command_failed"): S.ALARM,
    (S.INFUSING, "pause"): S.PAUSE_REQUESTED,
    (S.INFUSING, "adjust"): S.INFUSING,
    (S.INFUSING, "confirm_adjust"): "adjust.nothing_proposed",
    (S.INFUSING, "cancel_adjust"): "adjust.nothing_proposed",
    (S.INFUSING, "approve"): "approve.nothing_pending",
    (S.INFUSING, "stop"): S.STOP_REQUESTED,
    (S.INFUSING, "vtbi_reached"): S.COMPLETE,
    (S.PAUSE_REQUESTED, "pause_confirmed"): S.PAUSED,
    (S.PAUSE_REQUESTED, "stop"): S.STOP_REQUESTED,
    (S.PAUSE_REQUESTED, "vtbi_reached"): S.COMPLETE,
    (S.PAUSE_REQUESTED, "command_uncertain"): S.UNCERTAIN,
    (S.PAUSE_REQUESTED, "command_failed"): S.ALARM,
    (S.PAUSED, "resume"): S.RESUME_REQUESTED,
    (S.PAUSED, "adjust"): S.PAUSED,
    (S.PAUSED, "confirm_adjust"): "adjust.nothing_proposed",
    (S.PAUSED, "cancel_adjust"): "adjust.nothing_proposed",
    (S.PAUSED, "approve"): "approve.nothing_pending",
    (S.PAUSED, "stop"): S.STOP_REQUESTED,
    (S.RESUME_REQUESTED, "start_confirmed"): S.INFUSING,
    (S.RESUME_REQUESTED, "stop"): S.STOP_REQUESTED,
    (S.RESUME_REQUESTED, "command_uncertain"): S.UNCERTAIN,
    (S.RESUME_REQUESTED, "command_failed"): S.ALARM,
    (S.ADJUSTING, "adjust_confirmed"): S.INFUSING,
    (S.ADJUSTING, "stop"): S.STOP_REQUESTED,
    (S.ADJUSTING, "vtbi_reached"): S.COMPLETE,
    (S.ADJUSTING, "command_uncertain"): S.UNCERTAIN,
    (S.ADJUSTING, "command_failed"): S.ALARM,
    (S.STOP_REQUESTED, "stop"): S.STOP_REQUESTED,
    (S.STOP_REQUESTED, "stop_confirmed"): S.STOPPED,
    (S.STOP_REQUESTED, "command_uncertain"): S.UNCERTAIN,
    (S.STOP_REQUESTED, "command_failed"): S.ALARM,
    (S.COMPLETE, "stop_confirmed"): S.OBSERVATION,
    (S.COMPLETE, "command_uncertain"): S.UNCERTAIN,
    (S.COMPLETE, "command_failed"): S.ALARM,
    (S.KVO, "observe"): S.COMPLETE,
    (S.KVO, "stop"): S.STOP_REQUESTED,
    (S.OBSERVATION, "discharge"): "discharge.observation_too_short",
    (S.STOPPED, "observe"): S.OBSERVATION,
    (S.STOPPED, "resume"): S.RESUME_REQUESTED,
    (S.STOPPED, "end"): S.OBSERVATION,
    (S.STOPPED, "abort"): "abort.after_start",
    (S.ALARM, "acknowledge"): S.STOPPED,
    (S.ALARM, "pause"): S.ALARM,
    (S.ALARM, "stop"): S.ALARM,
    (S.ALARM, "pause_confirmed"): S.ALARM,
    (S.ALARM, "stop_confirmed"): S.ALARM,
    (S.ALARM, "command_uncertain"): S.ALARM,
    (S.ALARM, "command_failed"): S.ALARM,
    (S.UNCERTAIN, "reconciled"): S.ALARM,
    (S.UNCERTAIN, "stop"): S.STOP_REQUESTED,
}
# Allowed everywhere they make sense, never moving the state.
for _state in State:
    EXPECTED[(_state, "note")] = _state
    if _state not in (S.DISCHARGED, S.ABORTED):
        EXPECTED[(_state, "record_vitals")] = _state
        EXPECTED[(_state, "alarm")] = S.ALARM


def test_expected_covers_exactly_the_machine_edges() -> None:
    allowed = {(s, t) for s in State for t in allowed_triggers(s)}
    assert set(EXPECTED) == allowed
    assert set(ARGS) == set(TRIGGERS)


@pytest.mark.parametrize("state", list(State), ids=str)
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_trigger_in_every_state(state: State, trigger: str) -> None:
    bedside, session = drive(state)
    before = session.snapshot()
    expected = EXPECTED.get((state, trigger))
    if expected is None:
        with pytest.raises(InvalidInState) as info:
            ARGS[trigger](bedside, session)
        assert info.value.state == state.value
        assert info.value.trigger == trigger
        assert set(info.value.allowed) == set(allowed_triggers(state))
        assert state.value in str(info.value)
    elif isinstance(expected, State):
        step = ARGS[trigger](bedside, session)
        assert session.state is expected
        assert step.source is state  # type: ignore[attr-defined]
        assert step.dest is expected  # type: ignore[attr-defined]
        return
    else:
        with pytest.raises(CommandRefused) as refused:
            ARGS[trigger](bedside, session)
        assert expected in refused.value.codes
        assert all(v.message for v in refused.value.verdicts)
    assert session.snapshot() == before
    assert session.state is state
