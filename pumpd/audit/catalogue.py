"""The closed catalogue of audit event types and the payload model of each.

An event whose type is not here, or whose payload does not validate against its model, is
refused before anything is written. Payloads hold no floats: every quantity is an integer
in its unit (``volume_ul``) or a Decimal that is hashed as its string form
(``dose_mg``), because float text is not canonical across encoders. docs/audit-events.md
documents every entry; ``tests/audit/test_catalogue.py`` keeps the two in step.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from pumpd.audit.errors import InvalidEnvelope, InvalidPayload, UnknownEventType


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("floats are not accepted in audit payloads; pass a Decimal or a string")
    return value


DecimalText = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(allow_inf_nan=False),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
]
"""A Decimal quantity, stored and hashed as its plain string form (``"0.50"``)."""

NonNegDecimal = Annotated[DecimalText, Field(ge=0)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Code = Annotated[str, Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$", max_length=120)]
"""A lower-case identifier, dotted by level; hyphens allowed (protocol ids such as
``ketamine-trd-standard``)."""
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PersonName = Annotated[str, Field(min_length=1, max_length=120)]
"""A member of staff (never a patient: patients are referred to by pseudonymous id only)."""


class Payload(BaseModel):
    """Base of every payload: unknown keys are an error, values cannot change after checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PumpCommand(enum.StrEnum):
    PRIME = "prime"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    SET_RATE = "set_rate"


class ActorRole(enum.StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    AUDITOR = "auditor"
    ADMIN = "admin"
    DAEMON = "daemon"


# -- session ---------------------------------------------------------------------------


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
    message: Text
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
    reason: Text
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
    provenance: list[Text] = Field(default_factory=list)


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
    reason: Text | None = None
    delivered_volume_ul: Annotated[int, Field(ge=0)]


class SessionResumed(Payload):
    rate_ml_h: Annotated[DecimalText, Field(gt=0)]


class SessionContinued(Payload):
    """An interrupted infusion is continued in the same session (the intent, before the
    pump is commanded): the nurse's reason, the kernel's rule, what had interrupted it, and
    the remaining volume from the independent account."""

    reason: Text
    rule: Code
    interrupted_by: Annotated[list[Code], Field(min_length=1)]
    remaining_volume_ul: Annotated[int, Field(gt=0)]
    delivered_volume_ul: Annotated[int, Field(ge=0)]
    interrupted_ms: Annotated[int, Field(ge=0)]


class SessionEnded(Payload):
    """A nurse ended an interrupted infusion instead of continuing it; observation follows."""

    reason: Text
    rule: Code
    interrupted_by: list[Code] = Field(default_factory=list)
    delivered_volume_ul: Annotated[int, Field(ge=0)]


class SessionStopped(Payload):
    """Ended before the plan was complete (nurse, interlock or fault)."""

    reason_code: Code
    reason: Text | None = None
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
    note: Text | None = None


class SessionAdjusted(Payload):
    """A confirmed adjustment of the remaining infusion (two steps, GIP 2.1.1)."""

    reason: Text
    rate_ml_h: Annotated[DecimalText, Field(gt=0)]
    volume_ul: Annotated[int, Field(gt=0)]


class NoteRecorded(Payload):
    """A nurse's free-text note on the session (the session machine's ``note`` command)."""

    text: Text


class SessionCheckpointed(Payload):
    """A session's whole state (the session machine's snapshot and the controller's volume
    accounting), so a restarted daemon rebuilds it from the log alone."""

    state: Annotated[str, Field(pattern=r"^[A-Z_]+$", max_length=40)]
    snapshot: dict[str, Any]
    accounting: dict[str, Any] | None = None


# -- pump commands: intent and result share the envelope's correlation_id ---------------


class CommandRequested(Payload):
    """``reason``: the words a person gave for a pause or stop, on record with the intent
    even when the pump never confirms it."""

    command: PumpCommand
    rate_ml_h: NonNegDecimal | None = None
    volume_ul: Annotated[int, Field(ge=0)] | None = None
    reason_codes: list[Code] = Field(default_factory=list)
    reason: Text | None = None


class CommandConfirmed(Payload):
    command: PumpCommand
    observed_state: Code
    observed_rate_ml_h: NonNegDecimal | None = None
    latency_ms: Annotated[int, Field(ge=0)]


class CommandUncertain(Payload):
    """The command went out but the pump's answer does not prove the outcome."""

    command: PumpCommand
    detail: Text


class CommandFailed(Payload):
    command: PumpCommand
    error_code: Code
    detail: Text


# -- alarms, reminders, vitals, interlocks ----------------------------------------------


class AlarmRaised(Payload):
    alarm_code: Code
    priority: Literal["low", "medium", "high"]
    source: Literal["pump", "kernel", "vitals", "daemon"]
    message: Text


class AlarmAcknowledged(Payload):
    alarm_code: Code
    note: Text | None = None


class ReminderIssued(Payload):
    reminder_code: Code
    message: Text
    priority: Literal["low", "medium", "high"] | None = None


class VitalsRecorded(Payload):
    systolic_mmhg: Annotated[int, Field(ge=0, le=400)] | None = None
    diastolic_mmhg: Annotated[int, Field(ge=0, le=300)] | None = None
    heart_rate_bpm: Annotated[int, Field(ge=0, le=350)] | None = None
    spo2_percent: Annotated[int, Field(ge=0, le=100)] | None = None
    respiratory_rate_per_min: Annotated[int, Field(ge=0, le=120)] | None = None
    sedation_score: Annotated[int, Field(ge=-5, le=5)] | None = None
    source: Literal["manual", "monitor"]


class InterlockTriggered(Payload):
    """What the safety kernel decided on a tick, with its reason codes."""

    action: Literal["pause", "stop", "alarm", "refuse_start", "refuse_command"]
    reason_codes: Annotated[list[Code], Field(min_length=1)]
    detail: Text | None = None


# -- pumps, access, daemon, configuration, chain ----------------------------------------


class PumpConnected(Payload):
    """``capabilities`` is what the pump declares it can do and report (docs/driver.md);
    ``not_reported`` names the readings it cannot give, and ``detail`` says so in words."""

    transport: Literal["tcp", "rtu", "serial"]
    address: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(min_length=1, max_length=80)]
    firmware: Annotated[str, Field(max_length=80)] | None = None
    serial_number: Annotated[str, Field(max_length=80)] | None = None
    capabilities: dict[str, Any] | None = None
    not_reported: list[Code] = Field(default_factory=list)
    detail: Text | None = None


