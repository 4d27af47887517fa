"""The forwarder's acknowledged high-water mark, durable on the site's disk.

One small JSON file, replaced atomically (written beside, fsync'd, renamed, directory
fsync'd), so a crash leaves either the old mark or the new one, never a torn one. It is
written only after the centre's COMMIT returned: a mark is never ahead of the centre. It
may lag behind it (a crash between COMMIT and the rename); the next run sends those
events again and the centre skips them as duplicates after checking their hashes. The
mark carries the acknowledged event's hash and the site's identity, so a local log
rewritten or replaced after forwarding is noticed at the site too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pumpd.audit import GENESIS_HASH


class MarkError(Exception):
    """The mark file cannot be read or written; the message names it."""


@dataclass(frozen=True, slots=True)
class Mark:
    site: str
    seq: int
    event_hash: str
    identity: str
    """The hash of the site's event 1: which log this mark belongs to."""

    @classmethod
    def start(cls, site: str, identity: str) -> Mark:
        return cls(site=site, seq=0, event_hash=GENESIS_HASH, identity=identity)


def load_mark(path: Path) -> Mark | None:
    """The stored mark, or None when there is none yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MarkError(f"cannot read the forwarding mark {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(data)
        mark = Mark(
            site=str(raw["site"]),
            seq=int(raw["seq"]),
            event_hash=str(raw["event_hash"]),
            identity=str(raw["identity"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MarkError(f"the forwarding mark {path} is damaged: {exc}") from exc
    if mark.seq < 0 or len(mark.event_hash) != 64 or len(mark.identity) != 64:
        raise MarkError(f"the forwarding mark {path} is damaged: {data[:200]!r}")
    return mark


def save_mark(path: Path, mark: Mark) -> None:
    """Replace the mark atomically and durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    data = (json.dumps(asdict(mark), sort_keys=True) + "\n").encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise MarkError(f"cannot write the forwarding mark {path}: {exc.strerror}") from exc
