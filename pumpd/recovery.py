"""Rebuilding each pump's session from the audit log after a restart.

The controller writes ``session.checkpointed`` (the session's own snapshot plus the
controller's volume accounting) whenever the session changes and periodically while drug
flows. The newest one for a pump is the session as the dead process last knew it; the
controller then reads the pump and reconciles (:meth:`Controller.recover`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from pumpd.audit import EventFilter, newest_event
from pumpd.clock import Stamp
from pumpd.controller import CheckpointAccounting, CheckpointRecord, CheckpointUnreadable
from pumpd.db import reader
from pumpd.protocols import Library
from pumpd.session import Session


class RecoveryError(Exception):
    """The log holds a checkpoint that cannot be turned back into a session."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    session_id: str
    state: str
    snapshot: dict[str, Any]
    accounting: CheckpointAccounting


def last_checkpoint(engine: Engine, pump_id: str) -> Checkpoint | None:
    """The newest checkpoint written for ``pump_id``, or None.

    One row, read in a read-only transaction (:func:`pumpd.db.reader`), so the audit
    writer, still appending the other pumps' events, never waits for it."""
    with reader(engine).connect() as conn:
        newest = newest_event(conn, EventFilter(pump=pump_id, event_type="session.checkpointed"))
    if newest is None:
        return None
    try:
        record = CheckpointRecord.read(newest.payload)
    except CheckpointUnreadable as exc:
        raise RecoveryError(f"checkpoint {newest.seq}: {exc}") from exc
    return Checkpoint(
        seq=newest.seq,
        session_id=newest.session_id or "",
        state=record.state,
        snapshot=record.snapshot,
        accounting=record.accounting,
    )


def rebuild(checkpoint: Checkpoint, library: Library, now: Stamp) -> Session:
    """The session of ``checkpoint``, its monotonic times moved onto this process's clock."""
    data = checkpoint.snapshot.get("data", {})
    try:
        protocol = library.get(str(data["protocol_id"]), int(data["protocol_version"]))
    except (KeyError, LookupError, ValueError) as exc:
        raise RecoveryError(f"checkpoint {checkpoint.seq}: protocol not available: {exc}") from exc
    return Session.restore(checkpoint.snapshot, protocol, rebase_to=now)
