"""The daemon and its audit spool: the database full during an infusion (a real
SQLite page limit on the daemon's own engine), STATUS= and the nurses' alarm, a SIGTERM that
does not wait for the database, a leftover spool drained before recovery reads the log (a
torn tail announced), the spool's place checked at start-up, the spool switched off."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pumpsim.registers import State as PumpState
from sqlalchemy import Engine, event

from pumpd.audit import Actor, Hasher, NewEvent, SpoolError, verify
from pumpd.cli.client import Client
from pumpd.config import load_config
from pumpd.daemon.app import Daemon
from pumpd.daemon.notify import Notifier
from pumpd.db import make_engine, reader
from pumpd.session import State

from .conftest import FakeSystemd, Rig, to_infusing, wait_until, write_config

NO_LIMIT = 1073741823  # SQLite's default max_page_count


def fill_up(engine: Engine) -> list[int]:
    """Make the daemon's SQLite database full on demand: ``pages[0]`` is the page limit
    applied at every transaction (0 = none). Returns ``pages``, set to the current size."""
    pages = [0]

    @event.listens_for(engine, "begin", insert=True)
    def _limit(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count={pages[0] or NO_LIMIT}")

    # A read transaction (pumpd.db.reader): a plain connect() would begin IMMEDIATE and
    # wait for the writer's lock, and the caller runs this off the daemon's event loop.
    with reader(engine).connect() as conn:
        pages[0] = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    return pages


async def fill_with_reloads(daemon: Daemon) -> None:
    """An idle daemon writes nothing by itself: reloads (two records each, answered while
    the database is full: they are made durable in the spool) until the last free bytes of
    the database's pages are used and a commit fails."""
    writer = daemon.writer
    assert writer is not None
    for _ in range(500):
        async with asyncio.timeout(10):
            await daemon.reload()
        if writer.degraded:
            return
    raise AssertionError("the database never filled up")


def chain_ok(db: Path) -> int:
    engine = make_engine(f"sqlite:///{db}", read_only=True)
    try:
        result = verify(engine, Hasher(None))
        assert result.ok, result
        with engine.connect() as conn:
            seqs = list(conn.exec_driver_sql("SELECT seq FROM audit_event ORDER BY seq").scalars())
        assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap"
        return len(seqs)
    finally:
        engine.dispose()


FILLER = 6000


def filler(i: int) -> NewEvent:
    return NewEvent(
        "daemon.announced", {"notice_code": "test.filler", "message": f"filler {i}"}, Actor.daemon()
    )


def whoami(socket_path: Path) -> dict[str, Any]:
    with Client(str(socket_path), timeout_s=10) as client:
        answer: dict[str, Any] = client.call("whoami")
        return answer


def runs_in_order(rig: Rig) -> bool:
    """Every event of one daemon run (one store instance) before any of the next run's."""
    runs = [e.instance_id for e in rig.events()]
    changes = sum(1 for a, b in itertools.pairwise(runs) if a != b)
    return changes == len(set(runs)) - 1


def statuses(fake: FakeSystemd) -> list[str]:
    return [f["STATUS"] for _, f in fake.drain() if "STATUS" in f]


