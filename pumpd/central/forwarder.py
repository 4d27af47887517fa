"""Store-and-forward: ship a site's audit events to the central store, in order, exactly once.

One :meth:`Forwarder.step` reads the next events after the acknowledged mark from the
site's log (a read-only transaction: it never holds the lock the audit writer needs), and
sends them to the centre in one transaction: ``INSERT … ON CONFLICT (site, seq) DO
NOTHING RETURNING seq``, then the held hash of every row the centre did not take. A row
taken, or held with the same hash (a duplicate delivery: a replayed batch, a mark that
lagged behind a COMMIT), is acknowledged; a row held with another hash is a different
event under the same number, and a row refused by the centre's continuity check (it does
not chain to the held previous row) means the site's log was rewritten after it was
forwarded: both are tamper alarms, recorded at the centre (``central_conflict``) and raised
at the site, and forwarding stops at the last good row. Only after COMMIT is the mark
advanced (durably, pumpd/central/mark.py), so a lost connection, a killed backend, a batch
cut in the middle or a centre down for hours all end with the same rows sent again and
taken once.

Synchronous and blocking by design: under the daemon it runs in a process of its own
(pumpd/central/worker.py, driven by pumpd/central/task.py) with its own engines, never in
the daemon's interpreter and never on a pump loop's path.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal

from sqlalchemy import Engine, bindparam, select, text
from sqlalchemy.exc import SQLAlchemyError

from pumpd.audit import COLUMNS, EventRecord, SchemaError
from pumpd.audit.schema import audit_event
from pumpd.central import migrate as central_migrate
from pumpd.central.mark import Mark, MarkError, load_mark, save_mark
from pumpd.central.schema import central_event
from pumpd.central.settings import ForwardSettings as ForwardSettings
from pumpd.db import make_engine, normalize_url, reader

State = Literal["starting", "current", "behind", "unreachable", "conflict"]
ConflictKind = Literal["different_event", "refused", "identity", "local_rewrite", "mark"]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A tamper finding: forwarding stops at ``seq - 1`` until a person looks."""

    kind: ConflictKind
    seq: int
    detail: str


@dataclass(frozen=True, slots=True)
class ForwardStatus:
    """A snapshot for STATUS=, the logs and ``pumpctl status --json``."""

    site: str
    state: State
    acked_seq: int
    local_seq: int
    lag_events: int
    lag_s: float
    """Age of the oldest event not yet acknowledged by the centre (0 when none waits)."""
    error: str | None = None
    conflict: Conflict | None = None
    shipped: int = 0
    """Events acknowledged by this process since it started."""

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "state": self.state,
            "acked_seq": self.acked_seq,
            "local_seq": self.local_seq,
            "lag_events": self.lag_events,
            "lag_s": round(self.lag_s, 1),
            "error": self.error,
            "conflict": None
            if self.conflict is None
            else {
                "kind": self.conflict.kind,
                "seq": self.conflict.seq,
                "detail": self.conflict.detail,
            },
            "shipped": self.shipped,
        }


@dataclass(frozen=True, slots=True)
class StepResult:
    shipped: int
    """Rows acknowledged in this step (taken or duplicates)."""
    full: bool
    """The batch was full: more may wait, step again at once."""
    conflict: Conflict | None = None


class CentreUnavailable(Exception):
    """The centre could not be reached or refused the transaction; try again later."""


class ForwardConflict(Exception):
    def __init__(self, conflict: Conflict) -> None:
        super().__init__(conflict.detail)
        self.conflict = conflict


_CONNECT_ARGS = {
    # A silent network must not hold the forwarder's thread for the kernel's two hours.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "application_name": "pumpd-forward",
}


def central_engine(url: str, connect_timeout_s: float = 10.0) -> Engine:
    """The forwarder's own engine on the centre: one connection, checked before use."""
    real = normalize_url(url)
    if real.get_backend_name() != "postgresql":
        raise SchemaError("the central store is PostgreSQL only (postgresql://...)")
    return make_engine(
        real,
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args={
            **_CONNECT_ARGS,
            "connect_timeout": max(1, round(connect_timeout_s)),
            "tcp_user_timeout": round(connect_timeout_s * 3000),
        },
    )


