"""The head publisher: what a head is, when it is published, and that a slow or failing
sink never holds up the others (nor, through them, anything of the daemon)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pumpd.audit.chain import GENESIS_HASH
from pumpd.audit.heads import ChainHead, HeadPublisher, LogHeadSink, read_heads
from pumpd.audit.keys import ChainKey
from pumpd.audit.store import Head

KEY = ChainKey.of(b"k" * 32)
H = "ab" * 32


class Recorder:
    def __init__(self) -> None:
        self.heads: list[ChainHead] = []

    async def publish(self, head: ChainHead) -> None:
        self.heads.append(head)


class Hangs:
    async def publish(self, head: ChainHead) -> None:
        await asyncio.Event().wait()


class Fails:
    async def publish(self, head: ChainHead) -> None:
        raise ConnectionError("central store unreachable")


def test_a_head_is_checked_where_it_is_made() -> None:
    now = datetime.now(UTC)
    signed = ChainHead.make(Head(7, H), KEY, now)
    assert signed.mac_matches(KEY)
    assert not signed.mac_matches(ChainKey.of(b"x" * 32))
    assert ChainHead.make(Head(7, H), None, now).mac is None
    for bad in (
        lambda: ChainHead(-1, H, now, None, None),
        lambda: ChainHead(1, "nothex", now, None, None),
        lambda: ChainHead(0, H, now, None, None),  # an empty chain has the genesis hash
        lambda: ChainHead(1, H, now.replace(tzinfo=None), None, None),
        lambda: ChainHead(1, H, now.astimezone(timezone(timedelta(hours=1))), None, None),
        lambda: ChainHead(1, H, now, KEY.key_id, None),
    ):
        with pytest.raises(ValueError, match="head"):
            bad()
    assert ChainHead(0, GENESIS_HASH, now, None, None).seq == 0


async def test_heads_round_trip_through_log_lines() -> None:
    lines: list[str] = []

    class Log:
        def info(self, event: str, **fields: Any) -> None:
            lines.append("<6>" + json.dumps({"event": event, **fields}))

    head = ChainHead.make(Head(3, H), KEY)
    await LogHeadSink(logger=Log(), instance_id="i-1").publish(head)
    [read] = read_heads(["not json", '{"event": "other"}', *lines])
    assert read.head == head
    assert read.line == 3


async def until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_every_n_events_from_another_thread_and_at_stop() -> None:
    recorder = Recorder()
    publisher = HeadPublisher([recorder], key=KEY, every_events=3, every_s=3600)
    task = asyncio.create_task(publisher.run(Head(0, GENESIS_HASH)))
    seqs = lambda: [h.seq for h in recorder.heads]  # noqa: E731
    try:
        await until(lambda: seqs() == [0], "the head at start")
        await asyncio.to_thread(publisher.note, Head(2, H), 2)  # the writer thread's listener
        await asyncio.sleep(0.2)
        assert seqs() == [0]  # 2 < 3 events: not yet
        await asyncio.to_thread(publisher.note, Head(3, f"{3:064x}"), 1)
        await until(lambda: seqs() == [0, 3], "the head after 3 events")
        await asyncio.to_thread(publisher.note, Head(7, f"{7:064x}"), 4)
        await until(lambda: seqs() == [0, 3, 7], "the head after 4 more")
        await asyncio.to_thread(publisher.note, Head(8, f"{8:064x}"), 1)
        await asyncio.sleep(0.2)
        assert seqs() == [0, 3, 7]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await publisher.final()
    assert seqs() == [0, 3, 7, 8]  # and the last one at stop
    assert all(h.mac_matches(KEY) for h in recorder.heads)


async def test_every_s_publishes_only_a_moved_head() -> None:
    recorder = Recorder()
    publisher = HeadPublisher([recorder], key=None, every_events=1000, every_s=0.1)
    task = asyncio.create_task(publisher.run(Head(0, GENESIS_HASH)))
    try:
        await asyncio.sleep(0.35)
        assert [h.seq for h in recorder.heads] == [0]  # nothing moved: nothing new
        publisher.note(Head(1, H), 1)
        await until(lambda: len(recorder.heads) == 2, "the timed head")
        await asyncio.sleep(0.35)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [h.seq for h in recorder.heads] == [0, 1]


async def test_a_hanging_or_failing_sink_holds_up_no_other_sink() -> None:
    recorder = Recorder()
    publisher = HeadPublisher(
        [Hangs(), Fails(), recorder], key=KEY, every_events=1, every_s=3600, sink_timeout_s=0.2
    )
    publisher.note(Head(5, H), 1)
    started = time.monotonic()
    await publisher.final()
    assert time.monotonic() - started < 5  # bounded by the sink timeout, not by the sink
    assert [h.seq for h in recorder.heads] == [5]


def test_note_never_waits() -> None:
    publisher = HeadPublisher([Recorder()], key=None, every_events=1, every_s=1)
    loop = asyncio.new_event_loop()
    loop.close()
    publisher._loop = loop  # a loop that has gone away: note() still returns at once
    done = threading.Event()

    def note() -> None:
        publisher.note(Head(1, H), 5)
        done.set()

    threading.Thread(target=note).start()
    assert done.wait(5)
