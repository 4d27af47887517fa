"""The controller's audit events, built as the catalogue's payload models.

A payload is a model of ``pumpd/audit/catalogue.py`` from the moment it is made, so an
event can never turn out invalid after the fact: a malformed one is a bug that raises
where it is built, before anything is queued. Free text is bounded by the catalogue's
models themselves (``BoundedText``: cut with a marker), never by their callers.

The builder decides nothing: it turns a session step (and the facts the controller holds
about it: the delivered volume, the nurse's words, the alarms' correlation ids) into the
events the step's ``audit_events`` name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

from pumpd.audit import Actor, NewEvent
from pumpd.audit.catalogue import (
    AlarmAcknowledged,
    AlarmRaised,
    CommandConfirmed,
    CommandFailed,
    CommandRequested,
    CommandUncertain,
    DaemonRecovered,
    DoubleCheckCompleted,
    InfusionCompleted,
    InterlockTriggered,
    NoteRecorded,
    ObservationEnded,
    ObservationStarted,
    OverriddenVerdict,
    OverrideGranted,
    PatientDischarged,
    Payload,
    PumpCommand,
    PumpUnreachable,
    ReminderIssued,
    SessionAdjusted,
    SessionContinued,
    SessionEnded,
    SessionPaused,
    SessionProgrammed,
    SessionResumed,
    SessionStarted,
    SessionStopped,
    SupervisionRecord,
    VitalsRecorded,
)
from pumpd.session import CommandIntent, Session, State, Step
from pumpd.session.records import OverrideRecord
from safety.plan import Plan
from safety.tick import SupervisionLimits, SupervisionPolicy, supervision_limits
from safety.verdicts import Severity, Verdict

from .executor import Outcome, Result
from .journal import Journal, code_of, dose_mg, new_correlation

Priority3 = Literal["low", "medium", "high"]
Source = Literal["pump", "kernel", "vitals", "daemon"]


def words(text: str | None) -> str | None:
    """A person's words as the audit record takes them: trimmed, or None."""
    return (text or "").strip() or None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def supervision_record(limits: SupervisionLimits) -> SupervisionRecord:
    """The kernel's limits for ``session.started``: the thresholds the infusion is judged
    by and the sources that decided them."""
    return SupervisionRecord(
        vtbi_ul=limits.vtbi_ul,
        vtbi_overrun_ul=limits.vtbi_overrun_ul,
        kvo_max_ul=limits.kvo_max_ul,
        volume_tolerance_rel=limits.volume_tolerance_rel,
        volume_tolerance_abs_ul=limits.volume_tolerance_abs_ul,
        rate_tolerance_rel=limits.rate_tolerance_rel,
        rate_tolerance_abs_ml_h=limits.rate_tolerance_abs_ml_h,
        rate_settle_ms=_ms(limits.rate_settle_s),
        comm_timeout_ms=_ms(limits.comm_timeout_s),
        pause_stop_after_ms=_ms(limits.pause_stop_after_s),
        provenance=list(limits.provenance),
        max_delivery_ms=None if limits.max_delivery_s is None else _ms(limits.max_delivery_s),
    )


@dataclass(slots=True)
class StepContext:
    """What the events of one step need besides the session."""

    correlation_id: str | None = None
    command: CommandIntent | None = None
    outcome: Outcome | None = None
    extra: list[NewEvent] = field(default_factory=list)


class AlarmIds(Protocol):
    """The alarm board's correlation ids, as the step's alarm events link them."""

    def raised_id(self, code: str) -> tuple[str, bool]:
        """The correlation id of the alarm ``code`` latched now, and whether its
        ``alarm.raised`` was already written when the tick decided."""
        ...

    def acknowledged_id(self, code: str) -> str:
        """The correlation id of the alarm ``code`` acknowledged now."""
        ...


@dataclass(frozen=True, slots=True)
class StepFacts:
    """The controller's facts at the moment a step is recorded."""

    delivered_ul: int
    now_s: float
    pause_words: str | None
    policy: SupervisionPolicy


