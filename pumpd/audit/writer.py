"""The asyncio face of the store: one writer thread, group commit, no early acknowledgement,
and a local durable spool for when the database goes away.

Pump loops ``await writer.append(event)`` (resolves once the event is committed in the
database) or ``await writer.log(event)`` (resolves once it is durable: committed, or
fsync'd in the local spool); :meth:`AsyncAuditWriter.hand_over` queues at once and returns
the future. Validation and the stamp (time, instance, a strictly increasing ``mono_ns``)
happen at once in the caller (a bad event raises before anything is queued), so an event's
time is when it was handed over, not when the writer got to it; the event then waits on a
queue for the writer thread, which takes everything queued (up to ``max_batch``) and
commits it in one transaction.

Without a spool, a failed commit fails every caller of the batch with
:class:`AuditWriteFailed`, as before. With a spool (``spool=Path``), a failed commit puts
the writer in *degraded* mode: that batch and every later one are appended to the spool
(fsync'd) in order; the thread retries the database with backoff and, when it answers,
drains the spool into it in order (the chain is computed at insert, so it stays intact),
removes the spool and goes back to direct writes. New events always queue behind the
spool, so the global order is kept. A commit that raised may still have succeeded (the
ambiguous commit): before draining, the oldest spooled events are looked for among the
newest rows of the table, so none is written twice and none is lost. A spool left by a
previous run is drained first, before any new event. If the spool itself cannot be written
either, the callers get :class:`AuditWriteFailed` as without a spool. With
``outage_record=True`` (the daemon) the writer writes the outage down itself once the spool
is drained: ``audit.spool.drained`` (since when, how long, how many events waited, how many
could not be made durable), the first event after the drained ones. See
docs/audit-spool.md.

The writer owns the chain head while it runs: one writer per chain. Cancelling an
``append`` does not un-write the event: once queued, it is committed (or spooled).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from pumpd.audit.chain import EventRecord
from pumpd.audit.errors import AuditWriteFailed, StoreClosed
from pumpd.audit.spool import (
    Spool,
    SpoolConflict,
    SpoolEntry,
    SpoolWriteFailed,
    TornTail,
    already_stored,
)
from pumpd.audit.store import (
    Actor,
    AuditStore,
    NewEvent,
    Stamped,
    prepare,
    utc_text,
)

_log = structlog.get_logger("pumpd.audit")

TAIL_SLACK = 64
"""Rows read beyond one drain chunk when looking for events an ambiguous commit wrote."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an event was made durable: in the database, or fsync'd in the spool."""

    record: EventRecord | None
    spool_n: int | None = None

    @property
    def in_database(self) -> bool:
        return self.record is not None


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """A snapshot of the writer's state, for the controller, the daemon and the nurses.

    ``degraded``: the database is not taking events; they go to the spool.
    ``spooled``: events in the spool not yet in the database.
    ``spool_failing``: the last spool write failed too, so events cannot be made durable
    at all right now (callers get ``AuditWriteFailed``).
    """

    degraded: bool
    spooled: int
    degraded_since: datetime | None
    spool_failing: bool
    reason: str | None
    blocked: str | None
    spooled_total: int
    drained_total: int


@dataclass(frozen=True, slots=True)
class _Job:
    item: Stamped
    """Stamped when handed over (:meth:`AsyncAuditWriter.hand_over`)."""
    future: asyncio.Future[Any] | None
    """None for the writer's own record of an outage: nobody waits for it."""
    loop: asyncio.AbstractEventLoop | None
    until_database: bool


@dataclass(slots=True)
class _Outage:
    """What the record of one outage says (``audit.spool.drained``)."""

    cause_code: str
    began_at: str
    """When the writer found the database away (UTC text)."""
    started_s: float
    reason: str
    first_waiting_at: str | None = None
    """The time of the oldest event that had to wait in the spool."""
    spooled: int = 0
    refused: int = 0


def _jobs(queued: object) -> list[_Job]:
    """A job, or a tuple of jobs queued as one (never split), as the batch takes them."""
    if isinstance(queued, tuple):
        return list(queued)
    return [queued] if isinstance(queued, _Job) else []


_STOP = object()


