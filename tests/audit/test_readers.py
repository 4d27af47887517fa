"""The daemon's reads never hold the audit writer's lock, and never wait for it.

docs/soak.md ("database is locked"): the daemon has one engine (``make_daemon_engine``)
for the audit writer and for every read it makes. Each read stood in a transaction begun
``BEGIN IMMEDIATE``, so on SQLite a recovery walking the log, a PIN lookup or a course
history held the write lock for as long as it read, and the audit writer failed after its
5 s busy timeout with "database is locked" (``audit.write_failed``, the spool).

Here each read runs exactly as the daemon runs it, on the daemon's engine, and is held in
the middle of its transaction (SQLAlchemy's ``after_cursor_execute``: its query has run
and returned its first row, the rest is not read yet); meanwhile the real ``AuditStore``
on that engine appends from another thread, which must succeed. No timing: without the
fix the append fails with "database is locked" whatever the machine's speed. Both back
ends: PostgreSQL readers never took the advisory lock, and still do not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from pumpd.audit import migrate
from pumpd.audit.store import PG_CHAIN_LOCK, AuditStore, NewEvent
from pumpd.clock import ManualClock
from pumpd.control.course import prior_sessions
from pumpd.daemon.app import make_daemon_engine
from pumpd.db import make_engine, reader
from pumpd.recovery import last_checkpoint
from pumpd.staff import StaffRegistry

from .conftest import Db
from .factories import DAEMON, session_events

PUMP = "chair-1"
PATIENT = "P-0042"
STAFF, PIN = "N001", "k3tam1ne"
BOUND_S = 60.0
"""How long the test waits for a read to reach its pause: a bound, never a speed."""


def _checkpoint(n: int) -> NewEvent:
    return NewEvent(
        "session.checkpointed",
        {"state": "INFUSING", "snapshot": {"n": n}, "accounting": {"pump_counter_ul": n}},
        DAEMON,
        pump_id=PUMP,
        session_id="S-1",
        patient_ref="P-0077",
    )


@dataclass
class Daemonish:
    """The daemon's engine and what reads through it, on a log with one earlier session."""

    engine: sa.Engine
    store: AuditStore
    registry: StaffRegistry
    checkpoint_seq: int


@pytest.fixture
def daemon(db: Db) -> Iterator[Daemonish]:
    engine = make_daemon_engine(db.url)
    store = AuditStore(engine)
    store.append_many(session_events("S-0", PATIENT, pump=PUMP))
    checkpoint_seq = store.append(_checkpoint(1)).seq
    registry = StaffRegistry(engine, ManualClock(), max_failures=3, lockout_s=900)
    asyncio.run(registry.add(STAFF, "Ada Nurse", "nurse", PIN))
    try:
        yield Daemonish(engine, store, registry, checkpoint_seq)
    finally:
        engine.dispose()


# Each read as the daemon makes it, and what it must find: the log as it was when the
# read began (a newer checkpoint appended meanwhile is not part of the recovery's view).
READS: dict[str, Callable[[Daemonish], Any]] = {
    "recovery": lambda d: last_checkpoint(d.engine, PUMP).seq == d.checkpoint_seq,
    "course history": lambda d: len(prior_sessions(d.engine, PATIENT, "S-new")) == 1,
    "PIN lookup": lambda d: asyncio.run(d.registry.verify(STAFF, PIN)).staff_id == STAFF,
    "staff list": lambda d: [m.staff_id for m in asyncio.run(d.registry.list())] == [STAFF],
    "chain head": lambda d: d.store.head().seq == d.checkpoint_seq,
    "tail": lambda d: d.store.tail(1)[0].seq == d.checkpoint_seq,
    "first event": lambda d: d.store.first_occurred_at() is not None,
}


class PauseFirstSelect:
    """Holds the next SELECT run on ``engine`` (in any thread) right after it executed,
    inside its transaction, until :meth:`release`; later statements run freely."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.paused = threading.Event()
        self.released = threading.Event()
        self._armed = True
        self._lock = threading.Lock()
        sa.event.listen(engine, "after_cursor_execute", self._hook)

    def _hook(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            return
        with self._lock:
            if not self._armed:
                return
            self._armed = False
        self.paused.set()
        self.released.wait(BOUND_S)

    def release(self) -> None:
        self.released.set()

    def remove(self) -> None:
        """Once the read is over (removing a listener while it runs breaks SQLAlchemy)."""
        sa.event.remove(self.engine, "after_cursor_execute", self._hook)


@pytest.mark.parametrize("read", list(READS))
def test_the_writer_appends_while_a_daemon_read_is_in_progress(
    daemon: Daemonish, read: str
) -> None:
    pause = PauseFirstSelect(daemon.engine)
    outcome: list[Any] = []

    def reader() -> None:
        try:
            outcome.append(READS[read](daemon))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader, name=f"read-{read}")
    thread.start()
    try:
        assert pause.paused.wait(BOUND_S), f"the {read} read never ran a SELECT"
        # The audit writer's append, while the read is held open: the daemon's own busy
        # timeout (5 s) is all it may wait, and without the fix it waited it out in vain.
        record = daemon.store.append(_checkpoint(2))
        assert record.seq == daemon.checkpoint_seq + 1
    finally:
        pause.release()
        thread.join(BOUND_S)
    assert not thread.is_alive()
    pause.remove()
    assert outcome == [True], outcome


@pytest.fixture
def writer_lock_held(daemon: Daemonish, db: Db) -> Iterator[None]:
    """Another writer in the middle of its transaction: it holds what an append holds."""
    if db.is_sqlite:
        assert db.path is not None
        con = sqlite3.connect(db.path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
        return
    assert db.pg_conninfo is not None
    with psycopg.connect(db.pg_conninfo) as pg:
        pg.execute("SELECT pg_advisory_xact_lock(%s)", (PG_CHAIN_LOCK,))
        yield
        pg.rollback()


@pytest.mark.parametrize("read", list(READS))
def test_a_daemon_read_does_not_wait_for_a_writer(
    daemon: Daemonish, writer_lock_held: None, read: str
) -> None:
    """The other way round: a nurse's PIN check or a recovery answers while an audit
    commit is under way (before the fix it queued for the write lock, 5 s at most)."""
    assert READS[read](daemon) is True


def test_on_sqlite_a_write_holds_the_lock_from_its_begin_and_a_read_never(
    tmp_path: Path,
) -> None:
    """The one rule of pumpd/db.py: ``engine.begin()`` begins IMMEDIATE (two appends never
    read the same chain head), ``reader(engine)`` and ``read_only=True`` begin DEFERRED.
    (PostgreSQL has no such modes: appends serialize on the store's advisory lock.)"""
    path = tmp_path / "audit.db"
    url = f"sqlite:///{path}"
    migrate.upgrade_url(url)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)

    def other_can_write() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "database is locked" not in str(exc):
                raise
            return False
        other.execute("ROLLBACK")
        return True

    engine = make_daemon_engine(url)
    auditors = make_engine(url, read_only=True)
    try:
        with engine.begin():  # nothing executed yet: BEGIN IMMEDIATE alone holds it
            assert not other_can_write()
        for reads in (reader(engine), auditors):
            with reads.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM audit_event").scalar() == 0
                assert conn.in_transaction()
                assert other_can_write()
        assert other_can_write()
    finally:
        other.close()
        auditors.dispose()
        engine.dispose()