class Forwarder:
    """Ships one site's log to the centre. Not thread-safe: one thread calls ``step``;
    ``status`` may be read from any thread."""

    def __init__(
        self,
        site_engine: Engine,
        settings: ForwardSettings,
        *,
        centre: Engine | None = None,
        host: str | None = None,
    ) -> None:
        self._site = reader(site_engine)
        self.settings = settings
        self._centre = centre or central_engine(settings.url, settings.connect_timeout_s)
        self._owns_centre = centre is None
        self._host = host or socket.gethostname()
        self._mark: Mark | None = None
        self._claimed = False
        self._schema_checked = False
        self._lock = threading.Lock()
        self._status = ForwardStatus(settings.site, "starting", 0, 0, 0, 0.0)
        self._shipped = 0

    # -- state ------------------------------------------------------------------------

    def status(self) -> ForwardStatus:
        with self._lock:
            return self._status

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    @property
    def mark(self) -> Mark | None:
        return self._mark

    def close(self) -> None:
        if self._owns_centre:
            self._centre.dispose()

    # -- one step ---------------------------------------------------------------------

    def step(self) -> StepResult:
        """Ship the next batch. Raises :class:`CentreUnavailable` (retry later) or
        :class:`ForwardConflict` (a tamper finding; recorded in the status too)."""
        try:
            return self._step()
        except ForwardConflict as exc:
            self._set(state="conflict", conflict=exc.conflict, error=exc.conflict.detail)
            raise
        except CentreUnavailable as exc:
            self._set(state="unreachable", error=str(exc)[:300])
            raise

    def _step(self) -> StepResult:
        identity = self._identity()
        if identity is None:  # an empty log: nothing to ship yet
            self._set(state="current", error=None)
            return StepResult(0, False)
        mark = self._load_mark(identity)
        finding = self._local_finding(mark, identity)
        if finding is not None:
            self._tell_centre(finding, identity)
            raise ForwardConflict(finding[0])
        batch, local_seq = self._read_after(mark)
        lag_s = _age_s(batch[0].occurred_at) if batch else 0.0
        self._set(
            acked_seq=mark.seq,
            local_seq=local_seq,
            lag_events=local_seq - mark.seq,
            lag_s=lag_s,
        )
        self._prepare_centre(identity)
        if not batch:
            self._set(state="current", error=None, conflict=None)
            return StepResult(0, False)
        acked, conflict = self._send(batch)
        if acked:
            last = batch[acked - 1]
            new = replace(mark, seq=last.seq, event_hash=last.event_hash)
            try:
                save_mark(self.settings.mark_file, new)
            except MarkError as exc:
                raise CentreUnavailable(str(exc)) from exc
            self._mark = new
            self._shipped += acked
            rest = batch[acked:]
            self._set(
                acked_seq=new.seq,
                lag_events=local_seq - new.seq,
                lag_s=_age_s(rest[0].occurred_at) if rest else 0.0,
                shipped=self._shipped,
            )
        if conflict is not None:
            raise ForwardConflict(conflict)
        full = len(batch) == self.settings.batch_size
        self._set(
            state="behind" if full or local_seq > self._status.acked_seq else "current",
            error=None,
            conflict=None,
        )
        return StepResult(acked, full)

    def _identity(self) -> str | None:
        with self._site.connect() as conn:
            row = conn.execute(
                select(audit_event.c.event_hash).where(audit_event.c.seq == 1)
            ).first()
        return None if row is None else str(row[0])

    def _load_mark(self, identity: str) -> Mark:
        """The mark, checked against the local log: it must be this log's, and the event it
        acknowledges must still be there with the same hash."""
        if self._mark is None:
            try:
                stored = load_mark(self.settings.mark_file)
            except MarkError as exc:
                raise ForwardConflict(Conflict("mark", 0, str(exc))) from exc
            self._mark = stored or Mark.start(self.settings.site, identity)
        mark = self._mark
        if mark.site != self.settings.site:
            raise ForwardConflict(
                Conflict(
                    "mark",
                    mark.seq,
                    f"the forwarding mark {self.settings.mark_file} belongs to site "
                    f"{mark.site!r}, not {self.settings.site!r}; move it away to start afresh",
                )
            )
        return mark

    def _local_finding(
        self, mark: Mark, identity: str
    ) -> tuple[Conflict, EventRecord | None] | None:
        """The local log against the mark: it must be the same log, and the event the
        centre acknowledged must still be there with the same hash. A finding comes with
        the rewritten row, which is offered to the centre so that it records it too."""
        if mark.identity != identity:
            return (
                Conflict(
                    "local_rewrite",
                    1,
                    f"the local audit log is not the one forwarded so far: its event 1 is "
                    f"{identity[:16]}…, the mark's {mark.identity[:16]}… (the log was replaced "
                    "or rebuilt after forwarding)",
                ),
                None,
            )
        if mark.seq == 0:
            return None
        with self._site.connect() as conn:
            row = conn.execute(
                select(*(audit_event.c[c] for c in COLUMNS)).where(audit_event.c.seq == mark.seq)
            ).first()
        record = None if row is None else EventRecord(*row)
        if record is not None and record.event_hash == mark.event_hash:
            return None
        found = "missing" if record is None else f"now {record.event_hash[:16]}…"
        return (
            Conflict(
                "local_rewrite",
                mark.seq,
                f"event {mark.seq}, acknowledged by the centre as {mark.event_hash[:16]}…, is "
                f"{found} in the local log: the log was rewritten or cut after forwarding",
            ),
            record,
        )

    def _tell_centre(self, finding: tuple[Conflict, EventRecord | None], identity: str) -> None:
        """Offer the centre what the site now holds, so its conflict record shows the
        rewrite too (the claim records a replaced log, the offered row a rewritten one).
        Best effort: the finding is raised at the site whether or not the centre answers."""
        try:
            self._prepare_centre(identity)
            if finding[1] is not None:
                self._send([finding[1]])
        except (CentreUnavailable, ForwardConflict):
            pass

    def _read_after(self, mark: Mark) -> tuple[list[EventRecord], int]:
        with self._site.connect() as conn:
            rows = conn.execute(
                select(*(audit_event.c[c] for c in COLUMNS))
                .where(audit_event.c.seq > mark.seq)
                .order_by(audit_event.c.seq)
                .limit(self.settings.batch_size)
            ).all()
            head = conn.execute(
                select(audit_event.c.seq).order_by(audit_event.c.seq.desc()).limit(1)
            ).scalar()
        batch = [EventRecord(*row) for row in rows]
        for expected, record in enumerate(batch, start=mark.seq + 1):
            if record.seq != expected:
                raise ForwardConflict(
                    Conflict(
                        "local_rewrite",
                        expected,
                        f"event {expected} is missing from the local log (the next is "
                        f"{record.seq}): rows were deleted",
                    )
                )
        return batch, int(head or 0)

    def _prepare_centre(self, identity: str) -> None:
        """Once per process: the centre is at our revision, and the site id is ours."""
        try:
            if not self._schema_checked:
                central_migrate.require_current(self._centre)
                self._schema_checked = True
            if not self._claimed:
                with self._centre.begin() as conn:
                    held = conn.execute(
                        text("SELECT central_claim_site(:site, :identity, :host)"),
                        {"site": self.settings.site, "identity": identity, "host": self._host},
                    ).scalar()
                if held != identity:
                    raise ForwardConflict(
                        Conflict(
                            "identity",
                            1,
                            f"the centre refuses site id {self.settings.site!r}: it is "
                            f"registered to another log (first event {str(held)[:16]}…, "
                            f"this site's {identity[:16]}…); site ids must be unique",
                        )
                    )
                self._claimed = True
        except SchemaError as exc:
            raise CentreUnavailable(f"central store not usable: {exc}") from exc
        except SQLAlchemyError as exc:
            raise CentreUnavailable(_brief(exc)) from exc

    def _send(self, batch: Sequence[EventRecord]) -> tuple[int, Conflict | None]:
        """One transaction at the centre; how many leading rows are acknowledged."""
        site = self.settings.site
        seqs = [r.seq for r in batch]
        try:
            with self._centre.begin() as conn:
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:site, 0))"),
                    {"site": site},
                )
                taken = {
                    int(row[0])
                    for row in conn.exec_driver_sql(_INSERT, (site, _batch_json(batch))).all()
                }
                held: dict[int, str] = {}
                missing = [s for s in seqs if s not in taken]
                if missing:
                    held = {
                        int(s): str(h)
                        for s, h in conn.execute(
                            select(central_event.c.seq, central_event.c.event_hash).where(
                                central_event.c.site == site,
                                central_event.c.seq.in_(bindparam("seqs", expanding=True)),
                            ),
                            {"seqs": missing},
                        )
                    }
        except SQLAlchemyError as exc:
            raise CentreUnavailable(_brief(exc)) from exc
        for index, record in enumerate(batch):
            if record.seq in taken:
                continue
            there = held.get(record.seq)
            if there == record.event_hash:
                continue  # a duplicate delivery: already held, the same event
            if there is not None:
                return index, Conflict(
                    "different_event",
                    record.seq,
                    f"the centre holds another event under seq {record.seq} "
                    f"({there[:16]}…, this site's is {record.event_hash[:16]}…): the local "
                    "log was rewritten after forwarding",
                )
            return index, Conflict(
                "refused",
                record.seq,
                f"the centre refused seq {record.seq}: it does not chain to the seq "
                f"{record.seq - 1} the centre holds (the local log was rewritten after "
                "forwarding); recorded in central_conflict",
            )
        return len(batch), None


