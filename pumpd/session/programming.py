"""Opening and programming a session: the plan checked against the kernel, then the double-check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pumpd.clock import Stamp
from pumpd.protocols import LoadedProtocol
from safety import guards
from safety.course import InvalidCourseHistory, PriorSession, evaluate_course
from safety.order import Override, approval_missing, check_override
from safety.plan import Order, Patient, Plan
from safety.verdicts import Severity, Verdict

from . import rules
from .core import SessionCore, Step, check_stamp, check_type, refuse_if
from .errors import InvalidCommandInput
from .records import At, OrderRecord, OverrideRecord, PatientRecord, SessionData
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


class ProgrammingCommands(SessionCore):
    """Opening a session, programming its plan, and the double-check that verifies it."""

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
