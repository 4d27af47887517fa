"""Checkpoints: the chain head handed to a witness outside the database.

The chain proves the log was not edited in the middle; it cannot prove the newest events
were not cut off, nor that someone with the database (and, for an unkeyed chain, nothing
else) did not rebuild it from some point on. A ``SEQ:HASH`` line in journald or on a remote
log server, written at a set interval and on demand, lets ``pumpaudit verify --checkpoint``
detect both.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import structlog

from pumpd.audit.errors import CheckpointFormatError
from pumpd.audit.store import AuditStore, Head

CHECKPOINT_EVENT = "audit.checkpoint"
_CHECKPOINT = re.compile(r"^(\d+):([0-9a-f]{64})$")

_log = structlog.get_logger("pumpd.audit")


def parse_checkpoint(text: str) -> Head:
    match = _CHECKPOINT.fullmatch(text.strip())
    if match is None:
        raise CheckpointFormatError(
            f"checkpoint {text!r} is not SEQ:HASH (a number, a colon, 64 lowercase hex digits)"
        )
    return Head(int(match.group(1)), match.group(2))


def checkpoint_fields(store: AuditStore, head: Head) -> dict[str, Any]:
    return {
        "seq": head.seq,
        "hash": head.event_hash,
        "checkpoint": str(head),
        "keyed": store.keyed,
        "instance_id": store.instance_id,
    }


def emit_checkpoint(store: AuditStore, logger: Any = None) -> Head:
    """Log the head now (the on-demand path); return it."""
    head = store.head()
    (logger or _log).info(CHECKPOINT_EVENT, **checkpoint_fields(store, head))
    return head


async def checkpoint_every(
    store: AuditStore, interval_s: float, stop: asyncio.Event, logger: Any = None
) -> None:
    """Emit a checkpoint every ``interval_s`` seconds until ``stop`` is set, and once more then.

    The head is read in a worker thread, so the event loop never waits on the database.
    """
    if interval_s <= 0:
        raise ValueError(f"checkpoint interval must be positive, got {interval_s} s")
    while True:
        await asyncio.to_thread(emit_checkpoint, store, logger)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue
        await asyncio.to_thread(emit_checkpoint, store, logger)
        return
