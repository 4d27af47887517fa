"""The controller's side of the audit log: envelopes, and the write-ahead discipline.

Events are handed to the shared group-committing writer in the order they happen and the
poll loop does not wait for them, so a slow or failed store never stalls supervision.
Only an intent that moves fluid waits for durability (:meth:`Journal.durable`), and only
for a bounded time; a halt's intent is queued ahead of the halt and checked after it
(:meth:`Journal.settled`). An event that could not be written is never dropped: it waits
in a backlog and goes out again when the store answers.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pumpd.audit import Actor as Actor  # who acts, as the controller is handed it
from pumpd.audit import AsyncAuditWriter, NewEvent, StoreClosed, prepare
from pumpd.audit.catalogue import CATALOGUE, Payload
from pumpd.session import Session
from safety.plan import dose_in_volume_mg


class EventNotInCatalogue(LookupError):
    """The session asked for an audit event type the catalogue does not define."""


_IDS = random.Random(os.urandom(32))
"""Where correlation ids come from. They must be unique, not secret: one draw from the OS
per process, then a PRNG. ``uuid4`` asked the OS for every id, and on the halt's path (an
alarm's and a command's id, before the STOP or PAUSE goes out) ``getrandom`` took up to
2.6 ms a call on the benchmark's VM (p90 1.2 ms: docs/bench.md)."""
os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))


def new_correlation(prefix: str) -> str:
    """``prefix`` and 64 random bits in hex, as before (a forked child draws anew)."""
    return f"{prefix}-{_IDS.getrandbits(64):016x}"


def code_of(text: str) -> str:
    """A sentence or an id as an audit code: lower snake case."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:120] or "item"


dose_mg = dose_in_volume_mg
"""The dose in a delivered volume, as the controller records it; defined once with the rest
of the dose arithmetic (``safety.plan``), where the control socket takes it from too."""


class Journal:
    """Writes one pump's events through the shared asynchronous writer."""

    def __init__(self, writer: AsyncAuditWriter, pump_id: str) -> None:
        self._writer = writer
        self.pump_id = pump_id
        self.backlog: list[NewEvent] = []
        self._groups: list[tuple[NewEvent, int]] = []
        """Where in the backlog events that go together begin, and how many they are."""
        self._inflight: dict[asyncio.Future[Any], float] = {}
        self.failures = 0

    @property
    def degraded(self) -> bool:
        """The shared writer is spooling: the audit database is not taking events, so no
        intent can become durable in it, even when nothing of this pump is in flight."""
        return self._writer.degraded

    @property
    def spooling(self) -> bool:
        """Events that the database does not take are durable in the writer's local spool."""
        health = self._writer.health()
        return health.degraded and not health.spool_failing

    def event(
        self,
        event_type: str,
        payload: Payload | Mapping[str, Any],
        actor: Actor,
        *,
        session: Session | None = None,
        correlation_id: str | None = None,
    ) -> NewEvent:
        if event_type not in CATALOGUE:
            raise EventNotInCatalogue(event_type)
        event = NewEvent(
            event_type,
            payload,
            actor,
            pump_id=self.pump_id,
            session_id=None if session is None else session.data.session_id,
            patient_ref=None if session is None else session.data.patient_ref,
            correlation_id=correlation_id,
        )
        prepare(event)  # a malformed event is a bug: it raises here, never in the backlog
        return event

    def submit(
        self, events: Sequence[NewEvent], *, spool_will_do: bool = False, together: bool = False
    ) -> list[asyncio.Future[Any]]:
        """Queue ``events`` in order, now (their place and time are fixed when this returns:
        ``AsyncAuditWriter.hand_over``). Each future ends when its event is committed in the
        database or, with ``spool_will_do``, as soon as it is durable anywhere: committed,
        or fsync'd in the writer's spool during an outage.

        ``together``: one future for all of them, written in one transaction (or one spool
        write), so none is durable without the others; a step's events and the checkpoint
        of the state it leaves go so. If that write fails they wait in the backlog as one."""
        if together and len(events) > 1:
            return [self._track(list(events), until_database=not spool_will_do)]
        return [self._track([e], until_database=not spool_will_do) for e in events]

    def _track(self, events: list[NewEvent], *, until_database: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        write: asyncio.Future[Any]
        try:
            if len(events) == 1:
                write = self._writer.hand_over(events[0], until_database=until_database)
            else:
                writes = self._writer.hand_over_together(events, until_database=until_database)
                write = asyncio.gather(*writes)
        except StoreClosed as exc:  # kept in the backlog like any failed write
            write = loop.create_future()
            write.set_exception(exc)
        self._inflight[write] = loop.time()
        write.add_done_callback(lambda t: self._settled(t, events))
        return write

    def _settled(self, task: asyncio.Future[Any], events: list[NewEvent]) -> None:
        self._inflight.pop(task, None)
        if task.cancelled() or task.exception() is not None:
            self.failures += 1
            self.backlog.extend(events)
            if len(events) > 1:
                self._groups.append((events[0], len(events)))

    async def durable(
        self,
        events: Sequence[NewEvent],
        wait_s: float,
        *,
        spool_will_do: bool = False,
        together: bool = False,
    ) -> bool:
        """Queue ``events`` and wait at most ``wait_s`` real seconds for all to commit (or,
        with ``spool_will_do``, to be durable in the spool, see :meth:`submit`).

        False means not (yet) durable; the events stay queued (a queued event cannot be
        taken back) or join the backlog if their write failed.
        """
        writes = self.submit(events, spool_will_do=spool_will_do, together=together)
        return await self.settled(writes, wait_s)

    @staticmethod
    async def settled(writes: Sequence[asyncio.Future[Any]], wait_s: float) -> bool:
        """Wait at most ``wait_s`` real seconds for queued ``writes``; True when every one
        of them is durable (see :meth:`submit`). Only the wait is bounded: a write still
        pending goes on, a failed one is in the backlog already."""
        if not writes:
            return True
        if wait_s > 0:
            await asyncio.wait(writes, timeout=wait_s)
        return all(w.done() and not w.cancelled() and w.exception() is None for w in writes)

    def stalled(self, older_than_s: float) -> bool:
        """True when the store failed, or a write has waited longer than ``older_than_s``."""
        if self.backlog:
            return True
        now = asyncio.get_running_loop().time()
        return any(now - t0 > older_than_s for t0 in self._inflight.values())

    def flush(self) -> None:
        """Send the backlog again once nothing is in flight (so the order is kept)."""
        if self.backlog and not self._inflight:
            events, self.backlog = self.backlog, []
            starts, self._groups = {id(e): n for e, n in self._groups}, []
            i = 0
            while i < len(events):
                n = starts.get(id(events[i]), 1)
                self.submit(events[i : i + n], together=True)
                i += n

    async def drain(self) -> None:
        """Wait for every queued write to settle (shutdown, tests)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))
