"""Recompute the chain and name the first place where it breaks, and how.

The walk streams rows in ``seq`` order and stops at the first problem. Classifying a break
uses the chain itself: a row whose hash is valid at another position was moved (so an
event was inserted before it, deleted before it, or it was swapped); a row that no longer
links to its predecessor, while both hash correctly, means the predecessor was rewritten
by someone who recomputed its hash. A checkpoint from outside the database catches what
the chain alone cannot: the newest events cut off, or the chain rebuilt from some point.

Keys: a ``chain.key.changed`` event says which key hashes it and every later event (none:
plain SHA-256); the events before the first one are hashed with whatever the first event
validates with. Given keys, a stretch that is not keyed after a keyed one (or a chain not
keyed at all) is reported as ``unkeyed``: nobody without the key could tell it from a
rebuild. Published heads (pumpd/audit/heads.py) are checked for their MAC and against the
chain: a head beyond the end is a cut tail, a head with another hash a fork.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from pumpd.audit.chain import COLUMNS, GENESIS_HASH, Hasher, encode_row
from pumpd.audit.heads import PublishedHead
from pumpd.audit.schema import READ_VIEW
from pumpd.audit.store import Head
from pumpd.db import reader

ProblemKind = Literal[
    "changed", "missing", "inserted", "reordered", "truncated", "forked", "unkeyed", "key", "head"
]

KEY_EVENT = "chain.key.changed"
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {READ_VIEW}"  # noqa: S608 (constants only)
_BATCH_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    checked: int
    head: Head
    keyed: bool
    problem: Problem | None
    key_ids: tuple[str, ...] = ()
    """The keys the verified events were hashed with, oldest first."""
    heads_checked: int = 0
    """Published heads compared with the chain (their MACs valid, or not checkable)."""
    heads_unauthenticated: int = 0
    """Of those, heads whose MAC could not be checked (unkeyed, or their key not given)."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(
    engine: Engine,
    hasher: Hasher | Sequence[Hasher],
    checkpoint: Head | None = None,
    heads: Sequence[PublishedHead] = (),
) -> VerifyResult:
    """Walk the whole chain; see the module docstring for how a break is classified.

    ``hasher``: plain ``Hasher()``, or the chain's key(s) (several after a rotation: each
    ``chain.key.changed`` event names the key of the events from it on). ``heads``: heads
    published outside the database (pumpd/audit/heads.py).
    """
    hashers = [hasher] if isinstance(hasher, Hasher) else list(hasher)
    keyring = {h.key_id: h for h in hashers if h.key_id is not None}
    with reader(engine).connect() as conn:
        return _walk(conn, keyring, checkpoint, heads)


_SQLITE_ENCODED = (
    "SELECT seq, json_array('pumpd.audit.v1', seq, occurred_at, mono_ns, host, instance_id, "  # noqa: S608
    "actor_kind, actor_uid, actor_name, actor_role, pump_id, session_id, patient_ref, "
    "event_type, correlation_id, json(CASE WHEN simulated THEN 'true' ELSE 'false' END), "
    f"payload, prev_hash), prev_hash, event_hash, event_type FROM {READ_VIEW} ORDER BY seq"
)
"""The database writes the hashed JSON array itself: four values per row reach Python instead
of eighteen, which makes a million-row walk about 2.5 times faster. It is only ever used to
*confirm* a row: when its digest does not match, the row is fetched whole and judged by
``encode_row``, the specification, so an encoding difference can never hide a problem."""


def _pg_json(column: str) -> str:
    return f"coalesce(to_json({column})::text, 'null')"


_POSTGRES_ENCODED = (
    "SELECT seq, '[\"pumpd.audit.v1\",' || "  # noqa: S608
    + " || ',' || ".join(_pg_json(c) for c in COLUMNS[:-1])
    + f" || ']', prev_hash, event_hash, event_type FROM {READ_VIEW} ORDER BY seq"
)
"""The same confirmation-only fast path on PostgreSQL: ``to_json`` of each column, joined
without whitespace (``json_build_array`` would put a space after each comma)."""


