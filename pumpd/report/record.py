"""One session gathered from the audit log into typed records, ready to draw or to map.

The sources, all events of the session (``pumpaudit show`` reads the same ones):
``session.programmed`` the plan; ``session.checkpointed`` the volume accounting over time
(the pump's counter and the independent expected volume); pause, resume, adjustment,
completion and stop events the volume at those moments; ``pump.command.confirmed`` the
rate the pump reported for each command; ``alarm.*``, ``note.recorded``,
``vitals.recorded``; and the people from every event that names one. The chain is verified
when the record is gathered, so the report states what was true when it was made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine

from pumpd.audit import (
    DAEMON_NAME,
    EventFilter,
    EventRecord,
    Hasher,
    iter_events,
    session_timeline,
    verify,
)
from pumpd.controller import CheckpointAccounting, CheckpointRecord, CheckpointUnreadable
from pumpd.db import reader
from pumpd.protocols import Library, LoadedProtocol, ProtocolFileError, load_library
from pumpd.report.localtime import parse_utc
from pumpd.report.model import (
    AlarmRecord,
    ChainCheck,
    DeviceInfo,
    Mark,
    MarkKind,
    NoteRecord,
    PauseRecord,
    PersonRole,
    Plan,
    RateStep,
    SessionRecord,
    VitalsSet,
    VolumeSample,
)

PATIENT_SYSTEM = "urn:pumpd:patient-ref"
"""Default identifier system of the pseudonymous patient reference in the FHIR record; a
clinic passes its own (``pumpaudit fhir --patient-system``) so its EHR can match it."""


class NoSuchSession(LookupError):
    """The audit log holds no events, or no programming, for this session id."""


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _payload(event: EventRecord) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(event.payload)
    return loaded


def _plan(payload: dict[str, Any]) -> Plan:
    return Plan(
        protocol_id=payload["protocol_id"],
        protocol_version=str(payload["protocol_version"]),
        protocol_sha256=payload["protocol_sha256"],
        drug=payload["drug"],
        concentration_mg_ml=Decimal(payload["concentration_mg_ml"]),
        weight_kg=Decimal(payload["weight_kg"]),
        weight_basis=payload["weight_basis"],
        dose_mg_kg=Decimal(payload["dose_mg_kg"]),
        prescribed_dose_mg=Decimal(payload["prescribed_dose_mg"]),
        rate_ml_h=Decimal(payload["rate_ml_h"]),
        volume_ul=int(payload["volume_ul"]),
        duration_s=int(payload["duration_s"]),
        order_ref=payload.get("order_ref"),
    )


def _delivered(accounting: CheckpointAccounting) -> int | None:
    """The session's delivered volume by the pump's counter, as the controller counts it."""
    if accounting.pump is None:
        return None
    if accounting.account is None:
        return 0  # before the start: nothing of this session delivered yet
    return accounting.pump.counter_ul - accounting.account.start_counter_ul


def _clock_scale(pairs: Sequence[tuple[datetime, datetime]]) -> Decimal:
    """The daemon's clock rate against the audit's: 1 unless the session was time-scaled."""
    if len(pairs) < 2:
        return Decimal(1)
    (wall0, own0), (wall1, own1) = pairs[0], pairs[-1]
    wall_s = (wall1 - wall0).total_seconds()
    own_s = (own1 - own0).total_seconds()
    if wall_s <= 0 or own_s <= 0:
        return Decimal(1)
    ratio = own_s / wall_s
    if ratio < 1.5:  # a real session: clocks agree, up to the daemon's write latency
        return Decimal(1)
    return Decimal(round(ratio))


class _Gatherer:
    """Walks the session's events once, in order, filling the parts of the record."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.volumes: list[VolumeSample] = []
        self.rates: list[RateStep] = []
        self.marks: list[Mark] = []
        self.vitals: list[VitalsSet] = []
        self.alarms: dict[str, AlarmRecord] = {}
        self.alarm_order: list[str] = []
        self.pauses: list[PauseRecord] = []
        self.notes: list[NoteRecord] = []
        self.people: list[PersonRole] = []
        self.clock_pairs: list[tuple[datetime, datetime]] = []
        self.commands: dict[str, str] = {}
        self.named: set[tuple[str, str]] = set()
        self.end_reason: str | None = None

    def person(self, role: str, name: str, event: EventRecord) -> None:
        self.people.append(PersonRole(role, name, parse_utc(event.occurred_at), event.seq))

    def fold(self, event: EventRecord) -> None:
        at = parse_utc(event.occurred_at)
        payload = _payload(event)
        kind = event.event_type
        who = event.actor_name
        if kind == "session.programmed":
            if self.plan is None:
                self.person("programmed", who, event)
            else:
                self.person("re-programmed", who, event)
            self.plan = _plan(payload)
        elif kind == "double_check.completed":
            self.person("double-checked", payload["second_checker"], event)
        elif kind == "override.granted":
            self.person(
                f"approved override ({payload['reason_code']})", payload["approved_by"], event
            )
            if "witness" in payload:
                self.person("witnessed override", payload["witness"], event)
        elif kind == "patient.discharged":
            self.person("discharged", payload["discharged_by"], event)
        elif kind == "session.checkpointed":
            try:
                checkpoint = CheckpointRecord.read(payload)
            except CheckpointUnreadable as exc:
                raise CheckpointUnreadable(f"session.checkpointed seq {event.seq}: {exc}") from exc
            data = checkpoint.snapshot.get("data") or {}
            for role, key in (("stopped", "stop_requested_by"), ("aborted", "aborted_by")):
                name = data.get(key)
                if isinstance(name, str) and (role, name) not in self.named:
                    self.named.add((role, name))
                    self.person(role, name, event)
            account = checkpoint.accounting.account
            delivered = _delivered(checkpoint.accounting)
            expected = checkpoint.accounting.expected_ul
            if delivered is not None or expected is not None:
                self.volumes.append(VolumeSample(at, delivered, expected, kind))
            if account is not None and account.at_utc is not None:
                self.clock_pairs.append((at, datetime.fromisoformat(account.at_utc)))
        elif kind == "pump.command.requested":
            self.commands[event.correlation_id or ""] = who
        elif kind == "pump.command.confirmed":
            rate = _dec(payload.get("observed_rate_ml_h"))
            if rate is not None:
                self.rates.append(RateStep(at, rate, payload["command"]))
            by = self.commands.get(event.correlation_id or "", DAEMON_NAME)
            self.marks.append(Mark(at, "command", f"{payload['command']} ({by})", event.seq))
        elif kind == "session.paused":
            self.pauses.append(
                PauseRecord(
                    at,
                    event.seq,
                    payload["reason_code"],
                    payload.get("reason"),
                    int(payload["delivered_volume_ul"]),
                    None,
                )
            )
            self.volumes.append(VolumeSample(at, int(payload["delivered_volume_ul"]), None, kind))
            self.marks.append(
                Mark(at, "pause", payload.get("reason") or payload["reason_code"], event.seq)
            )
        elif kind == "session.resumed":
            if self.pauses and self.pauses[-1].resumed_at is None:
                last = self.pauses[-1]
                self.pauses[-1] = PauseRecord(
                    last.at, last.seq, last.reason_code, last.reason, last.delivered_volume_ul, at
                )
            self.marks.append(
                Mark(at, "resume", f"resumed at {payload['rate_ml_h']} mL/h", event.seq)
            )
        elif kind == "session.adjusted":
            self.marks.append(
                Mark(at, "adjust", f"adjusted to {payload['rate_ml_h']} mL/h", event.seq)
            )
        elif kind in ("infusion.completed", "session.stopped"):
            if kind == "session.stopped":
                self.end_reason = f"{payload.get('reason') or ''} ({payload['reason_code']})"
            self.volumes.append(VolumeSample(at, int(payload["delivered_volume_ul"]), None, kind))
            mark: MarkKind = "complete" if kind == "infusion.completed" else "stop"
            label = "completed" if mark == "complete" else f"stopped: {payload['reason_code']}"
            self.marks.append(Mark(at, mark, label, event.seq))
        elif kind == "alarm.raised":
            key = event.correlation_id or f"seq-{event.seq}"
            self.alarms[key] = AlarmRecord(
                at,
                event.seq,
                payload["alarm_code"],
                payload["priority"],
                payload["source"],
                payload["message"],
            )
            self.alarm_order.append(key)
            self.marks.append(
                Mark(at, "alarm", f"{payload['priority']}: {payload['alarm_code']}", event.seq)
            )
        elif kind == "alarm.acknowledged":
            key = event.correlation_id or ""
            raised = self.alarms.get(key)
            if raised is not None:
                self.alarms[key] = AlarmRecord(
                    raised.raised_at,
                    raised.seq,
                    raised.code,
                    raised.priority,
                    raised.source,
                    raised.message,
                    at,
                    who,
                    payload.get("note"),
                )
            self.person("acknowledged alarm", who, event)
        elif kind == "note.recorded":
            self.notes.append(NoteRecord(at, event.seq, who, payload["text"]))
            self.marks.append(Mark(at, "note", payload["text"], event.seq))
        elif kind == "vitals.recorded":
            self.vitals.append(
                VitalsSet(
                    at,
                    event.seq,
                    who,
                    payload["source"],
                    payload.get("systolic_mmhg"),
                    payload.get("diastolic_mmhg"),
                    payload.get("heart_rate_bpm"),
                    payload.get("spo2_percent"),
                    payload.get("respiratory_rate_per_min"),
                )
            )


