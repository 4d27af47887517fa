"""Two site daemons (SQLite, in-process, one simulator) forwarding at once to the real
PostgreSQL as the centre: the centre ends with exactly each site's events, in order, hashes
equal, through backends terminated while they run; the lag shows in STATUS= and the
``forwarding`` status field; a lag beyond alert_after_s becomes a notice; pumpaudit reads
each site at the centre as at the site."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from daemon.conftest import SCALE, to_infusing, wait_until
from pumpsim.harness import Simulator

from pumpd.audit import Actor
from pumpd.central.forwarder import Forwarder
from pumpd.cli import pumpaudit
from pumpd.config import load_config
from pumpd.daemon.app import Daemon
from pumpd.db import make_engine

from .conftest import Centre, drain

pytestmark = pytest.mark.postgres


def site_config(
    directory: Path, sim: Simulator, unit: int, site: str, url: str, *, alert_after_s: float = 900
) -> Path:
    assert sim.tcp_address is not None
    host, port = sim.tcp_address
    directory.mkdir()
    (directory / "spool").mkdir()
    text = f"""
[daemon]
socket = "{directory / "pumpd.sock"}"
database = "sqlite:///{directory / "audit.db"}"
audit_spool = "{directory / "spool" / "audit.spool"}"
simulation = true
time_scale = {SCALE:g}
poll_hz = 10
log_format = "json"

[forward]
url = "{url}"
site = "{site}"
batch_size = 20
alert_after_s = {alert_after_s}
mark_file = "{directory / "forward.mark"}"
interval_s = 0.1
retry_max_s = 1
connect_timeout_s = 2

[[pump]]
id = "chair-{unit}"
transport = "modbus-tcp"
address = "{host}:{port}"
unit = {unit}
heartbeat_timeout_s = 30
"""
    path = directory / "pumpd.toml"
    path.write_text(text)
    return path


def site_rows(directory: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(directory / "audit.db")
    try:
        return [
            (*r[:14], bool(r[14]), *r[15:])
            for r in con.execute(
                "SELECT seq, occurred_at, mono_ns, host, instance_id, actor_kind, actor_uid, "
                "actor_name, actor_role, pump_id, session_id, patient_ref, event_type, "
                "correlation_id, simulated, payload, prev_hash, event_hash FROM audit_event "
                "ORDER BY seq"
            )
        ]
    finally:
        con.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=True, time_scale=SCALE) as simulator:
        yield simulator


async def _caught_up(centre: Centre, directory: Path, site: str) -> None:
    deadline = time.monotonic() + 60
    while centre.events(site) != site_rows(directory):
        assert time.monotonic() < deadline, f"the centre never held {site}'s events"
        await asyncio.sleep(0.25)


async def test_two_site_daemons_forward_at_once(
    centre: Centre, sim: Simulator, tmp_path: Path
) -> None:
    north_dir, south_dir = tmp_path / "north", tmp_path / "south"
    north = Daemon(
        load_config(site_config(north_dir, sim, 1, "clinic-north", centre.url)), out=io.StringIO()
    )
    south = Daemon(
        load_config(site_config(south_dir, sim, 2, "clinic-south", centre.url)), out=io.StringIO()
    )
    await north.start()
    try:
        await south.start()
        try:
            await to_infusing(north, "chair-1", "S-N1")
            # Cut the forwarders' connections while events flow, twice.
            for _ in range(2):
                await wait_until(
                    lambda: centre.terminate_forwarders() > 0, within_s=30, what="a forwarder"
                )
            await to_infusing(south, "chair-2", "S-S1")
            await _caught_up(centre, north_dir, "clinic-north")
            await _caught_up(centre, south_dir, "clinic-south")
            status = north.forwarding()
            assert status is not None
            assert status["site"] == "clinic-north"
            assert status["state"] in ("current", "behind")
            assert {"acked_seq", "lag_events", "lag_s", "alert_after_s"} <= status.keys()
            assert north.control is not None
            ctx = north.control.server.service.ctx
            assert ctx.forwarding is not None
            assert ctx.forwarding()["site"] == "clinic-north"
            assert "forwarding " in north.summary()
        finally:
            await south.shutdown("test")
    finally:
        await north.shutdown("test")
    # Stopped: what was forwarded is a prefix of each site's log, in order; the rest (the
    # pauses, daemon.stopped) goes with the next run, from the durable mark.
    for directory, site in ((north_dir, "clinic-north"), (south_dir, "clinic-south")):
        held = centre.events(site)
        assert held == site_rows(directory)[: len(held)]
        settings = load_config(directory / "pumpd.toml").forward
        assert settings is not None
        engine = make_engine(f"sqlite:///{directory / 'audit.db'}")
        next_run = Forwarder(engine, settings)
        try:
            drain(next_run)
        finally:
            next_run.close()
            engine.dispose()
        assert centre.events(site) == site_rows(directory)
    assert centre.conflicts() == []

    # The auditor's view at the centre is the site's own.
    def audit(*args: str) -> str:
        done = CliRunner().invoke(pumpaudit.main, list(args))
        assert done.exit_code == 0, done.output
        return done.stdout

    for directory, site, session in (
        (north_dir, "clinic-north", "S-N1"),
        (south_dir, "clinic-south", "S-S1"),
    ):
        local = f"sqlite:///{directory / 'audit.db'}"
        at_centre = ["--database", centre.url]
        assert "chain intact" in audit(*at_centre, "verify", "--site", site)
        assert (
            json.loads(audit(*at_centre, "show", session, "--json", "--site", site))["events"]
            == json.loads(audit("--database", local, "show", session, "--json"))["events"]
        )
        assert json.loads(audit(*at_centre, "sessions", "--site", site, "--json")) == json.loads(
            audit("--database", local, "sessions", "--json")
        )
        assert json.loads(audit(*at_centre, "report", "--site", site, "--json")) == json.loads(
            audit("--database", local, "report", "--json")
        )


def _connected(pid: int, port: int) -> bool:
    """Process ``pid`` has an established TCP connection to 127.0.0.1:``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
            return True
    return False


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_an_unreachable_centre_shows_as_lag_and_a_notice(
    sim: Simulator, tmp_path: Path
) -> None:
    url = f"postgresql://pumpd_forward@127.0.0.1:{_closed_port()}/central"
    daemon = Daemon(
        load_config(site_config(tmp_path / "site", sim, 1, "clinic-north", url, alert_after_s=0.5)),
        out=io.StringIO(),
    )
    await daemon.start()
    try:
        await wait_until(
            lambda: "forward.lag" in site_rows(tmp_path / "site").__repr__(),
            within_s=30,
            what="the lag notice",
        )
        status = daemon.forwarding()
        assert status is not None
        assert status["state"] == "unreachable"
        assert status["lag_events"] > 0
        assert status["acked_seq"] == 0
        assert "CENTRAL STORE UNREACHABLE" in daemon.summary()
        # The pump is supervised as ever meanwhile.
        await to_infusing(daemon, "chair-1", "S-1")
    finally:
        await daemon.shutdown("test")
    notices = [
        json.loads(r[15])
        for r in site_rows(tmp_path / "site")
        if r[12] == "daemon.announced" and "forward." in r[15]
    ]
    assert [n["notice_code"] for n in notices] == ["forward.lag"]


