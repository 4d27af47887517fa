"""The local durable spool: where audit events wait, fsync'd, while the database is away.

One append-only file of JSON lines. The first line names the format and the database
the events are for; every later line is either one event (``n``, the spool's own gapless
sequence, and the event as :class:`~pumpd.audit.store.Stamped`) or a drain mark
(``drained``: every event up to that ``n`` is in the database). Each line is
``{"body": ..., "check": sha256(canonical body)}`` in canonical JSON (sorted keys, no
spaces, UTF-8), so a torn or altered line is recognised by its checksum.

Durability: :meth:`Spool.append` writes a whole batch with one ``write`` and returns only
after ``fsync`` of the file (and of the directory when the file was just created). If
anything fails the file is cut back to where it was, so a refused batch leaves nothing
behind; the caller gets :class:`SpoolWriteFailed` (an ``AuditWriteFailed``).

Nothing here talks to the database; the async writer (pumpd/audit/writer.py) decides when
to spool and drains. :func:`already_stored` is the duplicate check after an ambiguous
commit (COMMIT raised, but may have succeeded): it compares the oldest pending events with
the newest rows of the table by identity ``(instance_id, mono_ns)`` and by content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pumpd.audit.chain import EventRecord
from pumpd.audit.errors import AuditError, AuditWriteFailed
from pumpd.audit.store import STAMPED_FIELDS, Stamped, utc_text

SPOOL_FORMAT = "pumpd.audit.spool.v1"


class SpoolError(AuditError):
    """The spool cannot be used as it is; a person must look at it (nothing was drained)."""


class SpoolCorrupt(SpoolError):
    """A line other than the last fails its checksum, or the sequence has a gap."""


class SpoolMismatch(SpoolError):
    """The spool was written for another database than the one configured."""


class SpoolConflict(SpoolError):
    """The table holds an event of the spool that does not fit (out of order or altered)."""


class SpoolWriteFailed(AuditWriteFailed):
    """The spool could not be written (e.g. its disk is full): the events are not durable."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled event and its position in the spool."""

    n: int
    event: Stamped


@dataclass(frozen=True, slots=True)
class TornTail:
    """The last line was cut off by a crash mid-write; kept aside, never applied."""

    line_number: int
    byte_count: int
    kept_at: Path


@dataclass(frozen=True, slots=True)
class Loaded:
    """What was found in a spool file left from before."""

    pending: list[SpoolEntry]
    drained_up_to: int
    torn: TornTail | None


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def line_of(body: dict[str, Any]) -> bytes:
    text = canonical(body)
    check = hashlib.sha256(text.encode()).hexdigest()
    return (canonical({"body": body, "check": check}) + "\n").encode()


def body_of(raw: bytes) -> dict[str, Any] | None:
    """The body of one line, or None when it does not parse or fails its checksum."""
    try:
        outer = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(outer, dict) or set(outer) != {"body", "check"}:
        return None
    body = outer["body"]
    if not isinstance(body, dict):
        return None
    if hashlib.sha256(canonical(body).encode()).hexdigest() != outer["check"]:
        return None
    return body


