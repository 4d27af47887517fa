"""The closed catalogue of audit event types and the payload model of each.

An event whose type is not here, or whose payload does not validate against its model, is
refused before anything is written. Payloads hold no floats: every quantity is an integer
in its unit (``volume_ul``) or a Decimal that is hashed as its string form
(``dose_mg``), because float text is not canonical across encoders. docs/audit-events.md
documents every entry; ``tests/audit/test_catalogue.py`` keeps the two in step.

The payload models live by family behind this face (``vocabulary``, ``session_events``,
``supervision_events``, ``daemon_events``, ``control_events``); import them from here.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pumpd.audit.control_events import (
    ControlRequest,
    ControlView,
    ControlViewClosed,
    Method,
    PumpIdText,
    ServiceNotice,
    SpoolDrained,
    StaffChanged,
    StaffId,
    StaffLocked,
    StaffLogin,
    StaffLogout,
    StaffPinRefused,
    StaffRegistered,
    UtcText,
)
from pumpd.audit.daemon_events import (
    AccessDenied,
    ChainCheckpointed,
    ChainKeyChanged,
    ConfigLoaded,
    DaemonRecovered,
    DaemonStarted,
    DaemonStopped,
    KeyId,
    ProtocolEntry,
    ProtocolLibraryLoaded,
    PumpConnected,
    PumpRebooted,
    PumpRiskAccepted,
    PumpUnreachable,
)
from pumpd.audit.errors import InvalidEnvelope, InvalidPayload, UnknownEventType
from pumpd.audit.session_events import (
    CommandConfirmed,
    CommandFailed,
    CommandRequested,
    CommandUncertain,
    DoubleCheckCompleted,
    InfusionCompleted,
    NoteRecorded,
    ObservationEnded,
    ObservationStarted,
    OverriddenVerdict,
    OverrideGranted,
    PatientDischarged,
    SessionAdjusted,
    SessionCheckpointed,
    SessionContinued,
    SessionEnded,
    SessionPaused,
    SessionProgrammed,
    SessionResumed,
    SessionStarted,
    SessionStopped,
    SupervisionRecord,
)
from pumpd.audit.supervision_events import (
    AlarmAcknowledged,
    AlarmRaised,
    InterlockTriggered,
    ReminderIssued,
    VitalsRecorded,
)
from pumpd.audit.vocabulary import (
    ActorRole,
    BoundedText,
    Code,
    DecimalText,
    NonNegDecimal,
    Payload,
    PersonName,
    PumpCommand,
    Sha256Hex,
)

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
        # the controller's
        EventSpec("session.adjusted", SessionAdjusted, _S | _P, "new plan in effect"),
        EventSpec("note.recorded", NoteRecorded, _S, "nurse's note"),
        EventSpec("session.checkpointed", SessionCheckpointed, _S | _P, "state for recovery"),
        # the daemon's and the control socket's
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
        # the audit spool's
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


__all__ = [
    "CATALOGUE",
    "AccessDenied",
    "ActorRole",
    "AlarmAcknowledged",
    "AlarmRaised",
    "BoundedText",
    "ChainCheckpointed",
    "ChainKeyChanged",
    "Code",
    "CommandConfirmed",
    "CommandFailed",
    "CommandRequested",
    "CommandUncertain",
    "ConfigLoaded",
    "ControlRequest",
    "ControlView",
    "ControlViewClosed",
    "DaemonRecovered",
    "DaemonStarted",
    "DaemonStopped",
    "DecimalText",
    "DoubleCheckCompleted",
    "EventSpec",
    "InfusionCompleted",
    "InterlockTriggered",
    "KeyId",
    "Method",
    "Needs",
    "NonNegDecimal",
    "NoteRecorded",
    "ObservationEnded",
    "ObservationStarted",
    "OverriddenVerdict",
    "OverrideGranted",
    "PatientDischarged",
    "Payload",
    "PersonName",
    "ProtocolEntry",
    "ProtocolLibraryLoaded",
    "PumpCommand",
    "PumpConnected",
    "PumpIdText",
    "PumpRebooted",
    "PumpRiskAccepted",
    "PumpUnreachable",
    "ReminderIssued",
    "ServiceNotice",
    "SessionAdjusted",
    "SessionCheckpointed",
    "SessionContinued",
    "SessionEnded",
    "SessionPaused",
    "SessionProgrammed",
    "SessionResumed",
    "SessionStarted",
    "SessionStopped",
    "Sha256Hex",
    "SpoolDrained",
    "StaffChanged",
    "StaffId",
    "StaffLocked",
    "StaffLogin",
    "StaffLogout",
    "StaffPinRefused",
    "StaffRegistered",
    "SupervisionRecord",
    "UtcText",
    "VitalsRecorded",
    "canonical_json",
    "check_envelope",
    "payload_text",
    "spec_for",
]