@pytest.mark.slow
async def test_full_database_during_an_infusion_then_sigterm(rig: Rig) -> None:
    fake = FakeSystemd()
    daemon = rig.daemon(Notifier.from_env({"NOTIFY_SOCKET": fake.name}))
    await daemon.start()
    stopped = False
    try:
        ctl = await to_infusing(daemon)
        assert daemon.engine is not None
        assert daemon.writer is not None
        writer = daemon.writer
        # The database may not grow by a single page from now on (read in a thread: the
        # daemon's event loop, this test's, must go on polling the pump meanwhile).
        await asyncio.to_thread(fill_up, daemon.engine)
        await wait_until(lambda: writer.degraded, what="the writer to spool")
        alarms = await _wait_alarm(ctl)
        assert "spool" in alarms["audit.write_failed"].message, alarms
        await wait_until(
            lambda: any("AUDIT DATABASE UNAVAILABLE" in s for s in statuses(fake)),
            within_s=10,
            what="STATUS= to tell the outage",
        )
        # Requests on the socket are answered, and their records made durable, meanwhile.
        for _ in range(3):
            answer = await asyncio.to_thread(whoami, rig.directory / "pumpd.sock")
            assert answer["uid"] >= 0
        # Enough events behind which the pause's checkpoint waits that the next start's
        # drain takes a while: recovery must wait for it (else it reads the INFUSING one).
        await asyncio.gather(*(writer.log(filler(i)) for i in range(FILLER)))
        # SIGTERM now: the announcement, the pause, closing the socket (its records) and
        # the exit do not wait for the database.
        async with asyncio.timeout(30):
            await daemon.shutdown("sigterm")
        stopped = True
    finally:
        if not stopped:
            await daemon.shutdown("sigterm")
        fake.close()
    assert rig.sim.pump(1).state is PumpState.PAUSED, "the pause went to the pump"
    # PAUSED by the shutdown (ALARM if the kernel paused it first: a loaded machine can
    # make a false flow alarm); either way not the INFUSING the database last knew.
    assert ctl.session is not None
    final = ctl.session.state
    assert final in (State.PAUSED, State.ALARM), final
    spool = rig.directory / "spool" / "audit.spool"
    assert spool.exists(), "the outage's events wait in the spool"
    in_db_before = chain_ok(rig.db)

    # Next start (the database has room again: a fresh engine without the page limit).
    again = rig.daemon()
    await again.start()
    try:
        assert again.supervisor is not None
        ctl = again.supervisor.controllers["chair-1"]
        assert ctl.session is not None
        # Recovery read the log after the leftover was drained: it knows about the pause.
        # (A pause that has lasted too long meanwhile is ended by the kernel's pause rule:
        # at x60 a loaded machine gets there.) Recovered from the INFUSING checkpoint it
        # would be an ALARM: the pump is not delivering.
        later = {State.PAUSED: {State.PAUSED, State.STOP_REQUESTED, State.STOPPED}}
        codes = {a.code for a in ctl.session.data.alarms}
        ended_by_the_pause_rule = (
            final is State.PAUSED
            and ctl.session.state is State.ALARM
            and codes == {"tick.pause.too_long"}  # only a session known paused gets this
        )
        assert ended_by_the_pause_rule or ctl.session.state in later.get(final, {final}), (
            ctl.session.state,
            ctl.session.data.alarms,
        )
    finally:
        await again.shutdown("sigterm")
    assert not spool.exists(), "a drained spool is removed"
    kinds = rig.types()
    assert chain_ok(rig.db) > in_db_before
    views = [json.loads(e.payload) for e in rig.events(event_type="control.view.closed")]
    assert [p["reads"] for p in views] == [{"whoami": 1}] * 3, "the socket's records, once each"
    if final is State.PAUSED:
        paused = rig.events(event_type="session.paused")
        assert [json.loads(e.payload)["reason_code"] for e in paused] == ["daemon.shutdown"]
    notices = [
        json.loads(e.payload)["notice_code"] for e in rig.events(event_type="daemon.announced")
    ]
    assert "audit.spool.leftover" in notices
    drained = [json.loads(e.payload) for e in rig.events(event_type="audit.spool.drained")]
    assert [d["cause_code"] for d in drained] == ["leftover_spool"]
    assert drained[0]["spooled_events"] > 0
    assert runs_in_order(rig), "the first run's events, spooled, precede the second run's"
    assert kinds.count("daemon.stopped") == 2


async def _wait_alarm(ctl: Any) -> dict[str, Any]:
    await wait_until(
        lambda: any(a.code == "audit.write_failed" for a in ctl.status().alarms),
        what="the nurses' audit alarm",
    )
    return {a.code: a for a in ctl.status().alarms}


