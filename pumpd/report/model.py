"""The typed record of one session, as gathered from the audit log (``pumpd.report.record``):
the plan, the volumes over time, commands and marks, vitals, alarms, pauses, notes, the
people, the device and the chain check. The report draws it, the FHIR map maps it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pumpd.audit import EventRecord, SessionSummary
from pumpd.protocols import LoadedProtocol


@dataclass(frozen=True, slots=True)
class Plan:
    """The plan as the nurse confirmed it (``session.programmed``)."""

    protocol_id: str
    protocol_version: str
    protocol_sha256: str
    drug: str
    concentration_mg_ml: Decimal
    weight_kg: Decimal
    weight_basis: str
    dose_mg_kg: Decimal
    prescribed_dose_mg: Decimal
    rate_ml_h: Decimal
    volume_ul: int
    duration_s: int
    order_ref: str | None

    @property
    def protocol(self) -> str:
        return f"{self.protocol_id}@{self.protocol_version}"


@dataclass(frozen=True, slots=True)
class VolumeSample:
    """The pump's delivered volume and the expected volume at one recorded moment."""

    at: datetime
    pump_ul: int | None
    expected_ul: int | None
    source: str
    """The event type the figures come from."""


@dataclass(frozen=True, slots=True)
class RateStep:
    """From ``at`` on, the pump runs at ``rate_ml_h`` (as the pump itself reported it)."""

    at: datetime
    rate_ml_h: Decimal
    cause: str


MarkKind = Literal["command", "pause", "resume", "adjust", "alarm", "note", "stop", "complete"]


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment worth a vertical mark on the volume plot."""

    at: datetime
    kind: MarkKind
    label: str
    seq: int


@dataclass(frozen=True, slots=True)
class VitalsSet:
    at: datetime
    seq: int
    recorded_by: str
    source: str
    systolic_mmhg: int | None
    diastolic_mmhg: int | None
    heart_rate_bpm: int | None
    spo2_percent: int | None
    respiratory_rate_per_min: int | None


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    raised_at: datetime
    seq: int
    code: str
    priority: str
    source: str
    message: str
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PauseRecord:
    at: datetime
    seq: int
    reason_code: str
    reason: str | None
    delivered_volume_ul: int
    resumed_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoteRecord:
    at: datetime
    seq: int
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class PersonRole:
    """Someone who took responsibility for a step: ``role`` says which."""

    role: str
    name: str
    at: datetime
    seq: int


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    pump_id: str
    model: str | None = None
    serial_number: str | None = None
    firmware: str | None = None
    transport: str | None = None


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """``pumpaudit verify`` as it answered when the record was gathered."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    keyed: bool
    problem: str | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    patient_ref: str
    summary: SessionSummary
    plan: Plan
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str
    delivered_volume_ul: int | None
    delivered_dose_mg: Decimal | None
    volumes: tuple[VolumeSample, ...]
    rates: tuple[RateStep, ...]
    marks: tuple[Mark, ...]
    vitals: tuple[VitalsSet, ...]
    alarms: tuple[AlarmRecord, ...]
    pauses: tuple[PauseRecord, ...]
    notes: tuple[NoteRecord, ...]
    people: tuple[PersonRole, ...]
    device: DeviceInfo
    events: tuple[EventRecord, ...]
    chain: ChainCheck
    protocol: LoadedProtocol | None
    protocol_note: str
    """Whether the protocol file at hand is the one the session ran with, in words."""
    end_reason: str | None
    """Why a stopped or aborted session ended, in the words and code of its record."""
    clock_scale: Decimal
    """How fast the daemon's clock ran against the wall clock (1 for a real session; the
    simulator's time scale, e.g. 240, for a time-scaled simulation)."""
    simulated: bool
    generated_at: datetime
    first_at: datetime
    last_at: datetime

    @property
    def vtbi_ul(self) -> int:
        return self.plan.volume_ul

    def planned_end(self) -> datetime | None:
        """When the plan, run without a pause from the start, would have delivered VTBI."""
        if self.started_at is None:
            return None
        return self.started_at + timedelta(
            seconds=float(Decimal(self.plan.duration_s) / self.clock_scale)
        )


def people_names(people: Iterable[PersonRole]) -> list[str]:
    seen: list[str] = []
    for p in people:
        if p.name not in seen:
            seen.append(p.name)
    return seen
