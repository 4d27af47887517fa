"""The auditors' questions, answered from the events alone and streamed.

Sessions are not stored anywhere: they are folded from their events (programmed, started,
completed or stopped, alarms, overrides, double checks), so the answer can never disagree
with the log. Every query reads the ``audit_events`` view (the auditor role's grant) and
walks results with a server-side cursor in batches, so a million rows never sit in memory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from pumpd.audit.chain import COLUMNS, EventRecord
from pumpd.audit.schema import READ_VIEW
from pumpd.audit.store import utc_text

_BATCH = 2000
_SESSION_CHUNK = 500
_END_TYPES = ("infusion.completed", "session.stopped")


class QueryInputError(ValueError):
    """A filter value that cannot be understood (bad time, empty id)."""


def parse_time(text: str) -> str:
    """A user's date or date-time as the stored UTC text; no zone given means UTC."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryInputError(
            f"cannot read time {text!r}; use ISO 8601, e.g. 2026-11-22 or 2026-11-22T08:30Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return utc_text(moment)


@dataclass(frozen=True, slots=True)
class EventFilter:
    session: str | None = None
    pump: str | None = None
    patient: str | None = None
    actor: str | None = None
    event_type: str | None = None
    """An exact type, or a prefix ending in ``.*`` (``pump.command.*``)."""
    since: str | None = None
    until: str | None = None


class _Sql:
    """Builds parameterised SQL for either paramstyle (sqlite ``?``, psycopg ``%(p)s``)."""

    def __init__(self, conn: Connection) -> None:
        self._qmark = conn.dialect.paramstyle == "qmark"
        self.params: list[Any] = []
        self.named: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        if self._qmark:
            self.params.append(value)
            return "?"
        name = f"p{len(self.named)}"
        self.named[name] = value
        return f"%({name})s"

    def args(self) -> Any:
        return tuple(self.params) if self._qmark else self.named


def _record(row: Sequence[Any]) -> EventRecord:
    values = list(row)
    values[14] = bool(values[14])
    return EventRecord(*values)


def _stream(conn: Connection, sql: str, args: Any) -> Iterator[Sequence[Any]]:
    result = conn.execution_options(stream_results=True, yield_per=_BATCH).exec_driver_sql(
        sql, args
    )
    for part in result.partitions():
        yield from part


def iter_events(conn: Connection, flt: EventFilter) -> Iterator[EventRecord]:
    q = _Sql(conn)
    sql = f"SELECT {', '.join(COLUMNS)} FROM {READ_VIEW}{_where(q, flt)} ORDER BY seq"  # noqa: S608
    for row in _stream(conn, sql, q.args()):
        yield _record(row)


def newest_event(conn: Connection, flt: EventFilter) -> EventRecord | None:
    """The matching event with the highest seq, or None: one row read backwards along the
    index, however long the log (a restart's recovery asks for each pump's newest
    checkpoint; walking all of them made every start-up slower than the last)."""
    q = _Sql(conn)
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {READ_VIEW}{_where(q, flt)} "  # noqa: S608
        "ORDER BY seq DESC LIMIT 1"
    )
    row = conn.exec_driver_sql(sql, q.args()).first()
    return None if row is None else _record(row)


def _where(q: _Sql, flt: EventFilter) -> str:
    where: list[str] = []
    for column, value in (
        ("session_id", flt.session),
        ("pump_id", flt.pump),
        ("patient_ref", flt.patient),
        ("actor_name", flt.actor),
    ):
        if value is not None:
            where.append(f"{column} = {q.bind(value)}")
    if flt.event_type is not None:
        if flt.event_type.endswith(".*"):
            prefix = flt.event_type[:-1]
            where.append(f"event_type >= {q.bind(prefix)} AND event_type < {q.bind(prefix + '~')}")
        else:
            where.append(f"event_type = {q.bind(flt.event_type)}")
    if flt.since is not None:
        where.append(f"occurred_at >= {q.bind(flt.since)}")
    if flt.until is not None:
        where.append(f"occurred_at < {q.bind(flt.until)}")
    return f" WHERE {' AND '.join(where)}" if where else ""