def _cursor_rows(conn: Connection, statement: str) -> Iterator[Sequence[Any]]:
    """Rows straight from the DB-API cursor (SQLAlchemy's Row wrapper costs a third of a
    million-row walk); PostgreSQL gets a server-side (named) cursor."""
    raw: Any = conn.connection.dbapi_connection
    postgres = conn.dialect.name == "postgresql"
    cursor = raw.cursor(name="pumpd_verify") if postgres else raw.cursor()
    try:
        if postgres:
            cursor.itersize = _BATCH_ROWS
        cursor.execute(statement)
        while True:
            batch = cursor.fetchmany(_BATCH_ROWS)
            if not batch:
                return
            yield from batch
    finally:
        cursor.close()


def _encoded(conn: Connection) -> Iterator[tuple[int, bytes | None, str, str, str]]:
    """(seq, hashed bytes as the database wrote them or None, prev, hash, event type) in
    seq order."""
    fast = _SQLITE_ENCODED if conn.dialect.name == "sqlite" else _POSTGRES_ENCODED
    for seq, text, prev, event_hash, event_type in _cursor_rows(conn, fast):
        yield seq, text.encode() if isinstance(text, str) else None, prev, event_hash, event_type


def _hasher_of_row(
    data: bytes | None, row_hash: str, keyring: Mapping[str, Hasher], plain: Hasher
) -> Hasher | None:
    """The key (or plain SHA-256) a first row validates with; None when none does."""
    if data is None:
        return None
    for candidate in (*keyring.values(), plain):
        if candidate.digest(data) == row_hash:
            return candidate
    return None


def _walk(
    conn: Connection,
    keyring: Mapping[str, Hasher],
    checkpoint: Head | None,
    heads: Sequence[PublishedHead],
) -> VerifyResult:
    plain = Hasher(None)
    current: Hasher | None = None if keyring else plain
    segments: list[str | None] = []
    expected = 1
    prev = GENESIS_HASH
    before_prev = GENESIS_HASH  # a break can be blamed on the row before the one that shows it
    wanted = {h.head.seq for h in heads} | ({checkpoint.seq} if checkpoint is not None else set())
    seen: dict[int, str] = {0: GENESIS_HASH}
    problem: Problem | None = None
    for seq, data, row_prev, row_hash, event_type in _encoded(conn):
        if seq != expected:
            problem = Problem(
                expected,
                "missing",
                f"events {expected}..{seq - 1} are missing (the next event is {seq})"
                if seq - 1 > expected
                else f"event {expected} is missing (the next event is {seq})",
            )
            break
        if event_type == KEY_EVENT:
            row = _lookup(conn, "seq", seq)
            if row is None:
                problem = Problem(seq, "missing", f"event {seq} vanished during verification")
                break
            new_key_id = _new_key_id(row)
            if new_key_id is None:
                nxt = plain
            elif new_key_id in keyring:
                nxt = keyring[new_key_id]
            else:
                problem = Problem(
                    seq,
                    "key",
                    f"from event {seq} on the chain is keyed with key {new_key_id}, which was "
                    "not given: pass its key file (--key-file, repeat it for older keys)",
                )
                break
            if nxt.digest(encode_row(row)) != row_hash:
                problem = _bad_hash(conn, nxt, row)
                break
            if new_key_id is None and keyring and any(k is not None for k in segments):
                problem = Problem(
                    seq,
                    "unkeyed",
                    f"from event {seq} on the chain is not keyed (chain.key.changed to no "
                    "key): a daemon ran without its key, or someone without the key "
                    "rebuilt the chain from here",
                )
                break
            current = nxt
            segments.append(nxt.key_id)
        else:
            if current is None:  # the first row tells which key the chain began with
                current = _hasher_of_row(data, row_hash, keyring, plain)
                if current is None:
                    current = next(iter(keyring.values()))
                segments.append(current.key_id)
            if data is None or current.digest(data) != row_hash:
                row = _lookup(conn, "seq", seq)
                if row is None:
                    problem = Problem(seq, "missing", f"event {seq} vanished during verification")
                    break
                if current.digest(encode_row(row)) != row_hash:
                    problem = _bad_hash(conn, current, row)
                    break
        if row_prev != prev:
            row = _lookup(conn, "seq", seq)
            assert row is not None
            problem = _bad_link(conn, row)
            break
        if seq in wanted:
            seen[seq] = row_hash
        before_prev, prev = prev, row_hash
        expected += 1
    keyed = any(k is not None for k in segments)
    key_ids = tuple(dict.fromkeys(k for k in segments if k is not None))
    if problem is not None and problem.seq < expected:
        # Blamed on the last row that looked good: it is not part of the verified prefix.
        return VerifyResult(
            checked=problem.seq - 1,
            head=Head(problem.seq - 1, before_prev),
            keyed=keyed,
            problem=problem,
            key_ids=key_ids,
        )
    head = Head(expected - 1, prev)
    if problem is None and keyring and head.seq > 0 and not keyed:
        return VerifyResult(
            checked=0,
            head=Head(0, GENESIS_HASH),
            keyed=False,
            problem=Problem(
                1,
                "unkeyed",
                "a key was given but no event of the chain is keyed: it was written without "
                "a key, or rebuilt from the start by someone without it",
            ),
        )
    if problem is None and checkpoint is not None:
        problem = _against_checkpoint(checkpoint, head, seen.get(checkpoint.seq))
    judged = _against_heads(heads, keyring, head, seen, complete=problem is None)
    if judged.problem is not None and (problem is None or judged.problem.seq < problem.seq):
        problem = judged.problem
    return VerifyResult(
        checked=head.seq,
        head=head,
        keyed=keyed,
        problem=problem,
        key_ids=key_ids,
        heads_checked=judged.checked,
        heads_unauthenticated=judged.unauthenticated,
    )


