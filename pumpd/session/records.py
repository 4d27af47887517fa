"""The session's data as frozen pydantic models, so a snapshot is one ``model_dump``.

Everything a session keeps is here and nowhere else: a snapshot must be able to rebuild the
session exactly, and a field kept outside these models would be lost by recovery. Decimals
are dumped as strings and monotonic seconds as their ``repr`` (exact, and no float ever
reaches a hashed audit payload).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from pumpd.audit.catalogue import PumpCommand
from pumpd.clock import Stamp
from safety.actions import Priority
from safety.order import Override
from safety.plan import Order, Patient
from safety.verdicts import Severity, Verdict
from safety.vitals import VitalsReading
from safety.weight import Sex

from .states import State


def _utc(value: dt.datetime) -> dt.datetime:
    if value.utcoffset() != dt.timedelta(0):
        raise ValueError(f"must be an aware UTC datetime, got {value!r}")
    return value


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("a float is not accepted for a quantity; pass a Decimal or a string")
    return value


UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]
Count = Annotated[int, Field(strict=True, ge=0)]
MonoSeconds = Annotated[float, PlainSerializer(lambda v: repr(float(v)), return_type=str)]
Dec = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    PlainSerializer(lambda d: str(d), return_type=str),
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class At(_Record):
    """A :class:`~pumpd.clock.Stamp` as stored: monotonic seconds and UTC."""

    mono_s: MonoSeconds
    utc: UtcDatetime

    @classmethod
    def of(cls, stamp: Stamp) -> At:
        return cls(mono_s=stamp.mono_s, utc=stamp.utc)


class PatientRecord(_Record):
    weight_kg: Dec
    height_cm: Dec | None = None
    sex: Literal["male", "female"] | None = None

    @classmethod
    def of(cls, patient: Patient) -> PatientRecord:
        sex = None if patient.sex is None else patient.sex.value
        return cls(weight_kg=patient.weight_kg, height_cm=patient.height_cm, sex=sex)

    def patient(self) -> Patient:
        sex = None if self.sex is None else Sex(self.sex)
        return Patient(weight_kg=self.weight_kg, height_cm=self.height_cm, sex=sex)


class OrderRecord(_Record):
    dose_mg_per_kg: Dec | None = None
    dose_rate_mg_per_kg_h: Dec | None = None
    duration_min: Dec | None = None

    @classmethod
    def of(cls, order: Order) -> OrderRecord:
        return cls(
            dose_mg_per_kg=order.dose_mg_per_kg,
            dose_rate_mg_per_kg_h=order.dose_rate_mg_per_kg_h,
            duration_min=order.duration_min,
        )

    def order(self) -> Order:
        return Order(
            dose_mg_per_kg=self.dose_mg_per_kg,
            dose_rate_mg_per_kg_h=self.dose_rate_mg_per_kg_h,
            duration_min=self.duration_min,
        )


class OverrideRecord(_Record):
    by: str
    reason: str
    codes: tuple[str, ...]
    second_by: str | None = None

    @classmethod
    def of(cls, override: Override) -> OverrideRecord:
        return cls(
            by=override.by,
            reason=override.reason,
            codes=tuple(sorted(override.codes)),
            second_by=override.second_by,
        )

    def override(self, second_by: str | None = None) -> Override:
        """The kernel's override, with ``second_by`` as its approver when given."""
        return Override(
            by=self.by,
            reason=self.reason,
            codes=frozenset(self.codes),
            second_by=self.second_by if second_by is None else second_by,
        )


class VerdictRecord(_Record):
    code: str
    severity: Literal["note", "soft", "hard"]
    message: str
    rule: str
    value: str | None = None
    limit: str | None = None
    unit: str | None = None

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictRecord:
        return cls(
            code=verdict.code,
            severity=verdict.severity.value,
            message=verdict.message,
            rule=verdict.rule,
            value=verdict.value,
            limit=verdict.limit,
            unit=verdict.unit,
        )

    def verdict(self) -> Verdict:
        return Verdict(
            self.code,
            Severity(self.severity),
            self.message,
            self.rule,
            self.value,
            self.limit,
            self.unit,
        )


