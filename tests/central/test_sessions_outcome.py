"""The central sessions view (c0002_sessions_outcome) says what the site's view and
``pumpaudit sessions`` say of the same forwarded sessions: completed, stopped, aborted,
running, programmed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from pumpd.audit import Actor, NewEvent

from .conftest import Centre, Site, drain

NURSE = Actor.person("nurse.alvarez", "nurse", 1001)
SHA = "a" * 64


def _events(session: str, *kinds: str, reason_code: str = "nurse.stop") -> list[NewEvent]:
    ids = {"session_id": session, "patient_ref": f"P-{session}", "pump_id": "pump-1"}
    payloads = {
        "session.programmed": {
            "protocol_id": "ketamine-trd-standard",
            "protocol_version": "1",
            "protocol_sha256": SHA,
            "drug": "ketamine",
            "concentration_mg_ml": Decimal("1.0"),
            "weight_kg": "70.0",
            "weight_basis": "actual",
            "dose_mg_kg": "0.50",
            "prescribed_dose_mg": "35.00",
            "rate_ml_h": "87.50",
            "volume_ul": 35000,
            "duration_s": 2400,
        },
        "session.started": {"rate_ml_h": "87.50", "volume_ul": 35000},
        "session.stopped": {
            "reason_code": reason_code,
            "delivered_volume_ul": 0,
            "delivered_dose_mg": "0.00",
        },
        "infusion.completed": {"delivered_volume_ul": 35000, "delivered_dose_mg": "35.00"},
    }
    return [NewEvent(k, payloads[k], NURSE, **ids) for k in kinds]


EXPECTED = {
    "S-1": "completed",
    "S-2": "stopped",
    "S-3": "aborted",
    "S-4": "programmed",
    "S-5": "running",
}


def test_the_central_view_says_what_the_site_says(
    centre: Centre, make_site: Callable[..., Site]
) -> None:
    site = make_site("clinic-east")
    p, s = "session.programmed", "session.started"
    site.store.append_many(
        [
            *_events("S-1", p, s, "infusion.completed"),
            *_events("S-2", p, s, "session.stopped", reason_code="tick.volume.over_infusion"),
            *_events("S-3", p, "session.stopped", reason_code="abort"),
            *_events("S-4", p),
            *_events("S-5", p, s),
        ]
    )
    drain(site.forwarder())
    rows = centre.admin("SELECT session_id, outcome FROM audit_sessions WHERE site = 'clinic-east'")
    assert dict(rows) == EXPECTED
    with site.store.engine.connect() as conn:
        local = conn.exec_driver_sql("SELECT session_id, outcome FROM audit_sessions").fetchall()
    assert {str(k): str(v) for k, v in local} == EXPECTED
