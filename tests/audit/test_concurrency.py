"""Many writers at once, from threads, asyncio and a process killed mid-burst."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pumpd.audit.catalogue import payload_text
from pumpd.audit.chain import EventRecord, Hasher
from pumpd.audit.errors import AuditWriteFailed, EventRefused, StoreClosed
from pumpd.audit.store import AuditStore, NewEvent
from pumpd.audit.verify import verify
from pumpd.audit.writer import AsyncAuditWriter

from .conftest import Db
from .factories import DAEMON, filler


def _seqs(db: Db) -> list[int]:
    return [int(r[0]) for r in db.admin("SELECT seq FROM audit_event ORDER BY seq")]


def _assert_gapless_and_valid(db: Db, total: int) -> None:
    assert _seqs(db) == list(range(1, total + 1))
    store = db.open_store()
    try:
        result = verify(store.engine, Hasher())
    finally:
        store.close()
    assert result.ok, result.problem
    assert result.checked == total


def test_threads_with_their_own_connections_get_one_total_order(db: Db) -> None:
    n_threads, per_thread = 6, 25
    results: dict[int, list[EventRecord]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def work(t: int) -> None:
        store = db.open_store(pool_size=1)
        try:
            start.wait()
            results[t] = [store.append(filler(t * 1000 + i)) for i in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    for records in results.values():
        seqs = [r.seq for r in records]
        assert seqs == sorted(seqs)
    all_seqs = sorted(r.seq for rs in results.values() for r in rs)
    assert all_seqs == list(range(1, n_threads * per_thread + 1))
    _assert_gapless_and_valid(db, n_threads * per_thread)


async def test_asyncio_writers_group_commit_without_gaps(db: Db) -> None:
    stores = [db.open_store(), db.open_store()]
    writers = [AsyncAuditWriter(s, max_batch=64) for s in stores]
    per_writer = 120
    try:
        batches = [
            [writers[w].append(filler(w * 1000 + i)) for i in range(per_writer)] for w in (0, 1)
        ]
        results = await asyncio.gather(*batches[0], *batches[1])
    finally:
        for w in writers:
            await w.aclose()
        for s in stores:
            s.close()
    assert sorted(r.seq for r in results) == list(range(1, 2 * per_writer + 1))
    for k in (0, 1):  # each writer keeps its callers' submission order
        own = [r.seq for r in results[k * per_writer : (k + 1) * per_writer]]
        assert own == sorted(own)
    assert writers[0].batches_committed + writers[1].batches_committed < 2 * per_writer
    _assert_gapless_and_valid(db, 2 * per_writer)


class _SlowStore:
    """The real store; each write waits ``delay_s`` before it commits (a slow database)."""

    def __init__(self, store: AuditStore, delay_s: float) -> None:
        self._store = store
        self.delay_s = delay_s

    def __getattr__(self, name: str) -> object:
        method = getattr(self._store, name)
        if name != "write_stamped":
            return method

        def slow(batch: object) -> object:
            time.sleep(self.delay_s)
            return method(batch)

        return slow


async def test_an_event_keeps_the_time_it_was_handed_over_not_when_it_was_written(
    store: AuditStore,
) -> None:
    """``hand_over`` fixes the event's time and place at once: an event handed over while
    the writer is busy with a slow commit is not stamped when the writer gets to it (a
    halt sent right after its intent is handed over must find the intent's time before
    its own)."""
    delay_s = 0.5
    writer = AsyncAuditWriter(_SlowStore(store, delay_s))  # type: ignore[arg-type]
    try:
        busy = writer.hand_over(filler(0), until_database=True)
        await asyncio.sleep(0.05)  # the writer is inside the first (slow) commit now
        handed_at = time.time()
        second = writer.hand_over(filler(1), until_database=True)
        first_record, record = await asyncio.gather(busy, second)
    finally:
        await writer.aclose()
    stamped_s = dt.datetime.fromisoformat(record.occurred_at).timestamp()
    assert abs(stamped_s - handed_at) < delay_s / 4, (
        f"stamped {stamped_s - handed_at:.3f} s after it was handed over"
    )
    assert first_record.seq < record.seq
    assert first_record.mono_ns < record.mono_ns


async def test_async_append_returns_only_committed_events(db: Db, store: AuditStore) -> None:
    writer = AsyncAuditWriter(store)
    try:
        record = await writer.append(filler(1))
        # Visible to a separate connection the moment the await returns.
        assert db.admin("SELECT event_hash FROM audit_event WHERE seq = ?", (record.seq,)) == [
            (record.event_hash,)
        ]
    finally:
        await writer.aclose()


async def test_async_failed_write_raises_to_every_caller_and_writer_survives(
    db: Db, store: AuditStore
) -> None:
    writer = AsyncAuditWriter(store)
    try:
        await writer.append(filler(0))
        db.admin("ALTER TABLE audit_event RENAME TO audit_event_away")
        outcomes = await asyncio.gather(
            *(writer.append(filler(i)) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(o, AuditWriteFailed) for o in outcomes), outcomes
        db.admin("ALTER TABLE audit_event_away RENAME TO audit_event")
        record = await writer.append(filler(9))
        assert record.seq == 2
    finally:
        await writer.aclose()


async def test_events_submitted_together_commit_in_one_transaction_or_not_at_all(
    db: Db, store: AuditStore
) -> None:
    """A group is one job for the writer thread: never split, even at a batch bound of
    one event (the controller writes a step and its checkpoint so: a kill between two
    commits must not leave one without the other)."""
    writer = AsyncAuditWriter(store, max_batch=1)
    try:
        await writer.append(filler(0))
        before = writer.batches_committed
        alone = [writer.hand_over(filler(i), until_database=True) for i in (1, 2)]
        group = writer.hand_over_together([filler(i) for i in range(10, 15)], until_database=True)
        logged = writer.hand_over_together([filler(20), filler(21)], until_database=False)
        singles, records, receipts = await asyncio.gather(
            asyncio.gather(*alone), asyncio.gather(*group), asyncio.gather(*logged)
        )
        assert [r.seq for r in records] == list(range(4, 9))
        assert [r.record.seq for r in receipts if r.record is not None] == [9, 10]
        assert [r.seq for r in singles] == [2, 3]
        assert writer.batches_committed - before == 4  # two alone, two groups
        db.admin("ALTER TABLE audit_event RENAME TO audit_event_away")
        with pytest.raises(AuditWriteFailed):
            await asyncio.gather(
                *writer.hand_over_together([filler(30), filler(31)], until_database=True)
            )
        db.admin("ALTER TABLE audit_event_away RENAME TO audit_event")
        assert (await writer.append(filler(40))).seq == 11
    finally:
        await writer.aclose()
    _assert_gapless_and_valid(db, 11)


async def test_async_invalid_event_is_refused_before_queueing(db: Db, store: AuditStore) -> None:
    writer = AsyncAuditWriter(store)
    try:
        with pytest.raises(EventRefused):
            await writer.append(NewEvent("pump.exploded", {}, DAEMON))
        assert writer.batches_committed == 0
    finally:
        await writer.aclose()
    assert _seqs(db) == []


async def test_closed_writer_refuses(store: AuditStore) -> None:
    writer = AsyncAuditWriter(store)
    await writer.append(filler(0))
    await writer.aclose()
    with pytest.raises(StoreClosed):
        await writer.append(filler(1))


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pumpd.audit.store import Actor, AuditStore, NewEvent
    from pumpd.audit.writer import AsyncAuditWriter

    def event(i):
        return NewEvent("vitals.recorded",
                        {"heart_rate_bpm": 60 + i % 50, "source": "monitor"},
                        Actor.daemon(), session_id="s-kill", patient_ref="P-0001")

    async def main():
        writer = AsyncAuditWriter(AuditStore.open(sys.argv[1]), max_batch=32)
        i = 0
        while True:
            burst = [writer.append(event(i + j)) for j in range(40)]
            i += 40
            for done in asyncio.as_completed(burst):
                record = await done
                print(record.seq, flush=True)

    asyncio.run(main())
    """
)


def test_writer_process_killed_mid_burst_leaves_a_valid_chain(db: Db, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), db.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    acked: list[int] = []
    deadline = time.monotonic() + 60
    try:
        assert child.stdout is not None
        while len(acked) < 150 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        child.send_signal(signal.SIGKILL)
        rest, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    acked += [int(x) for x in rest.split()]
    assert len(acked) >= 150, err
    assert child.returncode == -signal.SIGKILL
    seqs = _seqs(db)
    assert set(acked) <= set(seqs), "an acknowledged event is not in the database"
    _assert_gapless_and_valid(db, len(seqs))
    for (payload,) in db.admin("SELECT payload FROM audit_event"):
        assert payload_text("vitals.recorded", json.loads(payload)) == payload
