"""A patient's earlier sessions from the audit log, as the kernel's course rules need them.

An infusion is judged against the series (interval, sessions per window, cumulative dose;
``safety.course``) when it is programmed, so a nurse learns it before the drug is primed,
and again at its start. The audit log is the only record of that series, so the socket
reads it before both. The cumulative mg/kg divides each session's dose by that session's
own dosing weight. A session that started but has no recorded
end counts with its prescribed dose (the most it can have given) as not completed.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import sqlalchemy as sa

from pumpd.audit import EventFilter, iter_events, patient_course
from pumpd.db import reader
from safety.course import Outcome, PriorSession


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def prior_sessions(engine: sa.Engine, patient_ref: str, current: str) -> list[PriorSession]:
    """Every started session of ``patient_ref`` except ``current``, oldest first (one
    read-only transaction: the audit writer never waits for it)."""
    out: list[PriorSession] = []
    with reader(engine).connect() as conn:
        entries = [e.summary for e in patient_course(conn, patient_ref)]
        for summary in entries:
            if summary.session_id == current or summary.started_at is None:
                continue
            dose = summary.delivered_dose_mg
            if dose is None:
                dose = summary.prescribed_dose_mg or Decimal(0)
            weight = _weight_kg(conn, summary.session_id)
            per_kg = (dose / weight).quantize(Decimal("0.0001")) if weight else Decimal(0)
            out.append(
                PriorSession(
                    started_at=_utc(summary.started_at),
                    dose_mg=dose,
                    dose_mg_per_kg=per_kg,
                    outcome=Outcome.COMPLETED
                    if summary.outcome == "completed"
                    else Outcome.ABORTED,
                )
            )
    return out


def _weight_kg(conn: sa.Connection, session_id: str) -> Decimal | None:
    """The session's dosing weight: the one its per-kg dose was multiplied by (ideal or
    adjusted body weight where the protocol says so), from the programming in effect (the
    last one). Events written before the dosing weight was recorded give the actual
    weight, which is the dosing weight of every protocol dosed on actual weight."""
    found: Decimal | None = None
    flt = EventFilter(session=session_id, event_type="session.programmed")
    for event in iter_events(conn, flt):
        payload = json.loads(event.payload)
        weight = payload.get("dosing_weight_kg") or payload.get("weight_kg")
        if weight is not None:
            found = Decimal(str(weight))
    return found
