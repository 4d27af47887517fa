"""Tampering as a superuser who first drops the protections: verify names the first bad seq.

Each hypothesis example works on a fresh copy of one pristine chain (a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), so examples cannot disturb
each other and the pristine chain is built once per test.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpd.audit.chain import COLUMNS, Hasher, encode_row
from pumpd.audit.store import Head
from pumpd.audit.verify import VerifyResult, verify
from pumpd.db import make_engine

from .conftest import Db
from .factories import filler, session_events

N_EVENTS = 24
EXAMPLES = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Pristine:
    """One valid chain and a way to copy it."""

    def __init__(self, db: Db, tmp_path: Path, key: bytes | None) -> None:
        self.db = db
        self.tmp_path = tmp_path
        self.key = key
        self.clones: list[str] = []
        self.heads: dict[int, str] = {}

    def clone(self) -> Db:
        """A private copy of the pristine chain.

        SQLite: a copy of the file. PostgreSQL: a schema of the test's own database holding
        a copy of the table and the read view, reached through ``search_path`` (a database
        per example would cost a checkpoint per DROP DATABASE). The copy has no triggers or
        unique indexes; dropping those on a real database is exercised by test_cli and, on
        SQLite, by every example here.
        """
        name = f"c{len(self.clones)}_{uuid.uuid4().hex[:6]}"
        self.clones.append(name)
        if self.db.is_sqlite:
            assert self.db.path is not None
            path = self.tmp_path / f"{name}.db"
            shutil.copyfile(self.db.path, path)
            return Db(backend="sqlite", url=f"sqlite:///{path}", path=path)
        assert self.db.pg_conninfo is not None
        self.db.admin_script(
            f"CREATE SCHEMA {name}",
            f"CREATE TABLE {name}.audit_event "
            "(LIKE public.audit_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            f"INSERT INTO {name}.audit_event SELECT * FROM public.audit_event",
            f"CREATE VIEW {name}.audit_events AS SELECT * FROM {name}.audit_event",
        )
        conninfo = psycopg.conninfo.make_conninfo(
            self.db.pg_conninfo, options=f"-c search_path={name}"
        )
        url = f"{self.db.url}?options=-csearch_path%3D{name}"
        return Db(backend="postgres", url=url, pg_conninfo=conninfo)


def _build(db: Db, tmp_path: Path, key_file: Path | None) -> Iterator[Pristine]:
    store = db.open_store(key_file=key_file)
    events = session_events("S-1", "P-0001") + [filler(i) for i in range(N_EVENTS)]
    records = store.append_many(events[:N_EVENTS])
    store.close()
    assert records[-1].seq == N_EVENTS
    pristine = Pristine(db, tmp_path, key_file.read_bytes().rstrip(b"\n") if key_file else None)
    pristine.heads = {r.seq: r.event_hash for r in records}
    yield pristine


@pytest.fixture
def pristine(db: Db, tmp_path: Path) -> Iterator[Pristine]:
    yield from _build(db, tmp_path, None)


@pytest.fixture
def keyed_pristine(db: Db, tmp_path: Path, key_file: Path) -> Iterator[Pristine]:
    yield from _build(db, tmp_path, key_file)


# -- the superuser's tools ------------------------------------------------------------------


def drop_protection(db: Db) -> None:
    if db.is_sqlite:
        db.admin_script(
            "DROP TRIGGER audit_event_no_update",
            "DROP TRIGGER audit_event_no_delete",
            "DROP INDEX uq_audit_event_prev_hash",
            "DROP INDEX uq_audit_event_event_hash",
        )
    else:
        db.admin_script(
            "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event",
            "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
            "DROP INDEX IF EXISTS uq_audit_event_prev_hash",
            "DROP INDEX IF EXISTS uq_audit_event_event_hash",
        )


def row(db: Db, seq: int) -> list[Any]:
    return list(db.admin(f"SELECT {', '.join(COLUMNS)} FROM audit_event WHERE seq = ?", (seq,))[0])


def put(db: Db, seq: int, values: list[Any]) -> None:
    """Overwrite every column but seq of the row at ``seq``."""
    sets = ", ".join(f"{c} = ?" for c in COLUMNS[1:])
    db.admin(f"UPDATE audit_event SET {sets} WHERE seq = ?", (*values[1:], seq))


def rehash(values: list[Any], key: bytes | None = None) -> list[Any]:
    """What a forger does: recompute this row's hash (plain SHA-256 unless given the key)."""
    values[17] = Hasher(key).digest(encode_row(values))
    return values


def check(db: Db, key: bytes | None = None, checkpoint: Head | None = None) -> VerifyResult:
    engine = make_engine(db.url, read_only=True)
    try:
        return verify(engine, Hasher(key), checkpoint)
    finally:
        engine.dispose()


def assert_broken(result: VerifyResult, seq: int, *kinds: str) -> None:
    assert result.problem is not None, "tampering went unnoticed"
    assert result.problem.seq == seq, result.problem
    assert result.problem.kind in kinds, result.problem
    assert result.checked == seq - 1


positions = st.integers(min_value=1, max_value=N_EVENTS)


def tampered(pristine: Pristine, act: Callable[[Db], object]) -> Db:
    clone = pristine.clone()
    drop_protection(clone)
    act(clone)
    return clone


# -- the tests ------------------------------------------------------------------------------


def test_untouched_chain_verifies_with_its_checkpoint(pristine: Pristine) -> None:
    result = check(pristine.db, checkpoint=Head(N_EVENTS, pristine.heads[N_EVENTS]))
    assert result.ok
    assert result.checked == N_EVENTS
    assert result.head == Head(N_EVENTS, pristine.heads[N_EVENTS])


