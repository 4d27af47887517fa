"""The clinical and read-only handlers: each calls the controller's nurse API.

Every clinical decision stays in the session and the safety kernel; the acting person is
``by``: the request's :class:`~pumpd.audit.actor.Actor` as the socket made it
(``call.actor``), passed on unchanged. What is decided here is only *who* the double-check
comes from (``session_confirm``): a second OS account, or a witness whose staff id and PIN
are checked against the registry (then the witness is the actor, at the caller's uid).
Refusals travel up as the session's and controller's typed errors (``errors.py`` maps them).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from pumpd.audit import Actor
from pumpd.controller import Controller, code_of
from pumpd.protocols import LoadedProtocol
from pumpd.session import State
from safety.guards import DISCHARGE_VITALS_ITEM, protocol_released
from safety.order import Override
from safety.plan import Order, Patient, Plan, compute_plan, parse_order, parse_patient
from safety.tick import SessionPhase
from safety.units import InputError
from safety.verdicts import Severity, Verdict
from safety.vitals import EntryStage, VitalsReading, entry_verdicts

from .course import prior_sessions
from .outage import refuse_while_unavailable
from .params import (
    AckParams,
    AdjustParams,
    ApproveParams,
    ConfirmParams,
    DischargeParams,
    NoteParams,
    PauseParams,
    PrimeParams,
    ProgramParams,
    ReasonParams,
    ResumeParams,
    StartParams,
    StopParams,
    VitalsParams,
    Witness,
)
from .rpc import Code, RpcError
from .service import Call, Service
from .views import awaiting_approval, earliest_discharge_utc, pump_view


def _parsed(what: str, parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except InputError as exc:
        raise RpcError(Code.INVALID_PARAMS, f"{what}: {exc}", param=what) from None


def _order(dose: str | None, duration: str | None) -> Order:
    """The order; the duration is read alone first so a refusal names the field at fault."""
    if duration is not None:
        _parsed("duration", lambda: parse_order(None, duration))
    param = "dose" if dose is not None else "duration"
    return _parsed(param, lambda: parse_order(dose, duration))  # type: ignore[no-any-return]


def _patient(params: ProgramParams) -> Patient:
    """The patient; weight, then height, then sex are added one at a time so a refusal
    names the field at fault (a height without unit is not a weight problem)."""
    _parsed("weight", lambda: parse_patient(params.weight))
    if params.height is not None:
        _parsed("height", lambda: parse_patient(params.weight, params.height))
    patient: Patient = _parsed(
        "sex", lambda: parse_patient(params.weight, params.height, params.sex)
    )
    return patient


def _override(actor: Actor, reason: str | None, plan: Plan) -> Override | None:
    if reason is None or not plan.override.required:
        return None
    return Override(by=actor.name, reason=reason, codes=frozenset(plan.override.codes))


def _state(ctl: Controller) -> str | None:
    s = ctl.session
    return None if s is None else s.state.value


# -- reading ----------------------------------------------------------------------------


async def whoami(svc: Service, call: Call) -> Any:
    c = call.caller
    return {
        "user": c.user,
        "uid": c.uid,
        "groups": list(c.groups),
        "groups_source": c.groups_source,
        "roles": sorted(c.roles),
        "acting": call.acting.name,
        "acting_roles": sorted(call.acting.roles),
        "simulated": svc.ctx.simulated,
        "timezone": svc.ctx.timezone,
    }


async def pumps_list(svc: Service, call: Call) -> Any:
    out = []
    controllers = svc.ctx.controllers()
    unsupervised = svc.ctx.unsupervised()
    for pump_id, info in sorted(svc.ctx.pumps.items()):
        ctl = controllers.get(pump_id)
        st = None if ctl is None else ctl.status()
        out.append(
            {
                "pump_id": pump_id,
                "transport": info.transport,
                "address": info.address,
                "unit": info.unit,
                "reachable": False if st is None else st.reachable,
                "pump_state": None if st is None else st.pump_state,
                "session_state": None if st is None else st.session_state,
                "supervised": ctl is not None,
                "not_supervised_reason": None
                if ctl is not None
                else unsupervised.get(pump_id, "starting: pumpd is connecting to it"),
                "capabilities": None if ctl is None else ctl.capabilities.as_dict(),
            }
        )
    return out


async def status(svc: Service, call: Call) -> Any:
    pump: str | None = call.params.pump
    if pump is not None:
        views = [pump_view(svc.ctx, pump, svc.controller(pump))]
    else:
        views = [pump_view(svc.ctx, pid, ctl) for pid, ctl in sorted(svc.ctx.controllers().items())]
    if svc.ctx.forwarding is not None:
        # The site's forwarding to the central store, the same on every pump's view.
        forwarding = svc.ctx.forwarding()
        for view in views:
            view["forwarding"] = forwarding
    return views


async def alarms_list(svc: Service, call: Call) -> Any:
    out = []
    for pump_id, ctl in sorted(svc.ctx.controllers().items()):
        for a in ctl.status().alarms:
            out.append(
                {
                    "pump_id": pump_id,
                    "code": a.code,
                    "priority": a.priority,
                    "message": a.message,
                    "source": a.source,
                }
            )
    return out


async def protocols_list(svc: Service, call: Call) -> Any:
    return [
        {
            "protocol_id": e.protocol.id,
            "version": e.protocol.version,
            "name": e.protocol.title,
            "drug": e.protocol.drug,
            "status": "released" if e.released else "unreleased",
            "sha256": e.sha256,
        }
        for e in svc.ctx.library
    ]


async def checklist(svc: Service, call: Call) -> Any:
    ctl = svc.controller(call.params.pump)
    s = ctl.session
    if s is None:
        raise RpcError(Code.NO_SESSION, f"pump {call.params.pump} has no session")
    items = [
        {"id": code_of(t), "text": t, "computed": t == DISCHARGE_VITALS_ITEM}
        for t in s.protocol.protocol.discharge_checklist
    ]
    earliest = earliest_discharge_utc(ctl)
    return {
        "items": items,
        "earliest_discharge_at": None if earliest is None else earliest.isoformat(),
    }


# -- programming ------------------------------------------------------------------------


def _plan_inputs(
    svc: Service, params: ProgramParams
) -> tuple[LoadedProtocol, Patient, Order, Plan]:
    proto = svc.protocol(params.protocol, params.version)
    draft = protocol_released(proto.protocol.key, proto.released, svc.ctx.simulated)
    if draft:
        raise RpcError(
            Code.REFUSED,
            "program refused: " + draft[0].message,
            trigger="program",
            verdicts=[v.as_dict() for v in draft],
        )
    patient = _patient(params)
    order = _order(params.dose, params.duration)
    plan = compute_plan(proto.protocol, patient, order)
    return proto, patient, order, plan


def _verdicts(verdicts: tuple[Verdict, ...]) -> list[dict[str, str]]:
    return [v.as_dict() for v in verdicts]


async def session_plan(svc: Service, call: Call) -> Any:
    params: ProgramParams = call.params
    svc.controller(params.pump)
    proto, _, _, plan = _plan_inputs(svc, params)
    return {
        "protocol_sha256": proto.sha256,
        "plan": plan.as_dict(),
        "verdicts": _verdicts(plan.verdicts),
        "refused": plan.refused,
    }


async def session_program(svc: Service, call: Call) -> Any:
    params: ProgramParams = call.params
    ctl = svc.controller(params.pump)
    refuse_while_unavailable(svc.ctx.writer, "program")
    proto, patient, order, plan = _plan_inputs(svc, params)
    session_id = f"S-{secrets.token_hex(6)}"
    prior = await asyncio.to_thread(prior_sessions, svc.ctx.engine, params.patient_ref, session_id)
    await ctl.program(
        by=call.actor,
        session_id=session_id,
        patient_ref=params.patient_ref,
        protocol=proto,
        patient=patient,
        order=order,
        override=_override(call.actor, params.override_reason, plan),
        prior_sessions=prior,
    )
    s = ctl.session
    assert s is not None
    svc.programmed_from_uid[s.data.session_id] = call.caller.uid
    return {
        "session_id": s.data.session_id,
        "state": s.state.value,
        "plan": s.plan.as_dict(),
        "verdicts": _verdicts(s.plan.verdicts),
        "awaiting_approval": awaiting_approval(ctl),
    }


def _same_account(svc: Service, call: Call, session_id: str) -> bool:
    """True unless the programming account is known and is not the caller's."""
    uid = svc.programmed_from_uid.get(session_id)
    return uid is None or uid == call.caller.uid


