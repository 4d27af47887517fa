"""One session as a FHIR R4 transaction Bundle for the clinic's EHR (mapping: docs/fhir.md).

The resources are built and validated with ``fhir.resources``' R4B models: R4B (4.3.0)
changed only the medication-definition, evidence and subscription modules, so the five
resources used here (Bundle, MedicationAdministration, Observation, Device, Provenance)
have the same elements and cardinalities as in R4 (4.0.1) and what validates here is an R4
resource. (The package's R4 models live only in its 6.x line, which needs pydantic 1.)
Every identifier is stable (uuid5 of the session and the event's seq), so posting the same
session twice names the same entries.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance

from pumpd import __version__ as PUMPD_VERSION
from pumpd.audit import DAEMON_NAME
from pumpd.report.model import SessionRecord, VitalsSet
from pumpd.report.record import PATIENT_SYSTEM

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
STAFF_SYSTEM = "urn:pumpd:staff"
SESSION_SYSTEM = "urn:pumpd:session"
PUMP_SYSTEM = "urn:pumpd:pump"
CHAIN_SYSTEM = "urn:pumpd:audit-chain"
_NAMESPACE = uuid.UUID("6f1d2b4e-7c1a-5e3b-9a2f-0d9c8e7b6a51")

VITAL_COMPONENTS: tuple[tuple[str, str, str, str, str], ...] = (
    # (VitalsSet field, LOINC code, display, UCUM code, unit shown)
    ("systolic_mmhg", "8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg"),
    ("diastolic_mmhg", "8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg"),
    ("heart_rate_bpm", "8867-4", "Heart rate", "/min", "beats/minute"),
    ("spo2_percent", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%"),
    ("respiratory_rate_per_min", "9279-1", "Respiratory rate", "/min", "breaths/minute"),
)
PANEL = ("85354-9", "Blood pressure panel with all children optional")

_STATUS = {
    "completed": "completed",
    "stopped": "stopped",
    "running": "in-progress",
    "programmed": "not-done",
    "aborted": "not-done",
}


class FhirPostError(RuntimeError):
    """The FHIR server could not be reached or did not accept the bundle."""


def _urn(record: SessionRecord, part: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{record.session_id}/{part}')}"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _qty(value: Decimal | int, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": Decimal(value), "unit": unit or code, "system": UCUM, "code": code}


def _staff(name: str) -> dict[str, Any]:
    return {"identifier": {"system": STAFF_SYSTEM, "value": name}, "display": name}


def _patient(record: SessionRecord, system: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": record.patient_ref}}


def device(record: SessionRecord) -> Device:
    d = record.device
    data: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": PUMP_SYSTEM, "value": d.pump_id}],
        "status": "active",
        "deviceName": [{"name": d.pump_id, "type": "user-friendly-name"}],
        "type": {"text": "infusion pump"},
    }
    if d.model:
        data["modelNumber"] = d.model
    if d.serial_number:
        data["serialNumber"] = d.serial_number
    if d.firmware:
        data["version"] = [{"value": d.firmware}]
    if record.simulated:
        data["note"] = [{"text": "simulated pump (pumpd simulation mode)"}]
    return Device.model_validate(data)


def _notes(record: SessionRecord) -> list[dict[str, Any]]:
    notes: list[tuple[datetime, dict[str, Any]]] = []
    for p in record.pauses:
        resumed = f"; resumed {_instant(p.resumed_at)}" if p.resumed_at else "; not resumed"
        notes.append(
            (
                p.at,
                {
                    "time": _instant(p.at),
                    "authorString": DAEMON_NAME,
                    "text": f"Paused ({p.reason_code}): {p.reason or p.reason_code}; "
                    f"{Decimal(p.delivered_volume_ul) / 1000} mL delivered{resumed}",
                },
            )
        )
    for a in record.alarms:
        ack = (
            f"; acknowledged {_instant(a.acknowledged_at)} by {a.acknowledged_by}"
            + (f" ({a.note})" if a.note else "")
            if a.acknowledged_at
            else "; not acknowledged"
        )
        notes.append(
            (
                a.raised_at,
                {
                    "time": _instant(a.raised_at),
                    "authorString": DAEMON_NAME,
                    "text": f"Alarm [{a.priority}] {a.code}: {a.message}{ack}",
                },
            )
        )
    for n in record.notes:
        notes.append((n.at, {"time": _instant(n.at), "authorString": n.author, "text": n.text}))
    return [n for _, n in sorted(notes, key=lambda pair: pair[0])]


def medication_administration(
    record: SessionRecord, patient_system: str = PATIENT_SYSTEM
) -> MedicationAdministration:
    p = record.plan
    performers = []
    for name in dict.fromkeys(r.name for r in record.people):
        performers.append({"actor": _staff(name)})
    period: dict[str, str] = {}
    if record.started_at is not None:
        period["start"] = _instant(record.started_at)
    else:
        period["start"] = _instant(record.first_at)
    if record.ended_at is not None:
        period["end"] = _instant(record.ended_at)
    dose = record.delivered_dose_mg
    dosage: dict[str, Any] = {
        "text": (
            f"{p.dose_mg_kg} mg/kg x {p.weight_kg} kg ({p.weight_basis} weight) = "
            f"{p.prescribed_dose_mg} mg prescribed, {Decimal(p.volume_ul) / 1000} mL of "
            f"{p.concentration_mg_ml} mg/mL at {p.rate_ml_h} mL/h; protocol {p.protocol}"
        ),
        "route": {
            "coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]
        },
        "rateQuantity": _qty(p.rate_ml_h, "mL/h"),
    }
    if dose is not None and record.started_at is not None:
        dosage["dose"] = _qty(dose, "mg")
    data: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "identifier": [{"system": SESSION_SYSTEM, "value": record.session_id}],
        "status": _STATUS.get(record.outcome, "unknown"),
        "category": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medication-admin-category",
                    "code": "outpatient",
                }
            ]
        },
        "contained": [
            {
                "resourceType": "Medication",
                "id": "drug",
                "code": {"text": p.drug},
                "form": {"text": "solution for infusion"},
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": p.drug},
                        "isActive": True,
                        "strength": {
                            "numerator": _qty(p.concentration_mg_ml, "mg"),
                            "denominator": _qty(1, "mL"),
                        },
                    }
                ],
            }
        ],
        "medicationReference": {
            "reference": "#drug",
            "display": f"{p.drug} {p.concentration_mg_ml} mg/mL",
        },
        "subject": _patient(record, patient_system),
        "effectivePeriod": period,
        "performer": performers,
        "device": [{"reference": _urn(record, "device"), "display": record.device.pump_id}],
        "dosage": dosage,
    }
    notes = _notes(record)
    if notes:
        data["note"] = notes
    if record.end_reason is not None and record.outcome in ("stopped", "aborted"):
        data["statusReason"] = [{"text": f"{record.outcome}: {record.end_reason}"}]
    return MedicationAdministration.model_validate(data)


def vitals_observation(
    record: SessionRecord, v: VitalsSet, patient_system: str = PATIENT_SYSTEM
) -> Observation:
    components = []
    for field, code, display, ucum, unit in VITAL_COMPONENTS:
        value = getattr(v, field)
        if value is not None:
            components.append(
                {
                    "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                    "valueQuantity": _qty(value, ucum, unit),
                }
            )
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [
            {"system": f"{SESSION_SYSTEM}:vitals", "value": f"{record.session_id}/{v.seq}"}
        ],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": PANEL[0], "display": PANEL[1]}]},
        "subject": _patient(record, patient_system),
        "effectiveDateTime": _instant(v.at),
        "performer": [_staff(v.recorded_by)],
        "method": {"text": f"{v.source} entry"},
        "device": {"reference": _urn(record, "device"), "display": record.device.pump_id},
        "component": components,
    }
    return Observation.model_validate(data)


_AGENT_TYPE = {
    "programmed": "author",
    "re-programmed": "author",
    "double-checked": "verifier",
    "discharged": "performer",
    "acknowledged alarm": "performer",
    "witnessed override": "attester",
}


def provenance(record: SessionRecord, targets: list[str], now: datetime) -> Provenance:
    agents: list[dict[str, Any]] = []
    for person in record.people:
        kind = _AGENT_TYPE.get(person.role, "attester")
        agents.append(
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": kind,
                        }
                    ],
                    "text": f"{person.role} at {_instant(person.at)} (audit seq {person.seq})",
                },
                "who": _staff(person.name),
            }
        )
    agents.append(
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "assembler",
                    }
                ],
                "text": f"pumpd {PUMPD_VERSION}: supervised the pump and assembled this record",
            },
            "who": {"display": f"pumpd {PUMPD_VERSION}"},
        }
    )
    chain = record.chain
    verdict = "verified intact" if chain.ok else f"BROKEN: {chain.problem}"
    data: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "occurredPeriod": {"start": _instant(record.first_at), "end": _instant(record.last_at)},
        "recorded": _instant(now),
        "policy": [f"{CHAIN_SYSTEM}:{'keyed' if chain.keyed else 'unkeyed'}"],
        "agent": agents,
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {
                        "system": CHAIN_SYSTEM,
                        "value": f"{chain.head_seq}:{chain.head_hash}",
                    },
                    "display": (
                        f"pumpd audit chain head at the time of this record ({verdict}, "
                        f"{chain.checked} events)"
                    ),
                },
            }
        ],
    }
    return Provenance.model_validate(data)


@dataclass(frozen=True, slots=True)
class FhirRecord:
    bundle: Bundle

    def json(self) -> str:
        text: str = self.bundle.model_dump_json(by_alias=True, exclude_none=True, indent=2)
        return text + "\n"


def bundle(
    record: SessionRecord, now: datetime, patient_system: str = PATIENT_SYSTEM
) -> FhirRecord:
    """The transaction Bundle: Device, MedicationAdministration, Observations, Provenance."""
    entries: list[tuple[str, Any, dict[str, Any]]] = []
    dev = device(record)
    entries.append(
        (
            _urn(record, "device"),
            dev,
            {
                "method": "POST",
                "url": "Device",
                "ifNoneExist": f"identifier={PUMP_SYSTEM}|{record.device.pump_id}",
            },
        )
    )
    admin = medication_administration(record, patient_system)
    entries.append(
        (
            _urn(record, "administration"),
            admin,
            {
                "method": "POST",
                "url": "MedicationAdministration",
                "ifNoneExist": f"identifier={SESSION_SYSTEM}|{record.session_id}",
            },
        )
    )
    for v in record.vitals:
        entries.append(
            (
                _urn(record, f"vitals/{v.seq}"),
                vitals_observation(record, v, patient_system),
                {"method": "POST", "url": "Observation"},
            )
        )
    targets = [urn for urn, _, _ in entries[1:]]
    entries.append(
        (
            _urn(record, "provenance"),
            provenance(record, targets, now),
            {"method": "POST", "url": "Provenance"},
        )
    )
    data = {
        "resourceType": "Bundle",
        "identifier": {"system": SESSION_SYSTEM, "value": record.session_id},
        "type": "transaction",
        "timestamp": _instant(now),
        "entry": [
            {"fullUrl": urn, "resource": resource, "request": request}
            for urn, resource, request in entries
        ],
    }
    return FhirRecord(Bundle.model_validate(data))


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int
    location: str | None
    body: str


def post(record: FhirRecord, url: str, timeout_s: float = 30.0) -> PostResult:
    """POST the transaction Bundle to the server's base URL; any non-2xx answer is an error."""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FhirPostError(f"--post needs an http:// or https:// URL, not {url!r}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=record.json().encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/fhir+json; charset=utf-8",
            "Accept": "application/fhir+json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            body = response.read(1_000_000).decode("utf-8", errors="replace")
            return PostResult(response.status, response.headers.get("Location"), body)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4000).decode("utf-8", errors="replace")
        raise FhirPostError(f"{url} answered {exc.code} {exc.reason}: {_outcome(detail)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FhirPostError(f"cannot reach {url}: {reason}") from None


def _outcome(body: str) -> str:
    """The diagnostics of an OperationOutcome, else the start of the body."""
    try:
        data = json.loads(body)
        issues = data.get("issue", [])
        texts = [i.get("diagnostics") or i.get("code", "") for i in issues]
        if texts:
            return "; ".join(str(t) for t in texts)
    except (ValueError, AttributeError):
        pass
    return body[:300]
