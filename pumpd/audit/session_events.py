"""Payloads of a session's events (programmed ... discharged, adjusted, checkpointed) and of the
pump commands, whose intent and result share the envelope's ``correlation_id``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from pumpd.audit.vocabulary import (
    BoundedText,
    Code,
    DecimalText,
    NonNegDecimal,
    Payload,
    PersonName,
    PumpCommand,
    Sha256Hex,
)


class SessionProgrammed(Payload):
    """The full plan as the nurse confirmed it; the sessions view reads it from here."""

    protocol_id: Code
    protocol_version: Annotated[str, Field(min_length=1, max_length=40)]
    protocol_sha256: Sha256Hex
    protocol_status: Literal["released", "draft"] | None = None
    """A draft (not in released.sha256) is only ever used in simulation."""
    drug: Code
    concentration_mg_ml: Annotated[DecimalText, Field(gt=0)]
    weight_kg: Annotated[DecimalText, Field(gt=0)]
    weight_basis: Literal["actual", "ideal", "adjusted"]
    dosing_weight_kg: Annotated[DecimalText, Field(gt=0)] | None = None
    """The weight the per-kg dose was multiplied by (``weight_basis`` applied); the course
    rules divide each session's dose by it. Absent from events written before it was."""
    dose_mg_kg: Annotated[DecimalText, Field(gt=0)]
    prescribed_dose_mg: Annotated[DecimalText, Field(gt=0)]
    rate_ml_h: Annotated[DecimalText, Field(gt=0)]
    volume_ul: Annotated[int, Field(gt=0)]
    duration_s: Annotated[int, Field(gt=0)]
    order_ref: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    verdict_codes: list[Code] = Field(default_factory=list)


class OverriddenVerdict(Payload):
    """One soft verdict an override answers, with the figures the approver was shown."""

    code: Code
    message: BoundedText
    value: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    limit: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=20)] | None = None


class OverrideGranted(Payload):
    """A soft verdict overridden: which rule, why, and who took responsibility.

    ``approved_by`` is the nurse who gave the reason; ``witness`` the second person who
    approved it (absent where the protocol accepts the reason alone); ``verdicts`` each
    overridden verdict with its value and limit."""

    verdict_codes: Annotated[list[Code], Field(min_length=1)]
    reason_code: Code
    reason: BoundedText
    approved_by: PersonName
    witness: PersonName | None = None
    verdicts: Annotated[list[OverriddenVerdict], Field(max_length=32)] | None = None


class DoubleCheckCompleted(Payload):
    first_checker: PersonName
    second_checker: PersonName
    fields_checked: Annotated[list[Code], Field(min_length=1)]


class SupervisionRecord(Payload):
    """The kernel's limits that judge this infusion (``safety.tick.SupervisionLimits``) and,
    in ``provenance``, which source decided each bound: an auditor reviewing an alarm, or
    its absence, reads the thresholds in force from the record itself, not from whatever
    version of pumpd is installed later. Times in whole milliseconds (no floats)."""

    vtbi_ul: Annotated[int, Field(gt=0)]
    vtbi_overrun_ul: Annotated[int, Field(ge=0)]
    kvo_max_ul: Annotated[int, Field(ge=0)]
    volume_tolerance_rel: NonNegDecimal
    volume_tolerance_abs_ul: Annotated[int, Field(ge=0)]
    rate_tolerance_rel: NonNegDecimal
    rate_tolerance_abs_ml_h: NonNegDecimal
    rate_settle_ms: Annotated[int, Field(ge=0)]
    comm_timeout_ms: Annotated[int, Field(gt=0)]
    max_delivery_ms: Annotated[int, Field(gt=0)] | None = None
    pause_stop_after_ms: Annotated[int, Field(ge=0)]
    provenance: list[BoundedText] = Field(default_factory=list)