async def _second_person(
    svc: Service, call: Call, witness: Witness | None, first_uid: int | None, what: str
) -> Actor:
    """Who the second person is: the witness (id and PIN checked here, at the caller's
    account) if one is given, else the acting person; from the account the first person
    used (or when that account is not known, e.g. after a restart) only a PIN-verified
    person counts."""
    if witness is not None:
        member = await svc.check_pin(call, witness.staff_id, witness.pin)
        if member.role != "nurse":
            raise RpcError(
                Code.FORBIDDEN,
                f"witness {member.staff_id} has role {member.role}; {what} needs a nurse",
            )
        checker = Actor.staff(member.staff_id, member.role, call.caller.uid)
        call.note = f"witness {checker.name}"
        return checker
    if not call.acting.pin_verified and (first_uid is None or first_uid == call.caller.uid):
        trigger = "confirm" if what == "a double-check" else "approve"
        message = (
            "The double-check came from the account that programmed the order; a second "
            "nurse must confirm from their own account, or here with their staff id and "
            "PIN (--witness)."
            if trigger == "confirm"
            else "The approval came from the account of the nurse who gave the override "
            "reason; a second nurse must approve from their own account, or here with their "
            "staff id and PIN (--witness)."
        )
        verdict = Verdict(
            "double_check.same_account",
            Severity.HARD,
            message,
            "control.double_check.account",
        )
        raise RpcError(
            Code.REFUSED,
            f"{trigger} refused: " + verdict.message,
            trigger=trigger,
            verdicts=[verdict.as_dict()],
        )
    return call.actor


