"""Nurse commands: each is checked against the kernel, then moves the session or is refused."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Self

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from pumpd.protocols import LoadedProtocol
from safety import guards
from safety.continuation import (
    ContinuationInputs,
    InvalidContinuationInput,
    check_continuation,
    check_resume_cause,
)
from safety.course import InvalidCourseHistory, PriorSession, evaluate_course
from safety.order import Override, approval_missing, check_override
from safety.plan import Order, Patient, Plan
from safety.pump import InvalidPumpSnapshot, PumpMode, PumpSnapshot
from safety.start import (
    InvalidStartInput,
    StartAssessment,
    StartInputs,
    check_start,
    start_requirements,
)
from safety.verdicts import Severity, Verdict
from safety.vitals import ImplausibleVitals, InvalidVitals, VitalsReading, check_entry

from . import rules
from .core import (
    CommandIntent,
    DeliveryFacts,
    SessionCore,
    Step,
    check_stamp,
    check_text,
    check_type,
    refuse_if,
)
from .errors import (
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
)
from .records import (
    AcknowledgedAlarm,
    AdjustmentRecord,
    At,
    ContinuationRecord,
    NoteRecord,
    OrderRecord,
    OverrideRecord,
    PatientRecord,
    SessionData,
    VerdictRecord,
    VitalsRecord,
)
from .states import State


def _course_refusals(
    protocol: LoadedProtocol, prior: object, stamp: Stamp, plan: Plan
) -> list[Verdict]:
    """The course rules' hard verdicts at programming (interval, sessions in the window,
    cumulative mg/kg: ``safety.course``), so the nurse learns them before the drug is
    primed; the start judges the course again, soft verdicts included."""
    if isinstance(prior, str) or not isinstance(prior, Sequence):
        raise InvalidCommandInput("prior_sessions must be a sequence of PriorSession")
    if not all(isinstance(p, PriorSession) for p in prior):
        raise InvalidCommandInput("prior_sessions must be a sequence of PriorSession")
    try:
        found = evaluate_course(
            protocol.protocol.course, tuple(prior), stamp.utc, plan.dose_mg_per_kg
        ).verdicts
    except InvalidCourseHistory as exc:
        raise InvalidCommandInput(f"course input: {exc}") from exc
    return [v for v in found if v.severity is Severity.HARD]


class NurseCommands(SessionCore):
    """What a nurse (or the daemon obeying the kernel) asks of a session."""

    # -- opening and programming ----------------------------------------------------

    @classmethod
    def open(
        cls,
        *,
        session_id: str,
        pump_id: str,
        patient_ref: str,
        protocol: LoadedProtocol,
        by: str,
        patient: Patient,
        order: Order,
        at: Stamp,
        override: Override | None = None,
        prior_sessions: Sequence[PriorSession] = (),
    ) -> tuple[Self, Step]:
        """Program a new session; refused (CommandRefused) when the kernel refuses the plan
        or the course rules (against ``prior_sessions``) refuse this session."""
        for name, value in (("session_id", session_id), ("pump_id", pump_id)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidCommandInput(f"{name} must be a non-empty string, got {value!r}")
        if not isinstance(patient_ref, str) or not patient_ref.strip():
            raise InvalidCommandInput(
                f"patient_ref must be a non-empty string, got {patient_ref!r}"
            )
        check_type("protocol", protocol, LoadedProtocol)
        stamp = check_stamp(at)
        plan, dest, verdicts = cls._program_checks(
            protocol, by, patient, order, override, prior_sessions, stamp
        )
        refuse_if("program", verdicts)
        assert plan is not None
        proto = protocol.protocol
        data = SessionData(
            session_id=session_id,
            pump_id=pump_id,
            patient_ref=patient_ref,
            protocol_id=proto.id,
            protocol_version=proto.version,
            protocol_sha256=protocol.sha256,
            patient=PatientRecord.of(patient),
            order=OrderRecord.of(order),
            plan_override=None if override is None else OverrideRecord.of(override),
            container_ul=plan.vtbi_ul,
            programmed_by=by,
            programmed_at=At.of(stamp),
        )
        session = cls(protocol, data, dest, plan, None)
        step = Step("program", dest, dest, None, cls._program_audit(plan, override))
        return session, step

    @staticmethod
    def _program_checks(
        protocol: LoadedProtocol,
        by: object,
        patient: object,
        order: object,
        override: object,
        prior_sessions: object,
        stamp: Stamp,
    ) -> tuple[Plan | None, State, list[Verdict]]:
        check_type("patient", patient, Patient)
        check_type("order", order, Order)
        if override is not None:
            check_type("override", override, Override)
        assert isinstance(patient, Patient)
        assert isinstance(order, Order)
        assert override is None or isinstance(override, Override)
        verdicts = rules.person("program", by, "programming")
        plan, found = rules.plan_or_refusal(protocol.protocol, patient, order, override)
        verdicts += found
        if plan is not None and not plan.refused:
            verdicts += _course_refusals(protocol, prior_sessions, stamp, plan)
        # An override awaiting its second person's approval keeps the order at the
        # double-check (PROGRAMMED), where that approval is given, even when the protocol
        # asks for no double-check.
        awaiting = plan is not None and bool(rules.pending_approval(plan, override))
        checked = protocol.protocol.double_check_required or awaiting
        dest = State.PROGRAMMED if checked else State.VERIFIED
        return plan, dest, verdicts

    @staticmethod
    def _program_audit(plan: Plan, override: Override | None) -> tuple[str, ...]:
        pending = rules.pending_approval(plan, override)
        if override is not None and plan.override.required and not pending:
            return ("session.programmed", "override.granted")
        return ("session.programmed",)

    def program(
        self,
        *,
        by: str,
        patient: Patient,
        order: Order,
        at: Stamp,
        override: Override | None = None,
        prior_sessions: Sequence[PriorSession] = (),
    ) -> Step:
        """Program again before priming: a new plan, and the double-check starts over."""
        source = self._require("program")
        stamp = check_stamp(at)
        plan, dest, verdicts = self._program_checks(
            self._protocol, by, patient, order, override, prior_sessions, stamp
        )
        refuse_if("program", verdicts)
        assert plan is not None
        data = self._update(
            patient=PatientRecord.of(patient),
            order=OrderRecord.of(order),
            plan_override=None if override is None else OverrideRecord.of(override),
            container_ul=plan.vtbi_ul,
            programmed_by=by,
            programmed_at=At.of(stamp),
            confirmed_by=None,
            confirmed_at=None,
        )
        return self._fire(
            "program", source, dest, data, plan=plan, audit=self._program_audit(plan, override)
        )

    def confirm(
        self,
        *,
        by: str,
        weight: str,
        at: Stamp,
        approve_override: bool = False,
        shown: Sequence[str] | None = None,
    ) -> Step:
        """The independent double-check: a second person, who types the weight again.

        An override awaiting approval is approved here, by the same second person, only
        when they say so (``approve_override``); ``shown`` are the verdict codes their
        screen listed. Without it, the confirmation is refused and names what awaits.
        """
        source = self._require("confirm")
        stamp = check_stamp(at)
        if not isinstance(approve_override, bool):
            raise InvalidCommandInput(f"approve_override must be a bool, got {approve_override!r}")
        verdicts = rules.person("double_check", by, "double-check")
        if not verdicts:
            verdicts += rules.double_check(self._data.programmed_by, by)
        verdicts += guards.weight_reentry(self._data.patient.weight_kg, weight)
        record = self._data.plan_override
        override = None if record is None else record.override()
        pending = rules.pending_approval(self._plan, override)
        audit: tuple[str, ...] = ("double_check.completed",)
        changes: dict[str, object] = {"confirmed_by": by, "confirmed_at": At.of(stamp)}
        if approve_override and record is not None and pending:
            verdicts += rules.approved_as_shown(pending, shown)
            verdicts += check_override(self._plan.override, record.override(second_by=by))
            changes["plan_override"] = record.model_copy(update={"second_by": by})
            audit += ("override.granted",)
        elif approve_override:
            verdicts.append(
                rules.hard(
                    "override.nothing_to_approve",
                    "This order has no override awaiting approval; confirm it without "
                    "approving an override.",
                )
            )
        elif pending:
            verdicts.append(approval_missing(pending))
        refuse_if("confirm", verdicts)
        data = self._update(**changes)
        return self._fire("confirm", source, State.VERIFIED, data, audit=audit)

    # -- priming and starting -------------------------------------------------------

    def request_prime(self, *, by: str, line_disconnected: bool, at: Stamp) -> Step:
        """Ask to prime; needs the nurse's word that the line is off the patient."""
        source = self._require("request_prime")
        stamp = check_stamp(at)
        verdicts = rules.person("prime", by, "prime request")
        verdicts += guards.prime_allowed(self._data.start_commanded, line_disconnected)
        refuse_if("request_prime", verdicts)
        req = start_requirements(self._protocol.protocol)
        data = self._update(
            line_disconnected_by=by,
            prime_requested_at=At.of(stamp),
            pending_command=PumpCommand.PRIME,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.PRIME,
            rate_ml_h=self._protocol.protocol.priming.rate_ml_h,
            vtbi_ul=req.prime_volume_ul,
            reason_code="nurse.prime",
        )
        return self._fire(
            "request_prime",
            source,
            State.PRIME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def request_start(
        self,
        *,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        at: Stamp,
        primed_confirmed: bool = False,
        override: Override | None = None,
    ) -> Step:
        """Ask to start; every start check of the kernel must pass (soft ones overridden).

        Soft start verdicts whose override needs a second person hold the start: the
        nurse's override is kept (``pending_start_override``), nothing goes to the pump,
        and :meth:`approve` by someone else starts it.
        """
        source = self._require("request_start")
        stamp = check_stamp(at)
        if override is not None:
            check_type("override", override, Override)
        return self._start(
            "request_start", source, stamp, by, pump, prior_sessions, primed_confirmed, override
        )

    def start_soft_codes(
        self,
        *,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        at: Stamp,
        primed_confirmed: bool = False,
    ) -> tuple[str, ...]:
        """The soft verdicts a start would meet now (read only): what a starting nurse's
        override reason must cover."""
        stamp = check_stamp(at)
        assessment = self._assess(by, pump, prior_sessions, stamp, primed_confirmed)
        return tuple(v.code for v in assessment.verdicts if v.severity is Severity.SOFT)

    def _assess(
        self,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        stamp: Stamp,
        primed_confirmed: bool,
    ) -> StartAssessment:
        if pump is not None:
            check_type("pump", pump, PumpSnapshot)
        if isinstance(prior_sessions, str) or not all(
            isinstance(p, PriorSession) for p in prior_sessions
        ):
            raise InvalidCommandInput("prior_sessions must be a sequence of PriorSession")
        last = self._data.last_vitals
        vitals = None if last is None else last.reading_as_of(stamp)
        try:
            inputs = StartInputs(
                snapshot=pump,
                primed_confirmed=primed_confirmed,
                operator_id=by,
                double_checker_id=self._data.confirmed_by,
                baseline_vitals=vitals,
                prior_sessions=tuple(prior_sessions),
                planned_dose_mg_per_kg=self._plan.dose_mg_per_kg,
                now=stamp.utc,
            )
            return check_start(start_requirements(self._protocol.protocol), inputs)
        except (InvalidStartInput, InvalidVitals, InvalidCourseHistory, InvalidPumpSnapshot) as e:
            raise InvalidCommandInput(f"start input: {e}") from e

    def _start(
        self,
        trigger: str,
        source: State,
        stamp: Stamp,
        by: str,
        pump: PumpSnapshot | None,
        prior_sessions: Sequence[PriorSession],
        primed_confirmed: bool,
        override: Override | None,
        shown: Sequence[str] | None = None,
    ) -> Step:
        verdicts = rules.person("start", by, "start request")
        if verdicts:
            raise CommandRefused(trigger, verdicts)
        assessment = self._assess(by, pump, prior_sessions, stamp, primed_confirmed)
        found, pending = rules.start_override(
            self._protocol.protocol, assessment.verdicts, override
        )
        plan_record = self._data.plan_override
        found += rules.unapproved(
            self._plan, None if plan_record is None else plan_record.override()
        )
        if pending and trigger == "approve":
            found.append(approval_missing(pending))
        elif trigger == "approve" and override is not None:
            found += rules.approved_as_shown(
                [v for v in assessment.verdicts if v.code in override.codes], shown
            )
        refuse_if(trigger, found)
        verdict_records = tuple(VerdictRecord.of(v) for v in assessment.verdicts)
        if pending:
            assert override is not None
            held = self._update(
                pending_start_override=OverrideRecord.of(override), start_verdicts=verdict_records
            )
            return self._fire(trigger, source, source, held)
        data = self._update(
            start_requested_by=by,
            start_requested_at=At.of(stamp),
            start_override=None if override is None else OverrideRecord.of(override),
            pending_start_override=None,
            start_verdicts=verdict_records,
            pending_command=PumpCommand.START,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.START,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.start",
        )
        audit = ["pump.command.requested"]
        if override is not None and any(v.severity is Severity.SOFT for v in assessment.verdicts):
            audit.insert(0, "override.granted")
        return self._fire(
            trigger, source, State.START_REQUESTED, data, command=command, audit=audit
        )

    def awaiting_approval(self) -> tuple[str, OverrideRecord, tuple[Verdict, ...]] | None:
        """What awaits a second person's approval (read only): ``"order"`` (approved at
        the double-check), ``"adjustment"`` or ``"start"`` (approved with :meth:`approve`),
        the override as the first nurse gave it, and the soft verdicts it answers."""
        pending = self._data.pending_adjustment
        if pending is not None and pending.override is not None and self._proposed_plan:
            waiting = rules.pending_approval(self._proposed_plan, pending.override.override())
            if waiting:
                return "adjustment", pending.override, waiting
        held = self._data.pending_start_override
        if held is not None and self.state in (State.VERIFIED, State.PRIMED):
            soft = tuple(v.verdict() for v in self._data.start_verdicts if v.severity == "soft")
            return "start", held, soft
        record = self._data.plan_override
        if record is not None and self.state is State.PROGRAMMED:
            waiting = rules.pending_approval(self._plan, record.override())
            if waiting:
                return "order", record, waiting
        return None

    def approve(
        self,
        *,
        by: str,
        at: Stamp,
        pump: PumpSnapshot | None = None,
        prior_sessions: Sequence[PriorSession] = (),
        shown: Sequence[str] | None = None,
    ) -> Step:
        """A second person approves the override that holds a step back: a proposed
        adjustment (its rate then goes to the pump) or a start (the start checks run again
        on ``pump``, and the start goes ahead). ``shown``: the codes the approver saw."""
        source = self._require("approve")
        stamp = check_stamp(at)
        refuse_if("approve", rules.person("override", by, "approval"))
        pending = self._data.pending_adjustment
        if pending is not None and pending.override is not None and self._proposed_plan:
            waiting = rules.pending_approval(self._proposed_plan, pending.override.override())
            if waiting:
                found = rules.approved_as_shown(waiting, shown)
                found += check_override(
                    self._proposed_plan.override, pending.override.override(second_by=by)
                )
                refuse_if("approve", found)
                approved = pending.model_copy(
                    update={"override": pending.override.model_copy(update={"second_by": by})}
                )
                return self._confirm_adjustment("approve", source, stamp, by, approved)
        held = self._data.pending_start_override
        if held is not None and source in (State.VERIFIED, State.PRIMED):
            return self._start(
                "approve",
                source,
                stamp,
                held.by,
                pump,
                prior_sessions,
                False,
                held.override(second_by=by),
                shown,
            )
        raise CommandRefused(
            "approve",
            [
                rules.hard(
                    "approve.nothing_pending",
                    "Nothing on this pump awaits a second person's approval.",
                )
            ],
        )

    # -- pause, resume, adjust, stop ------------------------------------------------

    def pause(self, *, by: str, at: Stamp, reason_code: str = "nurse.pause") -> Step:
        """Pause the infusion (a nurse, or the controller obeying the kernel)."""
        source = self._require("pause")
        check_stamp(at)
        check_text("reason_code", reason_code)
        refuse_if("pause", rules.person("pause", by, "pause"))
        command = CommandIntent(PumpCommand.PAUSE, reason_code=reason_code)
        if source is State.ALARM:
            data = self._update(pause_reason_code=reason_code)
            return self._fire(
                "pause", source, source, data, command=command, audit=("pump.command.requested",)
            )
        data = self._update(
            pause_reason_code=reason_code,
            pending_command=PumpCommand.PAUSE,
            requested_in=source,
        )
        return self._fire(
            "pause",
            source,
            State.PAUSE_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def resume(
        self,
        *,
        by: str,
        at: Stamp,
        reason: str | None = None,
        delivery: DeliveryFacts | None = None,
    ) -> Step:
        """Resume a paused infusion at the plan in effect; never out of ALARM.

        From STOPPED (a cleared and acknowledged mechanical alarm, or a nurse's own stop)
        this continues the interrupted infusion in the same session, if the kernel's
        continuation rule allows it (``safety.continuation``): the nurse's reason and the
        controller's ``delivery`` facts are needed then.
        """
        source = self._require("resume")
        stamp = check_stamp(at)
        if source is State.STOPPED:
            return self._continue(by, reason, delivery, stamp)
        verdicts = rules.person("resume", by, "resume")
        verdicts += check_resume_cause(self._data.interrupted_by)
        refuse_if("resume", verdicts)
        data = self._update(pending_command=PumpCommand.RESUME, requested_in=source)
        command = CommandIntent(
            PumpCommand.RESUME,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=self._plan.vtbi_ul,
            reason_code="nurse.resume",
        )
        return self._fire(
            "resume",
            source,
            State.RESUME_REQUESTED,
            data,
            command=command,
            audit=("pump.command.requested",),
        )

    def _continue(self, by: str, reason: object, delivery: object, stamp: Stamp) -> Step:
        if not isinstance(delivery, DeliveryFacts):
            raise InvalidCommandInput(f"a continuation needs the delivery facts, got {delivery!r}")
        check_text("reason", reason, optional=True)
        verdicts = rules.person("resume", by, "continuation")
        verdicts += rules.reason_text("continue.reason_missing", reason, "continuation")
        d = self._data
        proto = self._protocol.protocol
        since = d.interrupted_at or d.stopped_at
        interrupted_s = 0.0 if since is None else max(0.0, stamp.mono_s - since.mono_s)
        last = d.last_vitals
        try:
            inputs = ContinuationInputs(
                interrupted_by=d.interrupted_by,
                vtbi_ul=self._plan.vtbi_ul,
                delivered_ul=delivery.delivered_ul,
                expected_ul=delivery.expected_ul,
                rate_ml_h=self._plan.rate_ml_h,
                delivery_elapsed_s=delivery.delivery_elapsed_s,
                max_delivery_s=delivery.max_delivery_s,
                interrupted_before_s=d.interrupted_before_s,
                interrupted_s=interrupted_s,
                pause_limit_s=float(proto.pause.stop_after_min * 60),
                vitals=None if last is None else last.reading_as_of(stamp),
                now=stamp.utc,
                pump=delivery.pump,
            )
            assessment = check_continuation(proto.vitals, inputs)
        except (InvalidContinuationInput, InvalidVitals) as exc:
            raise InvalidCommandInput(f"continuation input: {exc}") from exc
        verdicts += assessment.verdicts
        refuse_if("resume", verdicts)
        assert isinstance(reason, str)
        record = ContinuationRecord(
            by=by,
            reason=reason,
            at=At.of(stamp),
            interrupted_by=d.interrupted_by,
            remaining_ul=assessment.remaining_ul,
            delivered_ul=max(delivery.delivered_ul, delivery.expected_ul),
            interrupted_s=interrupted_s,
        )
        data = self._update(
            pending_command=PumpCommand.RESUME,
            requested_in=State.STOPPED,
            last_continuation=record,
            continuations=d.continuations + 1,
        )
        command = CommandIntent(
            PumpCommand.RESUME,
            rate_ml_h=self._plan.rate_ml_h,
            vtbi_ul=assessment.remaining_ul,
            reason_code="nurse.continue",
        )
        return self._fire(
            "resume",
            State.STOPPED,
            State.RESUME_REQUESTED,
            data,
            command=command,
            audit=("session.continued", "pump.command.requested"),
        )

    def adjust(
        self,
        *,
        by: str,
        reason: str,
        order: Order,
        delivered_ul: int,
        at: Stamp,
        override: Override | None = None,
        protocol: LoadedProtocol | None = None,
    ) -> Step:
        """Propose a new plan for the infusion (step one of two); nothing changes at the pump.

        ``protocol`` is what the caller believes it is adjusting under; a different one is
        refused (changing drug or protocol mid-infusion means stop and program anew).
        """
        source = self._require("adjust")
        stamp = check_stamp(at)
        check_type("order", order, Order)
        if override is not None:
            check_type("override", override, Override)
        if protocol is not None:
            check_type("protocol", protocol, LoadedProtocol)
        verdicts = rules.person("adjust", by, "adjustment")
        verdicts += rules.reason_text("adjust.reason_missing", reason, "adjustment")
        plan, found = rules.plan_or_refusal(
            self._protocol.protocol, self._data.patient.patient(), order, override
        )
        verdicts += found
        verdicts += guards.adjust_allowed(
            self._protocol.protocol.key,
            self._protocol.sha256,
            None if protocol is None else protocol.protocol.key,
            None if protocol is None else protocol.sha256,
            plan,
            delivered_ul,
        )
        if plan is not None:
            verdicts += guards.pump_fit(plan.rate_ml_h, plan.vtbi_ul, None, self._data.container_ul)
        refuse_if("adjust", verdicts)
        assert plan is not None
        proposal = AdjustmentRecord(
            order=OrderRecord.of(order),
            reason=reason,
            proposed_by=by,
            proposed_at=At.of(stamp),
            override=None if override is None else OverrideRecord.of(override),
            rate_ml_h=plan.rate_ml_h,
            vtbi_ul=plan.vtbi_ul,
        )
        data = self._update(pending_adjustment=proposal)
        return self._fire("adjust", source, source, data, proposed_plan=plan)

    def _nothing_proposed(self, trigger: str) -> None:
        if self._data.pending_adjustment is None or self._proposed_plan is None:
            raise CommandRefused(
                trigger,
                [rules.hard("adjust.nothing_proposed", "There is no proposed adjustment.")],
            )

    def confirm_adjust(self, *, by: str, at: Stamp) -> Step:
        """Step two: the nurse has seen the new plan and confirms it. An override of its
        soft verdicts that awaits a second person refuses it: that person approves
        (:meth:`approve`), and the approval applies the adjustment."""
        source = self._require("confirm_adjust")
        stamp = check_stamp(at)
        refuse_if("confirm_adjust", rules.person("adjust", by, "confirmation"))
        self._nothing_proposed("confirm_adjust")
        pending = self._data.pending_adjustment
        assert pending is not None
        assert self._proposed_plan is not None
        if pending.override is not None:
            refuse_if(
                "confirm_adjust",
                rules.unapproved(self._proposed_plan, pending.override.override()),
            )
        return self._confirm_adjustment("confirm_adjust", source, stamp, by, pending)

    def _confirm_adjustment(
        self, trigger: str, source: State, stamp: Stamp, by: str, pending: AdjustmentRecord
    ) -> Step:
        new_plan = self._proposed_plan
        assert new_plan is not None
        granted = ("override.granted",) if trigger == "approve" else ()
        confirmed = pending.model_copy(update={"confirmed_by": by, "confirmed_at": At.of(stamp)})
        if source is State.PAUSED:
            data = self._update(
                order=confirmed.order,
                pending_adjustment=None,
                last_adjustment=confirmed,
                adjustments_confirmed=self._data.adjustments_confirmed + 1,
            )
            return self._fire(
                trigger,
                source,
                source,
                data,
                plan=new_plan,
                proposed_plan=None,
                audit=(*granted, "session.adjusted"),
            )
        data = self._update(
            pending_adjustment=confirmed,
            pending_command=PumpCommand.SET_RATE,
            requested_in=source,
        )
        command = CommandIntent(
            PumpCommand.SET_RATE,
            rate_ml_h=new_plan.rate_ml_h,
            vtbi_ul=new_plan.vtbi_ul,
            reason_code="nurse.adjust",
        )
        return self._fire(
            trigger,
            source,
            State.ADJUSTING,
            data,
            command=command,
            audit=(*granted, "pump.command.requested"),
        )

    def cancel_adjust(self, *, by: str, at: Stamp) -> Step:
        source = self._require("cancel_adjust")
        check_stamp(at)
        refuse_if("cancel_adjust", rules.person("adjust", by, "cancellation"))
        self._nothing_proposed("cancel_adjust")
        data = self._update(pending_adjustment=None)
        return self._fire("cancel_adjust", source, source, data, proposed_plan=None)

    def stop(self, *, by: str, reason: str, at: Stamp, reason_code: str = "nurse.stop") -> Step:
        """Stop delivery; a reason is required. Allowed while a command is in doubt, too.

        Stopping is the one command that can never give more drug, so it is not held back
        by an uncertain command or a latched alarm (in ALARM it stays latched).
        """
        source = self._require("stop")
        stamp = check_stamp(at)
        check_text("reason_code", reason_code)
        verdicts = rules.person("stop", by, "stop")
        verdicts += rules.reason_text("stop.reason_missing", reason, "stop")
        refuse_if("stop", verdicts)
        changes: dict[str, object] = {
            "stop_requested_by": by,
            "stop_reason_code": reason_code,
            "stop_reason": reason,
            "pending_adjustment": None,
            **self._interruption(reason_code, At.of(stamp)),
        }
        command = CommandIntent(PumpCommand.STOP, reason_code=reason_code)
        dest = source
        if source in (State.ALARM, State.STOP_REQUESTED):
            data = self._update(**changes)
        else:
            dest = State.STOP_REQUESTED
            data = self._update(**changes, pending_command=PumpCommand.STOP, requested_in=source)
        return self._fire(
            "stop",
            source,
            dest,
            data,
            command=command,
            audit=("pump.command.requested",),
            proposed_plan=None,
        )

    # -- alarms ---------------------------------------------------------------------

    def acknowledge(
        self, *, by: str, pump_mode: PumpMode, at: Stamp, note: str | None = None
    ) -> Step:
        """A nurse acknowledges the latched alarms; the pump's mode decides where to go.

        Never to INFUSING: a paused pump leads to PAUSED (the nurse resumes explicitly), an
        idle one to STOPPED, OBSERVATION or back before the start. A pump still delivering
        or still in alarm is refused: the controller must stop it, or the pump's own alarm
        be cleared, first.
        """
        source = self._require("acknowledge")
        stamp = check_stamp(at)
        check_type("pump_mode", pump_mode, PumpMode)
        check_text("note", note, optional=True)
        verdicts = rules.person("acknowledge", by, "acknowledgement")
        d = self._data
        post_delivery = d.completed_at is not None or d.observation_started_at is not None
        if pump_mode.delivers:
            verdicts.append(
                rules.hard(
                    "ack.pump_delivering",
                    f"The pump is still {pump_mode.value}; stop it before acknowledging.",
                )
            )
        elif pump_mode is PumpMode.ALARM:
            verdicts.append(
                rules.hard(
                    "ack.pump_in_alarm",
                    "The pump is still in alarm; clear the cause at the pump first.",
                )
            )
        elif (
            pump_mode is PumpMode.PAUSED
            and d.start_commanded
            and (post_delivery or d.stopped_at is not None)
        ):
            verdicts.append(
                rules.hard(
                    "ack.pump_not_idle",
                    "The pump still holds a paused program after the infusion ended; stop it "
                    "before acknowledging.",
                )
            )
        refuse_if("acknowledge", verdicts)
        at_rec = At.of(stamp)
        acked = tuple(AcknowledgedAlarm(alarm=a, by=by, note=note, at=at_rec) for a in d.alarms)
        changes: dict[str, object] = {
            "alarms": (),
            "last_acknowledged": acked,
            "vitals_alarm_acknowledged": (
                d.last_vitals.at
                if d.last_vitals is not None
                and any(a.code.startswith("tick.vitals.") for a in d.alarms)
                else d.vitals_alarm_acknowledged
            ),
            "alarms_acknowledged": d.alarms_acknowledged + len(acked),
            "pending_command": None,
        }
        audit = ["alarm.acknowledged"]
        if not d.start_commanded:
            checked = d.confirmed_by is not None
            needed = self._protocol.protocol.double_check_required
            dest = State.PROGRAMMED if needed and not checked else State.VERIFIED
        elif post_delivery:
            dest = State.OBSERVATION
            if d.observation_started_at is None:
                changes["observation_started_at"] = at_rec
                audit.append("observation.started")
        elif d.stopped_at is not None:
            ended, ending = self._ended(at_rec)
            dest = State.OBSERVATION if ending else State.STOPPED
            changes.update(ended)
            audit += ending
        elif pump_mode is PumpMode.PAUSED:
            dest = State.PAUSED
            if d.paused_at is None:
                changes["paused_at"] = d.alarms[0].at if d.alarms else at_rec
        else:
            # The pump, read just now, is idle: that confirms the halt.
            ended, ending = self._ended(at_rec)
            dest = State.OBSERVATION if ending else State.STOPPED
            changes["stopped_at"] = at_rec
            changes.update(ended)
            if d.stop_reason_code is None:
                first = d.alarms[0] if d.alarms else None
                changes["stop_reason_code"] = first.code if first else "alarm"
                changes["stop_reason"] = first.message if first else "stopped by an alarm"
            audit += ["session.stopped", *ending]
        if d.last_uncertain is not None and d.last_uncertain.resolved_to is None:
            changes["last_uncertain"] = d.last_uncertain.model_copy(
                update={"resolved_to": dest, "resolved_at": at_rec}
            )
        return self._fire(
            "acknowledge", source, dest, self._update(**changes), audit=audit, proposed_plan=None
        )

    # -- records --------------------------------------------------------------------

    def record_vitals(self, *, by: str, reading: VitalsReading, at: Stamp) -> Step:
        source = self._require("record_vitals")
        stamp = check_stamp(at)
        check_type("reading", reading, VitalsReading)
        try:
            check_entry(reading)
        except ImplausibleVitals as exc:
            raise InvalidCommandInput(f"vitals: {exc}") from exc
        refuse_if("record_vitals", rules.person("vitals", by, "vital signs"))
        record = VitalsRecord.of(reading, by, stamp)
        data = self._update(last_vitals=record, vitals_recorded=self._data.vitals_recorded + 1)
        return self._fire("record_vitals", source, source, data, audit=("vitals.recorded",))

    def note(self, *, by: str, text: str, at: Stamp) -> Step:
        source = self._require("note")
        stamp = check_stamp(at)
        verdicts = rules.person("note", by, "note")
        if not isinstance(text, str) or not text.strip():
            verdicts.append(rules.hard("note.empty", "A note needs some text."))
        refuse_if("note", verdicts)
        data = self._update(
            last_note=NoteRecord(text=text, by=by, at=At.of(stamp)),
            notes_recorded=self._data.notes_recorded + 1,
        )
        return self._fire("note", source, source, data, audit=("note.recorded",))

    # -- ending ---------------------------------------------------------------------

    def observe(self, *, by: str, at: Stamp, reason_code: str = "nurse.observe") -> Step:
        """Start watching the patient: after an early stop, or to end keep-vein-open.

        From KVO the pump is still running at the KVO rate, so the session goes to COMPLETE
        and the Step commands STOP; the observation starts when the pump confirms it (drug
        has stopped flowing). ``reason_code`` says who ended KVO (the kernel's
        ``tick.vtbi.kvo_complete`` when the daemon does it).
        """
        source = self._require("observe")
        stamp = check_stamp(at)
        check_text("reason_code", reason_code)
        verdicts = rules.person("observe", by, "observation")
        if source is State.KVO:
            refuse_if("observe", verdicts)
            command = CommandIntent(PumpCommand.STOP, reason_code=reason_code)
            data = self._update(pending_command=PumpCommand.STOP, requested_in=State.COMPLETE)
            return self._fire(
                "observe",
                source,
                State.COMPLETE,
                data,
                command=command,
                audit=("pump.command.requested",),
            )
        if not self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "observe.nothing_given",
                    "No infusion was started, so there is nothing to observe; abort instead.",
                )
            )
        refuse_if("observe", verdicts)
        data = self._update(observation_started_at=At.of(stamp))
        return self._fire(
            "observe", source, State.OBSERVATION, data, audit=("observation.started",)
        )

    def end(self, *, by: str, reason: str, at: Stamp) -> Step:
        """End an interrupted infusion instead of continuing it: the observation begins."""
        source = self._require("end")
        stamp = check_stamp(at)
        verdicts = rules.person("end", by, "end")
        verdicts += rules.reason_text("end.reason_missing", reason, "end")
        refuse_if("end", verdicts)
        data = self._update(ended_by=by, end_reason=reason, observation_started_at=At.of(stamp))
        return self._fire(
            "end", source, State.OBSERVATION, data, audit=("session.ended", "observation.started")
        )

    def _observed_s(self, stamp: Stamp) -> float:
        started = self._data.observation_started_at
        if started is None:
            raise AssertionError("unreachable: OBSERVATION is always entered with its start")
        return stamp.mono_s - started.mono_s

    def discharge_gates(self, at: Stamp) -> list[Verdict]:
        """The facts a discharge needs before any checklist question is worth asking: the
        protocol's observation time, and vital signs from the observation, recent and in
        the pause band (``safety.guards``). Reading only: nothing changes."""
        stamp = check_stamp(at)
        if self.state is not State.OBSERVATION:
            raise InvalidInState("discharge", self.state.value, self.allowed())
        proto = self._protocol.protocol
        observed_s = self._observed_s(stamp)
        gates = [
            v
            for v in guards.discharge_allowed(observed_s, proto.observation_min, (), ())
            if v.code == "discharge.observation_too_short"
        ]
        last = self._data.last_vitals
        started = self._data.observation_started_at
        assert started is not None
        during = last is not None and last.at.mono_s >= started.mono_s
        gates += guards.discharge_vitals(
            proto.vitals,
            None if last is None else last.reading(),
            None if last is None else max(0.0, stamp.mono_s - last.at.mono_s),
            during,
            proto.discharge_vitals_max_age_min,
        )
        return gates

    def discharge(self, *, by: str, checklist_confirmed: Collection[str], at: Stamp) -> Step:
        """Discharge after the protocol's observation time, with every checklist item ticked."""
        source = self._require("discharge")
        stamp = check_stamp(at)
        if isinstance(checklist_confirmed, str) or not all(
            isinstance(item, str) for item in checklist_confirmed
        ):
            raise InvalidCommandInput("checklist_confirmed must be a collection of item strings")
        proto = self._protocol.protocol
        verdicts = rules.person("discharge", by, "discharge")
        gates = self.discharge_gates(stamp)
        verdicts += gates
        confirmed = set(checklist_confirmed)
        if guards.DISCHARGE_VITALS_ITEM in proto.discharge_checklist:
            # A computed line: the vitals gate decides it, never a tick.
            confirmed.add(guards.DISCHARGE_VITALS_ITEM)
        verdicts += [
            v
            for v in guards.discharge_allowed(
                self._observed_s(stamp), proto.observation_min, proto.discharge_checklist, confirmed
            )
            if v not in gates
        ]
        refuse_if("discharge", verdicts)
        data = self._update(
            discharged_by=by,
            discharged_at=At.of(stamp),
            checklist_confirmed=tuple(i for i in proto.discharge_checklist),
        )
        return self._fire(
            "discharge",
            source,
            State.DISCHARGED,
            data,
            audit=("observation.ended", "patient.discharged"),
        )

    def abort(self, *, by: str, reason: str, at: Stamp) -> Step:
        """Abandon a session before any drug was given; after a start, stop and observe."""
        source = self._require("abort")
        check_stamp(at)
        verdicts = rules.person("abort", by, "abort")
        verdicts += rules.reason_text("abort.reason_missing", reason, "abort")
        if self._data.start_commanded:
            verdicts.append(
                rules.hard(
                    "abort.after_start",
                    "Drug may have reached the patient; the session must end in observation.",
                )
            )
        refuse_if("abort", verdicts)
        data = self._update(aborted_by=by, abort_reason=reason)
        return self._fire("abort", source, State.ABORTED, data, audit=("session.stopped",))
