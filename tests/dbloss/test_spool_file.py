"""What a previous run leaves behind: a spool after a crash, a torn last line, a damaged
or foreign spool, and events an ambiguous commit already put in the table."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pumpd.audit import AsyncAuditWriter, Spool, SpoolCorrupt, SpoolError, SpoolMismatch

from .conftest import Db, note, wait_until

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from sqlalchemy import event
    from pumpd.audit.store import Actor, AuditStore, NewEvent
    from pumpd.audit.writer import AsyncAuditWriter
    from pumpd.db import make_engine

    def note(i):
        return NewEvent("note.recorded", {"text": f"t0-{i}"},
                        Actor.person("nurse.ada", "nurse", 1001),
                        session_id="S-0", patient_ref="P-0117")

    async def main():
        engine = make_engine(sys.argv[1], pool_pre_ping=False)

        @event.listens_for(engine, "connect")
        def _busy(dbapi_con, _record):
            dbapi_con.execute("PRAGMA busy_timeout=100")

        writer = AsyncAuditWriter(AuditStore(engine), spool=Path(sys.argv[2]), max_batch=8)
        print("ready", flush=True)
        sys.stdin.readline()  # the parent locks the database, then says go
        i = 0
        while True:
            burst = [writer.log(note(i + j)) for j in range(10)]
            for j, done in enumerate(burst):
                receipt = await done
                print(i + j, receipt.spool_n, flush=True)
            i += 10

    asyncio.run(main())
    """
)


