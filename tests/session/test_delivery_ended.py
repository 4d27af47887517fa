"""A delivery-accuracy alarm ends the session by itself once the halt is confirmed.

Over-infusion, rate mismatch, VTBI overrun, counter anomalies and comm loss during delivery
are not continuable (``safety.continuation.delivery_ended``): when the pump's halt is
confirmed (the STOP confirmed, an uncertain STOP reconciled idle, or the pump read idle at
the acknowledgement) the session goes to OBSERVATION, its clock starting then, and the
alarm stays latched until acknowledged. Before the halt is confirmed nothing claims that
delivery ended. Mechanical alarms and a nurse's stop still stop the session (continuable).
"""

from __future__ import annotations

import pytest

from pumpd.session import CommandRefused, InvalidInState, PumpCommand, Session, State
from pumpd.session.errors import RestoreError
from safety.actions import Priority
from safety.pump import PumpMode
from safety.tick import SessionPhase

from .conftest import PROGRAMMER, Bedside, drive

OVER = "tick.volume.over_infusion"
COMM = "tick.comm.lost"
ENDED = ("session.ended", "observation.started")


def _kernel_stop(b: Bedside, s: Session, code: str) -> None:
    s.stop(by="pumpd", reason="the kernel stops", reason_code=code, at=b.at())


def _latch(b: Bedside, s: Session, code: str) -> None:
    s.alarm(code=code, priority=Priority.HIGH, message=code, source="kernel", at=b.at())


def _same_after_restore(b: Bedside, s: Session) -> None:
    """The checkpoint reproduces the session exactly, also on a new monotonic clock."""
    snap = s.snapshot()
    assert Session.restore(snap, b.protocol).snapshot() == snap
    rebuilt = Session.restore(snap, b.protocol, rebase_to=b.at(0))
    assert rebuilt.state is s.state
    assert rebuilt.data.end_rule == s.data.end_rule
    assert rebuilt.phase() is s.phase()


def test_an_over_infusion_stop_confirmed_goes_to_observation_by_itself() -> None:
    b, s = drive(State.INFUSING)
    _kernel_stop(b, s, OVER)
    confirmed_at = b.at()
    step = s.stop_confirmed(at=confirmed_at)
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("pump.command.confirmed", "session.stopped", *ENDED)
    d = s.data
    assert d.observation_started_at is not None
    assert d.observation_started_at.mono_s == confirmed_at.mono_s
    assert d.stopped_at == d.observation_started_at
    assert d.end_rule == "continue.ended"
    assert d.end_reason is not None
    assert OVER in d.end_reason
    assert d.ended_by is None  # no nurse ended it
    _same_after_restore(b, s)
    # The controller latches the kernel's alarm after the round trip: it stays until
    # acknowledged, under it the observation goes on, and no second observation starts.
    _latch(b, s, OVER)
    assert s.state is State.ALARM
    assert s.phase() is SessionPhase.OBSERVATION
    assert s.data.interrupted_by == (OVER,)
    _same_after_restore(b, s)
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("alarm.acknowledged",)
    assert s.data.observation_started_at is not None
    assert s.data.observation_started_at.mono_s == confirmed_at.mono_s


def test_it_cannot_be_continued_and_is_discharged_after_the_observation() -> None:
    b, s = drive(State.INFUSING)
    _kernel_stop(b, s, OVER)
    s.stop_confirmed(at=b.at())
    assert "resume" not in s.allowed()
    with pytest.raises(InvalidInState):
        s.resume(by=PROGRAMMER, reason="looks fine", delivery=b.delivery(), at=b.at())
    s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at(31 * 60))
    s.discharge(
        by=PROGRAMMER, checklist_confirmed=b.protocol.protocol.discharge_checklist, at=b.at()
    )
    assert s.state is State.DISCHARGED


@pytest.mark.parametrize(
    "code", ["tick.pump.alarm.occlusion_downstream", "tick.pump.alarm.air_in_line", "nurse.stop"]
)
def test_a_mechanical_alarm_or_a_nurse_stop_still_stops(code: str) -> None:
    b, s = drive(State.INFUSING)
    _kernel_stop(b, s, code)
    step = s.stop_confirmed(at=b.at())
    assert step.dest is State.STOPPED
    assert step.audit_events == ("pump.command.confirmed", "session.stopped")
    assert s.data.observation_started_at is None
    assert s.data.end_rule is None