def _new_key_id(row: Sequence[Any]) -> str | None:
    try:
        value = json.loads(str(row[15])).get("new_key_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class _Judged:
    problem: Problem | None
    checked: int
    unauthenticated: int


def _against_heads(
    heads: Sequence[PublishedHead],
    keyring: Mapping[str, Hasher],
    end: Head,
    seen: Mapping[int, str],
    *,
    complete: bool,
) -> _Judged:
    """Every published head against the chain. A head whose MAC does not match its key is
    a forged or altered publication; one beyond the chain's end means the tail was cut (or
    the chain rewound); one whose hash differs means the chain forks from what was
    published, somewhere after the newest head that still matches."""
    problems: list[Problem] = []
    unauthenticated = 0
    good: list[PublishedHead] = []
    for published in heads:
        h = published.head
        if h.key_id is not None and h.key_id in keyring:
            key = keyring[h.key_id]
            if key.digest(h.signed_bytes()) != h.mac:
                problems.append(
                    Problem(
                        h.seq,
                        "head",
                        f"the head published at {h.ts_text} for event {h.seq} (line "
                        f"{published.line}) does not carry a valid MAC of key {h.key_id}: "
                        "the publication was altered or forged",
                    )
                )
                continue
        else:
            unauthenticated += 1
        good.append(published)
    good.sort(key=lambda p: p.head.seq)
    matched = 0
    for published in good:
        h = published.head
        if h.seq > end.seq:
            published = good[-1]  # the newest head says how much is missing at least
            h = published.head
            if complete:
                problems.append(
                    Problem(
                        end.seq + 1,
                        "truncated",
                        f"the chain ends at {end.seq} but a head for event {h.seq} was "
                        f"published at {h.ts_text} (line {published.line}): events "
                        f"{end.seq + 1}..{h.seq} (at least) were cut off or the chain rewound",
                    )
                )
            break
        if h.seq not in seen:
            continue  # beyond a break found by the walk
        if seen[h.seq] != h.event_hash:
            problems.append(
                Problem(
                    matched + 1,
                    "forked",
                    f"event {h.seq} is not the one published at {h.ts_text} (line "
                    f"{published.line}): the chain forks from the published one; it still "
                    f"matched the head published for event {matched}, so the first changed "
                    f"event is one of {matched + 1}..{h.seq}",
                )
            )
            break
        matched = h.seq
    first = min(problems, key=lambda p: p.seq) if problems else None
    return _Judged(first, len(good), unauthenticated)


def _against_checkpoint(checkpoint: Head, head: Head, seen_hash: str | None) -> Problem | None:
    if checkpoint.seq > head.seq:
        return Problem(
            head.seq + 1,
            "truncated",
            f"the chain ends at {head.seq} but checkpoint {checkpoint.seq} was witnessed: "
            f"events {head.seq + 1}..{checkpoint.seq} (at least) were cut off",
        )
    if checkpoint.seq > 0 and seen_hash != checkpoint.event_hash:
        return Problem(
            checkpoint.seq,
            "changed",
            f"event {checkpoint.seq} does not have the witnessed hash: the chain was "
            "rebuilt from this event or earlier",
        )
    if checkpoint.seq == 0 and checkpoint.event_hash != GENESIS_HASH:
        return Problem(1, "changed", "checkpoint 0 must carry the genesis hash")
    return None


def _lookup(conn: Connection, column: str, value: object) -> Sequence[Any] | None:
    return conn.exec_driver_sql(
        f"{_SELECT} WHERE {column} = ? ORDER BY seq LIMIT 1"
        if conn.dialect.paramstyle == "qmark"
        else f"{_SELECT} WHERE {column} = %(v)s ORDER BY seq LIMIT 1",
        (value,) if conn.dialect.paramstyle == "qmark" else {"v": value},
    ).first()


def _valid_at(hasher: Hasher, row: Sequence[Any], seq: int) -> bool:
    return hasher.digest(encode_row(row, seq=seq)) == str(row[17])


def _bad_hash(conn: Connection, hasher: Hasher, row: Sequence[Any]) -> Problem:
    seq = row[0]
    candidates: list[int] = []
    before = _lookup(conn, "event_hash", row[16])
    if before is not None:
        candidates.append(before[0] + 1)
    after = _lookup(conn, "prev_hash", row[17])
    if after is not None:
        candidates.append(after[0] - 1)
    # Neighbours may have moved together with this row (a renumbered tail): try one step.
    candidates += [seq - 1, seq + 1]
    for origin in candidates:
        if origin == seq or origin < 1 or not _valid_at(hasher, row, origin):
            continue
        if origin == seq - 1:
            return Problem(
                seq - 1,
                "inserted",
                f"event {seq - 1} is not part of the chain: the event now numbered {seq} "
                f"was recorded as {seq - 1}",
            )
        if origin == seq + 1:
            nxt = _lookup(conn, "seq", seq + 1)
            if nxt is not None and _valid_at(hasher, nxt, seq):
                return Problem(seq, "reordered", f"events {seq} and {seq + 1} were swapped")
            return Problem(
                seq,
                "missing",
                f"event {seq} was removed and the later events renumbered "
                f"(the event now numbered {seq} was recorded as {seq + 1})",
            )
        return Problem(seq, "reordered", f"the event at {seq} was recorded as event {origin}")
    hint = " (or the chain is keyed and no or the wrong key was given)" if seq == 1 else ""
    return Problem(seq, "changed", f"event {seq} does not match its stored hash{hint}")


def _bad_link(conn: Connection, row: Sequence[Any]) -> Problem:
    seq = row[0]
    before = _lookup(conn, "event_hash", row[16])
    if before is None:
        return Problem(
            seq - 1,
            "changed",
            f"event {seq - 1} was rewritten with a recomputed hash: event {seq} was chained "
            "to a different one",
        )
    if before[0] == seq - 2:
        return Problem(
            seq - 1,
            "inserted",
            f"event {seq - 1} is not part of the chain: event {seq} follows {seq - 2}",
        )
    return Problem(seq, "reordered", f"event {seq} was chained after event {before[0]}")
