"""Migrations: protections after every revision, schema == model, unknown revisions refused."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from pumpd.audit import migrate
from pumpd.audit.errors import SchemaError
from pumpd.audit.schema import (
    PROTECTION_TRIGGERS_POSTGRES,
    PROTECTION_TRIGGERS_SQLITE,
    UNIQUE_INDEXES,
    metadata,
)
from pumpd.cli.daemon import main as pumpd_main
from pumpd.db import make_engine
from pumpd.staff.schema import metadata as staff_metadata

from .conftest import Db

_ROW = (
    "INSERT INTO audit_event (seq, occurred_at, mono_ns, host, instance_id, actor_kind, "
    "actor_uid, actor_name, actor_role, pump_id, session_id, patient_ref, event_type, "
    "correlation_id, simulated, payload, prev_hash, event_hash) VALUES "
    "(1, '2026-01-01T00:00:00.000000Z', 0, 'h', 'i', 'daemon', 0, 'pumpd', 'daemon', NULL, "
    "NULL, NULL, 'daemon.stopped', NULL, FALSE, '{}', '" + "0" * 64 + "', '" + "1" * 64 + "')"
)


def _triggers(db: Db) -> set[str]:
    if db.is_sqlite:
        rows = db.admin("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    else:
        rows = db.admin(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass "
            "AND NOT tgisinternal AND tgenabled <> 'D'"
        )
    return {r[0] for r in rows}


def _indexes(db: Db) -> set[str]:
    if db.is_sqlite:
        rows = db.admin("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = db.admin("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_event'")
    return {r[0] for r in rows}


def _assert_refuses(db: Db, statement: str) -> None:
    error = Exception if db.is_sqlite else psycopg.Error
    with pytest.raises(error, match="append-only"):
        db.admin(statement)


def assert_protected(db: Db) -> None:
    expected = PROTECTION_TRIGGERS_SQLITE if db.is_sqlite else PROTECTION_TRIGGERS_POSTGRES
    assert set(expected) <= _triggers(db)
    assert set(UNIQUE_INDEXES) <= _indexes(db)
    _assert_refuses(db, "UPDATE audit_event SET payload = '{\"x\":1}'")
    _assert_refuses(db, "DELETE FROM audit_event")
    if not db.is_sqlite:
        _assert_refuses(db, "TRUNCATE audit_event")
    assert db.admin("SELECT COUNT(*) FROM audit_event")[0][0] == 1


def test_protections_exist_after_every_migration(empty_db: Db) -> None:
    engine = make_engine(empty_db.url)
    try:
        revisions = migrate.revisions()
        assert len(revisions) >= 2
        for n, revision in enumerate(revisions):
            migrate.upgrade(engine, revision)
            assert migrate.current_revision(engine) == revision
            if n == 0:
                empty_db.admin(_ROW)
            assert_protected(empty_db)
    finally:
        engine.dispose()


def test_head_schema_matches_the_runtime_model(db: Db) -> None:
    engine = make_engine(db.url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn),
                [metadata, staff_metadata],  # type: ignore[arg-type]  # alembic takes a list
            )
    finally:
        engine.dispose()
    assert diff == []


def test_upgrade_twice_is_a_no_op(db: Db) -> None:
    result = migrate.upgrade_url(db.url)
    assert result.before == result.after == migrate.head_revision()


def test_unknown_revision_is_refused_by_upgrade_and_cli(db: Db) -> None:
    db.admin("UPDATE alembic_version SET version_num = '0042_newer'")
    with pytest.raises(SchemaError, match="0042_newer"):
        migrate.upgrade_url(db.url)
    out = CliRunner().invoke(pumpd_main, ["db", "upgrade", "--database", db.url])
    assert out.exit_code == 3
    assert "0042_newer" in out.output
    assert "newer pumpd" in out.output
    out = CliRunner().invoke(pumpd_main, ["db", "current", "--database", db.url])
    assert out.exit_code == 3
    assert "0042_newer" in out.output


def test_cli_upgrade_and_current(empty_db: Db) -> None:
    runner = CliRunner()
    out = runner.invoke(pumpd_main, ["db", "current", "--database", empty_db.url])
    assert out.exit_code == 3
    assert "(empty)" in out.output
    out = runner.invoke(pumpd_main, ["db", "upgrade", "--database", empty_db.url])
    assert out.exit_code == 0, out.output
    assert f"(empty) -> {migrate.head_revision()}" in out.output
    out = runner.invoke(pumpd_main, ["db", "current"], env={"PUMPD_DATABASE": empty_db.url})
    assert out.exit_code == 0
    assert f"{migrate.head_revision()} (head)" in out.output


def test_cli_names_a_bad_url() -> None:
    out = CliRunner().invoke(pumpd_main, ["db", "upgrade", "--database", "mysql://x/y"])
    assert out.exit_code == 2
    assert "unsupported database 'mysql'" in out.output
    out = CliRunner().invoke(pumpd_main, ["db", "upgrade"], env={"PUMPD_DATABASE": ""})
    assert out.exit_code == 2
    assert "PUMPD_DATABASE" in out.output