async def test_outage_written_down_when_it_ends_and_status_clears(rig: Rig) -> None:
    fake = FakeSystemd()
    daemon = rig.daemon(Notifier.from_env({"NOTIFY_SOCKET": fake.name}))
    await daemon.start()
    try:
        assert daemon.engine is not None
        assert daemon.writer is not None
        writer = daemon.writer
        pages = await asyncio.to_thread(fill_up, daemon.engine)
        assert daemon.supervisor is not None
        ctl = daemon.supervisor.controllers["chair-2"]
        await fill_with_reloads(daemon)
        await _wait_alarm(ctl)  # also on an idle pump
        pages[0] = 0  # room again
        await wait_until(lambda: not writer.degraded, within_s=30, what="the drain")
        await wait_until(
            lambda: "AUDIT" not in statuses(fake)[-1].replace("AUDIT CHAIN NOT KEYED", ""),
            within_s=10,
            what="STATUS= to clear",
        )
    finally:
        await daemon.shutdown("sigterm")
        fake.close()
    drained = [json.loads(e.payload) for e in rig.events(event_type="audit.spool.drained")]
    assert len(drained) == 1
    assert drained[0]["cause_code"] == "commit_failed"
    assert drained[0]["spooled_events"] == writer.health().spooled_total > 0
    assert "full" in drained[0]["reason"]
    chain_ok(rig.db)


async def test_leftover_with_a_torn_tail_is_announced_and_drained_first(rig: Rig) -> None:
    first = rig.daemon()
    await first.start()
    assert first.engine is not None
    assert first.writer is not None
    await asyncio.to_thread(fill_up, first.engine)
    writer = first.writer
    await fill_with_reloads(first)
    await first.shutdown("sigterm")
    spool = rig.directory / "spool" / "audit.spool"
    with spool.open("ab") as f:
        f.write(b'{"body": {"n": 99, "ev')  # a crash in the middle of a write
    left = writer.spooled
    assert left > 0

    second = rig.daemon()
    await second.start()
    await second.shutdown("sigterm")
    kinds = rig.types()
    notices = {
        json.loads(e.payload)["notice_code"]: json.loads(e.payload)["message"]
        for e in rig.events(event_type="daemon.announced")
    }
    assert "line" in notices["audit.spool.torn_tail"]
    assert f"held {left} event(s)" in notices["audit.spool.leftover"]
    torn = list(spool.parent.glob("audit.spool.torn-*"))
    assert len(torn) == 1, "the torn bytes are kept aside"
    assert runs_in_order(rig), "the leftover is in the database before this run's events"
    assert kinds.count("daemon.stopped") == 2
    chain_ok(rig.db)


async def test_the_spool_directory_is_checked_at_start_up(rig: Rig, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "audit.spool"
    text = rig.config_path.read_text()
    old = next(line for line in text.splitlines() if line.startswith("audit_spool"))
    rig.config_path.write_text(text.replace(old, f'audit_spool = "{missing}"'))
    daemon = rig.daemon()
    with pytest.raises(SpoolError, match=r"daemon\.audit_spool: .*nowhere does not exist"):
        await daemon.start()
    await daemon.shutdown("startup_failed")
    assert not (rig.directory / "pumpd.sock").exists(), "no socket was opened"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpd.cli.daemon",
        "--config",
        str(rig.config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 3, out.decode()
    assert "audit spool refused" in out.decode()


async def test_a_spool_switched_off_is_loud(rig: Rig) -> None:
    config = write_config(rig.directory, rig.sim, daemon_extra="")
    text = config.read_text()
    old = next(line for line in text.splitlines() if line.startswith("audit_spool"))
    config.write_text(text.replace(old, 'audit_spool = "off"'))
    fake = FakeSystemd()
    daemon = Daemon(
        load_config(config),
        notifier=Notifier.from_env({"NOTIFY_SOCKET": fake.name}),
        out=io.StringIO(),
    )
    await daemon.start()
    try:
        ready = [f["STATUS"] for _, f in fake.drain() if f.get("READY") == "1"]
        assert "NO AUDIT SPOOL" in ready[0]
    finally:
        await daemon.shutdown("sigterm")
        fake.close()
    notices = [json.loads(e.payload) for e in rig.events(event_type="daemon.announced")]
    off = [n for n in notices if n["notice_code"] == "audit.spool.off"]
    assert len(off) == 1
    assert "lost if pumpd stops" in off[0]["message"]