@dataclass
class SessionSummary:
    """One session as folded from its events."""

    session_id: str
    patient_ref: str | None = None
    pump_id: str | None = None
    protocol_id: str | None = None
    protocol_version: str | None = None
    prescribed_dose_mg: Decimal | None = None
    rate_ml_h: Decimal | None = None
    planned_volume_ul: int | None = None
    programmed_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    outcome: str = "programmed"
    delivered_volume_ul: int | None = None
    delivered_dose_mg: Decimal | None = None
    alarms: Counter[str] = field(default_factory=Counter)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    nurses: set[str] = field(default_factory=set)
    simulated: bool = False
    events: int = 0

    @property
    def protocol(self) -> str:
        if self.protocol_id is None:
            return ""
        return f"{self.protocol_id}@{self.protocol_version}"

    def fold(self, event: EventRecord) -> None:
        payload: dict[str, Any] = json.loads(event.payload)
        self.events += 1
        self.simulated = self.simulated or event.simulated
        self.patient_ref = self.patient_ref or event.patient_ref
        self.pump_id = self.pump_id or event.pump_id
        if event.actor_kind == "person":
            self.nurses.add(event.actor_name)
        kind = event.event_type
        if kind == "session.programmed" and self.programmed_at is None:
            self.programmed_at = event.occurred_at
            self.protocol_id = payload["protocol_id"]
            self.protocol_version = payload["protocol_version"]
            self.prescribed_dose_mg = Decimal(payload["prescribed_dose_mg"])
            self.rate_ml_h = Decimal(payload["rate_ml_h"])
            self.planned_volume_ul = int(payload["volume_ul"])
        elif kind == "session.started":
            self.started_at = self.started_at or event.occurred_at
            self.outcome = "running"
        elif kind in _END_TYPES:
            self.ended_at = event.occurred_at
            if kind == "infusion.completed":
                self.outcome = "completed"
            elif payload.get("reason_code") == "abort" and self.started_at is None:
                self.outcome = "aborted"  # closed before any start: nothing was infused
            else:
                self.outcome = "stopped"
            self.delivered_volume_ul = int(payload["delivered_volume_ul"])
            self.delivered_dose_mg = Decimal(payload["delivered_dose_mg"])
        elif kind == "alarm.raised":
            self.alarms[payload["alarm_code"]] += 1
        elif kind == "override.granted":
            self.overrides.append(
                {
                    "seq": event.seq,
                    "reason_code": payload["reason_code"],
                    "reason": payload["reason"],
                    "approved_by": payload["approved_by"],
                    "witness": payload.get("witness"),
                    "verdict_codes": payload["verdict_codes"],
                    "verdicts": payload.get("verdicts") or [],
                }
            )
            self.nurses.add(payload["approved_by"])
            if "witness" in payload:
                self.nurses.add(payload["witness"])
        elif kind == "double_check.completed":
            self.nurses.update((payload["first_checker"], payload["second_checker"]))

    def as_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "patient_ref": self.patient_ref,
            "pump_id": self.pump_id,
            "protocol": self.protocol,
            "prescribed_dose_mg": _dec(self.prescribed_dose_mg),
            "rate_ml_h": _dec(self.rate_ml_h),
            "planned_volume_ul": self.planned_volume_ul,
            "programmed_at": self.programmed_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "delivered_volume_ul": self.delivered_volume_ul,
            "delivered_dose_mg": _dec(self.delivered_dose_mg),
            "alarms": sum(self.alarms.values()),
            "alarms_by_code": dict(sorted(self.alarms.items())),
            "overrides": self.overrides,
            "nurses": sorted(self.nurses),
            "simulated": self.simulated,
        }


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _programmed(
    conn: Connection, since: str | None, until: str | None, patient: str | None
) -> Iterator[tuple[str, str]]:
    """(session_id, programmed_at) of first programming events, in time order."""
    q = _Sql(conn)
    where = [f"event_type = {q.bind('session.programmed')}"]
    if since is not None:
        where.append(f"occurred_at >= {q.bind(since)}")
    if until is not None:
        where.append(f"occurred_at < {q.bind(until)}")
    if patient is not None:
        where.append(f"patient_ref = {q.bind(patient)}")
    sql = (
        f"SELECT session_id, occurred_at FROM {READ_VIEW} "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY occurred_at, seq"
    )
    seen: set[str] = set()
    for session_id, at in _stream(conn, sql, q.args()):
        if session_id not in seen:  # a re-programmed session is listed once
            seen.add(session_id)
            yield session_id, at


_SUMMARY_TYPES = (
    "session.programmed",
    "session.started",
    *_END_TYPES,
    "alarm.raised",
    "override.granted",
    "double_check.completed",
)
"""The event types a session summary reads; of the rest only the person actors count."""