async def session_confirm(svc: Service, call: Call) -> Any:
    """The double-check, and with ``approve_override`` the approval of the order's
    override by the same second person."""
    params: ConfirmParams = call.params
    ctl = svc.controller(params.pump)
    s = ctl.session
    if s is None:
        raise RpcError(Code.NO_SESSION, f"pump {params.pump} has no session")
    first_uid = svc.programmed_from_uid.get(s.data.session_id)
    checker = await _second_person(svc, call, params.witness, first_uid, "a double-check")
    await ctl.confirm(
        by=checker,
        weight=params.weight,
        approve_override=params.approve_override,
        shown=params.shown,
    )
    answer: dict[str, Any] = {"state": _state(ctl), "checker": checker.name}
    if params.approve_override:
        answer["override_approved_by"] = checker.name
    return answer


async def session_approve(svc: Service, call: Call) -> Any:
    """A second person approves the override holding back an adjustment or a start."""
    params: ApproveParams = call.params
    ctl = svc.controller(params.pump)
    s = ctl.session
    if s is None:
        raise RpcError(Code.NO_SESSION, f"pump {params.pump} has no session")
    refuse_while_unavailable(svc.ctx.writer, "approve")
    first_uid = svc.override_from_uid.get(s.data.session_id)
    approver = await _second_person(svc, call, params.witness, first_uid, "an approval")
    prior = []
    if s.data.pending_start_override is not None:
        prior = await asyncio.to_thread(
            prior_sessions, svc.ctx.engine, s.data.patient_ref, s.data.session_id
        )
    await ctl.approve(by=approver, prior_sessions=prior, shown=params.shown)
    svc.override_from_uid.pop(s.data.session_id, None)
    return {"state": _state(ctl), "approved_by": approver.name}