async def test_a_centre_that_never_answers_holds_only_the_forwarding_process(
    sim: Simulator, tmp_path: Path
) -> None:
    """A black hole for a centre: it accepts the connection and never says a word, so the
    forwarder's step hangs in its forwarding process. Pumps are driven, paused and stopped,
    and the daemon shuts down, all while that step is still hanging."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    accepted: list[socket.socket] = []

    def hanging() -> bool:
        hole.setblocking(False)
        try:
            while True:
                accepted.append(hole.accept()[0])
        except BlockingIOError:
            pass
        return bool(accepted)

    def forwarding_process_connected() -> bool:
        """The forwarding process (not the head sink) holds a connection to the hole."""
        assert daemon.forward is not None
        child = daemon.forward.child
        return hanging() and child is not None and _connected(child.pid, port)

    directory = tmp_path / "site"
    config = site_config(directory, sim, 1, "clinic-north", f"postgresql://x@127.0.0.1:{port}/c")
    text = config.read_text().replace("connect_timeout_s = 2", "connect_timeout_s = 120")
    config.write_text(text)
    daemon = Daemon(load_config(config), out=io.StringIO())
    try:
        await daemon.start()
        try:
            await wait_until(
                forwarding_process_connected,
                within_s=60,
                what="the forwarding process to reach the black hole",
            )
            ctl = await to_infusing(daemon, "chair-1", "S-1")
            await ctl.pause(by=Actor.person("nurse.ada", "nurse"), reason_code="nurse.pause")
            await ctl.stop(by=Actor.person("nurse.ada", "nurse"), reason="test")
            status = daemon.forwarding()
            assert status is not None
            assert status["state"] == "starting"  # its first step has not returned
        finally:
            await daemon.shutdown("test")
        assert daemon.forward is not None
        assert daemon.forward.status().state == "starting"  # shut down around it
        child = daemon.forward.child
        assert child is not None
        assert await child.wait_closed(30) == -signal.SIGKILL  # killed, not waited for
    finally:
        for conn in accepted:
            conn.close()
        hole.close()
