"""The guards one by one: each refusal names its rule, and nothing changes when it refuses."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from decimal import Decimal

import pytest

from pumpd.audit.catalogue import CATALOGUE
from pumpd.audit.catalogue import PumpCommand as LoggedPumpCommand
from pumpd.protocols import LoadedProtocol
from pumpd.session import (
    PROPOSED_EVENTS,
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
    PumpCommand,
    RestoreError,
    Session,
    State,
    Step,
    allowed_triggers,
)
from safety.actions import Priority
from safety.order import Override
from safety.plan import Order, Patient
from safety.pump import PumpMode
from safety.tick import SessionPhase

from .conftest import CHECKER, PROGRAMMER, WEIGHT, Bedside, drive, library
from .kvo import kvo_protocol

S = State


def refused(session: Session, call: Callable[[], object], *codes: str) -> CommandRefused:
    """``call`` must raise CommandRefused with every code in ``codes`` and change nothing."""
    before, state = session.snapshot(), session.state
    with pytest.raises(CommandRefused) as info:
        call()
    for code in codes:
        assert code in info.value.codes, info.value.codes
    assert session.snapshot() == before
    assert session.state is state
    return info.value


# -- double-check ----------------------------------------------------------------------


@pytest.mark.parametrize("checker", [PROGRAMMER, " Nurse.Ada ", "NURSE.ADA"])
def test_the_programmer_cannot_confirm_their_own_order(checker: str) -> None:
    b, s = drive(S.PROGRAMMED)
    refusal = refused(
        s,
        lambda: s.confirm(by=checker, weight="80 kg", at=b.at()),
        "start.double_check.same_person",
    )
    assert "programmed" in refusal.verdicts[0].message


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("81 kg", "double_check.weight_mismatch"),
        ("176 lb", "double_check.weight_mismatch"),  # 79.83 kg, 0.17 kg off: refused
        ("80", "double_check.weight_unreadable"),  # a bare number could be kg or lb
        ("", "double_check.weight_unreadable"),
    ],
)
def test_the_checked_weight_must_match(typed: str, code: str) -> None:
    b, s = drive(S.PROGRAMMED)
    refused(s, lambda: s.confirm(by=CHECKER, weight=typed, at=b.at()), code)


def test_the_same_weight_in_other_units_is_accepted() -> None:
    b, s = drive(S.PROGRAMMED)
    s.confirm(by=CHECKER, weight="80.00kg", at=b.at())
    assert s.state is S.VERIFIED
    assert s.data.confirmed_by == CHECKER


def test_a_protocol_without_double_check_starts_verified() -> None:
    shipped = library().get("ketamine-trd-standard")
    # Every shipped protocol needs the double-check; a clinic draft may not.
    pain = LoadedProtocol(
        protocol=shipped.protocol.model_copy(update={"double_check_required": False}),
        sha256="0" * 64,
        path=shipped.path,
        released=False,
    )
    b = Bedside(pain)
    s, step = Session.open(
        session_id="s-2",
        pump_id="chair-1",
        patient_ref="p-1",
        protocol=pain,
        by=PROGRAMMER,
        patient=Patient(weight_kg=WEIGHT),
        order=Order(),
        at=b.at(),
    )
    assert s.state is S.VERIFIED
    assert step.audit_events == ("session.programmed",)


# -- programming -----------------------------------------------------------------------


def test_a_plan_beyond_a_hard_limit_is_refused_with_the_kernels_verdict() -> None:
    b = Bedside()
    with pytest.raises(CommandRefused) as info:
        Session.open(
            session_id="s-1",
            pump_id="chair-2",
            patient_ref="p-1",
            protocol=b.protocol,
            by=PROGRAMMER,
            patient=Patient(weight_kg=WEIGHT),
            order=Order(dose_mg_per_kg=Decimal("1.5")),
            at=b.at(),
        )
    assert "dose_per_kg.above_hard_max" in info.value.codes


def test_a_soft_verdict_needs_an_override_from_two_people() -> None:
    b, s = drive(S.PROGRAMMED)
    high = Order(dose_mg_per_kg=Decimal("0.8"))
    patient = Patient(weight_kg=WEIGHT)
    refused(
        s,
        lambda: s.program(by=PROGRAMMER, patient=patient, order=high, at=b.at()),
        "override.missing",
    )
    both = Override(
        by=PROGRAMMER,
        reason="prescriber ordered escalation",
        codes=frozenset({"dose_per_kg.above_soft_max"}),
        second_by=CHECKER,
    )
    step = s.program(by=PROGRAMMER, patient=patient, order=high, override=both, at=b.at())
    assert step.audit_events == ("session.programmed", "override.granted")
    assert s.plan.dose_mg_per_kg == Decimal("0.8")


ESCALATION = Override(
    by=PROGRAMMER,
    reason="prescriber ordered escalation",
    codes=frozenset({"dose_per_kg.above_soft_max"}),
)


def test_the_reason_programs_the_order_and_the_double_check_approves_it() -> None:
    b, s = drive(S.PROGRAMMED)
    high = Order(dose_mg_per_kg=Decimal("0.8"))
    step = s.program(
        by=PROGRAMMER, patient=Patient(weight_kg=WEIGHT), order=high, override=ESCALATION, at=b.at()
    )
    assert step.audit_events == ("session.programmed",)  # granted only once approved
    assert s.state is S.PROGRAMMED
    info = refused(s, lambda: s.confirm(by=CHECKER, weight="80 kg", at=b.at()))
    assert info.codes == ("override.approval_missing",)
    assert "dose_per_kg.above_soft_max (0.8 mg/kg, limit 0.75 mg/kg)" in str(info.verdicts[0])
    refused(
        s,
        lambda: s.confirm(by=PROGRAMMER, weight="80 kg", approve_override=True, at=b.at()),
        "start.double_check.same_person",
    )
    refused(
        s,
        lambda: s.confirm(
            by=CHECKER, weight="80 kg", approve_override=True, shown=["other"], at=b.at()
        ),
        "override.approval_not_as_shown",
    )
    step = s.confirm(
        by=CHECKER,
        weight="80 kg",
        approve_override=True,
        shown=["dose_per_kg.above_soft_max"],
        at=b.at(),
    )
    assert step.audit_events == ("double_check.completed", "override.granted")
    assert s.state is S.VERIFIED
    assert s.data.plan_override is not None
    assert (s.data.plan_override.by, s.data.plan_override.second_by) == (PROGRAMMER, CHECKER)


def test_approving_where_nothing_awaits_is_refused() -> None:
    b, s = drive(S.PROGRAMMED)
    refused(
        s,
        lambda: s.confirm(by=CHECKER, weight="80 kg", approve_override=True, at=b.at()),
        "override.nothing_to_approve",
    )


def test_no_start_while_the_plans_override_awaits_approval() -> None:
    """The double-check is where the approval is given; a start can never skip it, even
    under a protocol without a double-check (the order then waits in PROGRAMMED)."""
    loose = library().get("ketamine-trd-standard")
    proto = loose.protocol.model_copy(update={"double_check_required": False})
    unchecked = LoadedProtocol(proto, loose.sha256, loose.path, loose.released)
    b = Bedside(unchecked)
    s, _ = Session.open(
        session_id="s-2",
        pump_id="chair-2",
        patient_ref="p-1",
        protocol=unchecked,
        by=PROGRAMMER,
        patient=Patient(weight_kg=WEIGHT),
        order=Order(dose_mg_per_kg=Decimal("0.8")),
        override=ESCALATION,
        at=b.at(),
    )
    assert s.state is S.PROGRAMMED
    assert allowed_triggers(s.state).count("request_start") == 0


def test_reprogramming_resets_the_double_check() -> None:
    b, s = drive(S.VERIFIED)
    s.program(
        by=PROGRAMMER,
        patient=Patient(weight_kg=Decimal(70)),
        order=Order(),
        at=b.at(),
    )
    assert s.state is S.PROGRAMMED
    assert s.data.confirmed_by is None
    refused(
        s, lambda: s.confirm(by=CHECKER, weight="80 kg", at=b.at()), "double_check.weight_mismatch"
    )


# -- priming ---------------------------------------------------------------------------


def test_prime_needs_the_line_disconnected() -> None:
    b, s = drive(S.VERIFIED)
    refused(
        s,
        lambda: s.request_prime(by=PROGRAMMER, line_disconnected=False, at=b.at()),
        "prime.line_not_confirmed_disconnected",
    )


@pytest.mark.parametrize(
    "state",
    [S.START_REQUESTED, S.INFUSING, S.PAUSED, S.ALARM, S.STOPPED, S.UNCERTAIN, S.OBSERVATION],
)
def test_no_prime_once_a_start_was_sent(state: State) -> None:
    b, s = drive(state)
    before = s.snapshot()
    with pytest.raises(InvalidInState):
        s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at())
    assert s.snapshot() == before


def test_after_a_start_even_an_alarm_never_leads_back_to_priming() -> None:
    """The start was refused by the pump: still no prime, the drug may have moved."""
    b, s = drive(S.START_REQUESTED)
    s.command_failed(command=PumpCommand.START, detail="REJECTED_STATE", at=b.at())
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.state is S.STOPPED
    assert "request_prime" not in s.allowed()
    refused(
        s, lambda: s.abort(by=PROGRAMMER, reason="pump refused", at=b.at()), "abort.after_start"
    )


def test_an_alarm_while_priming_leads_back_to_a_new_prime() -> None:
    b, s = drive(S.PRIMING)
    b.alarm(s)
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.state is S.VERIFIED
    s.request_prime(by=PROGRAMMER, line_disconnected=True, at=b.at())
    assert s.state is S.PRIME_REQUESTED


# -- starting --------------------------------------------------------------------------


def test_start_runs_the_kernels_start_checks() -> None:
    b, s = drive(S.PRIMED)
    refused(
        s,
        lambda: s.request_start(
            by=PROGRAMMER, pump=b.pump(PumpMode.INFUSING), prior_sessions=(), at=b.at()
        ),
        "start.pump.not_idle",
    )
    refused(
        s,
        lambda: s.request_start(by=PROGRAMMER, pump=None, prior_sessions=(), at=b.at()),
        "start.pump.unreachable",
    )
    refused(
        s,
        lambda: s.request_start(by=CHECKER, pump=b.pump(), prior_sessions=(), at=b.at()),
        "start.double_check.same_person",
    )
    step = s.request_start(by=PROGRAMMER, pump=b.pump(), prior_sessions=(), at=b.at())
    assert step.command is not None
    assert step.command.kind is PumpCommand.START
    assert step.command.rate_ml_h == s.plan.rate_ml_h
    assert step.command.vtbi_ul == s.plan.vtbi_ul


def test_start_with_stale_vitals_is_refused() -> None:
    b, s = drive(S.PRIMED)
    b.clock.advance(31 * 60)
    refused(
        s,
        lambda: s.request_start(by=PROGRAMMER, pump=b.pump(), prior_sessions=(), at=b.at()),
        "start.vitals.stale",
    )


# -- alarms ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [PumpMode.INFUSING, PumpMode.KVO, PumpMode.PRIMING])
def test_acknowledge_is_refused_while_the_pump_delivers(mode: PumpMode) -> None:
    b, s = drive(S.ALARM)
    refused(
        s, lambda: s.acknowledge(by=PROGRAMMER, pump_mode=mode, at=b.at()), "ack.pump_delivering"
    )


def test_acknowledge_is_refused_while_the_pump_is_in_alarm() -> None:
    b, s = drive(S.ALARM)
    refused(
        s,
        lambda: s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.ALARM, at=b.at()),
        "ack.pump_in_alarm",
    )


def test_alarm_leads_to_paused_never_to_infusing() -> None:
    b, s = drive(S.ALARM)
    s.pause(by="pumpd", at=b.at(), reason_code="tick.pump_alarm")
    s.pause_confirmed(at=b.at())
    assert s.state is S.ALARM  # latched: the pump being paused does not release it
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.PAUSED, at=b.at(), note="line freed")
    assert step.dest is S.PAUSED
    assert s.data.alarms == ()
    assert [a.note for a in s.data.last_acknowledged] == ["line freed"]
    assert s.data.alarms_acknowledged == 1
    s.resume(by=PROGRAMMER, at=b.at())
    assert s.state is S.RESUME_REQUESTED


def test_stop_in_alarm_keeps_the_alarm_latched() -> None:
    b, s = drive(S.ALARM)
    step = s.stop(by=PROGRAMMER, reason="occlusion", at=b.at())
    assert step.command is not None
    assert step.command.kind is PumpCommand.STOP
    s.stop_confirmed(at=b.at())
    assert s.state is S.ALARM
    # The stop ended delivery: the latched alarm is judged like STOPPED (no pause ladder,
    # no volume rule that would call the stopped infusion "paused" and under-infused).
    assert s.phase() is SessionPhase.OBSERVATION
    assert s.paused_since_s() is None
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.state is S.STOPPED
    s.observe(by=PROGRAMMER, at=b.at())
    assert s.state is S.OBSERVATION


def test_an_alarm_in_observation_returns_to_observation() -> None:
    b, s = drive(S.OBSERVATION)
    started = s.data.observation_started_at
    b.alarm(s)
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.state is S.OBSERVATION
    assert s.data.observation_started_at == started


def test_the_most_urgent_alarm_is_the_latched_one() -> None:
    b, s = drive(S.INFUSING)
    s.alarm(
        code="vitals.due", priority=Priority.LOW, message="Vitals due", source="vitals", at=b.at()
    )
    s.alarm(
        code="pump.air", priority=Priority.HIGH, message="Air in line", source="pump", at=b.at()
    )
    s.alarm(code="x.y", priority=Priority.MEDIUM, message="Medium", source="daemon", at=b.at())
    latched = s.latched_alarm
    assert latched is not None
    assert latched.code == "pump.air"
    assert len(s.data.alarms) == 3


# -- stop, abort -----------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   "])
def test_stop_without_a_reason_is_refused(reason: str) -> None:
    b, s = drive(S.INFUSING)
    refused(s, lambda: s.stop(by=PROGRAMMER, reason=reason, at=b.at()), "stop.reason_missing")


def test_a_command_without_a_person_is_refused() -> None:
    b, s = drive(S.INFUSING)
    refused(s, lambda: s.pause(by=" ", at=b.at()), "pause.identity_missing")


# -- adjust ----------------------------------------------------------------------------


def _adjust(b: Bedside, s: Session, **kw: object) -> Step:
    args: dict[str, object] = {
        "by": PROGRAMMER,
        "reason": "blood pressure rising",
        "order": Order(duration_min=Decimal(60)),
        "delivered_ul": 20_000,
        "at": b.at(),
    }
    args.update(kw)
    return s.adjust(**args)  # type: ignore[arg-type]


def test_adjust_is_two_steps_and_slows_the_infusion() -> None:
    b, s = drive(S.INFUSING)
    old = s.plan
    step = _adjust(b, s)
    assert step.dest is S.INFUSING
    assert step.command is None  # a proposal commands nothing
    assert s.plan is old
    proposed = s.proposed_plan
    assert proposed is not None
    assert proposed.rate_ml_h < old.rate_ml_h
    assert proposed.vtbi_ul == old.vtbi_ul  # same dose, longer
    step = s.confirm_adjust(by=PROGRAMMER, at=b.at())
    assert step.dest is S.ADJUSTING
    assert step.command is not None
    assert step.command.kind is PumpCommand.SET_RATE
    assert step.command.rate_ml_h == proposed.rate_ml_h
    s.adjust_confirmed(at=b.at())
    assert s.state is S.INFUSING
    assert s.plan.rate_ml_h == proposed.rate_ml_h
    assert s.proposed_plan is None
    assert s.data.adjustments_confirmed == 1
    assert s.data.last_adjustment is not None
    assert s.data.last_adjustment.confirmed_by == PROGRAMMER


def test_adjust_changing_the_protocol_is_refused() -> None:
    b, s = drive(S.INFUSING)
    other = library().get("ketamine-trd-escalation")
    refused(s, lambda: _adjust(b, s, protocol=other), "adjust.protocol_change")


def test_adjust_beyond_a_hard_limit_is_refused() -> None:
    b, s = drive(S.INFUSING)
    refused(
        s, lambda: _adjust(b, s, order=Order(duration_min=Decimal(200))), "duration.above_hard_max"
    )


def test_adjust_needs_a_reason_and_more_than_already_given() -> None:
    b, s = drive(S.INFUSING)
    refused(s, lambda: _adjust(b, s, reason=""), "adjust.reason_missing")
    refused(s, lambda: _adjust(b, s, delivered_ul=100_000), "adjust.below_delivered")


def test_a_proposal_can_be_cancelled_and_is_dropped_by_a_stop() -> None:
    b, s = drive(S.INFUSING)
    _adjust(b, s)
    s.cancel_adjust(by=PROGRAMMER, at=b.at())
    assert s.proposed_plan is None
    assert s.data.pending_adjustment is None
    _adjust(b, s)
    s.stop(by=PROGRAMMER, reason="patient asked", at=b.at())
    assert s.proposed_plan is None
    assert s.data.pending_adjustment is None


def test_adjust_while_paused_applies_without_a_pump_command() -> None:
    b, s = drive(S.PAUSED)
    _adjust(b, s)
    step = s.confirm_adjust(by=PROGRAMMER, at=b.at())
    assert step.dest is S.PAUSED
    assert step.command is None
    step = s.resume(by=PROGRAMMER, at=b.at())
    assert step.command is not None
    assert step.command.rate_ml_h == s.plan.rate_ml_h
    assert s.plan.duration_min == Decimal(60)


# -- discharge -------------------------------------------------------------------------


def test_discharge_needs_the_observation_time_and_the_whole_checklist() -> None:
    b, s = drive(S.OBSERVATION)
    items = b.protocol.protocol.discharge_checklist
    minimum_s = b.protocol.protocol.observation_min * 60
    b.clock.advance(minimum_s - 2)
    s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at(0))
    refused(
        s,
        lambda: s.discharge(by=PROGRAMMER, checklist_confirmed=items, at=b.at(1)),
        "discharge.observation_too_short",
    )
    refused(
        s,
        lambda: s.discharge(by=PROGRAMMER, checklist_confirmed=items[1:], at=b.at(1)),
        "discharge.checklist_incomplete",
    )
    refused(
        s,
        lambda: s.discharge(
            by=PROGRAMMER, checklist_confirmed=(*items, "patient ate lunch"), at=b.at(0)
        ),
        "discharge.checklist_unknown_item",
    )
    step = s.discharge(by=PROGRAMMER, checklist_confirmed=items, at=b.at(0))
    assert step.dest is S.DISCHARGED
    assert step.audit_events == ("observation.ended", "patient.discharged")


# -- uncertainty -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "command", "mode", "dest"),
    [
        (S.START_REQUESTED, PumpCommand.START, PumpMode.INFUSING, S.INFUSING),
        (S.START_REQUESTED, PumpCommand.START, PumpMode.IDLE, S.ALARM),
        (S.START_REQUESTED, PumpCommand.START, PumpMode.ALARM, S.ALARM),
        (S.PRIME_REQUESTED, PumpCommand.PRIME, PumpMode.PRIMING, S.PRIMING),
        (S.PAUSE_REQUESTED, PumpCommand.PAUSE, PumpMode.PAUSED, S.PAUSED),
        (S.PAUSE_REQUESTED, PumpCommand.PAUSE, PumpMode.INFUSING, S.ALARM),
        (S.RESUME_REQUESTED, PumpCommand.RESUME, PumpMode.INFUSING, S.INFUSING),
        (S.STOP_REQUESTED, PumpCommand.STOP, PumpMode.IDLE, S.STOPPED),
        (S.STOP_REQUESTED, PumpCommand.STOP, PumpMode.INFUSING, S.ALARM),
        (S.COMPLETE, PumpCommand.STOP, PumpMode.IDLE, S.OBSERVATION),
        (S.COMPLETE, PumpCommand.STOP, PumpMode.KVO, S.ALARM),
    ],
)
def test_reconciled_follows_the_pump_and_alarms_on_a_mismatch(
    state: State, command: PumpCommand, mode: PumpMode, dest: State
) -> None:
    b, s = drive(state)
    s.command_uncertain(command=command, detail="reply timed out", at=b.at())
    assert s.state is S.UNCERTAIN
    assert set(s.allowed()) == {"reconciled", "stop", "alarm", "note", "record_vitals"}
    s.reconciled(pump_mode=mode, at=b.at())
    assert s.state is dest
    record = s.data.last_uncertain
    assert record is not None
    assert record.resolved_to is dest
    if dest is S.ALARM:
        latched = s.latched_alarm
        assert latched is not None
        assert latched.priority.value == (
            "high" if mode.delivers or mode is PumpMode.ALARM else "medium"
        )


def test_an_uncertain_rate_change_is_applied_only_when_the_rate_proves_it() -> None:
    b, s = drive(S.ADJUSTING)
    proposed = s.proposed_plan
    assert proposed is not None
    s.command_uncertain(command=PumpCommand.SET_RATE, detail="timeout", at=b.at())
    assert s.phase() is SessionPhase.INFUSING
    s.reconciled(pump_mode=PumpMode.INFUSING, rate_ml_h=proposed.rate_ml_h, at=b.at())
    assert s.state is S.INFUSING
    assert s.plan.rate_ml_h == proposed.rate_ml_h

    b, s = drive(S.ADJUSTING)
    old_rate = s.plan.rate_ml_h
    s.command_uncertain(command=PumpCommand.SET_RATE, detail="timeout", at=b.at())
    s.reconciled(pump_mode=PumpMode.INFUSING, rate_ml_h=old_rate, at=b.at())
    assert s.state is S.ALARM
    assert s.plan.rate_ml_h == old_rate


def test_the_uncertain_command_must_be_the_outstanding_one() -> None:
    b, s = drive(S.START_REQUESTED)
    before = s.snapshot()
    with pytest.raises(InvalidCommandInput):
        s.command_uncertain(command=PumpCommand.STOP, detail="timeout", at=b.at())
    assert s.snapshot() == before


def test_the_kernel_phase_allows_delivery_only_where_intended() -> None:
    deliver = {SessionPhase.PRIMING, SessionPhase.INFUSING, SessionPhase.KVO}
    for state in State:
        _, s = drive(state)
        if state in (S.ALARM, S.STOPPED, S.PAUSED, S.OBSERVATION, S.DISCHARGED, S.ABORTED):
            assert s.phase() not in deliver, state
        assert (s.phase() is SessionPhase.PAUSED) == (s.paused_since_s() is not None)


# -- audit names and commands ----------------------------------------------------------


def test_every_audit_name_is_in_the_catalogue_or_proposed() -> None:
    from .test_table import ARGS, EXPECTED

    names: set[str] = set()
    for (state, trigger), expected in EXPECTED.items():
        if not isinstance(expected, State):
            continue
        b, s = drive(state)
        step = ARGS[trigger](b, s)
        assert isinstance(step, Step)
        names.update(step.audit_events)
        if step.command is not None:
            assert "pump.command.requested" in step.audit_events, (state, trigger)
    _, opened = Session.open(
        session_id="s",
        pump_id="p",
        patient_ref="r",
        protocol=Bedside().protocol,
        by=PROGRAMMER,
        patient=Patient(weight_kg=WEIGHT),
        order=Order(),
        at=Bedside().at(),
    )
    names.update(opened.audit_events)
    assert not PROPOSED_EVENTS
    assert names <= set(CATALOGUE), names - set(CATALOGUE)
    assert {"session.adjusted", "note.recorded"} <= names
    assert {"session.started", "session.programmed", "alarm.acknowledged"} <= names
    assert PumpCommand is LoggedPumpCommand  # the session commands what the log records


def test_refusals_serialise_for_the_control_socket() -> None:
    b, s = drive(S.INFUSING)
    with pytest.raises(CommandRefused) as info:
        s.stop(by=PROGRAMMER, reason="", at=b.at())
    payload = json.loads(json.dumps(info.value.as_dict()))
    assert payload["trigger"] == "stop"
    assert payload["verdicts"][0]["code"] == "stop.reason_missing"
    assert payload["verdicts"][0]["severity"] == "hard"


def test_bad_argument_types_are_caller_errors_not_refusals() -> None:
    b, s = drive(S.INFUSING)
    before = s.snapshot()
    with pytest.raises(InvalidCommandInput):
        s.pause(by=PROGRAMMER, at="now")  # type: ignore[arg-type]
    with pytest.raises(InvalidCommandInput):
        s.alarm(code="", priority="high", message="m", source="pump", at=b.at())  # type: ignore[arg-type]
    with pytest.raises(InvalidCommandInput):
        s.alarm(
            code="c",
            priority=Priority.LOW,
            message="m",
            source="moon",  # type: ignore[arg-type]
            at=b.at(),
        )
    assert s.snapshot() == before


# -- restore ---------------------------------------------------------------------------


def test_restore_refuses_another_protocol_or_a_changed_plan() -> None:
    b, s = drive(S.INFUSING)
    snap = s.snapshot()
    with pytest.raises(RestoreError):
        Session.restore(snap, library().get("ketamine-trd-escalation"))
    tampered = json.loads(json.dumps(snap))
    tampered["plan"]["rate_ml_h"] = "999.00"
    with pytest.raises(RestoreError):
        Session.restore(tampered, b.protocol)
    tampered = json.loads(json.dumps(snap))
    tampered["state"] = "ALARM"
    with pytest.raises(RestoreError):
        Session.restore(tampered, b.protocol)
    with pytest.raises(RestoreError):
        Session.restore({"format": 99}, b.protocol)


def test_restore_after_a_restart_rebases_monotonic_time_through_utc() -> None:
    b, s = drive(S.OBSERVATION)
    snap = s.snapshot()
    started = s.data.observation_started_at
    assert started is not None
    # A new process: its monotonic clock starts near zero, 10 minutes of wall time later.
    from pumpd.clock import ManualClock, stamp

    later = ManualClock(started.utc, start_mono_s=5.0)
    later.advance(600)
    restored = Session.restore(snap, b.protocol, rebase_to=stamp(later))
    moved = restored.data.observation_started_at
    assert moved is not None
    assert moved.utc == started.utc
    assert moved.mono_s == pytest.approx(5.0)
    items = b.protocol.protocol.discharge_checklist
    minimum_s = b.protocol.protocol.observation_min * 60
    later.advance(minimum_s - 600)
    reading = dataclasses.replace(b.vitals(), taken_at=later.now_utc())
    restored.record_vitals(by=PROGRAMMER, reading=reading, at=stamp(later))
    restored.discharge(by=PROGRAMMER, checklist_confirmed=items, at=stamp(later))
    assert restored.state is S.DISCHARGED


# -- keep-vein-open ---------------------------------------------------------------------


def test_vtbi_reached_with_kvo_prescribed_and_the_pump_in_kvo_commands_nothing() -> None:
    bedside, s = drive(State.INFUSING, kvo_protocol())
    step = s.vtbi_reached(pump_mode=PumpMode.KVO, at=bedside.at())
    assert (step.dest, step.command) == (State.KVO, None)
    assert step.audit_events == ("infusion.completed",)
    assert s.data.completed_at is not None
    assert s.data.pending_command is None
    assert s.phase() is SessionPhase.KVO


@pytest.mark.parametrize("mode", [PumpMode.INFUSING, PumpMode.IDLE, PumpMode.ALARM, None])
def test_vtbi_reached_with_kvo_prescribed_but_the_pump_not_in_kvo_stops(
    mode: PumpMode | None,
) -> None:
    bedside, s = drive(State.INFUSING, kvo_protocol())
    step = s.vtbi_reached(pump_mode=mode, at=bedside.at())
    assert step.dest is State.COMPLETE
    assert step.command is not None
    assert step.command.kind is PumpCommand.STOP


def test_vtbi_reached_without_kvo_prescribed_stops_a_pump_in_kvo() -> None:
    bedside, s = drive(State.INFUSING)
    step = s.vtbi_reached(pump_mode=PumpMode.KVO, at=bedside.at())
    assert step.dest is State.COMPLETE
    assert step.command is not None
    assert step.command.kind is PumpCommand.STOP


def test_observe_ends_kvo_with_a_stop_and_observation_starts_when_it_is_confirmed() -> None:
    bedside, s = drive(State.KVO)
    step = s.observe(by=PROGRAMMER, at=bedside.at(), reason_code="tick.vtbi.kvo_complete")
    assert step.dest is State.COMPLETE
    assert step.command is not None
    assert (step.command.kind, step.command.reason_code) == (
        PumpCommand.STOP,
        "tick.vtbi.kvo_complete",
    )
    assert s.data.observation_started_at is None
    step = s.stop_confirmed(at=bedside.at())
    assert step.dest is State.OBSERVATION
    assert s.data.observation_started_at is not None


def test_kvo_refuses_what_would_deliver_more_or_change_the_plan() -> None:
    for trigger in ("resume", "pause", "adjust", "confirm_adjust", "request_prime"):
        assert trigger not in allowed_triggers(State.KVO), trigger


def test_kvo_snapshot_restores_and_needs_its_completion() -> None:
    _, s = drive(State.KVO)
    snap = s.snapshot()
    assert Session.restore(snap, kvo_protocol()).state is State.KVO
    broken = {**snap, "data": {**snap["data"], "completed_at": None}}
    with pytest.raises(RestoreError, match="KVO without the completion"):
        Session.restore(broken, kvo_protocol())
