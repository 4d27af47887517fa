"""SQLite going away under the writer: full (page limit, and a really full file system),
locked by another connection. Events go to the spool, fsync'd, and drain in order."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from pumpd.audit import AsyncAuditWriter, AuditWriteFailed, EventRecord, Receipt, Spool, migrate

from .conftest import Db, fill, note, tmpfs, wait_until

TASKS = 4


async def _pump(writer: AsyncAuditWriter, task: int, lo: int, hi: int, out: list) -> None:
    """One pump loop's worth of events, each awaited like a controller intent."""
    for i in range(lo, hi):
        receipt = await writer.log(note(task, i))
        out.append((f"t{task}-{i}", receipt))
        await asyncio.sleep(0)


async def _burst(writer: AsyncAuditWriter, lo: int, hi: int) -> list[tuple[str, Receipt]]:
    outs: list[list[tuple[str, Receipt]]] = [[] for _ in range(TASKS)]
    await asyncio.gather(*(_pump(writer, t, lo, hi, outs[t]) for t in range(TASKS)))
    return [pair for out in outs for pair in out]


def check_drained(db: Db, acked: list[tuple[str, Receipt]], per_task: int) -> None:
    """Nothing lost, nothing twice, each task's order kept, the spool's order kept, chain
    intact."""
    notes = db.notes()
    assert len(notes) == len(set(notes)), "an event was written twice"
    assert {text for text, _ in acked} <= set(notes), "an acknowledged event is missing"
    for t in range(TASKS):
        mine = [n for n in notes if n.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(per_task)]
    spooled = sorted((r.spool_n, text) for text, r in acked if r.spool_n is not None)
    position = {text: k for k, text in enumerate(notes)}
    assert [position[t] for _, t in spooled] == sorted(position[t] for _, t in spooled)
    assert db.chain_intact() == len(notes)


async def test_full_database_spools_and_drains_in_order(sqlite_db: Db, tmp_path: Path) -> None:
    pages = [0]
    store = sqlite_db.store(max_pages=pages)
    spool = tmp_path / "audit.spool"
    writer = AsyncAuditWriter(store, spool=spool, max_batch=16)
    try:
        acked = await _burst(writer, 0, 10)
        assert all(r.in_database for _, r in acked)
        assert not writer.degraded
        assert not spool.exists()

        pages[0] = sqlite_db.page_count()  # the database may not grow by one page
        acked += await _burst(writer, 10, 70)
        assert writer.degraded, "the full database should have sent events to the spool"
        health = writer.health()
        assert health.spooled > 0
        assert health.degraded_since is not None
        assert "full" in (health.reason or "")
        assert spool.exists()
        assert any(not r.in_database for _, r in acked)

        pages[0] = 0  # space again
        await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        acked += await _burst(writer, 70, 75)  # direct again, behind the drained ones
        assert all(r.in_database for _, r in acked[-TASKS * 5 :])
    finally:
        await writer.aclose()
        store.close()
    assert not spool.exists(), "a drained spool is removed"
    assert writer.health().drained_total == writer.health().spooled_total > 0
    check_drained(sqlite_db, acked, 75)


async def test_locked_database_spools_and_append_waits_for_the_database(
    sqlite_db: Db, tmp_path: Path
) -> None:
    assert sqlite_db.path is not None
    store = sqlite_db.store(busy_timeout_ms=100)
    spool = tmp_path / "audit.spool"
    writer = AsyncAuditWriter(store, spool=spool)
    blocker = sqlite3.connect(sqlite_db.path, timeout=1, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        acked = await _burst(writer, 0, 10)
        assert writer.degraded
        assert writer.spooled == len(acked)
        # ``append`` promises the database: it waits through the outage.
        committed = asyncio.ensure_future(writer.append(note(9, 0)))
        await asyncio.sleep(0.3)
        assert not committed.done()
        blocker.execute("ROLLBACK")
        record = await asyncio.wait_for(committed, timeout=30)
        assert isinstance(record, EventRecord)
        assert record.seq == len(acked) + 1, "the waiting event comes after the spooled ones"
        await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
    finally:
        blocker.close()
        await writer.aclose()
        store.close()
    check_drained(sqlite_db, acked, 10)


async def test_file_system_full_under_the_database(tmp_path: Path) -> None:
    """The database's own file system fills up: real ENOSPC, not a page limit."""
    with tmpfs(tmp_path / "dbfs", "2m") as dbfs:
        db = Db(backend="sqlite", url=f"sqlite:///{dbfs / 'audit.db'}", path=dbfs / "audit.db")
        migrate.upgrade_url(db.url)
        store = db.store()
        spool = tmp_path / "audit.spool"  # another file system
        writer = AsyncAuditWriter(store, spool=spool, max_batch=16)
        try:
            acked = await _burst(writer, 0, 5)
            filler = fill(dbfs)
            acked += await _burst(writer, 5, 60)
            assert writer.degraded
            filler.unlink()
            await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        finally:
            await writer.aclose()
            store.close()
            for engine in db.engines:
                engine.dispose()
        check_drained(db, acked, 60)


async def test_spool_cannot_be_written_either(sqlite_db: Db, tmp_path: Path) -> None:
    """Database full and the spool's disk full: the caller gets AuditWriteFailed (the
    controller then refuses starts and still sends stops); nothing half-written stays."""
    pages = [0]
    store = sqlite_db.store(max_pages=pages)
    with tmpfs(tmp_path / "spoolfs", "1m") as spoolfs:
        spool = spoolfs / "audit.spool"
        writer = AsyncAuditWriter(store, spool=spool, max_batch=16)
        try:
            pages[0] = sqlite_db.page_count()
            acked = await _burst(writer, 0, 40)
            assert writer.degraded
            assert spool.exists()
            filler = fill(spoolfs)
            refused = None  # the file's last page may still hold a few lines
            error = ""
            for k in range(100):
                try:
                    acked.append((f"t8-{k}", await writer.log(note(8, k))))
                except AuditWriteFailed as exc:
                    refused, error = f"t8-{k}", str(exc)
                    break
            assert refused is not None, "the full spool file system took 100 more events"
            assert "spool" in error
            assert writer.health().spool_failing
            with pytest.raises(AuditWriteFailed):
                await writer.log(note(6, 0))
            on_disk = Spool(spool, store.database).load()
            assert on_disk.torn is None, "a failed spool write left part of a line behind"
            assert len(on_disk.pending) == writer.spooled

            filler.unlink()  # the spool's disk has room again
            later = await writer.log(note(7, 0))
            assert later.spool_n is not None
            assert not writer.health().spool_failing
            pages[0] = 0
            await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        finally:
            await writer.aclose()
            store.close()
    notes = sqlite_db.notes()
    assert refused not in notes, "a refused event was written"
    assert "t6-0" not in notes, "a refused event was written"
    assert notes[-1] == "t7-0"
    check_drained(sqlite_db, acked, 40)