class AsyncAuditWriter:
    """Group-committing writer thread in front of an :class:`AuditStore`, with a spool."""

    def __init__(
        self,
        store: AuditStore,
        *,
        max_batch: int = 256,
        spool: Path | None = None,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 2.0,
        outage_record: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        self._store = store
        self._max_batch = max_batch
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._closed = False
        self._stopping = False
        self._batches = 0
        self._state_lock = threading.Lock()
        self._degraded = False
        self._degraded_since: datetime | None = None
        self._reason: str | None = None
        self._spool_failing = False
        self._blocked: str | None = None
        self._spooled_total = 0
        self._drained_total = 0
        self._pending: list[SpoolEntry] = []
        self._waiting: dict[int, _Job] = {}
        self._need_check = True
        self._backoff_s = retry_initial_s
        self._next_retry = 0.0
        self._spool: Spool | None = None
        self._outage_record = outage_record
        self._outage: _Outage | None = None
        self.torn_tail: TornTail | None = None
        self.leftover = 0
        """Events a previous run left in the spool, found when this writer was made."""
        if spool is not None:
            self._spool = Spool(spool, store.database)
            self._spool.check_place()  # found out now, not in the middle of an outage
            loaded = self._spool.load()  # SpoolCorrupt / SpoolMismatch: refuse to start
            self.torn_tail = loaded.torn
            if loaded.torn is not None:
                _log.error(
                    "audit.spool.torn_tail",
                    spool=str(spool),
                    line=loaded.torn.line_number,
                    bytes=loaded.torn.byte_count,
                    kept_at=str(loaded.torn.kept_at),
                    detail="a write cut off by a crash; never acknowledged, not applied",
                )
            if not loaded.pending and spool.exists():
                self._spool.remove()  # fully drained before the last run ended
            if loaded.pending:
                self.leftover = len(loaded.pending)
                self._pending = list(loaded.pending)
                self._enter_degraded(
                    f"{len(loaded.pending)} event(s) left in the spool by a previous run",
                    cause_code="leftover_spool",
                )
                assert self._outage is not None
                self._outage.spooled = len(loaded.pending)
                self._outage.first_waiting_at = loaded.pending[0].event.occurred_at
                self._next_retry = 0.0  # drain them first, before any new event
                _log.warning("audit.spool.leftover", spool=str(spool), events=len(self._pending))
        self._thread = threading.Thread(target=self._run, name="pumpd-audit-writer", daemon=True)
        self._thread.start()

    # -- the callers' side ---------------------------------------------------------------

    @property
    def batches_committed(self) -> int:
        """How many transactions the thread has committed (group-commit evidence)."""
        return self._batches

    @property
    def degraded(self) -> bool:
        """True while events go to the spool instead of the database."""
        return self._degraded

    @property
    def spooled(self) -> int:
        """Events in the spool that are not in the database yet."""
        return len(self._pending)

    def health(self) -> WriterHealth:
        with self._state_lock:
            return WriterHealth(
                degraded=self._degraded,
                spooled=len(self._pending),
                degraded_since=self._degraded_since,
                spool_failing=self._spool_failing,
                reason=self._reason,
                blocked=self._blocked,
                spooled_total=self._spooled_total,
                drained_total=self._drained_total,
            )

    async def append(self, event: NewEvent) -> EventRecord:
        """Resolve once ``event`` is committed in the database (however long that takes)."""
        result: EventRecord = await self._submit(event, until_database=True)
        return result

    async def log(self, event: NewEvent) -> Receipt:
        """Resolve once ``event`` is durable: committed, or fsync'd in the spool."""
        result: Receipt = await self._submit(event, until_database=False)
        return result

    def hand_over(self, event: NewEvent, *, until_database: bool) -> asyncio.Future[Any]:
        """Queue ``event`` now, before the caller goes on: validated, stamped (its time and
        ``mono_ns`` are this moment's) and put in line in the order of the calls. The
        future resolves as :meth:`append` (``until_database``) or :meth:`log` do.

        A caller that acts right after (a halt sent without waiting for its intent) has
        its event's place and time fixed before it acts."""
        return self.hand_over_together([event], until_database=until_database)[0]

    def hand_over_together(
        self, events: Sequence[NewEvent], *, until_database: bool
    ) -> list[asyncio.Future[Any]]:
        """:meth:`hand_over` for ``events`` as one: the thread never splits them (a group
        may take a batch past ``max_batch``), so they are committed in one transaction or
        appended to the spool in one fsync'd write, and none is durable without the others."""
        items = [prepare(event) for event in events]
        if self._closed or not self._thread.is_alive():
            raise StoreClosed("the audit writer is closed")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in items]
        stamps = [self._store.stamp(item) for item in items]
        jobs = tuple(_Job(i, f, loop, until_database) for i, f in zip(stamps, futures, strict=True))
        self._queue.put(jobs[0] if len(jobs) == 1 else jobs)
        if not self._thread.is_alive():  # it ended between the check above and the put
            self._fail_leftovers()
        return futures

    async def _submit(self, event: NewEvent, *, until_database: bool) -> Any:
        return await self.hand_over(event, until_database=until_database)

    async def aclose(self) -> None:
        """Commit (or spool) everything already queued, try the spool once more, stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
            if self._degraded:
                self._drain()  # one last try; what stays is drained at the next start
        finally:
            self._closed = True
            self._fail_leftovers()
            for n, job in sorted(self._waiting.items()):
                _resolve(job, None, StoreClosed(_closed_in_spool(n)), cause=None)
            self._waiting.clear()
            if self._spool is not None:
                self._spool.close()

    def _loop(self) -> None:
        while not self._stopping:
            if self._degraded and time.monotonic() >= self._next_retry:
                self._drain()
                continue
            timeout = max(0.0, self._next_retry - time.monotonic()) if self._degraded else None
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            batch = self._collect(first)
            if batch:
                self._handle(batch)

    def _collect(self, first: object) -> list[_Job]:
        """``first`` and whatever else is queued, up to ``max_batch`` (a group whole)."""
        if first is _STOP:
            self._stopping = True
            return []
        batch = _jobs(first)
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                self._stopping = True
                break
            batch.extend(_jobs(nxt))
        return batch

    def _handle(self, batch: list[_Job]) -> None:
        stamped = [job.item for job in batch]
        if not self._degraded:
            try:
                records = self._store.write_stamped(stamped)
            except AuditWriteFailed as exc:
                if self._spool is None:
                    self._fail(batch, exc)
                    return
                self._enter_degraded(_short(exc))
            except BaseException as exc:
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise  # the thread ends; later appends get StoreClosed, none waits forever
                return
            else:
                self._batches += 1
                for job, record in zip(batch, records, strict=True):
                    _resolve(job, _result(job, record), None, cause=None)
                return
        self._to_spool(batch, stamped)

    def _to_spool(self, batch: list[_Job], stamped: list[Stamped]) -> None:
        assert self._spool is not None
        try:
            entries = self._spool.append(stamped)
        except SpoolWriteFailed as exc:
            if not self._spool_failing:
                _log.error("audit.spool.write_failed", spool=str(self._spool.path), error=str(exc))
            with self._state_lock:
                self._spool_failing = True
            if self._outage is not None:
                self._outage.refused += len(batch)
            self._fail(batch, exc)
            return
        if self._spool_failing:
            _log.warning("audit.spool.writable_again", spool=str(self._spool.path))
        with self._state_lock:
            self._spool_failing = False
            self._pending.extend(entries)
            self._spooled_total += len(entries)
        if self._outage is not None:
            self._outage.spooled += len(entries)
            if self._outage.first_waiting_at is None and entries:
                self._outage.first_waiting_at = entries[0].event.occurred_at
        for job, entry in zip(batch, entries, strict=True):
            if job.until_database:
                self._waiting[entry.n] = job
            else:
                _resolve(job, Receipt(None, entry.n), None, cause=None)

    def _drain(self) -> None:
        """Move the spool into the database, oldest first; on failure try again later."""
        assert self._spool is not None
        self._spool_queued()  # what waits in the queue is made durable before trying
        if self._blocked is not None:
            self._retry_later(self._blocked, quiet=True)
            return
        if not self._pending:  # nothing spooled (the spool failed too): is the database back?
            try:
                self._store.head()
            except AuditWriteFailed as exc:
                self._retry_later(_short(exc))
                return
        while self._pending:
            chunk = self._pending[: self._max_batch]
            if self._need_check:
                try:
                    tail = self._store.tail(len(chunk) + TAIL_SLACK)
                    found = already_stored(chunk, tail)
                except AuditWriteFailed as exc:
                    self._retry_later(_short(exc))
                    return
                except SpoolConflict as exc:
                    self._block(exc)
                    return
                self._need_check = False
                if found:
                    by_id = {(r.instance_id, r.mono_ns): r for r in tail}
                    done = chunk[:found]
                    records = [by_id[(e.event.instance_id, e.event.mono_ns)] for e in done]
                    _log.warning("audit.spool.already_in_database", events=found)
                    if not self._drained(done, records):
                        return
                continue
            try:
                records = self._store.write_stamped([e.event for e in chunk])
            except AuditWriteFailed as exc:
                self._need_check = True  # the commit may have happened all the same
                self._retry_later(_short(exc))
                return
            self._batches += 1
            if not self._drained(chunk, records):
                return
            self._spool_queued()  # new events keep their place: behind the spool
        self._leave_degraded()

    def _drained(self, chunk: list[SpoolEntry], records: list[EventRecord]) -> bool:
        """``chunk`` is in the database: tell its waiters, mark it in the spool."""
        for entry, record in zip(chunk, records, strict=True):
            job = self._waiting.pop(entry.n, None)
            if job is not None:
                _resolve(job, record, None, cause=None)
        assert self._spool is not None
        try:
            self._spool.mark_drained(chunk[-1].n)
        except SpoolWriteFailed as exc:
            # At most this one chunk is in the database unmarked; the next attempt finds
            # it in the table (need_check) before writing anything else.
            self._need_check = True
            self._retry_later(str(exc))
            return False
        with self._state_lock:
            del self._pending[: len(chunk)]
            self._drained_total += len(chunk)
        self._backoff_s = self._retry_initial_s
        return True

    def _spool_queued(self) -> None:
        while not self._stopping:
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                return
            batch = self._collect(first)
            if batch:
                self._to_spool(batch, [job.item for job in batch])

    def _enter_degraded(self, reason: str, *, cause_code: str = "commit_failed") -> None:
        now = datetime.now(UTC)
        with self._state_lock:
            self._degraded = True
            self._degraded_since = now
            self._reason = reason
        self._outage = _Outage(
            cause_code=cause_code, began_at=utc_text(now), started_s=time.monotonic(), reason=reason
        )
        self._need_check = True
        self._backoff_s = self._retry_initial_s
        self._next_retry = time.monotonic() + self._backoff_s
        _log.warning(
            "audit.spool.degraded",
            spool=None if self._spool is None else str(self._spool.path),
            reason=reason[:500],
        )

    def _leave_degraded(self) -> None:
        assert self._spool is not None
        try:
            self._spool.remove()
        except OSError as exc:  # all drained and marked: a leftover file drains to nothing
            _log.error("audit.spool.remove_failed", spool=str(self._spool.path), error=str(exc))
        since = self._degraded_since
        outage, self._outage = self._outage, None
        with self._state_lock:
            self._degraded = False
            self._degraded_since = None
            self._reason = None
        _log.info(
            "audit.spool.drained",
            spool=str(self._spool.path),
            drained_total=self._drained_total,
            degraded_s=None if since is None else (datetime.now(UTC) - since).total_seconds(),
        )
        if outage is not None and self._outage_record:
            # Through the ordinary path: should the database fail again right now, the
            # record is spooled like any event and written after the next drain.
            outage_event = self._store.stamp(prepare(_outage_event(outage)))
            self._handle([_Job(outage_event, None, None, False)])

    def _retry_later(self, reason: str, *, quiet: bool = False) -> None:
        with self._state_lock:
            self._reason = reason
        if not quiet:
            _log.debug("audit.spool.retry_later", reason=reason[:500], in_s=self._backoff_s)
        self._next_retry = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)

    def _block(self, exc: SpoolConflict) -> None:
        """The table and the spool disagree: never guess; stay degraded, say so loudly."""
        with self._state_lock:
            self._blocked = str(exc)
        _log.error("audit.spool.conflict", error=str(exc))
        self._retry_later(str(exc), quiet=True)

    def _fail(self, batch: list[_Job], exc: BaseException) -> None:
        # One exception object per caller: each task raises it with its own traceback.
        for job in batch:
            _resolve(job, None, AuditWriteFailed(str(exc) or type(exc).__name__), cause=exc)

    def _fail_leftovers(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            for each in _jobs(job):
                _resolve(each, None, StoreClosed("the audit writer closed first"), cause=None)


def _short(exc: BaseException) -> str:
    """The database's own words (no SQL, no parameters): for logs and the nurses' screen."""
    orig = getattr(exc.__cause__, "orig", None)
    text = f"{type(orig).__name__}: {orig}" if orig is not None else str(exc)
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


def _closed_in_spool(n: int) -> str:
    return (
        f"the audit writer closed while the event (spool n={n}) was in the spool, not yet "
        "in the database; it is drained at the next start"
    )


def _outage_event(outage: _Outage) -> NewEvent:
    return NewEvent(
        "audit.spool.drained",
        {
            "cause_code": outage.cause_code,
            "since": outage.first_waiting_at or outage.began_at,
            "duration_ms": max(0, round((time.monotonic() - outage.started_s) * 1000)),
            "spooled_events": outage.spooled,
            "refused_events": outage.refused,
            "reason": outage.reason[:500] or "the database did not take events",
        },
        Actor.daemon(),
    )


def _result(job: _Job, record: EventRecord) -> EventRecord | Receipt:
    return record if job.until_database else Receipt(record)


def _resolve(
    job: _Job,
    result: object,
    error: AuditWriteFailed | None,
    *,
    cause: BaseException | None,
) -> None:
    if error is not None and cause is not None:
        error.__cause__ = cause

    future, loop = job.future, job.loop
    if future is None or loop is None:  # the writer's own record: nobody to tell
        if error is not None:
            _log.error("audit.spool.outage_record_failed", error=str(error))
        return

    def _set() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    # A caller whose loop has already closed cannot be told; its event is durable anyway.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_set)
