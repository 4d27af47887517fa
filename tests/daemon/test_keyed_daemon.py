"""The daemon keys its chain and publishes its heads; without a key it says so everywhere;
with a key it cannot use it does not start.

A real ``pumpd --config`` process writes its heads to stdout as journald would get them;
``pumpaudit verify --key-file --checkpoints`` reads those very lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from pumpd.audit import KeyFileError, generate_key_file, read_heads
from pumpd.cli.live import render
from pumpd.cli.pumpaudit import main as pumpaudit
from pumpd.control.views import pump_view
from pumpd.daemon.chainkey import NO_KEY_NOTICE
from pumpd.daemon.notify import Notifier

from .conftest import FakeSystemd, Rig, wait_until
from .test_process import PumpdProcess


def with_key(rig: Rig, key_file: Path, *, every_events: int = 3, every_s: float = 0.5) -> None:
    with rig.config_path.open("a") as f:
        f.write(
            f'\n[audit]\nkey_file = "{key_file}"\n'
            f"checkpoint_every_events = {every_events}\ncheckpoint_every_s = {every_s}\n"
        )


def verify(rig: Rig, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(pumpaudit, ["--database", str(rig.db), "verify", *args])
    return result.exit_code, result.output


async def test_a_keyed_daemon_records_its_key_and_publishes_heads(rig: Rig) -> None:
    key = generate_key_file(rig.directory / "chain.key")
    with_key(rig, rig.directory / "chain.key")
    daemon = PumpdProcess(rig.config_path)
    await daemon.start()
    await wait_until(
        lambda: sum('"audit.checkpoint"' in line for line in daemon.lines) >= 2,
        within_s=30,
        what="a head published after the start-up one",
    )
    assert await daemon.signal(signal.SIGTERM) == 0
    log_file = rig.directory / "journal.log"
    log_file.write_text("\n".join(daemon.lines) + "\n")

    records = rig.events()
    assert records[0].event_type == "chain.key.changed"
    assert json.loads(records[0].payload) == {
        "new_key_id": key.key_id,
        "reason_code": "first_key",
    }
    started = next(e for e in records if e.event_type == "daemon.started")
    assert json.loads(started.payload)["key_id"] == key.key_id
    assert not any("not keyed" in line for line in daemon.lines)

    heads = read_heads(daemon.lines)
    assert len(heads) >= 3  # at start, at least one on count or time, at stop
    assert all(p.head.mac_matches(key) for p in heads)
    assert heads[-1].head.seq == records[-1].seq  # the last one after daemon.stopped
    code, out = verify(rig, "--key-file", str(key.path), "--checkpoints", str(log_file))
    assert code == 0, out
    assert f"matches all {len(heads)} published heads" in out

    # The database's owner cuts the newest events: only the published heads can tell.
    cut = records[-1].seq - 2
    _cut(rig.db, cut)
    assert verify(rig, "--key-file", str(key.path))[0] == 0
    code, out = verify(rig, "--key-file", str(key.path), "--checkpoints", str(log_file))
    assert code == 1
    assert f"BROKEN at seq {cut + 1}: truncated" in out


def _cut(db: Path, after: int) -> None:
    """As the file's owner: drop the trigger, delete the newest events."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("DROP TRIGGER audit_event_no_delete")
        con.execute("DELETE FROM audit_event WHERE seq > ?", (after,))
    finally:
        con.close()


async def test_a_new_key_at_start_is_an_audited_rotation(rig: Rig) -> None:
    first = generate_key_file(rig.directory / "first.key")
    second = generate_key_file(rig.directory / "second.key")
    config = rig.config_path.read_text()
    with_key(rig, rig.directory / "first.key")
    daemon = rig.daemon()
    await daemon.start()
    await daemon.shutdown("sigterm")
    rig.config_path.write_text(config)
    with_key(rig, rig.directory / "second.key")
    daemon = rig.daemon()
    await daemon.start()
    await daemon.shutdown("sigterm")

    changes = [json.loads(e.payload) for e in rig.events(event_type="chain.key.changed")]
    assert changes == [
        {"new_key_id": first.key_id, "reason_code": "first_key"},
        {"new_key_id": second.key_id, "old_key_id": first.key_id, "reason_code": "rotated"},
    ]
    code, out = verify(rig, "--key-file", str(first.path), "--key-file", str(second.path))
    assert code == 0, out
    assert f"keyed: {first.key_id}, {second.key_id}" in out


async def test_without_a_key_it_says_so_in_the_log_status_and_pumpctl(rig: Rig) -> None:
    fake = FakeSystemd()
    daemon = rig.daemon(Notifier.from_env({"NOTIFY_SOCKET": fake.name}))
    await daemon.start()
    try:
        ready = [f for _, f in fake.drain() if f.get("READY") == "1"]
        assert "AUDIT CHAIN NOT KEYED" in ready[0]["STATUS"]
        assert daemon.control is not None
        assert daemon.supervisor is not None
        context = daemon.control.server.service.ctx
        views = [
            pump_view(context, pid, ctl)
            for pid, ctl in sorted(daemon.supervisor.controllers.items())
        ]
        assert all(NO_KEY_NOTICE in v["audit_notices"] for v in views)
        console = Console(width=200, record=True, color_system=None)
        console.print(render.status_views(views))
        assert "AUDIT: the audit chain is not keyed" in console.export_text()
    finally:
        await daemon.shutdown("sigterm")
        fake.close()
    notices = [
        json.loads(e.payload)["notice_code"] for e in rig.events(event_type="daemon.announced")
    ]
    assert "audit.key.off" in notices
    assert rig.types(event_type="chain.key.changed") == []


async def test_a_configured_key_that_is_missing_or_loose_stops_the_start(rig: Rig) -> None:
    key_file = rig.directory / "chain.key"
    with_key(rig, key_file)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("JOURNAL_STREAM", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpd.cli.daemon",
        "--config",
        str(rig.config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 2, out.decode()
    text = out.decode()
    assert "audit chain key refused" in text
    assert "audit.key_file" in text
    assert str(key_file) in text
    assert not rig.db.exists()  # refused before the database was even opened

    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o644)
    daemon = rig.daemon()
    with pytest.raises(KeyFileError, match="group/others"):
        await daemon.start()
    await daemon.shutdown("startup_failed")
    assert not rig.db.exists()