class PumpUnreachable(Payload):
    error_code: Code
    detail: Text
    unreachable_ms: Annotated[int, Field(ge=0)]


class PumpRiskAccepted(Payload):
    """A residual risk of this pump that the site's configuration accepts (a pump without
    a watchdog of its own), recorded at every program and start that relies on it."""

    reason_code: Code
    detail: Text
    config_key: Annotated[str, Field(min_length=1, max_length=80)]


class PumpRebooted(Payload):
    detail: Text
    uptime_s: Annotated[int, Field(ge=0)] | None = None


class AccessDenied(Payload):
    method: Annotated[str, Field(min_length=1, max_length=120)]
    uid: Annotated[int, Field(ge=0)]
    reason_code: Code


KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
"""A chain key's public fingerprint (pumpd/audit/keys.py); never the key itself."""


class DaemonStarted(Payload):
    """``key_id``: the key this daemon chains with; absent when it runs without one."""

    version: Annotated[str, Field(min_length=1, max_length=40)]
    pid: Annotated[int, Field(gt=0)]
    config_sha256: Sha256Hex
    key_id: KeyId | None = None


class DaemonStopped(Payload):
    reason_code: Code


class DaemonRecovered(Payload):
    """Start-up found work left by a previous run (open sessions, uncertain commands)."""

    open_sessions: list[Annotated[str, Field(min_length=1, max_length=80)]]
    detail: Text


class ConfigLoaded(Payload):
    path: Annotated[str, Field(min_length=1, max_length=500)]
    sha256: Sha256Hex


class ProtocolEntry(Payload):
    protocol_id: Code
    protocol_version: Annotated[str, Field(min_length=1, max_length=40)]
    sha256: Sha256Hex


class ProtocolLibraryLoaded(Payload):
    library_sha256: Sha256Hex
    protocols: Annotated[list[ProtocolEntry], Field(min_length=1)]


class ChainCheckpointed(Payload):
    """The head as it was before this event; the same pair goes to the outside log."""

    head_seq: Annotated[int, Field(ge=0)]
    head_hash: Sha256Hex


class ChainKeyChanged(Payload):
    """The chain's key changes here: this event and every later one (until the next such
    event) are hashed with ``new_key_id``'s key, or with plain SHA-256 when it is absent.
    ``reason_code``: ``first_key``, ``rotated`` or ``key_removed``."""

    old_key_id: KeyId | None = None
    new_key_id: KeyId | None = None
    reason_code: Literal["first_key", "rotated", "key_removed"]


# -- control socket and staff registry (issue 6) ----------------------------------------

Method = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]*$", max_length=80)]
StaffId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40)]


class ControlRequest(Payload):
    """One allowed control-socket request and how it ended (refusals by a safety rule
    included: ``outcome_code`` names the error; ``access.denied`` is the unauthorized case)."""

    method: Method
    uid: Annotated[int, Field(ge=0)]
    roles: list[Code] = Field(default_factory=list)
    outcome_code: Code
    message: Text | None = None
    note: Text | None = None
    """The person's own words (a pause reason) when ``message`` is the refusal."""


