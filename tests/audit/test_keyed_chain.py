"""A keyed chain with published heads, attacked by a database owner (triggers dropped as
superuser, on SQLite and PostgreSQL): ``pumpaudit verify --key-file --checkpoints`` names
the first bad seq of a rebuilt row, a cut tail, a fork and a forged head line.

The chain is written as the daemon writes it: a keyed store behind the async writer, its
first event ``chain.key.changed``, and a :class:`HeadPublisher` fed by the store's commit
listener, logging through structlog's JSON renderer into a file (the journal's stand-in).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result

from pumpd.audit.heads import HeadPublisher, LogHeadSink, PublishedHead, read_heads
from pumpd.audit.keys import ChainKey, generate_key_file
from pumpd.audit.store import Actor, AuditStore, NewEvent
from pumpd.audit.writer import AsyncAuditWriter
from pumpd.cli.pumpaudit import main

from .conftest import Db
from .factories import filler
from .test_tamper import drop_protection, put, rehash, row

EVENTS = 30
EVERY = 5


def run(db: Db, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database", db.url, "verify", *args])


def key_event(old: ChainKey | None, new: ChainKey | None, reason: str) -> NewEvent:
    payload: dict[str, str] = {"reason_code": reason}
    if old is not None:
        payload["old_key_id"] = old.key_id
    if new is not None:
        payload["new_key_id"] = new.key_id
    return NewEvent("chain.key.changed", payload, Actor.daemon())


@dataclass
class Keyed:
    db: Db
    key: ChainKey
    heads_file: Path

    def heads(self) -> list[PublishedHead]:
        with self.heads_file.open() as f:
            return read_heads(f)

    def verify(self, *extra: str) -> Result:
        return run(self.db, "--key-file", str(self.key.path), *extra)

    def verify_published(self, *extra: str) -> Result:
        return self.verify("--checkpoints", str(self.heads_file), *extra)


async def write_keyed(db: Db, key: ChainKey, heads_file: Path, events: int) -> None:
    """The daemon's way: key event first, then ``events`` events one by one, heads
    published every EVERY events, at start and at stop."""
    assert key.path is not None
    store = AuditStore.open(db.url, key_file=key.path)
    with heads_file.open("a") as out:
        logger = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
        )
        publisher = HeadPublisher(
            [LogHeadSink(logger=logger)], key=key, every_events=EVERY, every_s=3600
        )
        store.add_commit_listener(publisher.note)
        writer = AsyncAuditWriter(store)
        task = asyncio.create_task(publisher.run(await asyncio.to_thread(store.head)))
        try:
            if store.head().seq == 0:
                await writer.append(key_event(None, key, "first_key"))
            for i in range(events):
                await writer.append(filler(i))
                await asyncio.sleep(0)  # the publisher runs between appends, as in the daemon
        finally:
            await writer.aclose()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await publisher.final()
            store.close()


@pytest.fixture
async def keyed(db: Db, tmp_path: Path) -> Keyed:
    key = generate_key_file(tmp_path / "chain.key")
    heads_file = tmp_path / "heads.log"
    await write_keyed(db, key, heads_file, EVENTS)
    return Keyed(db, key, heads_file)


def broken_at(result: Result) -> tuple[int, str]:
    assert result.exit_code == 1, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("BROKEN at seq "))
    seq, kind = line.removeprefix("BROKEN at seq ").split(": ")[:2]
    return int(seq), kind


def test_heads_are_published_every_n_events_and_the_chain_matches(keyed: Keyed) -> None:
    heads = keyed.heads()
    seqs = [p.head.seq for p in heads]
    assert seqs[0] == 0
    assert seqs[-1] == EVENTS + 1
    assert len(heads) >= EVENTS // EVERY + 2
    assert all(b - a <= EVERY + 1 for a, b in itertools.pairwise(seqs))
    assert all(p.head.key_id == keyed.key.key_id and p.head.mac_matches(keyed.key) for p in heads)
    result = keyed.verify_published()
    assert result.exit_code == 0, result.output
    assert f"keyed: {keyed.key.key_id}" in result.output
    assert f"matches all {len(heads)} published heads" in result.output
    as_json = json.loads(keyed.verify_published("--json").output)
    assert as_json["heads_checked"] == len(heads)
    assert as_json["heads_unauthenticated"] == 0


def test_a_row_changed_and_the_chain_rebuilt_without_the_key_is_named(keyed: Keyed) -> None:
    drop_protection(keyed.db)
    target = 17
    prev = row(keyed.db, target - 1)[17]
    for seq in range(target, EVENTS + 2):
        values = row(keyed.db, seq)
        if seq == target:
            values[15] = '{"reason_code":"forged"}'
            values[12] = "daemon.stopped"
        values[16] = prev
        put(keyed.db, seq, rehash(values))  # plain SHA-256: the owner has no key
        prev = values[17]
    assert run(keyed.db).exit_code == 1  # even without a key: seq 1 does not hash plain
    assert broken_at(keyed.verify()) == (target, "changed")
    assert broken_at(keyed.verify_published()) == (target, "changed")


def test_a_cut_tail_is_caught_only_against_a_published_head(keyed: Keyed) -> None:
    drop_protection(keyed.db)
    keyed.db.admin("DELETE FROM audit_event WHERE seq > ?", (20,))
    assert keyed.verify().exit_code == 0  # a clean cut leaves a valid shorter chain ...
    result = keyed.verify_published()
    assert broken_at(result) == (21, "truncated")  # ... until a published head says more
    assert f"events 21..{EVENTS + 1}" in result.output


async def test_a_rewound_chain_that_grew_again_forks_from_the_published_heads(
    keyed: Keyed,
) -> None:
    """Someone with the database and the key (or a restored backup) cuts the tail and
    writes other events: every hash is valid, but not the ones published."""
    drop_protection(keyed.db)
    keyed.db.admin("DELETE FROM audit_event WHERE seq > ?", (20,))
    await write_keyed(keyed.db, keyed.key, keyed.heads_file.with_suffix(".new"), 15)
    assert keyed.verify().exit_code == 0  # the walk alone is satisfied
    matched = max(p.head.seq for p in keyed.heads() if p.head.seq <= 20)
    seq, kind = broken_at(keyed.verify_published())
    assert (seq, kind) == (matched + 1, "forked")


def test_a_head_line_altered_in_the_log_is_named(keyed: Keyed) -> None:
    lines = keyed.heads_file.read_text().splitlines()
    fields = json.loads(lines[3])
    fields["seq"] = fields["seq"] + 1000  # claims a longer chain: the MAC no longer fits
    lines[3] = json.dumps(fields)
    keyed.heads_file.write_text("\n".join(lines) + "\n")
    seq, kind = broken_at(keyed.verify_published())
    assert kind == "head"
    assert seq == fields["seq"]


async def test_rotation_needs_both_keys_and_a_key_removed_is_unkeyed(
    keyed: Keyed, tmp_path: Path
) -> None:
    second = generate_key_file(tmp_path / "second.key")
    assert second.path is not None
    store = AuditStore.open(keyed.db.url, key_file=second.path)
    [rotated] = store.append_many([key_event(keyed.key, second, "rotated")])
    store.append_many([filler(i) for i in range(3)])
    store.close()
    both = run(keyed.db, "--key-file", str(keyed.key.path), "--key-file", str(second.path))
    assert both.exit_code == 0, both.output
    assert f"keyed: {keyed.key.key_id}, {second.key_id}" in both.output
    assert broken_at(keyed.verify()) == (rotated.seq, "key")
    assert broken_at(run(keyed.db, "--key-file", str(second.path))) == (1, "key")

    plain = AuditStore.open(keyed.db.url)
    [removed] = plain.append_many([key_event(second, None, "key_removed")])
    plain.append_many([filler(9)])
    plain.close()
    both = run(keyed.db, "--key-file", str(keyed.key.path), "--key-file", str(second.path))
    assert broken_at(both) == (removed.seq, "unkeyed")


def test_journal_without_journalctl_is_a_clear_error(
    keyed: Keyed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = keyed.verify("--journal", "--since", "2026-12-01")
    assert result.exit_code == 2
    assert "journalctl is not installed" in result.output
    assert "--checkpoints" in result.output


def test_bad_key_files_and_head_lines_are_usage_errors(keyed: Keyed, tmp_path: Path) -> None:
    missing = run(keyed.db, "--key-file", str(tmp_path / "nope.key"))
    assert missing.exit_code == 2
    assert "nope.key" in missing.output
    loose = tmp_path / "loose.key"
    loose.write_bytes(os.urandom(32))
    loose.chmod(0o644)
    assert run(keyed.db, "--key-file", str(loose)).exit_code == 2
    bad = tmp_path / "bad.log"
    bad.write_text('noise\n{"event": "audit.checkpoint", "seq": "x", "hash": 1, "ts": "?"}\n')
    result = keyed.verify("--checkpoints", str(bad))
    assert result.exit_code == 2
    assert "line 2" in result.output
    both = keyed.verify("--checkpoints", str(bad), "--journal")
    assert both.exit_code == 2


def test_journal_reads_the_units_heads_through_journalctl(
    keyed: Keyed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """journalctl is not ours: a stand-in on PATH prints the exported lines and records how
    it was called (journald itself is not running on the test machines)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    args_file = tmp_path / "args"
    fake = bin_dir / "journalctl"
    fake.write_text(f'#!/bin/sh\necho "$@" > {args_file}\ncat {keyed.heads_file}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    result = keyed.verify("--journal", "--since", "2026-12-01 00:00", "--unit", "pumpd-test")
    assert result.exit_code == 0, result.output
    assert f"matches all {len(keyed.heads())} published heads" in result.output
    called = args_file.read_text().split()
    assert called[:4] == ["--unit", "pumpd-test", "--output", "cat"]
    assert "--since" in called
    fake.write_text("#!/bin/sh\necho 'No journal files were found.' >&2\nexit 1\n")
    failed = keyed.verify("--journal")
    assert failed.exit_code == 2
    assert "No journal files were found." in failed.output