class VitalsRecord(_Record):
    taken_at: UtcDatetime
    systolic_mmhg: int | None = None
    diastolic_mmhg: int | None = None
    heart_rate_bpm: int | None = None
    spo2_percent: int | None = None
    resp_rate_per_min: int | None = None
    recorded_by: str
    at: At

    @classmethod
    def of(cls, reading: VitalsReading, by: str, at: Stamp) -> VitalsRecord:
        return cls(
            taken_at=reading.taken_at,
            systolic_mmhg=reading.systolic_mmhg,
            diastolic_mmhg=reading.diastolic_mmhg,
            heart_rate_bpm=reading.heart_rate_bpm,
            spo2_percent=reading.spo2_percent,
            resp_rate_per_min=reading.resp_rate_per_min,
            recorded_by=by,
            at=At.of(at),
        )

    def reading(self) -> VitalsReading:
        return VitalsReading(
            taken_at=self.taken_at,
            systolic_mmhg=self.systolic_mmhg,
            diastolic_mmhg=self.diastolic_mmhg,
            heart_rate_bpm=self.heart_rate_bpm,
            spo2_percent=self.spo2_percent,
            resp_rate_per_min=self.resp_rate_per_min,
        )

    def reading_as_of(self, now: Stamp) -> VitalsReading:
        """The reading with ``taken_at`` moved by every wall-clock step since it was
        recorded, so that its UTC age at ``now`` is the monotonic time since then (plus how
        long before recording it was taken): a clock set forward must not make fresh vitals
        stale, nor one set back make them look taken in the future. After a restart the
        stored monotonic seconds are rebased from UTC, so the age is UTC's again."""
        elapsed = dt.timedelta(seconds=now.mono_s - self.at.mono_s)
        step = (now.utc - self.at.utc) - elapsed
        return dataclasses.replace(self.reading(), taken_at=self.taken_at + step)


class NoteRecord(_Record):
    text: str
    by: str
    at: At


AlarmSource = Literal["pump", "kernel", "vitals", "daemon"]


class AlarmRecord(_Record):
    """A latched alarm: what, how urgent (IEC 60601-1-8), in words, and from where."""

    code: str
    priority: Priority
    message: str
    source: AlarmSource
    raised_in: State
    at: At


class AcknowledgedAlarm(_Record):
    alarm: AlarmRecord
    by: str
    note: str | None
    at: At


class UncertainRecord(_Record):
    """A command whose outcome is unknown, and how it was settled."""

    command: PumpCommand
    detail: str
    requested_in: State
    at: At
    resolved_to: State | None = None
    resolved_at: At | None = None


class AdjustmentRecord(_Record):
    """An adjustment of the remaining infusion: proposed, then confirmed (two steps)."""

    order: OrderRecord
    reason: str
    proposed_by: str
    proposed_at: At
    override: OverrideRecord | None = None
    rate_ml_h: Dec
    vtbi_ul: int
    confirmed_by: str | None = None
    confirmed_at: At | None = None


class ContinuationRecord(_Record):
    """An interrupted infusion continued in the same session (``resume`` from STOPPED)."""

    by: str
    reason: str
    at: At
    interrupted_by: tuple[str, ...]
    remaining_ul: int
    delivered_ul: int
    interrupted_s: MonoSeconds


