"""The asyncio face of the store: one writer thread, group commit, no early acknowledgement.

Pump loops ``await writer.append(event)``. Validation runs at once in the caller (a bad
event raises before anything is queued); the event then waits on a queue for the writer
thread, which takes everything queued (up to ``max_batch``) and commits it in one
transaction. Each caller's future resolves only after that COMMIT returned; if it failed,
every caller in the batch gets :class:`AuditWriteFailed` — none is retried, because after
an ambiguous commit failure a retry could write an event twice.

Cancelling an ``append`` does not un-write the event: once queued, it is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass

from pumpd.audit.chain import EventRecord
from pumpd.audit.errors import AuditWriteFailed, StoreClosed
from pumpd.audit.store import AuditStore, NewEvent, Prepared, prepare


@dataclass(frozen=True, slots=True)
class _Job:
    item: Prepared
    future: asyncio.Future[EventRecord]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class AsyncAuditWriter:
    """Group-committing writer thread in front of an :class:`AuditStore`."""

    def __init__(self, store: AuditStore, *, max_batch: int = 256) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pumpd-audit-writer", daemon=True)
        self._closed = False
        self._batches = 0
        self._thread.start()

    @property
    def batches_committed(self) -> int:
        """How many transactions the thread has committed (group-commit evidence)."""
        return self._batches

    async def append(self, event: NewEvent) -> EventRecord:
        item = prepare(event)
        if self._closed or not self._thread.is_alive():
            raise StoreClosed("the audit writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[EventRecord] = loop.create_future()
        self._queue.put(_Job(item, future, loop))
        if not self._thread.is_alive():  # it ended between the check above and the put
            self._fail_leftovers()
        return await future

    async def aclose(self) -> None:
        """Commit everything already queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._closed = True
            self._fail_leftovers()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Job] = [first] if isinstance(first, _Job) else []
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                if isinstance(nxt, _Job):
                    batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            records = self._store.write([job.item for job in batch])
        except BaseException as exc:
            # One exception object per caller: each task raises it with its own traceback.
            for job in batch:
                _resolve(job, None, AuditWriteFailed(str(exc) or type(exc).__name__), cause=exc)
            if not isinstance(exc, Exception):
                raise  # the thread ends; later appends get StoreClosed, none waits forever
            return
        self._batches += 1
        for job, record in zip(batch, records, strict=True):
            _resolve(job, record, None, cause=None)

    def _fail_leftovers(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, _Job):
                _resolve(job, None, StoreClosed("the audit writer closed first"), cause=None)


def _resolve(
    job: _Job,
    record: EventRecord | None,
    error: AuditWriteFailed | None,
    *,
    cause: BaseException | None,
) -> None:
    if error is not None and cause is not None:
        error.__cause__ = cause

    def _set() -> None:
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(record)  # type: ignore[arg-type]

    # A caller whose loop has already closed cannot be told; its event is committed anyway.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_set)
