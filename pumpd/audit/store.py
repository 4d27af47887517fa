"""Appending to the chain: validation first, then one serialized, durable transaction.

Order and gaplessness come from taking the chain head and inserting inside one transaction
that only one writer can hold at a time (SQLite ``BEGIN IMMEDIATE``; PostgreSQL
``pg_advisory_xact_lock``), so concurrent writers queue rather than retry. ``append``
returns only after COMMIT has returned; with SQLite ``synchronous=FULL`` that means the WAL
is fsynced. Any database failure is raised as :class:`AuditWriteFailed` — never swallowed,
because the controller must stop the pump when it cannot write down what it does.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import migrate
from pumpd.audit.actor import Actor as Actor  # the audit log's actor, imported from here too
from pumpd.audit.catalogue import Payload, check_envelope, payload_text
from pumpd.audit.chain import COLUMNS, GENESIS_HASH, EventRecord, Hasher, encode, load_key
from pumpd.audit.errors import AuditWriteFailed, InvalidEnvelope
from pumpd.audit.schema import audit_event
from pumpd.db import is_sqlite, make_engine, normalize_url, reader

_HEAD = (
    select(audit_event.c.seq, audit_event.c.event_hash).order_by(audit_event.c.seq.desc()).limit(1)
)
_INSERT = insert(audit_event)
"""Built once: an append runs them in every transaction."""

PG_CHAIN_LOCK = 0x70756D7064_0001
"""The advisory lock every PostgreSQL append holds; one chain, one key."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")
_PATIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
"""A clinic's pseudonymous id. No spaces, so a name typed by mistake is refused."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as a caller submits it; the store adds seq, times, host and hashes."""

    event_type: str
    payload: Payload | Mapping[str, Any]
    actor: Actor
    pump_id: str | None = None
    session_id: str | None = None
    patient_ref: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated event, ready to be chained; building one touches no database."""

    event_type: str
    payload: str
    actor: Actor
    pump_id: str | None
    session_id: str | None
    patient_ref: str | None
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class Stamped:
    """A validated event with its time and origin fixed, not yet chained.

    Everything of the stored row except ``seq``, ``prev_hash`` and ``event_hash``: those
    depend on the chain head and are only computed inside the inserting transaction.
    The async writer stamps an event once, when it first tries to write it, so an event
    that waits in the local spool (pumpd/audit/spool.py) keeps the time it happened.
    ``(instance_id, mono_ns)`` identifies an event: ``mono_ns`` strictly increases within
    one store instance.
    """

    occurred_at: str
    mono_ns: int
    host: str
    instance_id: str
    actor_kind: str
    actor_uid: int | None
    actor_name: str
    actor_role: str
    pump_id: str | None
    session_id: str | None
    patient_ref: str | None
    event_type: str
    correlation_id: str | None
    simulated: bool
    payload: str

    def matches(self, record: EventRecord) -> bool:
        """True when ``record`` is this very event as stored (same every stamped field)."""
        return all(getattr(record, name) == value for name, value in asdict(self).items())


STAMPED_FIELDS: tuple[str, ...] = tuple(Stamped.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Head:
    """The newest event's position and hash (seq 0 and the genesis hash when empty)."""

    seq: int
    event_hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.event_hash}"