async def session_prime(svc: Service, call: Call) -> Any:
    params: PrimeParams = call.params
    ctl = svc.controller(params.pump)
    refuse_while_unavailable(svc.ctx.writer, "prime")
    await ctl.prime(by=call.actor, line_disconnected=params.line_disconnected)
    return {"state": _state(ctl)}


async def session_start(svc: Service, call: Call) -> Any:
    params: StartParams = call.params
    ctl = svc.controller(params.pump)
    refuse_while_unavailable(svc.ctx.writer, "start")
    s = ctl.session
    prior = []
    if s is not None:
        prior = await asyncio.to_thread(
            prior_sessions, svc.ctx.engine, s.data.patient_ref, s.data.session_id
        )
    await ctl.start(
        by=call.actor,
        prior_sessions=prior,
        primed_confirmed=params.primed_by_hand,
        override_reason=params.override_reason,
    )
    return {"state": _state(ctl), "awaiting_approval": _awaiting(svc, call, ctl)}


def _awaiting(svc: Service, call: Call, ctl: Controller) -> dict[str, Any] | None:
    """What now waits for a second person (remembering whose account asked for it)."""
    s = ctl.session
    waiting = awaiting_approval(ctl)
    if s is not None and waiting is not None and waiting["what"] != "order":
        svc.override_from_uid[s.data.session_id] = call.caller.uid
    return waiting


def _where(ctl: Controller) -> dict[str, Any]:
    """Whose infusion a halt or a continuation touched and how far it had got, so the
    answer names the patient and a wrong chair number is noticed at once."""
    s = ctl.session
    return {
        "state": _state(ctl),
        "patient_ref": None if s is None else s.data.patient_ref,
        "delivered_ul": ctl.delivered_ul(),
        "vtbi_ul": None if s is None else s.plan.vtbi_ul,
    }


async def session_pause(svc: Service, call: Call) -> Any:
    params: PauseParams = call.params
    ctl = svc.controller(params.pump)
    call.note = params.reason
    await ctl.pause(by=call.actor, reason=params.reason)
    return _where(ctl)


async def session_resume(svc: Service, call: Call) -> Any:
    params: ResumeParams = call.params
    ctl = svc.controller(params.pump)
    refuse_while_unavailable(svc.ctx.writer, "resume")
    step = await ctl.resume(by=call.actor, reason=params.reason)
    out = _where(ctl)
    s = ctl.session
    if step.source is State.STOPPED and s is not None and s.data.last_continuation is not None:
        out["continued"] = {
            "remaining_ul": s.data.last_continuation.remaining_ul,
            "interrupted_by": list(s.data.last_continuation.interrupted_by),
            "rule": "continue",
        }
    return out


async def session_end(svc: Service, call: Call) -> Any:
    params: ReasonParams = call.params
    ctl = svc.controller(params.pump)
    await ctl.end(by=call.actor, reason=params.reason)
    return _where(ctl)


async def session_adjust(svc: Service, call: Call) -> Any:
    params: AdjustParams = call.params
    ctl = svc.controller(params.pump)
    s = ctl.session
    if s is None:
        raise RpcError(Code.NO_SESSION, f"pump {params.pump} has no session")
    order = _order(params.dose, params.duration)
    override = None
    if params.override_reason is not None:
        preview = compute_plan(s.protocol.protocol, s.data.patient.patient(), order)
        override = _override(call.actor, params.override_reason, preview)
    plan = await ctl.adjust(by=call.actor, reason=params.reason, order=order, override=override)
    return {
        "state": _state(ctl),
        "plan": plan.as_dict(),
        "verdicts": _verdicts(plan.verdicts),
        "awaiting_approval": _awaiting(svc, call, ctl),
    }


async def session_adjust_confirm(svc: Service, call: Call) -> Any:
    ctl = svc.controller(call.params.pump)
    await ctl.confirm_adjust(by=call.actor)
    s = ctl.session
    return {"state": _state(ctl), "plan": None if s is None else s.plan.as_dict()}


