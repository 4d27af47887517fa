"""Continuing an interrupted infusion in the same session, and ending it instead.

The session records why delivery was interrupted (every stop reason and alarm code since
the pump last delivered), and from STOPPED ``resume`` asks the kernel's continuation rule
(``safety.continuation``); ``end`` goes to OBSERVATION with the nurse's reason.
"""

from __future__ import annotations

import pytest

from pumpd.session import CommandRefused, InvalidCommandInput, PumpCommand, State
from safety.actions import Priority
from safety.pump import PumpMode

from .conftest import PROGRAMMER, Bedside, drive

OCCLUSION = "tick.pump.alarm.occlusion_downstream"


def _occluded(code: str = OCCLUSION) -> tuple[Bedside, object]:
    """INFUSING, the kernel stops on ``code`` (its alarm latched), the pump is cleared and
    the nurse acknowledges: STOPPED."""
    b, s = drive(State.INFUSING)
    s.stop(by="pumpd", reason="The pump reports an occlusion.", reason_code=code, at=b.at())
    s.stop_confirmed(at=b.at())
    s.alarm(code=code, priority=Priority.HIGH, message="occlusion", source="pump", at=b.at())
    s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at())
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.state is State.STOPPED
    return b, s


def test_an_acknowledged_occlusion_is_continued_to_infusing() -> None:
    b, s = _occluded()
    assert s.data.interrupted_by == (OCCLUSION,)
    step = s.resume(by=PROGRAMMER, reason="line unkinked", delivery=b.delivery(8_000), at=b.at(30))
    assert step.dest is State.RESUME_REQUESTED
    assert step.audit_events == ("session.continued", "pump.command.requested")
    assert step.command is not None
    assert step.command.kind is PumpCommand.RESUME
    assert step.command.vtbi_ul == s.plan.vtbi_ul - 8_000
    record = s.data.last_continuation
    assert record is not None
    assert (record.reason, record.interrupted_by, record.remaining_ul) == (
        "line unkinked",
        (OCCLUSION,),
        s.plan.vtbi_ul - 8_000,
    )
    step = s.start_confirmed(at=b.at())
    assert step.audit_events == ("pump.command.confirmed", "session.resumed")
    assert s.state is State.INFUSING
    assert s.data.stopped_at is None
    assert s.data.interrupted_by == ()
    assert s.data.interrupted_before_s > 30
    assert s.phase().value == "infusing"


def test_a_stop_the_kernel_cannot_continue_is_not_continued_and_changes_nothing() -> None:
    """A cause that is neither continuable nor about delivery accuracy (vitals in the stop
    band) leaves the session STOPPED for a nurse to end; a delivery-accuracy one ends it by
    itself (tests/session/test_delivery_ended.py)."""
    b, s = _occluded("tick.vitals.stop.spo2_percent.below_min")
    before = s.snapshot()
    with pytest.raises(CommandRefused) as info:
        s.resume(by=PROGRAMMER, reason="looks fine", delivery=b.delivery(), at=b.at())
    assert "continue.not_continuable" in info.value.codes
    assert s.snapshot() == before


def test_a_continuation_needs_words_and_the_controllers_facts() -> None:
    b, s = _occluded()
    with pytest.raises(CommandRefused) as info:
        s.resume(by=PROGRAMMER, reason="  ", delivery=b.delivery(), at=b.at())
    assert info.value.codes == ("continue.reason_missing",)
    with pytest.raises(InvalidCommandInput):
        s.resume(by=PROGRAMMER, reason="line unkinked", at=b.at())
    assert s.state is State.STOPPED


def test_a_nurse_stop_is_continuable_and_end_goes_to_observation() -> None:
    b, s = drive(State.STOPPED)
    s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at())
    assert s.data.interrupted_by == ("nurse.stop",)
    with pytest.raises(CommandRefused) as info:
        s.end(by=PROGRAMMER, reason="", at=b.at())
    assert info.value.codes == ("end.reason_missing",)
    step = s.end(by=PROGRAMMER, reason="patient had enough", at=b.at())
    assert step.audit_events == ("session.ended", "observation.started")
    assert s.state is State.OBSERVATION
    assert s.data.end_reason == "patient had enough"


def test_the_course_rules_refuse_at_programming_not_first_at_the_start() -> None:
    """A patient treated 2 h ago is refused when the order is programmed (interval), before
    any drug is primed; the refusal changes nothing."""
    import datetime as dt
    from decimal import Decimal

    from safety.course import Outcome, PriorSession
    from safety.plan import Order, Patient

    b, s = drive(State.PROGRAMMED)
    before = s.snapshot()
    earlier = PriorSession(
        started_at=b.clock.now_utc() - dt.timedelta(hours=2),
        dose_mg=Decimal(40),
        dose_mg_per_kg=Decimal("0.5"),
        outcome=Outcome.COMPLETED,
    )
    with pytest.raises(CommandRefused) as info:
        s.program(
            by=PROGRAMMER,
            patient=Patient(weight_kg=Decimal(80)),
            order=Order(),
            at=b.at(),
            prior_sessions=[earlier],
        )
    assert "course.interval.too_short" in info.value.codes
    assert s.snapshot() == before
    with pytest.raises(InvalidCommandInput):
        s.program(
            by=PROGRAMMER,
            patient=Patient(weight_kg=Decimal(80)),
            order=Order(),
            at=b.at(),
            prior_sessions="S-1",  # type: ignore[arg-type]
        )