@EXAMPLES
@given(k=positions)
def test_changed_payload_is_named(pristine: Pristine, k: int) -> None:
    clone = tampered(
        pristine, lambda d: d.admin("UPDATE audit_event SET payload = '{}' WHERE seq = ?", (k,))
    )
    assert_broken(check(clone), k, "changed")


@EXAMPLES
@given(k=st.integers(min_value=1, max_value=N_EVENTS - 1))
def test_changed_and_rehashed_row_is_named(pristine: Pristine, k: int) -> None:
    def act(d: Db) -> None:
        values = row(d, k)
        values[7] = "someone.else"
        put(d, k, rehash(values))

    assert_broken(check(tampered(pristine, act)), k, "changed")


@EXAMPLES
@given(k=st.integers(min_value=1, max_value=N_EVENTS - 1))
def test_deleted_row_is_named(pristine: Pristine, k: int) -> None:
    clone = tampered(pristine, lambda d: d.admin("DELETE FROM audit_event WHERE seq = ?", (k,)))
    assert_broken(check(clone), k, "missing")


@EXAMPLES
@given(k=st.integers(min_value=1, max_value=N_EVENTS - 1))
def test_deleted_and_renumbered_row_is_named(pristine: Pristine, k: int) -> None:
    def act(d: Db) -> None:
        d.admin("DELETE FROM audit_event WHERE seq = ?", (k,))
        d.admin("UPDATE audit_event SET seq = seq + 1000000 WHERE seq > ?", (k,))
        d.admin("UPDATE audit_event SET seq = seq - 1000001 WHERE seq > 1000000")

    assert_broken(check(tampered(pristine, act)), k, "missing")


@EXAMPLES
@given(k=st.integers(min_value=2, max_value=N_EVENTS))
def test_inserted_forged_row_is_named(pristine: Pristine, k: int) -> None:
    def act(d: Db) -> None:
        template = row(d, k)
        d.admin("UPDATE audit_event SET seq = seq + 1000000 WHERE seq >= ?", (k,))
        d.admin("UPDATE audit_event SET seq = seq - 999999 WHERE seq > 1000000")
        forged = list(template)
        forged[12] = "override.granted"
        forged[15] = (
            '{"approved_by":"nurse.x","reason":"backdated","reason_code":"x","verdict_codes":["a"]}'
        )
        forged[16] = row(d, k - 1)[17]
        rehash(forged)
        marks = ", ".join("?" for _ in COLUMNS)
        d.admin(f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({marks})", tuple(forged))

    assert_broken(check(tampered(pristine, act)), k, "inserted")


@EXAMPLES
@given(pair=st.lists(positions, min_size=2, max_size=2, unique=True).map(sorted))
def test_swapped_rows_are_named(pristine: Pristine, pair: list[int]) -> None:
    i, j = pair

    def act(d: Db) -> None:
        a, b = row(d, i), row(d, j)
        put(d, i, b)
        put(d, j, a)

    result = check(tampered(pristine, act))
    kinds = ("changed", "reordered") if j == i + 1 and j == N_EVENTS else ("reordered",)
    assert_broken(result, i, *kinds)


@EXAMPLES
@given(m=st.integers(min_value=0, max_value=N_EVENTS - 1))
def test_cut_tail_is_named_against_a_checkpoint(pristine: Pristine, m: int) -> None:
    clone = tampered(pristine, lambda d: d.admin("DELETE FROM audit_event WHERE seq > ?", (m,)))
    assert check(clone).ok  # the chain alone cannot see a clean cut ...
    witnessed = Head(N_EVENTS, pristine.heads[N_EVENTS])
    assert_broken(check(clone, checkpoint=witnessed), m + 1, "truncated")  # ... a witness can


def test_rebuilt_unkeyed_chain_is_caught_only_by_a_checkpoint(pristine: Pristine) -> None:
    k = 5

    def act(d: Db) -> None:
        prev = row(d, k - 1)[17]
        for seq in range(k, N_EVENTS + 1):
            values = row(d, seq)
            if seq == k:
                values[7] = "someone.else"
            values[16] = prev
            put(d, seq, rehash(values))
            prev = values[17]

    clone = tampered(pristine, act)
    assert check(clone).ok  # documented limit of an unkeyed chain
    result = check(clone, checkpoint=Head(k, pristine.heads[k]))
    assert result.problem is not None
    assert result.problem.seq == k


@EXAMPLES
@given(k=positions)
def test_keyed_chain_catches_a_forger_who_rebuilds_plain_hashes(
    keyed_pristine: Pristine, k: int
) -> None:
    key = keyed_pristine.key
    assert key is not None

    def act(d: Db) -> None:
        prev = row(d, k - 1)[17] if k > 1 else "0" * 64
        for seq in range(k, N_EVENTS + 1):
            values = row(d, seq)
            if seq == k:
                values[15] = '{"reason_code":"forged"}'
                values[12] = "daemon.stopped"
            values[16] = prev
            put(d, seq, rehash(values))  # plain SHA-256: the forger has no key
            prev = values[17]

    clone = tampered(keyed_pristine, act)
    # Rebuilt from the first event on, nothing is keyed any more: "unkeyed" at 1.
    assert_broken(check(clone, key=key), k, *(("changed", "unkeyed") if k == 1 else ("changed",)))


def test_keyed_chain_needs_its_key(keyed_pristine: Pristine) -> None:
    assert check(keyed_pristine.db, key=keyed_pristine.key).ok
    result = check(keyed_pristine.db)
    assert_broken(result, 1, "changed")
    assert result.problem is not None
    assert "keyed" in result.problem.detail