def _device(conn: Connection, pump_id: str | None, before_seq: int) -> DeviceInfo:
    """The pump as it last announced itself (``pump.connected``) before the session."""
    if pump_id is None:
        return DeviceInfo(pump_id="unknown")
    info = DeviceInfo(pump_id=pump_id)
    for event in iter_events(conn, EventFilter(pump=pump_id, event_type="pump.connected")):
        if event.seq > before_seq and info.model is not None:
            break
        p = _payload(event)
        info = DeviceInfo(
            pump_id, p.get("model"), p.get("serial_number"), p.get("firmware"), p.get("transport")
        )
    return info


def _protocol(plan: Plan, library: Library | None) -> tuple[LoadedProtocol | None, str]:
    if library is None:
        return None, "protocol library not available: bands not drawn"
    try:
        version = int(plan.protocol_version)
    except ValueError:
        return None, f"protocol version {plan.protocol_version!r} is not a number"
    loaded = library.entries.get((plan.protocol_id, version))
    if loaded is None:
        return None, f"{plan.protocol} is not in {library.path}: bands not drawn"
    if loaded.sha256 != plan.protocol_sha256:
        return None, (
            f"{loaded.path.name} differs from the file the session ran with "
            f"(sha256 {loaded.sha256[:12]}…, recorded {plan.protocol_sha256[:12]}…): "
            "bands not drawn"
        )
    return loaded, f"{loaded.path.name}, sha256 matches the record"