async def session_adjust_cancel(svc: Service, call: Call) -> Any:
    ctl = svc.controller(call.params.pump)
    await ctl.cancel_adjust(by=call.actor)
    return {"state": _state(ctl)}


async def session_stop(svc: Service, call: Call) -> Any:
    params: StopParams = call.params
    ctl = svc.controller(params.pump)
    await ctl.stop(by=call.actor, reason=params.reason)
    return _where(ctl)


async def session_acknowledge(svc: Service, call: Call) -> Any:
    params: AckParams = call.params
    ctl = svc.controller(params.pump)
    await ctl.acknowledge(by=call.actor, note=params.note, seen=params.alarms)
    return {"state": _state(ctl)}


async def session_vitals(svc: Service, call: Call) -> Any:
    params: VitalsParams = call.params
    ctl = svc.controller(params.pump)
    systolic = diastolic = None
    if params.bp is not None:
        systolic, diastolic = (int(x) for x in params.bp.split("/"))
    try:
        reading = VitalsReading(
            taken_at=svc.ctx.clock.now_utc(),
            systolic_mmhg=systolic,
            diastolic_mmhg=diastolic,
            heart_rate_bpm=params.hr,
            spo2_percent=params.spo2,
            resp_rate_per_min=params.rr,
        )
    except ValueError as exc:
        raise RpcError(Code.INVALID_PARAMS, f"vitals: {exc}", param="vitals") from None
    await ctl.vitals(by=call.actor, reading=reading)
    s = ctl.session
    verdicts: list[dict[str, str]] = []
    if s is not None:
        if not s.data.start_commanded:
            stage = EntryStage.BEFORE_START
        elif s.phase() in (SessionPhase.INFUSING, SessionPhase.KVO):
            stage = EntryStage.DELIVERING
        else:
            stage = EntryStage.NOT_DELIVERING
        verdicts = _verdicts(entry_verdicts(s.protocol.protocol.vitals, reading, stage))
    return {"state": _state(ctl), "verdicts": verdicts}


async def session_note(svc: Service, call: Call) -> Any:
    params: NoteParams = call.params
    ctl = svc.controller(params.pump)
    await ctl.note(by=call.actor, text=params.text)
    return {}


async def session_observe(svc: Service, call: Call) -> Any:
    ctl = svc.controller(call.params.pump)
    await ctl.observe(by=call.actor)
    return {"state": _state(ctl)}


async def session_discharge(svc: Service, call: Call) -> Any:
    """Checklist items are given by id (``session.checklist``) or by their exact text."""
    params: DischargeParams = call.params
    ctl = svc.controller(params.pump)
    s = ctl.session
    if s is None:
        raise RpcError(Code.NO_SESSION, f"pump {params.pump} has no session")
    if params.gates_only:
        gates = await ctl.discharge_gates()
        if gates:
            raise RpcError(
                Code.REFUSED,
                "discharge refused: " + " ".join(v.message for v in gates),
                trigger="discharge",
                verdicts=[v.as_dict() for v in gates],
            )
        return {"state": _state(ctl), "gates": "passed"}
    by_id = {code_of(t): t for t in s.protocol.protocol.discharge_checklist}
    texts = set(by_id.values())
    confirmed = []
    for item in params.confirmed:
        if item in by_id:
            confirmed.append(by_id[item])
        elif item in texts:
            confirmed.append(item)
        else:
            raise RpcError(
                Code.INVALID_PARAMS,
                f"confirmed: {item[:60]!r} is not an item of this checklist",
                param="confirmed",
            )
    await ctl.discharge(by=call.actor, checklist_confirmed=confirmed)
    return {"state": _state(ctl)}


async def session_abort(svc: Service, call: Call) -> Any:
    params: ReasonParams = call.params
    ctl = svc.controller(params.pump)
    await ctl.abort(by=call.actor, reason=params.reason)
    state = _state(ctl)
    if state == State.ABORTED.value and ctl.session is not None:
        svc.programmed_from_uid.pop(ctl.session.data.session_id, None)
    return {"state": state}
