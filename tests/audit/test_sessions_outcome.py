"""The sessions view's outcome (migration 0004_sessions_outcome) says what ``pumpaudit
sessions`` says: completed, stopped, aborted, running or programmed, on SQLite and on the
real PostgreSQL, also for a session that ended by itself after a delivery-accuracy alarm;
and on PostgreSQL the upgrade keeps the auditor's grant."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from pumpd.audit import migrate
from pumpd.audit.migrate import MIGRATIONS_DIR
from pumpd.audit.store import NewEvent
from pumpd.cli.pumpaudit import main as pumpaudit
from pumpd.db import make_engine

from .conftest import Db, _pg_database, require_postgres
from .factories import DAEMON, NURSE_A, programmed, session_events


def _stopped(session: str, patient: str, reason_code: str, ul: int = 0) -> NewEvent:
    return NewEvent(
        "session.stopped",
        {"reason_code": reason_code, "delivered_volume_ul": ul, "delivered_dose_mg": "0.00"},
        NURSE_A if reason_code == "abort" else DAEMON,
        session_id=session,
        patient_ref=patient,
        pump_id="pump-1",
    )


def _session_scoped(kind: str, payload: dict[str, object], session: str) -> NewEvent:
    return NewEvent(
        kind, payload, DAEMON, session_id=session, patient_ref="P-0005", pump_id="pump-1"
    )


EXPECTED = {
    "S-1": "completed",
    "S-2": "stopped",
    "S-3": "aborted",
    "S-4": "programmed",
    "S-5": "stopped",  # ended by itself after an over-infusion, then discharged
    "S-6": "running",
}


def _populate(db: Db) -> None:
    store = db.open_store()
    try:
        store.append_many(session_events("S-1", "P-0001"))
        store.append_many(session_events("S-2", "P-0002", stopped=True, delivered_ul=1000))
        store.append_many([programmed("S-3", "P-0003"), _stopped("S-3", "P-0003", "abort")])
        store.append_many([programmed("S-4", "P-0004")])
        over = session_events("S-5", "P-0005", alarm=False, override=False)[:-1]  # no end
        store.append_many(
            [
                *over,
                _stopped("S-5", "P-0005", "tick.volume.over_infusion", 9000),
                _session_scoped(
                    "session.ended",
                    {
                        "reason": "Delivery was interrupted by tick.volume.over_infusion",
                        "rule": "continue.ended",
                        "interrupted_by": ["tick.volume.over_infusion"],
                        "delivered_volume_ul": 9000,
                    },
                    "S-5",
                ),
                _session_scoped("observation.started", {"minimum_s": 1800}, "S-5"),
                _session_scoped("observation.ended", {"observed_s": 1900, "outcome": "x"}, "S-5"),
            ]
        )
        store.append_many(session_events("S-6", "P-0006", alarm=False, override=False)[:-1])
    finally:
        store.close()


def _view(db: Db) -> dict[str, str]:
    rows = db.admin("SELECT session_id, outcome FROM audit_sessions ORDER BY session_id")
    return {str(r[0]): str(r[1]) for r in rows}


def _pumpaudit(db: Db) -> dict[str, str]:
    result = CliRunner().invoke(pumpaudit, ["--database", db.url, "sessions", "--json"])
    assert result.exit_code == 0, result.output
    return {s["session_id"]: s["outcome"] for s in json.loads(result.output)}


def test_the_view_says_what_pumpaudit_sessions_says(db: Db) -> None:
    _populate(db)
    assert _view(db) == EXPECTED
    assert _pumpaudit(db) == EXPECTED
    # the other columns are as before: the aborted session's end is its stop
    [(ended, started, delivered)] = db.admin(
        "SELECT ended_at, started_at, delivered_volume_ul FROM audit_sessions "
        "WHERE session_id = 'S-3'"
    )
    assert ended is not None
    assert started is None
    assert int(delivered) == 0


# -- PostgreSQL: the upgrade of a deployed database keeps the grants -----------------------


@pytest.fixture
def pg_at_0003() -> Iterator[Db]:
    for d in _pg_database(require_postgres()):
        engine = make_engine(d.url)
        try:
            migrate.upgrade(engine, "0003_staff_registry")
        finally:
            engine.dispose()
        yield d


@pytest.mark.postgres
def test_the_owner_upgrades_a_deployed_database_and_the_auditor_still_reads(
    pg_at_0003: Db,
) -> None:
    db = pg_at_0003
    [(name,)] = db.admin("SELECT current_database()")
    tag = uuid.uuid4().hex[:8]
    owner, writer, auditor = f"pumpd_owner_{tag}", f"pumpd_writer_{tag}", f"pumpd_auditor_{tag}"
    db.admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)).as_string())
    psql = shutil.which("psql")
    assert psql is not None, "psql is needed to run the shipped roles script"
    try:
        done = subprocess.run(
            [
                psql, db.pg_conninfo or "", "-q", "-v", "ON_ERROR_STOP=1",
                "-v", f"owner_role={owner}", "-v", f"writer_role={writer}",
                "-v", f"auditor_role={auditor}",
                "-f", str(MIGRATIONS_DIR / "sql" / "postgres-roles.sql"),
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # As deployed (docs/audit.md): the database belongs to the owner role, which runs
        # `pumpd db upgrade`.
        db.admin(
            sql.SQL("ALTER DATABASE {} OWNER TO {}")
            .format(sql.Identifier(name), sql.Identifier(owner))
            .as_string()
        )
        head, tail = db.url.split("://", 1)
        engine = make_engine(f"{head}://{owner}@{tail.split('@', 1)[1]}")
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        _populate(db)
        assert db.pg_conninfo is not None
        as_auditor = psycopg.conninfo.make_conninfo(db.pg_conninfo, user=auditor)
        with psycopg.connect(as_auditor, autocommit=True) as conn:
            rows = conn.execute("SELECT session_id, outcome FROM audit_sessions").fetchall()
        assert dict(rows) == EXPECTED
        owners = db.admin("SELECT viewowner FROM pg_views WHERE viewname = 'audit_sessions'")
        assert owners == [(owner,)]
    finally:
        names = [owner, writer, auditor]
        existing = {
            r[0] for r in db.admin("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
        }
        db.admin(
            sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER")
            .format(sql.Identifier(name))
            .as_string()
        )
        if existing:
            idents = sql.SQL(", ").join(sql.Identifier(n) for n in names if n in existing)
            db.admin(sql.SQL("DROP OWNED BY {}").format(idents).as_string())
            db.admin(sql.SQL("DROP ROLE {}").format(idents).as_string())