class SessionData(_Record):
    """Everything the session knows besides its state, and nothing that grows with it.

    Every checkpoint carries this whole record, so its size must not depend on how long
    the session has run: a record kept per reading or per acknowledgement would make each
    checkpoint larger than the last and the audit log grow with the square of the
    session's length. Of the repeating records (vitals, acknowledgements, notes, confirmed
    adjustments) the session keeps the latest, which is what its decisions and the
    controller's events read, and how many there were; the history is in the audit log
    (``vitals.recorded``, ``alarm.acknowledged``, ``note.recorded``, ``session.adjusted``).
    What remains is bounded by the protocol (checklist, start verdicts) or by the alarm
    codes that can be latched at once.
    """

    session_id: str
    pump_id: str
    patient_ref: str
    protocol_id: str
    protocol_version: int
    protocol_sha256: str
    patient: PatientRecord
    order: OrderRecord
    plan_override: OverrideRecord | None = None
    """The override of the plan's soft verdicts; ``second_by`` None while it awaits the
    second person's approval (given at the double-check)."""
    container_ul: int | None = None
    """What the container prepared for this session can give the patient (the programmed
    plan's volume); an adjustment may not ask for more."""
    programmed_by: str
    programmed_at: At
    confirmed_by: str | None = None
    confirmed_at: At | None = None
    line_disconnected_by: str | None = None
    prime_requested_at: At | None = None
    priming_since: At | None = None
    """When the pump was first shown priming for the latest prime (its confirmation, or the
    reading that settled it after a doubt); the controller's prime bound counts from here,
    not from the request, whose programming on a slow or shared line is not priming."""
    primed_at: At | None = None
    volume_primed_ul: int | None = None
    start_requested_by: str | None = None
    start_requested_at: At | None = None
    start_override: OverrideRecord | None = None
    pending_start_override: OverrideRecord | None = None
    """A start whose soft verdicts wait for a second person's approval (nothing was sent)."""
    start_verdicts: tuple[VerdictRecord, ...] = ()
    started_at: At | None = None
    paused_at: At | None = None
    pause_reason_code: str | None = None
    completed_at: At | None = None
    stop_requested_by: str | None = None
    stop_reason_code: str | None = None
    stop_reason: str | None = None
    stopped_at: At | None = None
    observation_started_at: At | None = None
    discharged_by: str | None = None
    discharged_at: At | None = None
    checklist_confirmed: tuple[str, ...] = ()
    aborted_by: str | None = None
    abort_reason: str | None = None
    pending_command: PumpCommand | None = None
    requested_in: State | None = None
    pending_adjustment: AdjustmentRecord | None = None
    last_adjustment: AdjustmentRecord | None = None
    adjustments_confirmed: Count = 0
    alarms: tuple[AlarmRecord, ...] = ()
    last_acknowledged: tuple[AcknowledgedAlarm, ...] = ()
    alarms_acknowledged: Count = 0
    last_uncertain: UncertainRecord | None = None
    last_vitals: VitalsRecord | None = None
    vitals_recorded: Count = 0
    last_note: NoteRecord | None = None
    notes_recorded: Count = 0
    interrupted_by: tuple[str, ...] = ()
    """Every stop reason and alarm code since the pump last delivered for this session
    (distinct codes only, so bounded by the alarm codes there are)."""
    interrupted_at: At | None = None
    interrupted_before_s: MonoSeconds = 0.0
    """Time of earlier interruptions (pauses and stops) after which delivery went on."""
    last_continuation: ContinuationRecord | None = None
    continuations: Count = 0
    ended_by: str | None = None
    end_reason: str | None = None
    end_rule: str | None = None
    """The kernel's rule when the session ended by itself (a delivery-accuracy alarm whose
    halt was confirmed: ``safety.continuation.delivery_ended``); None when a nurse ended it."""
    vitals_alarm_acknowledged: At | None = None
    """The recording moment of the reading whose out-of-band alarm a nurse acknowledged."""
    vtbi_exceeded_acknowledged_ul: Count | None = None
    """The delivered volume, read at the acknowledgement, at which a nurse acknowledged that
    the plan's volume was exceeded (``tick.vtbi.exceeded``): the kernel reminds of that
    exceedance instead of alarming again while the pump stays stopped at it."""

    @property
    def start_commanded(self) -> bool:
        """True once a start went to the pump: from then on drug may have reached the patient."""
        return self.start_requested_at is not None
