"""``pumpaudit`` end to end on a real database with three sessions of two patients."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pumpd.cli.pumpaudit import main

from .conftest import Db
from .factories import session_events


@pytest.fixture
def populated(db: Db) -> Db:
    store = db.open_store()
    try:
        store.append_many(session_events("S-1", "P-0001"))
        store.append_many(
            session_events("S-2", "P-0001", delivered_ul=20000, delivered_mg="20.00", stopped=True)
        )
        store.append_many(
            session_events("S-3", "P-0002", pump="pump-2", alarm=False, override=False)
        )
    finally:
        store.close()
    return db


def run(db: Db, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database", db.url, *args])


def run_json(db: Db, *args: str) -> Any:
    result = run(db, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _count(db: Db) -> int:
    return int(db.admin("SELECT COUNT(*) FROM audit_event")[0][0])


def test_verify_intact(populated: Db) -> None:
    result = run(populated, "verify")
    assert result.exit_code == 0, result.output
    assert f"OK: {_count(populated)} events, chain intact (unkeyed)" in result.output
    data = run_json(populated, "verify")
    assert data["ok"] is True
    assert data["problem"] is None
    assert data["head"].startswith(f"{_count(populated)}:")


def test_verify_names_the_first_bad_seq(populated: Db) -> None:
    trigger = "audit_event_no_update" if populated.is_sqlite else None
    if trigger:
        populated.admin(f"DROP TRIGGER {trigger}")
    else:
        populated.admin("DROP TRIGGER audit_event_no_update_delete ON audit_event")
    populated.admin("UPDATE audit_event SET payload = '{}' WHERE seq IN (7, 12)")
    result = run(populated, "verify")
    assert result.exit_code == 1
    assert "BROKEN at seq 7: changed" in result.output
    data = json.loads(run(populated, "verify", "--json").output)
    assert data["problem"]["seq"] == 7


def test_verify_against_a_checkpoint_finds_a_cut_tail(populated: Db) -> None:
    head = run_json(populated, "verify")["head"]
    if populated.is_sqlite:
        populated.admin("DROP TRIGGER audit_event_no_delete")
    else:
        populated.admin("DROP TRIGGER audit_event_no_update_delete ON audit_event")
    total = _count(populated)
    populated.admin("DELETE FROM audit_event WHERE seq > ?", (total - 3,))
    assert run(populated, "verify").exit_code == 0
    result = run(populated, "verify", "--checkpoint", head)
    assert result.exit_code == 1
    assert f"BROKEN at seq {total - 2}: truncated" in result.output


def test_verify_rejects_a_malformed_checkpoint(populated: Db) -> None:
    result = run(populated, "verify", "--checkpoint", "12:nothex")
    assert result.exit_code == 2
    assert "SEQ:HASH" in result.output


def test_verify_keyed_chain(db: Db, key_file: Path) -> None:
    store = db.open_store(key_file=key_file)
    store.append_many(session_events("S-1", "P-0001"))
    store.close()
    assert run(db, "verify", "--key-file", str(key_file)).exit_code == 0
    result = run(db, "verify")
    assert result.exit_code == 1
    assert "keyed" in result.output
    key_file.chmod(0o644)
    result = run(db, "verify", "--key-file", str(key_file))
    assert result.exit_code == 2
    assert "chmod 600" in result.output


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--session", "S-2"], lambda e: e["session_id"] == "S-2"),
        (["--patient", "P-0002"], lambda e: e["patient_ref"] == "P-0002"),
        (["--pump", "pump-2"], lambda e: e["pump_id"] == "pump-2"),
        (["--actor", "nurse.berg"], lambda e: e["actor_name"] == "nurse.berg"),
        (["--type", "alarm.raised"], lambda e: e["event_type"] == "alarm.raised"),
        (["--type", "pump.command.*"], lambda e: e["event_type"].startswith("pump.command.")),
    ],
)
def test_events_filters(populated: Db, args: list[str], expect: Any) -> None:
    everything = run_json(populated, "events")
    chosen = run_json(populated, "events", *args)
    assert chosen
    assert chosen == [e for e in everything if expect(e)]


def test_events_time_window(populated: Db) -> None:
    everything = run_json(populated, "events")
    since, until = everything[3]["occurred_at"], everything[8]["occurred_at"]
    chosen = run_json(populated, "events", "--since", since, "--until", until)
    assert chosen == [e for e in everything if since <= e["occurred_at"] < until]
    bad = run(populated, "events", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.output


def test_events_human_listing(populated: Db) -> None:
    result = run(populated, "events", "--session", "S-3")
    assert result.exit_code == 0
    assert "session.programmed" in result.output
    assert f"({len(run_json(populated, 'events', '--session', 'S-3'))} rows)" in result.output


def test_sessions_are_derived_from_events(populated: Db) -> None:
    sessions = {s["session_id"]: s for s in run_json(populated, "sessions")}
    assert list(sessions) == ["S-1", "S-2", "S-3"]
    s1, s2, s3 = sessions["S-1"], sessions["S-2"], sessions["S-3"]
    assert s1["protocol"] == "ketamine_iv_depression@2.1"
    assert s1["prescribed_dose_mg"] == "35.00"
    assert (s1["outcome"], s1["delivered_volume_ul"], s1["delivered_dose_mg"]) == (
        "completed",
        35000,
        "35.00",
    )
    assert (s2["outcome"], s2["delivered_dose_mg"]) == ("stopped", "20.00")
    assert (s1["alarms"], s3["alarms"]) == (1, 0)
    assert s1["overrides"][0]["reason_code"] == "physician_order"
    assert s3["overrides"] == []
    assert s1["nurses"] == ["nurse.alvarez", "nurse.berg"]
    assert s3["pump_id"] == "pump-2"
    assert s1["started_at"] is not None
    assert s1["ended_at"] >= s1["started_at"]
    later = run_json(populated, "sessions", "--since", s3["programmed_at"])
    assert [s["session_id"] for s in later] == ["S-3"]
    human = run(populated, "sessions")
    assert human.exit_code == 0
    assert "ketamine_iv_depression@2.1" in human.output
    assert "(3 rows)" in human.output


def test_show_session_timeline(populated: Db) -> None:
    data = run_json(populated, "show", "S-2")
    types = [e["event_type"] for e in data["events"]]
    assert types[0] == "session.programmed"
    assert types[-1] == "session.stopped"
    assert "pump.command.requested" in types
    assert data["session"]["outcome"] == "stopped"
    requested = next(e for e in data["events"] if e["event_type"] == "pump.command.requested")
    confirmed = next(e for e in data["events"] if e["event_type"] == "pump.command.confirmed")
    assert requested["correlation_id"] == confirmed["correlation_id"]
    human = run(populated, "show", "S-2")
    assert human.exit_code == 0
    assert "session S-2" in human.output
    missing = run(populated, "show", "S-404")
    assert missing.exit_code == 2
    assert "S-404" in missing.output


def test_patient_course_numbers_and_accumulates(populated: Db) -> None:
    course = run_json(populated, "patient", "P-0001")
    assert [(c["number"], c["session_id"], c["cumulative_dose_mg"]) for c in course] == [
        (1, "S-1", "35.00"),
        (2, "S-2", "55.00"),
    ]
    assert course[0]["date"] == course[0]["programmed_at"][:10]
    assert run_json(populated, "patient", "P-9999") == []
    assert "55.00" in run(populated, "patient", "P-0001").output


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_export_formats_carry_every_event(populated: Db, fmt: str) -> None:
    result = run(populated, "export", "--format", fmt)
    assert result.exit_code == 0
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.output)))
        hashes = [r["event_hash"] for r in rows]
        assert rows[0]["simulated"] == "false"
    elif fmt == "json":
        hashes = [e["event_hash"] for e in json.loads(result.output)]
    else:
        hashes = [json.loads(line)["event_hash"] for line in result.output.splitlines()]
    assert hashes == [e["event_hash"] for e in run_json(populated, "events")]
    assert len(hashes) == _count(populated)


def test_report_counts(populated: Db) -> None:
    report = run_json(populated, "report")
    assert report["sessions"] == 3
    assert report["sessions_by_outcome"] == {"completed": 2, "stopped": 1}
    assert report["delivered_dose_mg"] == "90.00"
    assert report["alarms_by_code"] == {"vitals.bp_high": 2}
    assert [o["reason"] for o in report["overrides"]] == ["Dose confirmed with Dr. on call"] * 2
    assert report["per_nurse"]["nurse.berg"]["alarm.acknowledged"] == 2
    assert report["per_nurse"]["nurse.alvarez"]["sessions"] == 3
    human = run(populated, "report")
    assert human.exit_code == 0
    assert "vitals.bp_high" in human.output
    empty = run_json(populated, "report", "--since", "2999-01-01")
    assert empty["sessions"] == 0


def test_refuses_missing_or_newer_databases(db: Db, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sessions"], env={"PUMPD_DATABASE": ""})
    assert result.exit_code == 2
    assert "PUMPD_DATABASE" in result.output
    db.admin("UPDATE alembic_version SET version_num = '0077_next'")
    result = run(db, "sessions")
    assert result.exit_code == 3
    assert "0077_next" in result.output
