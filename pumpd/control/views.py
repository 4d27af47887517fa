"""What a nurse sees of one pump (``PumpView``), computed from the controller's status and
the session: progress in µL and mg, flow and dose rate, time remaining, vitals due.

Decimals travel as strings, volumes as integer µL (docs/control-socket.md). Nothing here
decides anything: figures for the screen, from the same numbers the kernel is given.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pumpd.clinictime import iso_utc
from pumpd.controller import Controller
from pumpd.session import Session, State
from pumpd.session.states import TERMINAL
from safety.plan import dose_in_volume_mg

from .context import ControlContext

_VITALS_WATCHED = frozenset(
    {State.INFUSING, State.PAUSED, State.ADJUSTING, State.COMPLETE, State.KVO, State.OBSERVATION}
)
_FLOWING = frozenset({State.INFUSING, State.ADJUSTING})


def _dec(value: Decimal | None, places: int = 3) -> str | None:
    if value is None:
        return None
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def pump_view(ctx: ControlContext, pump_id: str, ctl: Controller) -> dict[str, Any]:
    st = ctl.status()
    s = ctl.session
    now = ctx.clock.now_utc()
    view: dict[str, Any] = {
        "pump_id": pump_id,
        "reachable": st.reachable,
        "pump_state": st.pump_state,
        "session_id": st.session_id,
        "session_state": st.session_state,
        "patient_ref": None,
        "protocol_id": None,
        "protocol_version": None,
        "drug": None,
        "concentration_mg_ml": None,
        "delivered_ul": st.delivered_ul,
        "expected_ul": st.expected_ul,
        "vtbi_ul": st.vtbi_ul,
        "delivered_mg": None,
        "prescribed_mg": None,
        "rate_ml_h": st.rate_ml_h,
        "dose_rate_mg_h": None,
        "dose_rate_mg_kg_h": None,
        "remaining_s": None,
        "alarms": [
            {"code": a.code, "priority": a.priority, "message": a.message, "source": a.source}
            for a in st.alarms
        ],
        "reminders": list(st.reminders),
        "vitals_due_in_s": None,
        "pause_auto_stop_at": None,
        "vitals_due_at": None,
        "earliest_discharge_at": None,
        "as_of": iso_utc(now),
        "timezone": ctx.timezone,
        "audit_backlog": st.audit_backlog,
        "audit_notices": list(ctx.audit_notices()),
        "simulated": ctx.simulated,
        "awaiting_approval": awaiting_approval(ctl),
        "delivery_ended": None,
    }
    if s is None:
        return view
    view["delivery_ended"] = delivery_ended(s)
    plan = s.plan
    proto = s.protocol.protocol
    conc = plan.concentration_mg_per_ml
    rate = Decimal(st.rate_ml_h) if st.rate_ml_h is not None else None
    view.update(
        patient_ref=s.data.patient_ref,
        protocol_id=proto.id,
        protocol_version=proto.version,
        drug=proto.drug,
        concentration_mg_ml=_dec(conc, 4),
        delivered_mg=_dec(dose_in_volume_mg(st.delivered_ul, conc)),
        prescribed_mg=_dec(plan.dose_mg),
        dose_rate_mg_h=None if rate is None else _dec(rate * conc),
        dose_rate_mg_kg_h=None if rate is None else _dec(rate * conc / plan.dosing_weight_kg),
    )
    if s.state in _FLOWING and rate is not None and rate > 0 and st.vtbi_ul is not None:
        left_ul = max(0, st.vtbi_ul - st.delivered_ul)
        view["remaining_s"] = int(Decimal(left_ul) / 1000 / rate * 3600)
    if s.state in _VITALS_WATCHED:
        due_in = vitals_due_in_s(ctx, ctl)
        view["vitals_due_in_s"] = due_in
        if due_in is not None:
            view["vitals_due_at"] = iso_utc(now + dt.timedelta(seconds=due_in))
    stop_mono = ctl.pause_auto_stop_mono_s()
    if stop_mono is not None:
        stop_in_s = stop_mono - ctx.clock.monotonic()
        view["pause_auto_stop_at"] = iso_utc(now + dt.timedelta(seconds=stop_in_s))
    earliest = earliest_discharge_utc(ctl)
    observed = s.state is State.OBSERVATION or view["delivery_ended"] is not None
    if earliest is not None and observed and s.state not in TERMINAL:
        view["earliest_discharge_at"] = iso_utc(_up_to_second(earliest))
    return view


def delivery_ended(s: Session) -> dict[str, Any] | None:
    """Why the session ended by itself (the kernel's rule, its sentence, the alarms that
    caused it) and when the observation started; None when it did not. Shown also while
    the alarm is latched on top (ALARM): the observation runs under it."""
    d = s.data
    if d.end_rule is None or d.observation_started_at is None:
        return None
    return {
        "rule": d.end_rule,
        "reason": d.end_reason,
        "interrupted_by": list(d.interrupted_by),
        "observation_started_at": iso_utc(d.observation_started_at.utc),
    }


def _up_to_second(moment: dt.datetime) -> dt.datetime:
    """A "not before" time to the whole second, rounded up (never earlier than the rule)."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + dt.timedelta(seconds=1)
    return moment


def awaiting_approval(ctl: Controller) -> dict[str, Any] | None:
    """The override that waits for a second person: what it holds back (the order, an
    adjustment, a start), who gave the reason and why, and each soft verdict with its
    value and limit. None when nothing waits."""
    s = ctl.session
    waiting = None if s is None else s.awaiting_approval()
    if waiting is None:
        return None
    what, record, verdicts = waiting
    return {
        "what": what,
        "requested_by": record.by,
        "reason": record.reason,
        "verdicts": [v.as_dict() for v in verdicts],
    }


def vitals_due_in_s(ctx: ControlContext, ctl: Controller) -> int | None:
    """Seconds until the protocol's next vitals entry is due (negative: overdue)."""
    s = ctl.session
    if s is None or s.data.last_vitals is None:
        return None
    last = s.data.last_vitals.at
    interval_s = s.protocol.protocol.vitals.interval_min * 60
    return int(last.mono_s + interval_s - ctx.clock.monotonic())


def earliest_discharge_utc(ctl: Controller) -> dt.datetime | None:
    s = ctl.session
    if s is None or s.data.observation_started_at is None:
        return None
    minutes = s.protocol.protocol.observation_min
    return s.data.observation_started_at.utc + dt.timedelta(minutes=minutes)