PumpIdText = Annotated[str, Field(min_length=1, max_length=80)]
UtcText = Annotated[str, Field(min_length=1, max_length=40)]


class ControlView(Payload):
    """The reads of one control-socket connection (a ``status``, a ``watch`` left open, a
    board): who, since when, what was read and how often. A read is a look, not an act, so
    it is recorded per connection and not per request; a failed read is a
    ``control.request.served`` of its own."""

    uid: Annotated[int, Field(ge=0)]
    roles: list[Code] = Field(default_factory=list)
    opened_at: UtcText
    reads: Annotated[dict[Method, Annotated[int, Field(ge=1)]], Field(min_length=1)]
    """Method → how many times it was answered on this connection."""
    pumps: list[PumpIdText] = Field(default_factory=list)
    """The pumps asked for by id; ``all_pumps`` when every pump was read."""
    all_pumps: bool = False


class ControlViewClosed(ControlView):
    closed_at: UtcText
    end_code: Code
    """Why it ended: ``client_closed``, ``idle_timeout``, ``write_failed`` (the client
    stopped reading or left before its answer), ``request_error`` (a broken request line
    closed it), ``daemon_stopping``, ``error``."""


class StaffRegistered(Payload):
    staff_id: StaffId
    name: PersonName
    role: Code


class StaffChanged(Payload):
    """An admin changed an entry: ``change`` is pin_set, disabled, enabled or role_set."""

    staff_id: StaffId
    change: Code
    detail: Text | None = None


class StaffLogin(Payload):
    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]


class StaffLogout(Payload):
    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]
    reason_code: Code


class StaffPinRefused(Payload):
    """A wrong PIN (login or witness); ``failures`` counts the consecutive ones."""

    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]
    failures: Annotated[int, Field(ge=1)]


class StaffLocked(Payload):
    staff_id: StaffId
    failures: Annotated[int, Field(ge=1)]
    locked_until: Annotated[str, Field(min_length=1, max_length=40)]


class ServiceNotice(Payload):
    """The daemon's own announcements (SIGTERM pausing infusions, watchdog trouble)."""

    notice_code: Code
    message: Text


class SpoolDrained(Payload):
    """An outage of the audit database, written once everything it held back is in.

    The events of the outage are in the chain before this one, each with the time it
    happened; this record says that the database was away, since when, for how long, how
    many events waited in the local spool and how many could not be made durable at all
    (the spool failing too: those callers were told, none was acknowledged)."""

    cause_code: Literal["commit_failed", "leftover_spool"]
    since: Annotated[str, Field(min_length=1, max_length=40)]
    duration_ms: Annotated[int, Field(ge=0)]
    spooled_events: Annotated[int, Field(ge=0)]
    refused_events: Annotated[int, Field(ge=0)]
    reason: Text


# -- the catalogue ----------------------------------------------------------------------


class Needs(enum.Flag):
    """Envelope fields an event type cannot do without."""

    NOTHING = 0
    SESSION = enum.auto()  # session_id and patient_ref
    PUMP = enum.auto()
    CORRELATION = enum.auto()


@dataclass(frozen=True, slots=True)
class EventSpec:
    event_type: str
    model: type[Payload]
    needs: Needs
    summary: str


_S, _P, _C, _N = Needs.SESSION, Needs.PUMP, Needs.CORRELATION, Needs.NOTHING