def test_comm_loss_keeps_alarming_until_the_halt_is_confirmed() -> None:
    """The link is gone: the alarm latches first, the STOP's outcome is unknown. The session
    does not claim that delivery ended; the acknowledgement, with the pump read idle (it
    stopped itself on its heartbeat failsafe), confirms the halt and starts the observation."""
    b, s = drive(State.INFUSING)
    _latch(b, s, COMM)
    _kernel_stop(b, s, COMM)
    s.command_uncertain(command=PumpCommand.STOP, detail="no reply", at=b.at())
    assert s.state is State.ALARM
    assert s.data.observation_started_at is None
    assert s.data.stopped_at is None
    assert s.phase() is SessionPhase.PAUSED  # the tick still watches for flow
    _same_after_restore(b, s)
    with pytest.raises(CommandRefused) as info:
        s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.ALARM, at=b.at())
    assert info.value.codes == ("ack.pump_in_alarm",)
    with pytest.raises(CommandRefused):
        s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.INFUSING, at=b.at())
    assert s.data.observation_started_at is None
    acked_at = b.at()
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=acked_at)
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("alarm.acknowledged", "session.stopped", *ENDED)
    assert s.data.observation_started_at is not None
    assert s.data.observation_started_at.mono_s == acked_at.mono_s
    assert s.data.end_rule == "continue.ended"
    assert s.data.last_uncertain is not None
    assert s.data.last_uncertain.resolved_to is State.OBSERVATION
    _same_after_restore(b, s)


def test_a_stop_confirmed_under_the_latched_alarm_starts_the_observation_there() -> None:
    b, s = drive(State.INFUSING)
    _latch(b, s, COMM)
    _kernel_stop(b, s, COMM)
    step = s.stop_confirmed(at=b.at())
    assert step.dest is State.ALARM
    assert step.audit_events == ("pump.command.confirmed", "session.stopped", *ENDED)
    assert s.data.observation_started_at is not None
    assert s.phase() is SessionPhase.OBSERVATION
    _same_after_restore(b, s)
    # A repeated confirmation changes nothing more.
    again = s.stop_confirmed(at=b.at())
    assert again.audit_events == ("pump.command.confirmed",)
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("alarm.acknowledged",)


def test_an_uncertain_stop_reconciled_idle_ends_the_session() -> None:
    """The daemon restarted (or the reply was lost) while the kernel's STOP was out: the
    reading that shows the pump idle confirms the halt."""
    b, s = drive(State.INFUSING)
    _kernel_stop(b, s, "tick.vtbi.exceeded")
    s.command_uncertain(command=PumpCommand.STOP, detail="daemon restarted", at=b.at())
    assert s.state is State.UNCERTAIN
    assert s.data.observation_started_at is None
    _same_after_restore(b, s)
    step = s.reconciled(pump_mode=PumpMode.IDLE, at=b.at())
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("session.stopped", *ENDED)
    assert s.data.last_uncertain is not None
    assert s.data.last_uncertain.resolved_to is State.OBSERVATION


def test_a_rate_mismatch_pause_ends_in_observation_once_the_nurse_stops_it() -> None:
    b, s = drive(State.INFUSING)
    s.pause(by="pumpd", reason_code="tick.rate.mismatch", at=b.at())
    s.pause_confirmed(at=b.at())
    _latch(b, s, "tick.rate.mismatch")
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.PAUSED, at=b.at())
    assert s.state is State.PAUSED
    with pytest.raises(CommandRefused):
        s.resume(by=PROGRAMMER, at=b.at())
    s.stop(by=PROGRAMMER, reason="pump not trusted", at=b.at())
    step = s.stop_confirmed(at=b.at())
    assert step.dest is State.OBSERVATION
    assert s.data.end_reason is not None
    assert "tick.rate.mismatch" in s.data.end_reason


def test_a_delivery_accuracy_alarm_on_a_stopped_session_ends_it_at_the_acknowledgement() -> None:
    """A nurse stopped (continuable); then the pump's counter went back: the halt was
    already confirmed, so the acknowledgement ends the session."""
    b, s = drive(State.STOPPED)
    _latch(b, s, "tick.pump.counter_backwards")
    assert s.data.interrupted_by == ("nurse.stop", "tick.pump.counter_backwards")
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert step.dest is State.OBSERVATION
    assert step.audit_events == ("alarm.acknowledged", *ENDED)


def test_an_alarm_before_the_start_ends_nothing() -> None:
    b, s = drive(State.PRIMED)
    _latch(b, s, COMM)
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert step.dest is State.VERIFIED
    assert s.data.end_rule is None


def test_a_restore_refuses_an_end_without_its_observation() -> None:
    b, s = drive(State.INFUSING)
    _kernel_stop(b, s, OVER)
    s.stop_confirmed(at=b.at())
    snap = s.snapshot()
    snap["data"]["observation_started_at"] = None
    snap["state"] = State.STOPPED.value
    with pytest.raises(RestoreError, match="without the start of the observation"):
        Session.restore(snap, b.protocol)