class EventBuilder:
    """One pump's events; the journal gives each its envelope (pump, session, patient)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def daemon(
        self,
        event_type: str,
        payload: Payload,
        *,
        session: Session | None = None,
        correlation_id: str | None = None,
    ) -> NewEvent:
        return self._journal.event(
            event_type, payload, Actor.daemon(), session=session, correlation_id=correlation_id
        )

    def unreachable(self, detail: str) -> NewEvent:
        return self.daemon(
            "pump.unreachable",
            PumpUnreachable(
                error_code="read_failed", detail=detail or "no reply", unreachable_ms=0
            ),
        )

    def interlock(self, action: str, codes: list[str], detail: str, s: Session) -> NewEvent:
        return self.daemon(
            "interlock.triggered",
            InterlockTriggered(
                action=cast(Literal["pause", "stop"], action),
                reason_codes=codes,
                detail=detail,
            ),
            session=s,
        )

    def alarm_raised(
        self,
        s: Session | None,
        code: str,
        priority: str,
        source: str,
        message: str,
        correlation_id: str,
    ) -> NewEvent:
        return self.daemon(
            "alarm.raised",
            AlarmRaised(
                alarm_code=code,
                priority=cast(Priority3, priority),
                source=cast(Source, source),
                message=message,
            ),
            session=s,
            correlation_id=correlation_id,
        )

    def alarm_acknowledged(
        self, by: Actor, code: str, note: str | None, s: Session | None, correlation_id: str
    ) -> NewEvent:
        return self._journal.event(
            "alarm.acknowledged",
            AlarmAcknowledged(alarm_code=code, note=note),
            by,
            session=s,
            correlation_id=correlation_id,
        )

    def reminder(self, s: Session, code: str, message: str, priority: str) -> NewEvent:
        return self.daemon(
            "reminder.issued",
            ReminderIssued(reminder_code=code, message=message, priority=cast(Priority3, priority)),
            session=s,
        )

    def stop_requested(self, reason_code: str, correlation_id: str) -> NewEvent:
        return self.daemon(
            "pump.command.requested",
            CommandRequested(command=PumpCommand.STOP, reason_codes=[reason_code]),
            correlation_id=correlation_id,
        )

    def not_durable(
        self, kind: PumpCommand, s: Session | None, correlation_id: str | None
    ) -> NewEvent:
        return self.daemon(
            "pump.command.failed",
            CommandFailed(
                command=kind,
                error_code="audit_unavailable",
                detail="not sent: the intent was not durable in time",
            ),
            session=s,
            correlation_id=correlation_id,
        )

    def recovered(self, open_sessions: list[str], detail: str) -> NewEvent:
        return self.daemon(
            "daemon.recovered", DaemonRecovered(open_sessions=open_sessions, detail=detail)
        )

    def result(
        self, kind: PumpCommand, outcome: Outcome, corr: str | None, s: Session | None
    ) -> NewEvent:
        command = kind
        if outcome.result is Result.CONFIRMED and outcome.status is not None:
            return self.daemon(
                "pump.command.confirmed",
                CommandConfirmed(
                    command=command,
                    observed_state=outcome.status.state.value.lower(),
                    observed_rate_ml_h=outcome.status.rate_actual_ml_h,
                    latency_ms=outcome.latency_ms,
                ),
                session=s,
                correlation_id=corr,
            )
        if outcome.result is Result.UNKNOWN:
            return self.daemon(
                "pump.command.uncertain",
                CommandUncertain(command=command, detail=outcome.detail or "no confirmation"),
                session=s,
                correlation_id=corr,
            )
        return self.daemon(
            "pump.command.failed",
            CommandFailed(
                command=command,
                error_code=outcome.error_code,
                detail=outcome.detail or "failed",
            ),
            session=s,
            correlation_id=corr,
        )

    def step_events(
        self,
        s: Session,
        step: Step,
        by: Actor,
        ctx: StepContext,
        facts: StepFacts,
        alarm_ids: AlarmIds,
    ) -> list[NewEvent]:
        """The events ``step.audit_events`` names, in its order."""
        out: list[NewEvent] = []
        for kind in step.audit_events:
            out += self._step_event(kind, s, step, by, ctx, facts, alarm_ids)
        return out

    def _step_event(
        self,
        kind: str,
        s: Session,
        step: Step,
        by: Actor,
        ctx: StepContext,
        facts: StepFacts,
        alarm_ids: AlarmIds,
    ) -> list[NewEvent]:
        d = s.data
        plan = s.plan
        delivered = facts.delivered_ul
        actor = by  # as the socket made it (or the daemon): never named again here

        def ev(payload: Payload, who: Actor = actor, corr: str | None = None) -> list[NewEvent]:
            return [self._journal.event(kind, payload, who, session=s, correlation_id=corr)]

        if kind == "session.programmed":
            return ev(programmed(s, plan))
        if kind == "override.granted":
            rec, overridden = _overridden(s, step)
            if rec is None:
                return []
            return ev(
                OverrideGranted(
                    verdict_codes=list(rec.codes) or ["override"],
                    reason_code="override",
                    reason=rec.reason,
                    approved_by=rec.by,
                    witness=rec.second_by,
                    verdicts=[_verdict_figures(v) for v in overridden],
                )
            )
        if kind == "double_check.completed":
            return ev(
                DoubleCheckCompleted(
                    first_checker=d.programmed_by,
                    second_checker=d.confirmed_by or by.name,
                    fields_checked=["patient_ref", "weight_kg", "protocol", "plan"],
                )
            )
        if kind == "pump.command.requested":
            if step.command is None:
                return []
            c = step.command
            said = {PumpCommand.PAUSE: facts.pause_words, PumpCommand.STOP: d.stop_reason}
            if c.reason_code == "nurse.continue" and d.last_continuation is not None:
                said[PumpCommand.RESUME] = d.last_continuation.reason
            requested = CommandRequested(
                command=c.kind,
                rate_ml_h=c.rate_ml_h,
                volume_ul=c.vtbi_ul,
                reason_codes=[c.reason_code] if c.reason_code else [],
                reason=words(said.get(c.kind)),
            )
            return ev(requested, corr=ctx.correlation_id)
        if kind in ("pump.command.confirmed", "pump.command.uncertain", "pump.command.failed"):
            if ctx.outcome is not None and ctx.command is not None:
                return [self.result(ctx.command.kind, ctx.outcome, ctx.correlation_id, s)]
            if kind == "pump.command.uncertain" and d.last_uncertain is not None:
                uncertain = CommandUncertain(
                    command=d.last_uncertain.command,
                    detail=d.last_uncertain.detail,
                )
                return ev(uncertain, Actor.daemon(), new_correlation("cmd"))
            return []
        if kind == "session.started":
            limits = supervision_limits(s.protocol.protocol, plan, facts.policy)
            return ev(
                SessionStarted(
                    rate_ml_h=plan.rate_ml_h,
                    volume_ul=plan.vtbi_ul,
                    supervision=supervision_record(limits),
                )
            )
        if kind == "session.resumed":
            return ev(SessionResumed(rate_ml_h=plan.rate_ml_h))
        if kind == "session.continued":
            cont = d.last_continuation
            if cont is None:
                return []
            return ev(
                SessionContinued(
                    reason=cont.reason,
                    rule="continue",
                    interrupted_by=list(cont.interrupted_by),
                    remaining_volume_ul=cont.remaining_ul,
                    delivered_volume_ul=cont.delivered_ul,
                    interrupted_ms=int(cont.interrupted_s * 1000),
                )
            )
        if kind == "session.ended":
            return ev(
                SessionEnded(
                    reason=d.end_reason or "ended",
                    rule=d.end_rule or "session.end",
                    interrupted_by=list(d.interrupted_by),
                    delivered_volume_ul=delivered,
                ),
                Actor.daemon() if d.end_rule else actor,
            )
        if kind == "session.paused":
            return ev(
                SessionPaused(
                    reason_code=d.pause_reason_code or "pause",
                    reason=facts.pause_words,
                    delivered_volume_ul=delivered,
                )
            )
        if kind == "session.stopped":
            return ev(
                SessionStopped(
                    reason_code=d.stop_reason_code or ("abort" if d.abort_reason else "stop"),
                    reason=d.stop_reason or d.abort_reason or "stopped",
                    delivered_volume_ul=delivered,
                    delivered_dose_mg=dose_mg(delivered, plan.concentration_mg_per_ml),
                )
            )
        if kind == "infusion.completed":
            return ev(
                InfusionCompleted(
                    delivered_volume_ul=delivered,
                    delivered_dose_mg=dose_mg(delivered, plan.concentration_mg_per_ml),
                )
            )
        if kind == "observation.started":
            return ev(ObservationStarted(minimum_s=int(s.protocol.protocol.observation_min * 60)))
        if kind == "observation.ended":
            began = d.observation_started_at
            observed = 0 if began is None else int(facts.now_s - began.mono_s)
            return ev(ObservationEnded(observed_s=max(0, observed), outcome="discharged"))
        if kind == "patient.discharged":
            return ev(
                PatientDischarged(
                    discharged_by=d.discharged_by or by.name,
                    criteria_met=[code_of(i) for i in d.checklist_confirmed],
                )
            )
        if kind == "alarm.raised":
            if not d.alarms:
                return []
            alarm = d.alarms[-1]
            corr, written = alarm_ids.raised_id(alarm.code)
            if written:  # when the tick decided (the alarm board's announce)
                return []
            raised = AlarmRaised(
                alarm_code=alarm.code,
                priority=alarm.priority.value,
                source=alarm.source,
                message=alarm.message,
            )
            return ev(raised, Actor.daemon(), corr)
        if kind == "alarm.acknowledged":
            out: list[NewEvent] = []
            for acked in d.last_acknowledged:
                corr = alarm_ids.acknowledged_id(acked.alarm.code)
                out += ev(
                    AlarmAcknowledged(alarm_code=acked.alarm.code, note=acked.note), corr=corr
                )
            return out
        if kind == "vitals.recorded":
            v = d.last_vitals
            if v is None:
                return []
            return ev(
                VitalsRecorded(
                    systolic_mmhg=v.systolic_mmhg,
                    diastolic_mmhg=v.diastolic_mmhg,
                    heart_rate_bpm=v.heart_rate_bpm,
                    spo2_percent=v.spo2_percent,
                    respiratory_rate_per_min=v.resp_rate_per_min,
                    source="manual",
                )
            )
        if kind == "session.adjusted":
            last = d.last_adjustment
            return ev(
                SessionAdjusted(
                    reason=last.reason if last else "adjusted",
                    rate_ml_h=plan.rate_ml_h,
                    volume_ul=plan.vtbi_ul,
                )
            )
        if kind == "note.recorded" and d.last_note is not None:
            return ev(NoteRecorded(text=d.last_note.text))
        return []


def programmed(s: Session, plan: Plan) -> SessionProgrammed:
    proto = s.protocol.protocol
    return SessionProgrammed(
        # The protocol's own id, as auditors query it; the sha256 pins the exact file.
        protocol_id=proto.id,
        protocol_version=str(proto.version),
        protocol_sha256=s.protocol.sha256,
        protocol_status="released" if s.protocol.released else "draft",
        drug=proto.drug,
        concentration_mg_ml=plan.concentration_mg_per_ml,
        weight_kg=plan.weight_kg,
        weight_basis=plan.weight_basis_applied.value,
        dosing_weight_kg=plan.dosing_weight_kg,
        dose_mg_kg=plan.dose_mg_per_kg,
        prescribed_dose_mg=plan.dose_mg,
        rate_ml_h=plan.rate_ml_h,
        volume_ul=plan.vtbi_ul,
        duration_s=int(plan.duration_min * 60),
        verdict_codes=[v.code for v in plan.verdicts],
    )


def _overridden(s: Session, step: Step) -> tuple[OverrideRecord | None, list[Verdict]]:
    """The override a step grants and the soft verdicts it answers."""
    d = s.data
    soft = Severity.SOFT
    if step.dest is State.START_REQUESTED:
        return d.start_override, [v.verdict() for v in d.start_verdicts if v.severity == "soft"]
    if step.trigger == "approve":
        adjustment = d.pending_adjustment or d.last_adjustment
        plan = s.proposed_plan or s.plan
        rec = None if adjustment is None else adjustment.override
        return rec, [v for v in plan.verdicts if v.severity is soft]
    return d.plan_override, [v for v in s.plan.verdicts if v.severity is soft]


def _verdict_figures(v: Verdict) -> OverriddenVerdict:
    return OverriddenVerdict(
        code=v.code, message=v.message, value=v.value, limit=v.limit, unit=v.unit
    )
