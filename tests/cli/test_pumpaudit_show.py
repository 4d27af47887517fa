"""``pumpaudit show``: one readable line per event; checkpoints summarised; ``--json`` whole.

A real SQLite audit database is written through the real store. The checkpoint is the
real session machine's snapshot (a programmed session with a note), so its size and
nesting are what a daemon writes: hundreds of characters of internal state that used to
be wrapped into fragments across many table lines.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pumpd.audit import Actor, AuditStore, NewEvent, migrate
from pumpd.cli.pumpaudit import main
from pumpd.clock import ManualClock, stamp
from pumpd.db import make_engine
from pumpd.protocols import load_library
from pumpd.session import Session
from safety.plan import Order, Patient

NURSE = Actor.person("staff:N001", "nurse", 1001)
WITNESS = Actor.person("staff:N002", "nurse", 1001)
DAEMON = Actor.daemon()
SESSION = "S-0a1b2c3d4e5f"
NOTE = 'Nausea; ondansetron 4 mg IV given. "Feels better"'


def _snapshot() -> dict[str, Any]:
    clock = ManualClock(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    session, _ = Session.open(
        session_id=SESSION,
        pump_id="chair-1",
        patient_ref="P-0042",
        protocol=load_library().get("ketamine-trd-standard"),
        by="staff:N001",
        patient=Patient(weight_kg=Decimal("82")),
        order=Order(),
        at=stamp(clock),
    )
    session.note(by="staff:N001", text=NOTE, at=stamp(clock))
    snapshot: dict[str, Any] = session.snapshot()
    return snapshot


def _events() -> list[NewEvent]:
    s = {"pump_id": "chair-1", "session_id": SESSION, "patient_ref": "P-0042"}
    snapshot = _snapshot()
    return [
        NewEvent(
            "session.programmed",
            {
                "protocol_id": "ketamine_trd_standard",
                "protocol_version": "1",
                "protocol_sha256": "6c" * 32,
                "drug": "ketamine",
                "concentration_mg_ml": "0.41",
                "weight_kg": "82",
                "weight_basis": "actual",
                "dose_mg_kg": "0.5",
                "prescribed_dose_mg": "41",
                "rate_ml_h": "150",
                "volume_ul": 100000,
                "duration_s": 2400,
            },
            NURSE,
            **s,
        ),
        NewEvent(
            "session.checkpointed",
            {"state": "PROGRAMMED", "snapshot": snapshot, "accounting": {"pump_counter_ul": 0}},
            DAEMON,
            **s,
        ),
        NewEvent("note.recorded", {"text": NOTE}, NURSE, **s),
        NewEvent(
            "double_check.completed",
            {
                "first_checker": "staff:N001",
                "second_checker": "staff:N002",
                "fields_checked": ["patient_ref", "weight_kg", "protocol", "plan"],
            },
            WITNESS,
            **s,
        ),
        NewEvent(
            "pump.command.requested",
            {"command": "start", "rate_ml_h": "150", "volume_ul": 100000},
            NURSE,
            correlation_id="cmd-1234",
            **s,
        ),
        NewEvent(
            "session.started",
            {
                "rate_ml_h": "150",
                "volume_ul": 100000,
                "supervision": {
                    "vtbi_ul": 100000,
                    "vtbi_overrun_ul": 200,
                    "kvo_max_ul": 0,
                    "volume_tolerance_rel": "0.05",
                    "volume_tolerance_abs_ul": 500,
                    "rate_tolerance_rel": "0.05",
                    "rate_tolerance_abs_ml_h": "0.5",
                    "rate_settle_ms": 10000,
                    "comm_timeout_ms": 5000,
                    "max_delivery_ms": 3000000,
                    "pause_stop_after_ms": 900000,
                    "provenance": ["volume_tolerance_abs at most 500 µL: policy.volume_band"],
                },
            },
            DAEMON,
            **s,
        ),
        NewEvent(
            "session.checkpointed",
            {
                "state": "INFUSING",
                "snapshot": snapshot,
                "accounting": {
                    "expected_ul": 24671,
                    "pump_counter_ul": 24668,
                    "delivery_elapsed_ms": 592104,
                    "pump_uptime_s": 2829,
                },
            },
            DAEMON,
            **s,
        ),
    ]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    store = AuditStore.open(url)
    try:
        store.append_many(_events())
    finally:
        store.close()
    return url


def show(url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--database", url, "show", SESSION, *args])
    assert result.exit_code == 0, result.output
    return result


def _timeline(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("seq "))
    return [line for line in lines[start + 2 :] if line and not line.startswith("(")]


def test_one_line_per_event_and_checkpoints_are_not_listed_by_default(database: str) -> None:
    out = show(database).output
    rows = _timeline(out)
    assert [r.split()[2] for r in rows] == [
        "session.programmed",
        "note.recorded",
        "double_check.completed",
        "pump.command.requested",
        "session.started",
    ]
    assert all(r.split()[0].isdigit() for r in rows), rows  # no continuation fragments
    assert '"snapshot"' not in out
    assert "{" not in "\n".join(rows)
    assert "(2 session.checkpointed events, the recovery snapshots, not listed" in out
    note = next(r for r in rows if "note.recorded" in r)
    assert note.endswith("text=" + json.dumps(NOTE))  # a free text whole, quoted
    requested = next(r for r in rows if "pump.command.requested" in r)
    assert "command=start rate_ml_h=150 reason_codes=[] volume_ul=100000 [cmd-1234]" in requested
    started = next(r for r in rows if "session.started" in r)
    assert started.endswith(
        "rate_ml_h=150 volume_ul=100000 limits: volume ±500 µL or 5 %, rate ±0.5 mL/h or 5 %, "
        "link lost after 5 s, VTBI +200 µL, delivery ≤ 50 min, pause ≤ 15 min "
        "(--json has their sources)"
    ), started
    checked = next(r for r in rows if "double_check.completed" in r)
    assert "fields_checked=patient_ref,weight_kg,protocol,plan" in checked
    assert "staff:N002" in checked


def test_checkpoints_on_request_are_summarised_by_state_and_volumes(database: str) -> None:
    rows = _timeline(show(database, "--checkpoints").output)
    checkpoints = [r for r in rows if "session.checkpointed" in r]
    assert len(checkpoints) == 2
    assert "state=PROGRAMMED pump_counter_ul=0" in checkpoints[0]
    assert (
        "state=INFUSING expected_ul=24671 pump_counter_ul=24668 delivery_elapsed_ms=592104"
        in checkpoints[1]
    )
    assert all(len(r) < 200 for r in checkpoints), checkpoints
    assert NOTE not in "\n".join(checkpoints)  # the snapshot's contents stay out


def test_json_keeps_every_event_whole(database: str) -> None:
    data = json.loads(show(database, "--json").output)
    assert [e["event_type"] for e in data["events"]] == [e.event_type for e in _events()]
    stored = [e for e in data["events"] if e["event_type"] == "session.checkpointed"]
    assert stored[0]["payload"]["snapshot"] == json.loads(json.dumps(_snapshot()))
    assert stored[1]["payload"]["accounting"]["expected_ul"] == 24671
    assert data["session"]["nurses"] == ["staff:N001", "staff:N002"]


def test_session_listing_columns_stay_aligned_with_long_protocol_ids(database: str) -> None:
    result = CliRunner().invoke(main, ["--database", database, "sessions"])
    assert result.exit_code == 0, result.output
    head, _rule, row = result.output.splitlines()[:3]
    assert "ketamine_trd_standard@1" in row
    for column in ("presc mg", "outcome", "nurses"):
        at = head.index(column)
        assert row[at - 1] == " ", (column, head, row)  # the cell before it ended in time
        assert row[at] != " ", (column, head, row)
