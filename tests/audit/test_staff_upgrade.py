"""The staff registry left the audit package (``pumpd.staff``) but not the site's database:
a database whose registry an earlier pumpd filled, at the registry's own revision, upgrades
with every member, PIN hash, failure count and lock kept, and the registry reads them."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from pumpd.audit import migrate
from pumpd.audit.schema import metadata as audit_metadata
from pumpd.cli.daemon import main as pumpd_main
from pumpd.clock import ManualClock
from pumpd.db import make_engine
from pumpd.staff import PinRefused, StaffLocked, StaffRegistry

from .conftest import Db

STAFF_REVISION = "0003_staff_registry"
"""The revision that made ``staff_member``; the rows below are written as of it."""
HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
CREATED = "2026-01-01T07:00:00.000000Z"
LOCKED = "2026-01-01T09:00:00.000000Z"
_ROWS = "SELECT staff_id, name, role, pin_hash, enabled, failures, locked_until, created_at, changed_at FROM staff_member ORDER BY staff_id"  # noqa: E501


def _insert(db: Db, staff_id: str, name: str, role: str, pin: str, **state: object) -> None:
    enabled = state.get("enabled", True)
    db.admin(
        "INSERT INTO staff_member (staff_id, name, role, pin_hash, enabled, failures, "
        "locked_until, created_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            staff_id,
            name,
            role,
            HASHER.hash(pin),
            enabled if not db.is_sqlite else int(bool(enabled)),
            state.get("failures", 0),
            state.get("locked_until"),
            CREATED,
            CREATED,
        ),
    )


def test_the_audit_schema_holds_only_the_append_only_log() -> None:
    assert set(audit_metadata.tables) == {"audit_event"}


def test_staff_rows_survive_an_upgrade_and_the_registry_reads_them(empty_db: Db) -> None:
    engine = make_engine(empty_db.url)
    try:
        migrate.upgrade(engine, STAFF_REVISION)
        _insert(empty_db, "N001", "Ada Nurse", "nurse", "k3tam1ne")
        _insert(empty_db, "N002", "Bo Nurse", "nurse", "pr0pofol", failures=5, locked_until=LOCKED)
        _insert(empty_db, "A001", "Cy Admin", "admin", "adm1n-pin", enabled=False)
        before = empty_db.admin(_ROWS)
        assert len(before) == 3

        out = CliRunner().invoke(pumpd_main, ["db", "upgrade", "--database", empty_db.url])
        assert out.exit_code == 0, out.output
        assert migrate.require_current(engine) == migrate.head_revision()
        assert empty_db.admin(_ROWS) == before

        registry = StaffRegistry(engine, ManualClock(), max_failures=5, hasher=HASHER)
        members = {m.staff_id: m for m in asyncio.run(registry.list())}
        assert sorted(members) == ["A001", "N001", "N002"]
        assert (members["N001"].name, members["N001"].role) == ("Ada Nurse", "nurse")
        assert (members["N002"].failures, members["N002"].locked_until) == (5, LOCKED)
        assert members["A001"].enabled is False
        assert asyncio.run(registry.verify("N001", "k3tam1ne")).staff_id == "N001"
        with pytest.raises(StaffLocked) as locked:
            asyncio.run(registry.verify("N002", "pr0pofol"))
        assert locked.value.locked_until == LOCKED
        with pytest.raises(PinRefused):
            asyncio.run(registry.verify("A001", "adm1n-pin"))
    finally:
        engine.dispose()