class SessionStarted(Payload):
    """The pump confirmed it is infusing the programmed plan; ``supervision`` holds the
    limits it is supervised with (absent from events written before it was recorded)."""

    rate_ml_h: Annotated[DecimalText, Field(gt=0)]
    volume_ul: Annotated[int, Field(gt=0)]
    supervision: SupervisionRecord | None = None


class SessionPaused(Payload):
    """``reason`` is the nurse's own words (``pumpctl pause --reason``), or the kernel's
    sentence for a pause it demanded; absent when no words were given."""

    reason_code: Code
    reason: BoundedText | None = None
    delivered_volume_ul: Annotated[int, Field(ge=0)]


class SessionResumed(Payload):
    rate_ml_h: Annotated[DecimalText, Field(gt=0)]


class SessionContinued(Payload):
    """An interrupted infusion is continued in the same session (the intent, before the
    pump is commanded): the nurse's reason, the kernel's rule, what had interrupted it, and
    the remaining volume from the independent account."""

    reason: BoundedText
    rule: Code
    interrupted_by: Annotated[list[Code], Field(min_length=1)]
    remaining_volume_ul: Annotated[int, Field(gt=0)]
    delivered_volume_ul: Annotated[int, Field(ge=0)]
    interrupted_ms: Annotated[int, Field(ge=0)]


class SessionEnded(Payload):
    """A nurse ended an interrupted infusion instead of continuing it; observation follows."""

    reason: BoundedText
    rule: Code
    interrupted_by: list[Code] = Field(default_factory=list)
    delivered_volume_ul: Annotated[int, Field(ge=0)]


class SessionStopped(Payload):
    """Ended before the plan was complete (nurse, interlock or fault)."""

    reason_code: Code
    reason: BoundedText | None = None
    delivered_volume_ul: Annotated[int, Field(ge=0)]
    delivered_dose_mg: NonNegDecimal


class InfusionCompleted(Payload):
    delivered_volume_ul: Annotated[int, Field(ge=0)]
    delivered_dose_mg: NonNegDecimal


class ObservationStarted(Payload):
    minimum_s: Annotated[int, Field(ge=0)]


class ObservationEnded(Payload):
    observed_s: Annotated[int, Field(ge=0)]
    outcome: Code


class PatientDischarged(Payload):
    discharged_by: PersonName
    criteria_met: list[Code] = Field(default_factory=list)
    note: BoundedText | None = None


class SessionAdjusted(Payload):
    """A confirmed adjustment of the remaining infusion (two steps, GIP 2.1.1)."""

    reason: BoundedText
    rate_ml_h: Annotated[DecimalText, Field(gt=0)]
    volume_ul: Annotated[int, Field(gt=0)]


class NoteRecorded(Payload):
    """A nurse's free-text note on the session (the session machine's ``note`` command)."""

    text: BoundedText


class SessionCheckpointed(Payload):
    """A session's whole state (the session machine's snapshot and the controller's volume
    accounting), so a restarted daemon rebuilds it from the log alone."""

    state: Annotated[str, Field(pattern=r"^[A-Z_]+$", max_length=40)]
    snapshot: dict[str, Any]
    accounting: dict[str, Any] | None = None


class CommandRequested(Payload):
    """``reason``: the words a person gave for a pause or stop, on record with the intent
    even when the pump never confirms it."""

    command: PumpCommand
    rate_ml_h: NonNegDecimal | None = None
    volume_ul: Annotated[int, Field(ge=0)] | None = None
    reason_codes: list[Code] = Field(default_factory=list)
    reason: BoundedText | None = None


class CommandConfirmed(Payload):
    command: PumpCommand
    observed_state: Code
    observed_rate_ml_h: NonNegDecimal | None = None
    latency_ms: Annotated[int, Field(ge=0)]


class CommandUncertain(Payload):
    """The command went out but the pump's answer does not prove the outcome."""

    command: PumpCommand
    detail: BoundedText


class CommandFailed(Payload):
    command: PumpCommand
    error_code: Code
    detail: BoundedText
