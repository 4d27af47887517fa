"""The controller's side of the audit log: payloads for each event a step names, and the
write-ahead discipline.

An event that cannot be written is never dropped: it waits in a backlog, in order, and
goes out with the next write once the store answers again.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pumpd.audit.catalogue import CATALOGUE
from pumpd.audit.errors import AuditWriteFailed
from pumpd.audit.store import Actor, NewEvent
from pumpd.audit.writer import AsyncAuditWriter
from pumpd.session import Session


class EventNotInCatalogue(LookupError):
    """The session asked for an audit event type the catalogue does not define."""


def new_correlation(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def actor_for(by: str) -> Actor:
    """``pumpd`` is the daemon obeying the kernel; anyone else is a member of staff."""
    return Actor.daemon() if by == "pumpd" else Actor.person(by, "nurse")


def code_of(text: str) -> str:
    """A checklist sentence as an audit code: lower snake case."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:120] or "item"


def dose_mg(delivered_ul: int, concentration_mg_per_ml: Decimal) -> Decimal:
    return (Decimal(delivered_ul) * concentration_mg_per_ml / 1000).quantize(Decimal("0.001"))


class Journal:
    """Writes one pump's events through the shared asynchronous writer."""

    def __init__(self, writer: AsyncAuditWriter, pump_id: str) -> None:
        self._writer = writer
        self.pump_id = pump_id
        self.backlog: list[NewEvent] = []

    def event(
        self,
        event_type: str,
        payload: dict[str, Any],
        actor: Actor,
        *,
        session: Session | None = None,
        correlation_id: str | None = None,
    ) -> NewEvent:
        if event_type not in CATALOGUE:
            raise EventNotInCatalogue(event_type)
        return NewEvent(
            event_type,
            payload,
            actor,
            pump_id=self.pump_id,
            session_id=None if session is None else session.data.session_id,
            patient_ref=None if session is None else session.data.patient_ref,
            correlation_id=correlation_id,
        )

    async def write(self, events: Sequence[NewEvent]) -> None:
        """Everything in the backlog, then ``events``, in order; raises AuditWriteFailed.

        On failure the unwritten events join the backlog (the caller decides whether that
        blocks its action: it does for anything that moves fluid, never for a stop).
        """
        pending = [*self.backlog, *events]
        self.backlog = []
        for index, event in enumerate(pending):
            try:
                await self._writer.append(event)
            except AuditWriteFailed:
                self.backlog = pending[index:]
                raise

    async def write_ahead(self, events: Sequence[NewEvent], wait_s: float) -> bool:
        """Write a stop's intent, waiting at most ``wait_s`` real seconds for durability.

        Returns True when durable in time. Otherwise the write goes on in the background
        (cancelling it would not un-write it) and False tells the caller to stop anyway.
        """
        task = asyncio.ensure_future(self.write(events))
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if task in done and task.exception() is None:
            return True
        if task not in done:
            task.add_done_callback(_consume)
        elif task.exception() is not None and not self.backlog:
            self.backlog = [*events]
        return False

    async def flush(self) -> bool:
        """Try the backlog again; True when nothing is left."""
        if not self.backlog:
            return True
        try:
            await self.write(())
        except AuditWriteFailed:
            return False
        return True


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
