"""Published chain heads: the witness outside the database.

A keyed chain stops someone without the key from rewriting events; it cannot stop the
newest events being cut off, nor someone who has the database *and* the key (or an
unkeyed chain's owner) rebuilding it. A head published somewhere the database's owner
cannot edit does: ``pumpaudit verify --checkpoints`` compares the chain with every head
ever published and names a cut tail, a rewound chain or a fork.

The daemon's :class:`HeadPublisher` learns of every commit from the store (a listener
called in the writer thread after COMMIT: a lock and a counter, never a wait) and
publishes ``(seq, event_hash, ts, key_id, mac)`` every ``every_events`` events, every
``every_s`` seconds while the head moves, at start and at stop. It runs as its own asyncio
task and hands each head to every :class:`HeadSink` with a time limit, so a slow or dead
sink never holds up a poll, a halt or the other sinks. :class:`LogHeadSink` writes the
head as one structured log line (JSON to journald); a central store is another sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from pumpd.audit.chain import GENESIS_HASH
from pumpd.audit.errors import CheckpointFormatError
from pumpd.audit.keys import ChainKey
from pumpd.audit.store import Head, utc_text

HEAD_EVENT = "audit.checkpoint"
"""The ``event`` of a published head's log line (the same name as the older on-demand
checkpoint line, which it extends)."""
HEADS_LOGGER = "pumpd.audit.heads"
_MAC_TAG = "pumpd.audit.head.v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")

_log = structlog.get_logger("pumpd.audit")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """One published head. ``mac`` is HMAC-SHA-256 with the chain key over
    ``["pumpd.audit.head.v1", seq, event_hash, ts, key_id]`` (compact JSON, ``ts`` as the
    audit's UTC text); ``key_id`` and ``mac`` are both None for an unkeyed chain."""

    seq: int
    event_hash: str
    ts: datetime
    key_id: str | None
    mac: str | None

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError(f"a head's seq is >= 0, got {self.seq}")
        if not _HEX64.fullmatch(self.event_hash):
            raise ValueError("a head's event_hash is 64 lowercase hex digits")
        if self.seq == 0 and self.event_hash != GENESIS_HASH:
            raise ValueError("the head of an empty chain carries the genesis hash")
        if self.ts.tzinfo is None or self.ts.utcoffset() != UTC.utcoffset(None):
            raise ValueError("a head's ts is an aware UTC time")
        if (self.key_id is None) != (self.mac is None):
            raise ValueError("a head has both key_id and mac, or neither")
        if self.key_id is not None and not _KEY_ID.fullmatch(self.key_id):
            raise ValueError("a head's key_id is 16 lowercase hex digits")
        if self.mac is not None and not _HEX64.fullmatch(self.mac):
            raise ValueError("a head's mac is 64 lowercase hex digits")

    @property
    def head(self) -> Head:
        return Head(self.seq, self.event_hash)

    @property
    def ts_text(self) -> str:
        return utc_text(self.ts)

    def signed_bytes(self) -> bytes:
        fields = [_MAC_TAG, self.seq, self.event_hash, self.ts_text, self.key_id]
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def make(cls, head: Head, key: ChainKey | None, ts: datetime | None = None) -> ChainHead:
        moment = (ts or datetime.now(UTC)).astimezone(UTC)
        unsigned = cls(head.seq, head.event_hash, moment, None, None)
        if key is None:
            return unsigned
        signed_as = cls(head.seq, head.event_hash, moment, key.key_id, "0" * 64)
        return cls(head.seq, head.event_hash, moment, key.key_id, key.mac(signed_as.signed_bytes()))

    def mac_matches(self, key: ChainKey) -> bool:
        return (
            self.mac is not None
            and self.key_id == key.key_id
            and key.mac(self.signed_bytes()) == self.mac
        )

    def fields(self) -> dict[str, Any]:
        """The log line's fields (``checkpoint`` is what ``verify --checkpoint`` takes)."""
        return {
            "seq": self.seq,
            "hash": self.event_hash,
            "ts": self.ts_text,
            "key_id": self.key_id,
            "mac": self.mac,
            "checkpoint": str(self.head),
            "keyed": self.key_id is not None,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ChainHead:
        try:
            seq, event_hash, ts = fields["seq"], fields["hash"], fields["ts"]
            key_id, mac = fields.get("key_id"), fields.get("mac")
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError("seq is not an integer")
            if not isinstance(event_hash, str) or not isinstance(ts, str):
                raise ValueError("hash and ts are texts")
            moment = datetime.fromisoformat(ts)
            return cls(seq, event_hash, moment, key_id, mac)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointFormatError(f"not a published head: {exc}") from exc


class HeadSink(Protocol):
    """Somewhere heads are published. ``publish`` may raise or take long: the publisher
    bounds it and logs a failure; it never reaches the pumps."""

    async def publish(self, head: ChainHead) -> None: ...


class LogHeadSink:
    """Heads as structured log lines (JSON to journald under systemd).

    Its logger is set to INFO on its own, so a daemon running at ``log_level =
    "warning"`` still publishes its heads.
    """

    def __init__(self, logger: Any = None, **context: Any) -> None:
        logging.getLogger(HEADS_LOGGER).setLevel(logging.INFO)
        self._log = logger if logger is not None else structlog.get_logger(HEADS_LOGGER)
        self._context = context

    async def publish(self, head: ChainHead) -> None:
        self._log.info(HEAD_EVENT, **head.fields(), **self._context)


def _sink_name(sink: HeadSink) -> str:
    return type(sink).__name__


class HeadPublisher:
    """Publishes the chain head to its sinks: at start, every ``every_events`` committed
    events, every ``every_s`` seconds when the head moved, and at stop.

    :meth:`note` is the store's commit listener (any thread); :meth:`run` is the task.
    """

    def __init__(
        self,
        sinks: Sequence[HeadSink],
        *,
        key: ChainKey | None,
        every_events: int,
        every_s: float,
        sink_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_events < 1:
            raise ValueError(f"every_events must be at least 1, got {every_events}")
        if not every_s > 0:
            raise ValueError(f"every_s must be positive, got {every_s}")
        self._sinks = list(sinks)
        self._key = key
        self._every_events = every_events
        self._every_s = every_s
        self._sink_timeout_s = sink_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Head | None = None
        self._unpublished = 0
        self._wake_sent = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._published: Head | None = None
        self.published = 0
        """How many heads were handed to the sinks (for tests and the logs)."""

    def note(self, head: Head, events: int) -> None:
        """A commit happened (called in the writer thread): remember it, wake the task
        once ``every_events`` are unpublished. A lock and a counter; never waits."""
        with self._lock:
            if self._latest is None or head.seq > self._latest.seq:
                self._latest = head
            self._unpublished += events
            wake = self._unpublished >= self._every_events and not self._wake_sent
            if wake:
                self._wake_sent = True
        loop = self._loop
        if wake and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to tell
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self, initial: Head) -> None:
        """Publish ``initial`` (the head at start), then on count or time until cancelled;
        :meth:`final` publishes the last head."""
        self._loop = asyncio.get_running_loop()
        with self._lock:
            if self._latest is None or initial.seq > self._latest.seq:
                self._latest = initial
        await self._publish_latest(force=True)
        last_s = self._clock()
        while True:
            timeout = max(0.0, self._every_s - (self._clock() - last_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self._publish_latest(force=False)
            last_s = self._clock()

    async def final(self) -> None:
        """The head at stop (after the writer has drained), whether or not it moved."""
        await self._publish_latest(force=True)

    async def _publish_latest(self, *, force: bool) -> None:
        with self._lock:
            latest = self._latest
            self._unpublished = 0
            self._wake_sent = False
        if latest is None or (not force and latest == self._published):
            return
        head = ChainHead.make(latest, self._key)
        self._published = latest
        self.published += 1
        await asyncio.gather(*(self._one(sink, head) for sink in self._sinks))

    async def _one(self, sink: HeadSink, head: ChainHead) -> None:
        try:
            async with asyncio.timeout(self._sink_timeout_s):
                await sink.publish(head)
        except Exception as exc:  # a sink's trouble is logged, never passed on
            _log.error(
                "audit.head.publish_failed", sink=_sink_name(sink), seq=head.seq, error=str(exc)
            )


@dataclass(frozen=True, slots=True)
class PublishedHead:
    """A head read back from a log, with where it was found."""

    head: ChainHead
    line: int


def read_heads(lines: Iterable[str]) -> list[PublishedHead]:
    """The published heads among log lines (``journalctl -u pumpd -o cat``, or the raw
    output with its ``<N>`` prefix). Lines that are not head lines are skipped; a head line
    that does not parse raises :class:`CheckpointFormatError` naming its line."""
    heads = []
    for number, raw in enumerate(lines, start=1):
        start = raw.find("{")
        if start < 0 or HEAD_EVENT not in raw:
            continue
        try:
            fields = json.loads(raw[start:])
        except ValueError:
            continue
        if not isinstance(fields, dict) or fields.get("event") != HEAD_EVENT:
            continue
        if "ts" not in fields:
            continue  # the older on-demand line without ts/mac: use --checkpoint for it
        try:
            heads.append(PublishedHead(ChainHead.from_fields(fields), number))
        except CheckpointFormatError as exc:
            raise CheckpointFormatError(f"line {number}: {exc}") from exc
    return heads
