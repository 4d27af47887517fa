"""The central store as a sink for the daemon's published chain heads.

``publish`` never waits for the network: it queues the head and returns; a worker thread
of its own inserts what is queued into ``central_head``, in order, in one transaction, and
keeps it queued while the centre is away (bounded: the oldest heads are dropped first, and
the drop is logged; every head also went to the journal). The centre compares each site's
heads with the events it holds (pumpd/central/verify.py): a head that forks from the
forwarded chain shows a log rewritten before it was forwarded.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import Engine, insert

from pumpd.central.forwarder import central_engine
from pumpd.central.schema import central_head

log = structlog.get_logger("pumpd.forward")

MAX_QUEUED = 10_000


class PublishedHead(Protocol):
    """What a published head carries (the daemon's ``ChainHead``)."""

    @property
    def seq(self) -> int: ...
    @property
    def event_hash(self) -> str: ...
    @property
    def ts(self) -> object: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def mac(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Row:
    seq: int
    event_hash: str
    ts: str
    key_id: str | None
    mac: str | None


def _ts_text(value: object) -> str:
    from datetime import datetime

    from pumpd.audit import utc_text

    if isinstance(value, datetime):
        return utc_text(value)
    return str(value)[:27]


class CentralHeadSink:
    """``HeadSink`` for the central store: ``await sink.publish(head)``."""

    def __init__(self, site: str, url: str | None = None, *, engine: Engine | None = None) -> None:
        if engine is None:
            if url is None:
                raise ValueError("give the central store's url or an engine")
            engine = central_engine(url)
            self._owns = True
        else:
            self._owns = False
        self._engine = engine
        self.site = site
        self._queue: deque[_Row] = deque()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pumpd-heads")
        self._dropped = 0
        self.published = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    async def publish(self, head: PublishedHead) -> None:
        row = _Row(
            seq=int(head.seq),
            event_hash=str(head.event_hash),
            ts=_ts_text(head.ts),
            key_id=None if head.key_id is None else str(head.key_id),
            mac=None if head.mac is None else str(head.mac),
        )
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(row)
        # Not awaited: the caller never waits for the centre.
        asyncio.get_running_loop().run_in_executor(self._executor, self.flush)

    def flush(self) -> int:
        """Insert every queued head (blocking; the worker thread calls it). How many."""
        with self._lock:
            rows = list(self._queue)
        if not rows:
            return 0
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(central_head),
                    [
                        {
                            "site": self.site,
                            "seq": r.seq,
                            "event_hash": r.event_hash,
                            "ts": r.ts,
                            "key_id": r.key_id,
                            "mac": r.mac,
                        }
                        for r in rows
                    ],
                )
        except Exception as exc:  # kept for the next attempt; said, never raised
            log.warning(
                "chain heads not yet at the central store; kept",
                pending=len(rows),
                dropped=self._dropped,
                error=str(exc).splitlines()[0][:200] if str(exc) else repr(exc),
            )
            return 0
        with self._lock:
            for _ in rows:
                self._queue.popleft()
        self.published += len(rows)
        return len(rows)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns:
            self._engine.dispose()
