"""The outage written down in the audit itself: ``audit.spool.drained`` once the spool is
drained (the daemon's writer, ``outage_record=True``): how it began, since when, for how
long, how many events waited, how many could not be made durable at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text

from pumpd.audit import AsyncAuditWriter, AuditWriteFailed
from pumpd.db import make_engine

from .conftest import Db, fill, note, tmpfs, wait_until
from .test_sqlite import _burst


def rows(db: Db) -> list[dict[str, Any]]:
    engine = make_engine(db.url, read_only=True)
    try:
        with engine.connect() as conn:
            result = conn.execute(
                text("SELECT seq, event_type, occurred_at, payload FROM audit_event ORDER BY seq")
            )
            return [dict(r._mapping) for r in result]
    finally:
        engine.dispose()


def outage_records(db: Db) -> list[tuple[int, dict[str, Any]]]:
    return [
        (r["seq"], json.loads(r["payload"]))
        for r in rows(db)
        if r["event_type"] == "audit.spool.drained"
    ]


async def test_a_drained_outage_is_written_after_its_events(sqlite_db: Db, tmp_path: Path) -> None:
    pages = [0]
    store = sqlite_db.store(max_pages=pages)
    writer = AsyncAuditWriter(
        store, spool=tmp_path / "audit.spool", max_batch=16, outage_record=True
    )
    try:
        await _burst(writer, 0, 5)
        pages[0] = sqlite_db.page_count()
        spooled = await _burst(writer, 5, 40)
        assert writer.degraded
        pages[0] = 0
        await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        await _burst(writer, 40, 42)
    finally:
        await writer.aclose()
        store.close()
    health = writer.health()
    assert health.spooled_total > 0
    ((seq, record),) = outage_records(sqlite_db)
    assert record["cause_code"] == "commit_failed"
    assert record["spooled_events"] == health.spooled_total
    assert record["refused_events"] == 0
    assert "full" in record["reason"]
    assert record["duration_ms"] > 0
    all_rows = rows(sqlite_db)
    by_text = {json.loads(r["payload"]).get("text"): r for r in all_rows}
    waited = [by_text[t] for t, receipt in spooled if receipt.spool_n is not None]
    assert waited, "some events went through the spool"
    assert max(r["seq"] for r in waited) < seq, "the record follows the drained events"
    assert record["since"] == min(r["occurred_at"] for r in waited), "the oldest that waited"
    after = {json.loads(r["payload"])["text"] for r in all_rows if r["seq"] > seq}
    assert after == {f"t{t}-{i}" for i in (40, 41) for t in range(4)}, "direct writes follow"
    assert sqlite_db.chain_intact() == len(all_rows)


async def test_events_the_spool_refused_are_counted(sqlite_db: Db, tmp_path: Path) -> None:
    """Database full and the spool's disk full too: the record says how many events could
    not be made durable (their callers got AuditWriteFailed)."""
    pages = [0]
    store = sqlite_db.store(max_pages=pages)
    with tmpfs(tmp_path / "spoolfs", "1m") as spoolfs:
        writer = AsyncAuditWriter(
            store, spool=spoolfs / "audit.spool", max_batch=16, outage_record=True
        )
        try:
            pages[0] = sqlite_db.page_count()
            await _burst(writer, 0, 10)
            assert writer.degraded
            filler = fill(spoolfs)
            refused = 0
            for k in range(100):
                try:
                    await writer.log(note(8, k))
                except AuditWriteFailed:
                    refused += 1
                    if refused == 3:
                        break
            assert refused == 3, "the full spool file system kept taking events"
            filler.unlink()
            pages[0] = 0
            await wait_until(lambda: not writer.degraded, within_s=30, what="the spool to drain")
        finally:
            await writer.aclose()
            store.close()
    ((_, record),) = outage_records(sqlite_db)
    assert record["refused_events"] == 3
    assert record["spooled_events"] == writer.health().spooled_total


async def test_a_leftover_spool_is_recorded_as_such(sqlite_db: Db, tmp_path: Path) -> None:
    """A writer closed during an outage leaves its spool; the next one drains it first and
    writes the outage down as ``leftover_spool``, since its oldest event."""
    pages = [0]
    spool = tmp_path / "audit.spool"
    store = sqlite_db.store(max_pages=pages)
    first = AsyncAuditWriter(store, spool=spool, max_batch=16)
    try:
        await _burst(first, 0, 3)
        pages[0] = sqlite_db.page_count()
        await _burst(first, 3, 10)
        assert first.degraded
    finally:
        await first.aclose()
        store.close()
    left = first.spooled
    assert left > 0
    assert spool.exists()
    second_store = sqlite_db.store()
    second = AsyncAuditWriter(second_store, spool=spool, outage_record=True)
    try:
        await wait_until(lambda: not second.degraded, within_s=30, what="the leftover to drain")
    finally:
        await second.aclose()
        second_store.close()
    ((seq, record),) = outage_records(sqlite_db)
    assert record["cause_code"] == "leftover_spool"
    assert record["spooled_events"] == left
    assert "previous run" in record["reason"]
    all_rows = rows(sqlite_db)
    assert seq == len(all_rows), "written once the leftover is in"
    leftover_rows = all_rows[-1 - left : -1]
    assert record["since"] == leftover_rows[0]["occurred_at"]
    assert sqlite_db.chain_intact() == len(all_rows)
