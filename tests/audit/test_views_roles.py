"""The auditors' SQL views, and the PostgreSQL roles from migrations/sql/postgres-roles.sql."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import errors, sql

from pumpd.audit.migrate import MIGRATIONS_DIR
from pumpd.audit.store import AuditStore
from pumpd.cli.pumpaudit import main as pumpaudit

from .conftest import Db
from .factories import filler, session_events


def _populate(db: Db) -> None:
    store = db.open_store()
    try:
        store.append_many(session_events("S-1", "P-0001"))
        store.append_many(
            session_events("S-2", "P-0002", stopped=True, delivered_ul=1000, delivered_mg="1.00")
        )
    finally:
        store.close()


def test_sessions_view(db: Db) -> None:
    _populate(db)
    rows = db.admin(
        "SELECT session_id, patient_ref, protocol_id, protocol_version, prescribed_dose_mg, "
        "outcome, delivered_volume_ul, delivered_dose_mg, alarms, overrides, started_at, ended_at "
        "FROM audit_sessions ORDER BY programmed_at"
    )
    assert [r[:6] for r in rows] == [
        ("S-1", "P-0001", "ketamine_iv_depression", "2.1", "35.00", "completed"),
        ("S-2", "P-0002", "ketamine_iv_depression", "2.1", "35.00", "stopped"),
    ]
    assert [int(r[6]) for r in rows] == [35000, 1000]
    assert [Decimal(str(r[7])) for r in rows] == [Decimal("35.00"), Decimal("1.00")]
    assert [(int(r[8]), int(r[9])) for r in rows] == [(1, 1), (1, 1)]
    assert all(r[10] <= r[11] for r in rows)


def test_alarms_overrides_commands_views(db: Db) -> None:
    _populate(db)
    alarms = db.admin(
        "SELECT session_id, alarm_code, priority, acknowledged_by, acknowledged_at >= raised_at "
        "FROM audit_alarms ORDER BY seq"
    )
    assert [a[:4] for a in alarms] == [
        ("S-1", "vitals.bp_high", "medium", "nurse.berg"),
        ("S-2", "vitals.bp_high", "medium", "nurse.berg"),
    ]
    assert all(a[4] in (1, True) for a in alarms)
    overrides = db.admin("SELECT session_id, reason_code, approved_by FROM audit_overrides")
    assert sorted(overrides) == [
        ("S-1", "physician_order", "nurse.berg"),
        ("S-2", "physician_order", "nurse.berg"),
    ]
    commands = db.admin(
        "SELECT session_id, command, result_type, result_seq > requested_seq FROM audit_commands "
        "ORDER BY requested_seq"
    )
    assert [c[:3] for c in commands] == [
        ("S-1", "start", "pump.command.confirmed"),
        ("S-2", "start", "pump.command.confirmed"),
    ]
    assert all(c[3] in (1, True) for c in commands)


def test_session_lookups_use_an_index(db: Db) -> None:
    _populate(db)
    if db.is_sqlite:
        plan = " ".join(
            str(r[-1])
            for r in db.admin(
                "EXPLAIN QUERY PLAN SELECT * FROM audit_events WHERE session_id = 'S-1' "
                "ORDER BY seq"
            )
        )
    else:
        assert db.pg_conninfo is not None
        with psycopg.connect(db.pg_conninfo) as conn:
            conn.execute("SET enable_seqscan = off")  # tiny table: can an index serve it?
            rows = conn.execute(
                "EXPLAIN SELECT * FROM audit_events WHERE session_id = 'S-1' ORDER BY seq"
            ).fetchall()
        plan = " ".join(str(r[0]) for r in rows)
    assert "ix_audit_event_session" in plan


# -- PostgreSQL roles ---------------------------------------------------------------------


@dataclass
class Roles:
    owner: str
    writer: str
    auditor: str

    def conninfo(self, db: Db, role: str) -> str:
        assert db.pg_conninfo is not None
        return psycopg.conninfo.make_conninfo(db.pg_conninfo, user=role)

    def url(self, db: Db, role: str) -> str:
        head, tail = db.url.split("://", 1)
        return f"{head}://{role}@{tail.split('@', 1)[1]}"


@pytest.fixture
def roles(pg_db: Db) -> Iterator[Roles]:
    tag = uuid.uuid4().hex[:8]
    made = Roles(f"pumpd_owner_{tag}", f"pumpd_writer_{tag}", f"pumpd_auditor_{tag}")
    pg_db.admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(made.owner)).as_string())
    psql = shutil.which("psql")
    assert psql is not None, "psql is needed to run the shipped roles script"
    try:
        done = subprocess.run(
            [
                psql,
                pg_db.pg_conninfo or "",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"owner_role={made.owner}",
                "-v",
                f"writer_role={made.writer}",
                "-v",
                f"auditor_role={made.auditor}",
                "-f",
                str(MIGRATIONS_DIR / "sql" / "postgres-roles.sql"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        yield made
    finally:
        names = [made.owner, made.writer, made.auditor]
        existing = {
            r[0]
            for r in pg_db.admin("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
        }
        idents = sql.SQL(", ").join(sql.Identifier(n) for n in names if n in existing)
        if existing:
            pg_db.admin(sql.SQL("DROP OWNED BY {}").format(idents).as_string())
            pg_db.admin(sql.SQL("DROP ROLE {}").format(idents).as_string())


def test_writer_role_appends_but_cannot_change_anything(pg_db: Db, roles: Roles) -> None:
    store = AuditStore.open(roles.url(pg_db, roles.writer))
    try:
        store.append_many([filler(i) for i in range(3)])
    finally:
        store.close()
    with psycopg.connect(roles.conninfo(pg_db, roles.writer), autocommit=True) as conn:
        for statement in (
            "UPDATE audit_event SET payload = '{}'",
            "DELETE FROM audit_event",
            "TRUNCATE audit_event",
            "DROP TRIGGER audit_event_no_update_delete ON audit_event",
            "ALTER TABLE audit_event DISABLE TRIGGER USER",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    assert pg_db.admin("SELECT COUNT(*) FROM audit_event")[0][0] == 3


def test_owner_is_stopped_by_the_triggers(pg_db: Db, roles: Roles) -> None:
    _populate(pg_db)
    with psycopg.connect(roles.conninfo(pg_db, roles.owner), autocommit=True) as conn:
        for statement in ("UPDATE audit_event SET payload = '{}'", "TRUNCATE audit_event"):
            with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)


def test_auditor_reads_views_only(pg_db: Db, roles: Roles) -> None:
    _populate(pg_db)
    with psycopg.connect(roles.conninfo(pg_db, roles.auditor), autocommit=True) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit_sessions").fetchone() == (2,)
        assert conn.execute("SELECT COUNT(*) FROM audit_alarms").fetchone() == (2,)
        for statement in (
            "SELECT * FROM audit_event",
            "INSERT INTO audit_event (seq) VALUES (999)",
            "DELETE FROM audit_events",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.ObjectNotInPrerequisiteState)):
                conn.execute(statement)
    result = CliRunner().invoke(
        pumpaudit, ["--database", roles.url(pg_db, roles.auditor), "verify"]
    )
    assert result.exit_code == 0, result.output
    assert "chain intact" in result.output
    report = CliRunner().invoke(
        pumpaudit, ["--database", roles.url(pg_db, roles.auditor), "report", "--json"]
    )
    assert report.exit_code == 0, report.output
