"""PostgreSQL going away under the writer: the server stopped (and started again) in the
test, and the writer's connection cut with pg_terminate_backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from pumpd.audit import AsyncAuditWriter

from .conftest import Db, postgres_stopped, require_postgres, wait_until
from .test_sqlite import TASKS, _burst, check_drained

pytestmark = pytest.mark.postgres


@pytest.mark.pg_outage
async def test_server_stopped_then_started(pg_db: Db, tmp_path: Path) -> None:
    store = pg_db.store()
    spool = tmp_path / "audit.spool"
    writer = AsyncAuditWriter(store, spool=spool, max_batch=16)
    try:
        acked = await _burst(writer, 0, 5)
        assert all(r.in_database for _, r in acked)
        with postgres_stopped(require_postgres()) as start:
            acked += await _burst(writer, 5, 30)
            assert writer.degraded
            assert all(not r.in_database for _, r in acked[-TASKS * 25 :])
            assert writer.spooled == TASKS * 25
            start()  # as early as possible: the server is shared
            await wait_until(lambda: not writer.degraded, within_s=60, what="the drain")
        acked += await _burst(writer, 30, 35)
    finally:
        await writer.aclose()
        store.close()
    assert not spool.exists()
    check_drained(pg_db, acked, 35)


def _cut(db: Db) -> int:
    """Terminate every other connection to the test database (the writer's)."""
    assert db.pg_conninfo is not None
    with psycopg.connect(db.pg_conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_connection_cut_with_pg_terminate_backend(pg_db: Db, tmp_path: Path) -> None:
    store = pg_db.store()
    spool = tmp_path / "audit.spool"
    writer = AsyncAuditWriter(store, spool=spool, max_batch=16)
    try:
        acked = await _burst(writer, 0, 10)
        assert await asyncio.to_thread(_cut, pg_db) >= 1
        # The pooled connection is dead: the next commit fails, the batch is spooled, the
        # retry reconnects and drains it.
        acked += await _burst(writer, 10, 20)
        cut_during = asyncio.ensure_future(_burst(writer, 20, 60))
        await asyncio.sleep(0.02)
        await asyncio.to_thread(_cut, pg_db)
        acked += await cut_during
        await wait_until(lambda: not writer.degraded, within_s=60, what="the drain")
    finally:
        await writer.aclose()
        store.close()
    assert writer.health().spooled_total > 0, (
        "the cut connection should have sent events to the spool"
    )
    assert writer.health().drained_total == writer.health().spooled_total
    check_drained(pg_db, acked, 60)
