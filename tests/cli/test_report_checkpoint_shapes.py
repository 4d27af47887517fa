"""``pumpaudit report`` and ``show`` over checkpoints of the oldest shape and a malformed one.

A real SQLite audit database written through the real store. An old log's checkpoint (no
``delivered_before_ul``, ``at_utc`` nor ``pump_last_cmd_seq``) still gives its volume
sample and timeline figures; a checkpoint that is none says which event and which key,
with the usage exit code, instead of a ``KeyError`` from inside the report.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pumpd.audit import Actor, AuditStore, NewEvent, migrate
from pumpd.cli.pumpaudit import main
from pumpd.db import make_engine
from pumpd.report.record import gather

NURSE = Actor.person("staff:N001", "nurse", 1001)
DAEMON = Actor.daemon()
SESSION = "S-5e1f00d0c0de"
PROGRAMMED: dict[str, Any] = {
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
}
OLDEST_ACCOUNTING: dict[str, Any] = {
    "volume_at_start_ul": 1200,
    "rate_ml_h": "150",
    "expected_ul": 24671,
    "delivery_elapsed_ms": 592104,
    "pump_counter_ul": 25868,
    "pump_uptime_s": 2829,
}


def _database(tmp_path: Path, accounting: dict[str, Any]) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    s = {"pump_id": "chair-1", "session_id": SESSION, "patient_ref": "P-0042"}
    checkpoint = {"state": "INFUSING", "snapshot": {"data": {}}, "accounting": accounting}
    store = AuditStore.open(url)
    try:
        store.append_many(
            [
                NewEvent("session.programmed", PROGRAMMED, NURSE, **s),
                NewEvent("session.checkpointed", checkpoint, DAEMON, **s),
            ]
        )
    finally:
        store.close()
    return url


def test_an_old_shaped_checkpoint_gives_its_volumes(tmp_path: Path) -> None:
    url = _database(tmp_path, OLDEST_ACCOUNTING)
    report = CliRunner().invoke(main, ["--database", url, "report", SESSION, "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["plan"]["volume_ul"] == 100000
    engine = make_engine(url)
    try:
        record = gather(engine, SESSION, now=dt.datetime.now(dt.UTC))
    finally:
        engine.dispose()
    assert [(v.pump_ul, v.expected_ul) for v in record.volumes] == [(24668, 24671)]
    show = CliRunner().invoke(main, ["--database", url, "show", SESSION, "--checkpoints"])
    assert show.exit_code == 0, show.output
    assert "expected_ul=24671 pump_counter_ul=25868 delivery_elapsed_ms=592104" in show.output


def test_a_malformed_checkpoint_is_a_clear_error_not_a_key_error(tmp_path: Path) -> None:
    url = _database(tmp_path, {"volume_at_start_ul": 1200, "rate_ml_h": "150"})
    report = CliRunner().invoke(main, ["--database", url, "report", SESSION, "--json"])
    assert report.exit_code == 2, report.output
    assert "unreadable checkpoint: session.checkpointed seq 2" in report.output
    assert "accounting.expected_ul is missing" in report.output
    assert not isinstance(report.exception, KeyError)
    show = CliRunner().invoke(main, ["--database", url, "show", SESSION, "--checkpoints"])
    assert show.exit_code == 0, show.output
    assert "unreadable recovery snapshot: accounting.expected_ul is missing" in show.output