_TYPES = {
    "seq": "bigint",
    "mono_ns": "bigint",
    "actor_uid": "bigint",
    "simulated": "boolean",
}
_INSERT = (
    f"INSERT INTO central_event (site, {', '.join(COLUMNS)}) "  # noqa: S608 (constants)
    "SELECT %s, "
    + ", ".join(f"(b.r->>{i})::{_TYPES.get(c, 'text')}" for i, c in enumerate(COLUMNS))
    + " FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS b(r, n) ORDER BY b.n "
    "ON CONFLICT (site, seq) DO NOTHING RETURNING seq"
)
"""One statement per batch: the batch as one JSON array of rows, unpacked by the centre
(ORDER BY makes the arrival trigger see the rows in seq order). ``json.dumps`` encodes a
batch in C; psycopg's text-array quoting of 19 arrays, a regular expression per value,
was half of a step's CPU (docs/bench.md)."""

_ROW = attrgetter(*COLUMNS)


def _batch_json(batch: Sequence[EventRecord]) -> str:
    return json.dumps([_ROW(r) for r in batch], ensure_ascii=False, separators=(",", ":"))


def _age_s(occurred_at: str) -> float:
    try:
        moment = datetime.fromisoformat(occurred_at)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())


def _brief(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}"[:300]


@dataclass
class Backoff:
    """Waits between attempts at an unreachable centre: doubling from 1 s, capped."""

    max_s: float
    _next_s: float = field(default=1.0)

    def failed(self) -> float:
        wait = min(self._next_s, self.max_s)
        self._next_s = min(self._next_s * 2, self.max_s)
        return wait

    def reset(self) -> None:
        self._next_s = 1.0


def run_until(forwarder: Forwarder, stop: threading.Event) -> None:
    """A plain loop for a thread (tests, bench, a stand-alone runner)."""
    backoff = Backoff(forwarder.settings.retry_max_s)
    while not stop.is_set():
        try:
            result = forwarder.step()
        except CentreUnavailable:
            stop.wait(backoff.failed())
            continue
        except ForwardConflict:
            stop.wait(forwarder.settings.retry_max_s)
            continue
        backoff.reset()
        if not result.full:
            stop.wait(forwarder.settings.interval_s)


__all__ = [
    "Backoff",
    "CentreUnavailable",
    "Conflict",
    "ForwardConflict",
    "ForwardSettings",
    "ForwardStatus",
    "Forwarder",
    "StepResult",
    "central_engine",
    "run_until",
]
