"""The FHIR record of a real session, validated by fhir.resources and posted to a local server.

The Bundle that `pumpaudit fhir` writes is read back with the library's models (never a
hand-written schema); its contents are compared with the audit events they come from.
`--post` is tested only against a small HTTP server this test starts on 127.0.0.1:0.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance

from .conftest import RecordedSession
from .test_session_report import events, head_of, pumpaudit

# The first test of a run waits for the shared recording of a real session (simulator,
# daemon, pumpctl): a minute alone, several on a loaded 2-core machine; its setup counts
# toward the per-test timeout.
pytestmark = pytest.mark.timeout(600)


def write_bundle(recorded: RecordedSession, tmp_path: Path, *extra: str) -> Bundle:
    out = tmp_path / "bundle.json"
    result = pumpaudit(recorded.database, "fhir", recorded.session_id, "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    assert "FHIR R4 transaction Bundle" in result.stderr
    return Bundle.model_validate_json(out.read_text(encoding="utf-8"))


def resources(bundle: Bundle, kind: type[Any]) -> list[Any]:
    return [e.resource for e in bundle.entry or [] if isinstance(e.resource, kind)]


def test_bundle_maps_the_session(recorded: RecordedSession, tmp_path: Path) -> None:
    bundle = write_bundle(recorded, tmp_path, "--patient-system", "https://clinic.example/ids")
    assert bundle.type == "transaction"
    urls = [e.fullUrl for e in bundle.entry or []]
    assert len(set(urls)) == len(urls)
    kinds = [type(e.resource).__name__ for e in bundle.entry or []]
    vitals = events(recorded, "vitals.recorded")
    assert kinds == ["Device", "MedicationAdministration", *["Observation"] * len(vitals),
                     "Provenance"]  # fmt: skip
    device_url = urls[0]

    [admin] = resources(bundle, MedicationAdministration)
    assert admin.status == "completed"
    assert admin.identifier[0].value == recorded.session_id
    assert admin.subject.identifier.system == "https://clinic.example/ids"
    assert admin.subject.identifier.value == recorded.patient_ref
    [started] = events(recorded, "session.started")
    [completed] = events(recorded, "infusion.completed")
    assert admin.effectivePeriod.start.isoformat().startswith(started["occurred_at"][:19])
    assert admin.effectivePeriod.end.isoformat().startswith(completed["occurred_at"][:19])
    [medication] = admin.contained
    strength = medication.ingredient[0].strength
    [programmed] = events(recorded, "session.programmed")
    assert strength.numerator.value == Decimal(programmed["payload"]["concentration_mg_ml"])
    assert (strength.numerator.code, strength.denominator.code) == ("mg", "mL")
    assert admin.medicationReference.reference == "#" + medication.id
    assert admin.dosage.dose.value == Decimal(completed["payload"]["delivered_dose_mg"])
    assert admin.dosage.dose.code == "mg"
    assert admin.dosage.rateQuantity.value == Decimal("150")
    assert admin.dosage.rateQuantity.code == "mL/h"
    assert admin.device[0].reference == device_url
    performers = {p.actor.identifier.value for p in admin.performer}
    assert programmed["actor_name"] in performers
    notes = [n.text for n in admin.note]
    assert any("patient asked for a break" in n for n in notes)
    assert any("tick.vitals.pause.systolic_mmhg.above_max" in n for n in notes)
    assert any("mild dissociation" in n for n in notes)

    observations = resources(bundle, Observation)
    first = observations[0]
    assert first.code.coding[0].system == "http://loinc.org"
    assert first.code.coding[0].code == "85354-9"
    assert first.category[0].coding[0].code == "vital-signs"
    values = {c.code.coding[0].code: c.valueQuantity for c in first.component}
    baseline = vitals[0]["payload"]
    assert {k: v.value for k, v in values.items()} == {
        "8480-6": baseline["systolic_mmhg"],
        "8462-4": baseline["diastolic_mmhg"],
        "8867-4": baseline["heart_rate_bpm"],
        "59408-5": baseline["spo2_percent"],
        "9279-1": baseline["respiratory_rate_per_min"],
    }
    assert values["8480-6"].code == "mm[Hg]"
    assert values["59408-5"].code == "%"
    assert values["9279-1"].code == "/min"
    assert [
        int(next(c.valueQuantity.value for c in o.component if c.code.coding[0].code == "8480-6"))
        for o in observations
    ] == [v["payload"]["systolic_mmhg"] for v in vitals]
    assert all(o.subject.identifier.value == recorded.patient_ref for o in observations)

    [provenance] = resources(bundle, Provenance)
    assert [t.reference for t in provenance.target] == urls[1:-1]
    assert provenance.entity[0].what.identifier.value == head_of(recorded.database)
    assert "verified intact" in provenance.entity[0].what.display
    agents = {a.who.display for a in provenance.agent}
    assert programmed["actor_name"] in agents
    assert any(name.startswith("pumpd ") for name in agents)
    codes = {a.type.coding[0].code for a in provenance.agent}
    assert {"author", "verifier", "assembler"} <= codes


def test_bundle_goes_to_stdout_and_names_the_same_entries(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    written = write_bundle(recorded, tmp_path)
    result = pumpaudit(recorded.database, "fhir", recorded.session_id)
    assert result.returncode == 0, result.stderr
    printed = Bundle.model_validate_json(result.stdout)
    assert [e.fullUrl for e in printed.entry or []] == [e.fullUrl for e in written.entry or []]


@dataclass
class Received:
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def fhir_server() -> Iterator[tuple[str, Received]]:
    """A stand-in FHIR server on an ephemeral port: records each POST, answers `status`."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.requests.append(("POST", self.path, dict(self.headers), body))
            if received.status == 200:
                answer = {"resourceType": "Bundle", "type": "transaction-response"}
            else:
                answer = {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "invalid",
                               "diagnostics": "Patient identifier not known"}],
                }  # fmt: skip
            data = json.dumps(answer).encode()
            self.send_response(received.status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_post_sends_the_bundle_to_the_server(
    recorded: RecordedSession, tmp_path: Path, fhir_server: tuple[str, Received]
) -> None:
    url, received = fhir_server
    written = write_bundle(recorded, tmp_path, "--post", url)
    [(method, path, headers, body)] = received.requests
    assert (method, path) == ("POST", "/fhir")
    assert headers["Content-Type"].startswith("application/fhir+json")
    posted = Bundle.model_validate_json(body)
    assert [e.fullUrl for e in posted.entry or []] == [e.fullUrl for e in written.entry or []]
    assert [e.request.url for e in posted.entry or []][:2] == ["Device", "MedicationAdministration"]


def test_a_refusing_server_exits_4_with_its_diagnostics(
    recorded: RecordedSession, fhir_server: tuple[str, Received]
) -> None:
    url, received = fhir_server
    received.status = 422
    result = pumpaudit(recorded.database, "fhir", recorded.session_id, "--post", url)
    assert result.returncode == 4, result.stderr
    assert "422" in result.stderr
    assert "Patient identifier not known" in result.stderr
    assert len(received.requests) == 1


def test_post_refuses_a_url_that_is_not_http(recorded: RecordedSession) -> None:
    result = pumpaudit(
        recorded.database, "fhir", recorded.session_id, "--post", "file:///etc/passwd"
    )
    assert result.returncode == 2
    assert "needs an http:// or https:// URL" in result.stderr


def test_an_aborted_session_is_not_done_with_its_reason(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    out = tmp_path / "aborted.json"
    result = pumpaudit(recorded.database, "fhir", recorded.aborted_session_id, "--out", str(out))
    assert result.returncode == 0, result.stderr
    bundle = Bundle.model_validate_json(out.read_text(encoding="utf-8"))
    [admin] = resources(bundle, MedicationAdministration)
    assert admin.status == "not-done"
    assert "patient declined today (abort)" in admin.statusReason[0].text
    assert admin.dosage.dose is None  # nothing was given
    assert resources(bundle, Observation) == []