def open_library(path: str | None) -> tuple[Library | None, str | None]:
    """The protocol library for the bands; a report is still made without one."""
    try:
        return load_library(path), None
    except ProtocolFileError as exc:
        return None, str(exc)


def gather(
    engine: Engine,
    session_id: str,
    *,
    hasher: Hasher | None = None,
    library: Library | None = None,
    now: datetime,
) -> SessionRecord:
    """Everything the report and the FHIR record need about one session."""
    chain_result = verify(engine, hasher or Hasher())
    with reader(engine).connect() as conn:
        summary, events = session_timeline(conn, session_id)
        if not events:
            raise NoSuchSession(f"no events for session {session_id!r}")
        g = _Gatherer()
        for event in events:
            g.fold(event)
        if g.plan is None:
            raise NoSuchSession(f"session {session_id!r} was never programmed")
        device = _device(conn, summary.pump_id, events[0].seq)
    protocol, note = _protocol(g.plan, library)
    problem = chain_result.problem
    chain = ChainCheck(
        ok=chain_result.ok,
        checked=chain_result.checked,
        head_seq=chain_result.head.seq,
        head_hash=chain_result.head.event_hash,
        keyed=chain_result.keyed,
        problem=None if problem is None else f"seq {problem.seq}: {problem.kind}: {problem.detail}",
    )
    alarms = tuple(g.alarms[k] for k in g.alarm_order)
    return SessionRecord(
        session_id=session_id,
        patient_ref=summary.patient_ref or "",
        summary=summary,
        plan=g.plan,
        started_at=_at(summary.started_at),
        ended_at=_at(summary.ended_at),
        outcome=summary.outcome,
        delivered_volume_ul=summary.delivered_volume_ul,
        delivered_dose_mg=summary.delivered_dose_mg,
        volumes=tuple(g.volumes),
        rates=tuple(g.rates),
        marks=tuple(g.marks),
        vitals=tuple(g.vitals),
        alarms=alarms,
        pauses=tuple(g.pauses),
        notes=tuple(g.notes),
        people=tuple(g.people),
        device=device,
        events=tuple(events),
        chain=chain,
        protocol=protocol,
        protocol_note=note,
        end_reason=g.end_reason,
        clock_scale=_clock_scale(g.clock_pairs),
        simulated=summary.simulated,
        generated_at=now,
        first_at=parse_utc(events[0].occurred_at),
        last_at=parse_utc(events[-1].occurred_at),
    )


def _at(text: str | None) -> datetime | None:
    return None if text is None else parse_utc(text)


def dosing_weights(conn: Connection, patient_ref: str) -> dict[str, Decimal]:
    """Each session's dosing weight (its first programming), by session id."""
    weights: dict[str, Decimal] = {}
    for event in iter_events(
        conn, EventFilter(patient=patient_ref, event_type="session.programmed")
    ):
        if event.session_id is not None and event.session_id not in weights:
            weights[event.session_id] = Decimal(_payload(event)["weight_kg"])
    return weights