CATALOGUE: Mapping[str, EventSpec] = {
    spec.event_type: spec
    for spec in (
        EventSpec("session.programmed", SessionProgrammed, _S | _P, "plan confirmed"),
        EventSpec("override.granted", OverrideGranted, _S, "soft verdict overridden"),
        EventSpec("double_check.completed", DoubleCheckCompleted, _S, "second person checked"),
        EventSpec("session.started", SessionStarted, _S | _P, "pump confirmed infusing"),
        EventSpec("session.paused", SessionPaused, _S | _P, "infusion paused"),
        EventSpec("session.resumed", SessionResumed, _S | _P, "infusion resumed"),
        EventSpec("session.stopped", SessionStopped, _S | _P, "ended before plan complete"),
        EventSpec("session.continued", SessionContinued, _S | _P, "interrupted infusion goes on"),
        EventSpec("session.ended", SessionEnded, _S | _P, "interrupted infusion not continued"),
        EventSpec("infusion.completed", InfusionCompleted, _S | _P, "plan delivered"),
        EventSpec("observation.started", ObservationStarted, _S, "post-infusion watch"),
        EventSpec("observation.ended", ObservationEnded, _S, "watch over"),
        EventSpec("patient.discharged", PatientDischarged, _S, "patient left"),
        EventSpec("pump.command.requested", CommandRequested, _P | _C, "intent, before I/O"),
        EventSpec("pump.command.confirmed", CommandConfirmed, _P | _C, "pump proved it"),
        EventSpec("pump.command.uncertain", CommandUncertain, _P | _C, "outcome unknown"),
        EventSpec("pump.command.failed", CommandFailed, _P | _C, "pump refused / error"),
        EventSpec("alarm.raised", AlarmRaised, _C, "alarm on"),
        EventSpec("alarm.acknowledged", AlarmAcknowledged, _C, "nurse acknowledged"),
        EventSpec("reminder.issued", ReminderIssued, _S, "reminder shown"),
        EventSpec("vitals.recorded", VitalsRecorded, _S, "vital signs"),
        EventSpec("interlock.triggered", InterlockTriggered, _P, "kernel acted"),
        EventSpec("pump.connected", PumpConnected, _P, "link up"),
        EventSpec("pump.unreachable", PumpUnreachable, _P, "link down"),
        EventSpec("pump.rebooted", PumpRebooted, _P, "pump lost its state"),
        EventSpec("pump.risk.accepted", PumpRiskAccepted, _S | _P, "site accepted a risk"),
        EventSpec("access.denied", AccessDenied, _N, "request refused"),
        EventSpec("daemon.started", DaemonStarted, _N, "daemon up"),
        EventSpec("daemon.stopped", DaemonStopped, _N, "daemon down"),
        EventSpec("daemon.recovered", DaemonRecovered, _N, "leftovers found"),
        EventSpec("config.loaded", ConfigLoaded, _N, "configuration file"),
        EventSpec("protocol_library.loaded", ProtocolLibraryLoaded, _N, "protocols"),
        EventSpec("chain.checkpointed", ChainCheckpointed, _N, "head witnessed"),
        # added by the controller (issue 5)
        EventSpec("session.adjusted", SessionAdjusted, _S | _P, "new plan in effect"),
        EventSpec("note.recorded", NoteRecorded, _S, "nurse's note"),
        EventSpec("session.checkpointed", SessionCheckpointed, _S | _P, "state for recovery"),
        # added by the daemon and control socket (issue 6)
        EventSpec("control.request.served", ControlRequest, _N, "socket request served"),
        EventSpec("control.view.opened", ControlView, _N, "live view reading"),
        EventSpec("control.view.closed", ControlViewClosed, _N, "reads of a connection"),
        EventSpec("staff.registered", StaffRegistered, _N, "staff member added"),
        EventSpec("staff.changed", StaffChanged, _N, "staff entry changed"),
        EventSpec("staff.login.granted", StaffLogin, _N, "staff logged in"),
        EventSpec("staff.login.ended", StaffLogout, _N, "staff logged out"),
        EventSpec("staff.pin.refused", StaffPinRefused, _N, "wrong PIN"),
        EventSpec("staff.locked", StaffLocked, _N, "staff id locked"),
        EventSpec("daemon.announced", ServiceNotice, _N, "daemon announcement"),
        # added by the audit spool (issue 7)
        EventSpec("audit.spool.drained", SpoolDrained, _N, "audit outage over"),
        # added by the keyed chain
        EventSpec("chain.key.changed", ChainKeyChanged, _N, "chain key changed"),
    )
}


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_for(event_type: str) -> EventSpec:
    try:
        return CATALOGUE[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def payload_text(event_type: str, payload: Payload | Mapping[str, Any]) -> str:
    """Validate ``payload`` against its type's model; return the canonical text to store."""
    spec = spec_for(event_type)
    if isinstance(payload, Payload):
        if not isinstance(payload, spec.model):
            raise InvalidPayload(
                event_type,
                f"payload is a {type(payload).__name__}, expected {spec.model.__name__}",
            )
        model = payload
    else:
        try:
            model = spec.model.model_validate(dict(payload))
        except ValidationError as exc:
            raise InvalidPayload(event_type, _errors_text(exc)) from exc
    return canonical_json(model.model_dump(mode="json", exclude_none=True))


def check_envelope(
    event_type: str,
    *,
    session_id: str | None,
    patient_ref: str | None,
    pump_id: str | None,
    correlation_id: str | None,
) -> None:
    """Refuse an event whose type needs a session, pump or correlation id it lacks."""
    needs = spec_for(event_type).needs
    missing = []
    if Needs.SESSION in needs:
        if not session_id:
            missing.append("session_id")
        if not patient_ref:
            missing.append("patient_ref")
    if Needs.PUMP in needs and not pump_id:
        missing.append("pump_id")
    if Needs.CORRELATION in needs and not correlation_id:
        missing.append("correlation_id")
    if missing:
        raise InvalidEnvelope(event_type, f"needs {', '.join(missing)}")


def _errors_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