def _session_events(conn: Connection, ids: Sequence[str]) -> Iterator[EventRecord]:
    """The events of these sessions that change their summaries, in seq order.

    Daemon-written routine events (vitals every minute, command results) are most of a
    session and change nothing in its summary, so they are not fetched at all.
    """
    q = _Sql(conn)
    marks = ", ".join(q.bind(i) for i in ids)
    types = ", ".join(q.bind(t) for t in _SUMMARY_TYPES)
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {READ_VIEW} "  # noqa: S608
        f"WHERE session_id IN ({marks}) "
        f"AND (event_type IN ({types}) OR actor_kind = {q.bind('person')})"
    )
    rows = sorted(conn.exec_driver_sql(sql, q.args()), key=lambda r: int(r[0]))
    for row in rows:
        yield _record(row)


def iter_sessions(
    conn: Connection,
    *,
    since: str | None = None,
    until: str | None = None,
    patient: str | None = None,
) -> Iterator[SessionSummary]:
    """Sessions first programmed in [since, until), oldest first, in chunks of 500."""
    chunk: list[str] = []
    programmed = _programmed(conn, since, until, patient)
    while True:
        chunk.clear()
        for session_id, _at in programmed:
            chunk.append(session_id)
            if len(chunk) == _SESSION_CHUNK:
                break
        if not chunk:
            return
        summaries = {sid: SessionSummary(session_id=sid) for sid in chunk}
        for event in _session_events(conn, chunk):
            summaries[event.session_id or ""].fold(event)
        yield from summaries.values()
        if len(chunk) < _SESSION_CHUNK:
            return


def session_timeline(conn: Connection, session_id: str) -> tuple[SessionSummary, list[EventRecord]]:
    """The session's summary and every event that names it, in order."""
    summary = SessionSummary(session_id=session_id)
    events = list(iter_events(conn, EventFilter(session=session_id)))
    for event in events:
        summary.fold(event)
    return summary, events


@dataclass(frozen=True, slots=True)
class CourseEntry:
    number: int
    summary: SessionSummary
    cumulative_dose_mg: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "date": (self.summary.programmed_at or "")[:10],
            "cumulative_dose_mg": format(self.cumulative_dose_mg, "f"),
            **self.summary.as_json(),
        }


def patient_course(conn: Connection, patient_ref: str) -> Iterator[CourseEntry]:
    """Each session of one patient, numbered in the series, with the cumulative dose."""
    total = Decimal(0)
    for number, summary in enumerate(iter_sessions(conn, patient=patient_ref), start=1):
        total += summary.delivered_dose_mg or Decimal(0)
        yield CourseEntry(number=number, summary=summary, cumulative_dose_mg=total)


@dataclass
class Report:
    """Counts for a period: sessions by outcome, alarms by code, overrides, per nurse."""

    since: str | None
    until: str | None
    sessions_by_outcome: Counter[str] = field(default_factory=Counter)
    delivered_dose_mg: Decimal = Decimal(0)
    alarms_by_code: Counter[str] = field(default_factory=Counter)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    per_nurse: dict[str, Counter[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "sessions": sum(self.sessions_by_outcome.values()),
            "sessions_by_outcome": dict(sorted(self.sessions_by_outcome.items())),
            "delivered_dose_mg": format(self.delivered_dose_mg, "f"),
            "alarms_by_code": dict(sorted(self.alarms_by_code.items())),
            "overrides": self.overrides,
            "per_nurse": {n: dict(sorted(c.items())) for n, c in sorted(self.per_nurse.items())},
        }


def build_report(conn: Connection, since: str | None, until: str | None) -> Report:
    """Sessions programmed in the period; alarms and overrides raised in it; nurse activity."""
    report = Report(since=since, until=until)
    for summary in iter_sessions(conn, since=since, until=until):
        report.sessions_by_outcome[summary.outcome] += 1
        report.delivered_dose_mg += summary.delivered_dose_mg or Decimal(0)
        for name in summary.nurses:
            report.per_nurse.setdefault(name, Counter())["sessions"] += 1
    for event in iter_events(conn, EventFilter(since=since, until=until)):
        nurse = event.actor_name if event.actor_kind == "person" else None
        if event.event_type == "alarm.raised":
            report.alarms_by_code[json.loads(event.payload)["alarm_code"]] += 1
        elif event.event_type == "override.granted":
            payload = json.loads(event.payload)
            report.overrides.append(
                {
                    "seq": event.seq,
                    "occurred_at": event.occurred_at,
                    "session_id": event.session_id,
                    "recorded_by": event.actor_name,
                    "approved_by": payload["approved_by"],
                    "witness": payload.get("witness"),
                    "verdict_codes": payload["verdict_codes"],
                    "reason_code": payload["reason_code"],
                    "reason": payload["reason"],
                }
            )
        if nurse is not None:
            report.per_nurse.setdefault(nurse, Counter())[event.event_type] += 1
    return report