def _spool_from_a_killed_child(db: Db, script: Path, spool: Path) -> tuple[list[int], str]:
    """Run a writer process while the database is locked; SIGKILL it mid-burst. Returns
    the events it acknowledged (all spooled) and its stderr."""
    assert db.path is not None
    blocker = sqlite3.connect(db.path, timeout=1, isolation_level=None)
    child = subprocess.Popen(
        [sys.executable, str(script), db.url, str(spool)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked: list[int] = []
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        blocker.execute("BEGIN EXCLUSIVE")  # the database is unavailable for the child
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 60
        while len(acked) < 60 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            i, spool_n = line.split()
            assert spool_n != "None", "the database was locked: the event must be spooled"
            acked.append(int(i))
        child.send_signal(signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()
    acked += [int(line.split()[0]) for line in rest.splitlines()]
    assert child.returncode == -signal.SIGKILL
    return acked, err


async def test_killed_while_spooling_then_the_next_writer_drains_first(
    sqlite_db: Db, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    spool = tmp_path / "audit.spool"
    acked, err = await asyncio.to_thread(_spool_from_a_killed_child, sqlite_db, script, spool)
    assert len(acked) >= 60, err
    assert sqlite_db.notes() == [], "nothing reached the locked database"

    store = sqlite_db.store()
    writer = AsyncAuditWriter(store, spool=spool)
    try:
        assert writer.degraded, "a leftover spool is drained before anything else"
        assert writer.spooled >= len(acked)
        after = await writer.log(note(1, 0))  # a new event waits behind the leftover
        await wait_until(lambda: not writer.degraded, within_s=30, what="the leftover to drain")
    finally:
        await writer.aclose()
        store.close()
    notes = sqlite_db.notes()
    spooled = [n for n in notes if n.startswith("t0-")]
    assert spooled == [f"t0-{i}" for i in range(len(spooled))], "order or a gap"
    assert {f"t0-{i}" for i in acked} <= set(spooled), "an acknowledged event was lost"
    assert notes[-1] == "t1-0", "the new event went ahead of the leftover spool"
    assert after.spool_n is not None or after.in_database
    assert not spool.exists()
    assert sqlite_db.chain_intact() == len(notes)


async def _leave_a_spool(db: Db, spool: Path, count: int) -> None:
    """A writer that can only spool (database locked), closed with the spool left over."""
    assert db.path is not None
    store = db.store(busy_timeout_ms=50)
    blocker = sqlite3.connect(db.path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    writer = AsyncAuditWriter(store, spool=spool)
    try:
        for i in range(count):
            receipt = await writer.log(note(0, i))
            assert receipt.spool_n == i + 1
    finally:
        await writer.aclose()
        store.close()
        blocker.execute("ROLLBACK")
        blocker.close()


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b'{"body":{"event":{"actor_kind":"per', id="cut-mid-line"),
        pytest.param(b"\0" * 300, id="zeros-no-newline"),
        pytest.param(b'{"body":{"n":99},"check":"00"}\n', id="bad-checksum-line"),
        pytest.param(b"garbage\n\0\0\0\n", id="two-bad-lines"),
    ],
)
async def test_torn_last_line_is_reported_and_not_applied(
    sqlite_db: Db, tmp_path: Path, tail: bytes
) -> None:
    spool = tmp_path / "audit.spool"
    await _leave_a_spool(sqlite_db, spool, 5)
    spool.write_bytes(spool.read_bytes() + tail)
    store = sqlite_db.store()
    writer = AsyncAuditWriter(store, spool=spool)
    try:
        torn = writer.torn_tail
        assert torn is not None, "the torn tail was not reported"
        assert torn.line_number == 7  # header + 5 events, then the torn line
        assert torn.kept_at.read_bytes() == tail, "the torn bytes are kept for a person"
        await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
    finally:
        await writer.aclose()
        store.close()
    assert sqlite_db.notes() == [f"t0-{i}" for i in range(5)]
    assert sqlite_db.chain_intact() == 5


async def test_damage_before_the_last_line_refuses_to_drain(sqlite_db: Db, tmp_path: Path) -> None:
    spool = tmp_path / "audit.spool"
    await _leave_a_spool(sqlite_db, spool, 5)
    lines = spool.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"t0-1", b"t0-X")  # an altered event, not a torn write
    spool.write_bytes(b"\n".join(lines))
    before = spool.read_bytes()
    store = sqlite_db.store()
    try:
        with pytest.raises(SpoolCorrupt, match="line 3 fails its checksum"):
            AsyncAuditWriter(store, spool=spool)
    finally:
        store.close()
    assert spool.read_bytes() == before, "a damaged spool must be left as it is"
    assert sqlite_db.notes() == []


async def test_spool_of_another_database_is_refused(sqlite_db: Db, tmp_path: Path) -> None:
    spool = tmp_path / "audit.spool"
    await _leave_a_spool(sqlite_db, spool, 2)
    with pytest.raises(SpoolMismatch, match="holds events for"):
        Spool(spool, "sqlite+pysqlite:////somewhere/else.db").load()


async def test_events_an_ambiguous_commit_wrote_are_not_written_twice(
    sqlite_db: Db, tmp_path: Path
) -> None:
    """COMMIT raised but the events got in (or the writer died between the commit of a
    drain chunk and its drain mark): the next drain finds them in the table and skips
    exactly those."""
    spool = tmp_path / "audit.spool"
    await _leave_a_spool(sqlite_db, spool, 10)
    store = sqlite_db.store()
    entries = Spool(spool, store.database).load().pending
    store.write_stamped([e.event for e in entries[:4]])  # the commit that "failed"
    writer = AsyncAuditWriter(store, spool=spool)
    try:
        await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        assert writer.health().drained_total == 10
    finally:
        await writer.aclose()
        store.close()
    assert sqlite_db.notes() == [f"t0-{i}" for i in range(10)]
    assert sqlite_db.chain_intact() == 10


async def test_an_altered_copy_in_the_table_blocks_the_drain(sqlite_db: Db, tmp_path: Path) -> None:
    """Same identity, other content: never guess which is right; stay degraded, say so."""
    spool = tmp_path / "audit.spool"
    await _leave_a_spool(sqlite_db, spool, 3)
    store = sqlite_db.store()
    first = Spool(spool, store.database).load().pending[0].event
    forged = type(first)(**{**{f: getattr(first, f) for f in first.__slots__}, "payload": "{}"})
    store.write_stamped([forged])
    writer = AsyncAuditWriter(store, spool=spool)
    try:
        await wait_until(
            lambda: writer.health().blocked is not None, within_s=30, what="the conflict"
        )
        await asyncio.sleep(0.2)
        assert writer.degraded
        assert writer.spooled == 3
        assert "altered" in (writer.health().blocked or "")
    finally:
        await writer.aclose()
        store.close()
    assert len(sqlite_db.notes()) == 0  # only the forged row, which has no text
    assert sqlite_db.chain_intact() == 1


def test_a_spool_that_could_not_be_written_is_refused_at_start(
    sqlite_db: Db, tmp_path: Path
) -> None:
    store = sqlite_db.store()
    try:
        with pytest.raises(SpoolError, match="does not exist"):
            AsyncAuditWriter(store, spool=tmp_path / "missing" / "audit.spool")
        (tmp_path / "adir").mkdir()
        with pytest.raises(SpoolError, match="not a regular file"):
            AsyncAuditWriter(store, spool=tmp_path / "adir")
    finally:
        store.close()