def _stamped(body: dict[str, Any], line_number: int) -> Stamped:
    event = body.get("event")
    if not isinstance(event, dict) or set(event) != set(STAMPED_FIELDS):
        raise SpoolCorrupt(f"spool line {line_number}: the event does not have the stored fields")
    return Stamped(**event)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """One spool file for one database. Not thread-safe: the writer thread owns it."""

    def __init__(self, path: Path, database: str) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = None
        self._next_n = 1
        self._broken: str | None = None

    def check_place(self) -> None:
        """Refuse at start-up a spool that could not be written when it is needed."""
        directory = self.path.parent
        if not directory.is_dir():
            raise SpoolError(f"the spool's directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise SpoolError(f"the spool's directory {directory} is not writable")
        if self.path.exists() and not self.path.is_file():
            raise SpoolError(f"the spool {self.path} exists and is not a regular file")

    # -- reading what a previous run left ----------------------------------------------

    def load(self) -> Loaded:
        """Read a leftover spool: its pending events, in order.

        A crash while a batch was being written (before its fsync) can leave the end of
        the file cut off or filled with garbage. Bad lines at the very end are that torn
        tail: they are moved aside to ``<name>.torn-<UTC>``, reported, and never applied
        (no caller was ever told they were durable). A bad line followed by a good one is
        not a torn write but damage: :class:`SpoolCorrupt`, nothing is drained.
        """
        if not self.path.exists():
            return Loaded([], 0, None)
        data = self.path.read_bytes()
        pieces = data.split(b"\n")  # the last piece is what follows the last newline
        good = [body_of(raw) is not None for raw in pieces[:-1]]
        first_bad = good.index(False) if False in good else len(good)
        if not all(not ok for ok in good[first_bad:]):
            bad_line = first_bad + 1
            raise SpoolCorrupt(f"{self.path}: line {bad_line} fails its checksum, later lines not")
        keep_bytes = sum(len(raw) + 1 for raw in pieces[:first_bad])
        torn: TornTail | None = None
        if keep_bytes < len(data):
            torn = self._keep_torn(first_bad + 1, data[keep_bytes:])
        if first_bad == 0:  # not even a whole header: as if never created
            self.path.unlink()
            fsync_dir(self.path.parent)
            return Loaded([], 0, torn)
        if torn is not None:
            with open(self.path, "r+b") as f:
                f.truncate(keep_bytes)
                f.flush()
                os.fsync(f.fileno())
        pending, drained, next_n = self._parse(pieces[:first_bad])
        self._next_n = next_n
        return Loaded([e for e in pending if e.n > drained], drained, torn)

    def _parse(self, lines: list[bytes]) -> tuple[list[SpoolEntry], int, int]:
        header = body_of(lines[0])
        if header is None or header.get("format") != SPOOL_FORMAT:
            raise SpoolCorrupt(f"{self.path}: line 1 is not a {SPOOL_FORMAT} header")
        if header.get("database") != self.database:
            raise SpoolMismatch(
                f"{self.path} holds events for {header.get('database')!r}, not for "
                f"{self.database!r}; drain it into its own database or move it away"
            )
        entries: list[SpoolEntry] = []
        drained = 0
        for number, raw in enumerate(lines[1:], start=2):
            body = body_of(raw)
            if body is None:
                raise SpoolCorrupt(f"{self.path}: line {number} fails its checksum")
            if "drained" in body:
                mark = body["drained"]
                if not isinstance(mark, int) or not drained <= mark <= len(entries):
                    raise SpoolCorrupt(f"{self.path}: line {number}: bad drain mark {mark!r}")
                drained = mark
                continue
            if body.get("n") != len(entries) + 1:
                raise SpoolCorrupt(
                    f"{self.path}: line {number} has n={body.get('n')!r}, "
                    f"expected {len(entries) + 1}"
                )
            entries.append(SpoolEntry(len(entries) + 1, _stamped(body, number)))
        return entries, drained, len(entries) + 1

    def _keep_torn(self, line_number: int, raw: bytes) -> TornTail:
        kept = self.path.with_name(f"{self.path.name}.torn-{utc_text(datetime.now(UTC))}")
        with open(kept, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.path.parent)
        return TornTail(line_number=line_number, byte_count=len(raw), kept_at=kept)

    # -- writing -----------------------------------------------------------------------

    def append(self, events: Sequence[Stamped]) -> list[SpoolEntry]:
        """Append ``events`` and fsync; all of them are durable on return, or none."""
        entries = [SpoolEntry(self._next_n + i, e) for i, e in enumerate(events)]
        data = b"".join(line_of({"n": e.n, "event": asdict(e.event)}) for e in entries)
        self._write(data, what=f"{len(entries)} event(s)")
        self._next_n += len(entries)
        return entries

    def mark_drained(self, up_to_n: int) -> None:
        """Record that every event up to ``up_to_n`` is in the database (fsync'd)."""
        self._write(line_of({"drained": up_to_n}), what=f"the drain mark {up_to_n}")

    def _write(self, data: bytes, *, what: str) -> None:
        if self._broken is not None:
            raise SpoolWriteFailed(f"cannot write {what}: {self._broken}")
        created = False
        size = 0
        try:
            if self._fd is None:
                created = not self.path.exists()
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                if created:
                    header = line_of(
                        {
                            "format": SPOOL_FORMAT,
                            "database": self.database,
                            "created_at": utc_text(datetime.now(UTC)),
                        }
                    )
                    data = header + data
            size = os.fstat(self._fd).st_size
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
            if created:
                fsync_dir(self.path.parent)
        except OSError as exc:
            self._cut_back(size, created)
            raise SpoolWriteFailed(f"cannot write {what} to the spool {self.path}: {exc}") from exc

    def _cut_back(self, size: int, created: bool) -> None:
        """Undo a failed write so no partial line stays behind (best effort: a torn line
        that survives is caught by its checksum at the next load)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            # A partial line may stay behind; anything appended after it would turn it
            # into damage in the middle of the file. Stop using the spool instead.
            self._broken = f"the spool {self.path} could not be cut back after a failure: {exc}"
            return
        if created and size == 0:
            self.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def remove(self) -> None:
        """Everything is drained: delete the file (and make that durable)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fsync_dir(self.path.parent)
        self._next_n = 1

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def already_stored(pending: Sequence[SpoolEntry], tail: Sequence[EventRecord]) -> int:
    """How many of the oldest ``pending`` events the table's newest rows already hold.

    After an ambiguous commit the events that did get in are the oldest pending ones, in
    order. Anything else (an altered copy, a later event in without an earlier one, the
    order changed) means the spool and the table disagree: :class:`SpoolConflict`.
    """
    by_identity = {(r.instance_id, r.mono_ns): r for r in tail}
    found = 0
    last_seq = 0
    for entry in pending:
        record = by_identity.get((entry.event.instance_id, entry.event.mono_ns))
        if record is None:
            break
        if not entry.event.matches(record):
            raise SpoolConflict(
                f"spool event n={entry.n} is in the table at seq {record.seq} altered"
            )
        if record.seq <= last_seq:
            raise SpoolConflict(f"spool event n={entry.n} is in the table out of order")
        last_seq = record.seq
        found += 1
    for entry in pending[found:]:
        if (entry.event.instance_id, entry.event.mono_ns) in by_identity:
            raise SpoolConflict(
                f"spool event n={entry.n} is in the table but an older spooled event is not"
            )
    return found
