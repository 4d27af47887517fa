"""Audit records of the control socket, submitted without making anyone wait.

A request's record (``control.request.served``, ``access.denied``, ``staff.*``) goes to
the daemon's shared writer as a background task: the answer to the nurse, and above all a
stop, never waits on the database. Pending records are bounded; past the bound a record is
dropped and counted (``dropped``), which only a flood of requests can cause.

A record is settled once it is durable (``writer.log``: committed, or fsync'd in the local
spool while the database is away), not once it is in the database: during an outage the
pending set would otherwise grow with every request until records were dropped, and
closing the socket (``flush``) would wait for the database to come back.
"""

from __future__ import annotations

import asyncio

import structlog

from pumpd.audit import AsyncAuditWriter, NewEvent

log = structlog.get_logger("pumpd.control")

MAX_PENDING = 2000


class Recorder:
    def __init__(self, writer: AsyncAuditWriter, *, max_pending: int = MAX_PENDING) -> None:
        self._writer = writer
        self._max_pending = max_pending
        self._pending: set[asyncio.Task[object]] = set()
        self.dropped = 0
        self.failed = 0

    def submit(self, event: NewEvent) -> None:
        """Queue ``event`` for the audit log; returns at once."""
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            log.warning("audit record dropped", event_type=event.event_type, dropped=self.dropped)
            return
        task: asyncio.Task[object] = asyncio.create_task(self._write(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, event: NewEvent) -> object:
        try:
            return await self._writer.log(event)
        except Exception as exc:  # the record is lost; say so loudly, never crash the socket
            self.failed += 1
            log.error("audit record failed", event_type=event.event_type, error=str(exc))
            return None

    async def flush(self) -> None:
        """Wait until every record submitted so far is durable (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending))