def utc_text(moment: datetime) -> str:
    """The stored (and hashed) time form: fixed width, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prepare(event: NewEvent) -> Prepared:
    """Validate everything about ``event``; raise :class:`EventRefused` before any I/O."""
    kind = event.event_type
    payload = payload_text(kind, event.payload)
    _check_actor(kind, event.actor)
    for field, value, pattern in (
        ("pump_id", event.pump_id, _ID),
        ("session_id", event.session_id, _ID),
        ("correlation_id", event.correlation_id, _ID),
        ("patient_ref", event.patient_ref, _PATIENT_REF),
    ):
        if value is not None and not pattern.fullmatch(value):
            raise InvalidEnvelope(kind, f"{field} {value!r} does not match {pattern.pattern}")
    check_envelope(
        kind,
        session_id=event.session_id,
        patient_ref=event.patient_ref,
        pump_id=event.pump_id,
        correlation_id=event.correlation_id,
    )
    return Prepared(
        event_type=kind,
        payload=payload,
        actor=event.actor,
        pump_id=event.pump_id,
        session_id=event.session_id,
        patient_ref=event.patient_ref,
        correlation_id=event.correlation_id,
    )


def _check_actor(kind: str, actor: Actor) -> None:
    problem = actor.problem()
    if problem is not None:
        raise InvalidEnvelope(kind, problem)


class AuditStore:
    """The synchronous store: validate, chain, commit. Thread-safe (one engine, many conns).

    ``simulated`` is fixed per store: a simulation-mode daemon flags every event it writes,
    and the flag is hashed like every other column.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        key: bytes | None = None,
        simulated: bool = False,
        host: str | None = None,
        check_schema: bool = True,
    ) -> None:
        if check_schema:
            migrate.require_current(engine)
        self._engine = engine
        self._reads = reader(engine)
        """For the reads outside an append (tail, head, first event): they never hold the
        write lock an append needs. An append reads the head inside its own transaction."""
        self._hasher = Hasher(key)
        self._simulated = simulated
        self._host = host or socket.gethostname()
        self._instance_id = str(uuid.uuid4())
        self._mono_origin_ns = time.monotonic_ns()
        self._last_mono_ns = -1
        self._stamp_lock = threading.Lock()
        self._postgres = not is_sqlite(engine.url)
        self._commit_listeners: list[Callable[[Head, int], None]] = []

    @classmethod
    def open(
        cls,
        url: URL | str,
        *,
        key_file: Path | None = None,
        simulated: bool = False,
        pool_size: int = 5,
    ) -> AuditStore:
        real = normalize_url(url) if isinstance(url, str) else url
        key = load_key(key_file) if key_file is not None else None
        # No pre-ping: it would add a round trip to every append. After a lost connection
        # one append fails (AuditWriteFailed: the controller fails safe) and SQLAlchemy
        # replaces the pool, so the next append reconnects.
        engine = make_engine(real, pool_size=pool_size, pool_pre_ping=False)
        try:
            return cls(engine, key=key, simulated=simulated)
        except BaseException:
            engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def keyed(self) -> bool:
        return self._hasher.keyed

    @property
    def key_id(self) -> str | None:
        """The id of the key the chain is hashed with (None: plain SHA-256)."""
        return self._hasher.key_id

    @property
    def simulated(self) -> bool:
        return self._simulated

    def add_commit_listener(self, listener: Callable[[Head, int], None]) -> None:
        """Call ``listener(new_head, events)`` after every commit, in the committing thread.

        For the head publisher (pumpd/audit/heads.py): it learns of every new head without
        reading the database. The listener must be quick and must not raise; an exception
        from it is swallowed, because the events are committed whatever it does.
        """
        self._commit_listeners.append(listener)

    def append(self, event: NewEvent) -> EventRecord:
        """Write one event durably; return it as stored."""
        return self.write([prepare(event)])[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[EventRecord]:
        """Write several events in one transaction: all of them, in order, or none."""
        return self.write([prepare(e) for e in events])

    def write(self, batch: Sequence[Prepared]) -> list[EventRecord]:
        """Chain and commit already validated events, stamped inside the transaction."""
        return self._write(len(batch), lambda: [self.stamp(item) for item in batch])

    def write_stamped(self, batch: Sequence[Stamped]) -> list[EventRecord]:
        """Chain and commit events stamped earlier (the async writer and its spool).

        The stamps are kept as they are, so an event drained from the spool carries the
        time it happened and the instance that recorded it, not the time of the drain.
        """
        return self._write(len(batch), lambda: list(batch))

    def _write(self, count: int, stamps: Callable[[], list[Stamped]]) -> list[EventRecord]:
        if not count:
            return []
        try:
            with self._engine.begin() as conn:
                if self._postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_CHAIN_LOCK})
                head = conn.execute(_HEAD).first()
                seq, prev = (head[0], head[1]) if head else (0, GENESIS_HASH)
                records = []
                for item in stamps():
                    seq += 1
                    record = self._chain(item, seq, prev)
                    records.append(record)
                    prev = record.event_hash
                conn.execute(_INSERT, [{c: getattr(r, c) for c in COLUMNS} for r in records])
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"audit write of {count} event(s) failed: {exc}") from exc
        if self._commit_listeners:
            newest = Head(records[-1].seq, records[-1].event_hash)
            for listener in self._commit_listeners:
                with contextlib.suppress(Exception):
                    listener(newest, len(records))
        return records

    def stamp(self, item: Prepared) -> Stamped:
        """Fix the event's time and origin; ``mono_ns`` strictly increases per instance."""
        with self._stamp_lock:
            mono_ns = max(time.monotonic_ns() - self._mono_origin_ns, self._last_mono_ns + 1)
            self._last_mono_ns = mono_ns
            occurred_at = utc_text(datetime.now(UTC))
        return Stamped(
            occurred_at=occurred_at,
            mono_ns=mono_ns,
            host=self._host,
            instance_id=self._instance_id,
            actor_kind=item.actor.kind,
            actor_uid=item.actor.uid,
            actor_name=item.actor.name,
            actor_role=item.actor.role,
            pump_id=item.pump_id,
            session_id=item.session_id,
            patient_ref=item.patient_ref,
            event_type=item.event_type,
            correlation_id=item.correlation_id,
            simulated=self._simulated,
            payload=item.payload,
        )

    def _chain(self, item: Stamped, seq: int, prev: str) -> EventRecord:
        # Shallow copies of immutable fields: dataclasses.asdict deep-copies every value.
        stamped = {name: getattr(item, name) for name in STAMPED_FIELDS}
        unhashed = EventRecord(seq=seq, **stamped, prev_hash=prev, event_hash="")
        return replace(unhashed, event_hash=self._hasher.digest(encode(unhashed)))

    def tail(self, count: int) -> list[EventRecord]:
        """The newest ``count`` events, oldest first (the spool's duplicate check)."""
        try:
            with self._reads.connect() as conn:
                rows = conn.execute(
                    select(*(audit_event.c[name] for name in COLUMNS))
                    .order_by(audit_event.c.seq.desc())
                    .limit(count)
                ).all()
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"cannot read the newest {count} events: {exc}") from exc
        return [EventRecord(*row) for row in reversed(rows)]

    @property
    def database(self) -> str:
        """The database as text without its password (names the spool's destination)."""
        return self._engine.url.render_as_string(hide_password=True)

    def first_occurred_at(self) -> datetime | None:
        """When the oldest event was written (real UTC), or None for an empty log: the
        epoch of a simulation's clock (pumpd/clock.py ScaledClock)."""
        try:
            with self._reads.connect() as conn:
                row = conn.execute(
                    select(audit_event.c.occurred_at).order_by(audit_event.c.seq).limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"cannot read the oldest event: {exc}") from exc
        return None if row is None else datetime.fromisoformat(row[0])

    def head(self) -> Head:
        """The current chain head, read in a short read-only transaction."""
        try:
            with self._reads.connect() as conn:
                row = conn.execute(
                    select(audit_event.c.seq, audit_event.c.event_hash)
                    .order_by(audit_event.c.seq.desc())
                    .limit(1)
                ).first()
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"cannot read the chain head: {exc}") from exc
        return Head(row[0], row[1]) if row else Head(0, GENESIS_HASH)

    def close(self) -> None:
        self._engine.dispose()
