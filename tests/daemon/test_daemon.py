"""The Daemon in-process against the simulator: start-up order, SIGTERM during an infusion
(a real signal to this process), the watchdog going quiet when a poll loop stalls, reload."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pumpsim.harness import Simulator
from pumpsim.registers import State as PumpState

from pumpd.audit import Hasher, verify
from pumpd.config import load_config
from pumpd.daemon.app import Daemon, StartupError, library_sha256
from pumpd.daemon.notify import Notifier
from pumpd.db import make_engine
from pumpd.drivers.line import acquire_line, release_line
from pumpd.protocols import load_library
from pumpd.session import State

from .conftest import FakeSystemd, Rig, events, to_infusing, wait_until, write_config


def chain_ok(rig: Rig) -> bool:
    engine = make_engine(f"sqlite:///{rig.db}", read_only=True)
    try:
        return verify(engine, Hasher(None)).ok
    finally:
        engine.dispose()


async def test_start_up_order_ready_and_clean_stop(rig: Rig) -> None:
    fake = FakeSystemd()
    try:
        daemon = rig.daemon(Notifier.from_env({"NOTIFY_SOCKET": fake.name}))
        await daemon.start()
        out = daemon.out
        assert isinstance(out, io.StringIO)
        assert out.getvalue() == (
            f"pumpd ready socket={rig.directory / 'pumpd.sock'} pumps=2 simulated=true\n"
        )
        ready = [f for _, f in fake.drain() if f.get("READY") == "1"]
        assert len(ready) == 1
        assert ready[0]["STATUS"].startswith(
            "SIMULATION x60; AUDIT CHAIN NOT KEYED; 2/2 pumps: chair-1 idle"
        )
        assert ready[0]["MAINPID"] == str(os.getpid())
        await daemon.shutdown("sigterm")
    finally:
        fake.close()
    records = rig.events()
    kinds = [e.event_type for e in records]
    # Start-up in its fixed order: config and library written down before any pump.
    # Without a chain key the daemon says so (daemon.announced audit.key.off) before it is up.
    assert kinds[:4] == [
        "config.loaded",
        "protocol_library.loaded",
        "daemon.announced",
        "daemon.started",
    ]
    assert json.loads(records[2].payload)["notice_code"] == "audit.key.off"
    assert kinds[-2:] == ["daemon.announced", "daemon.stopped"]
    first_pump = min(i for i, e in enumerate(records) if e.pump_id is not None)
    assert first_pump > 3
    assert all(e.simulated for e in records), "every event of a simulation is flagged"
    config = load_config(rig.config_path)
    assert json.loads(records[0].payload)["sha256"] == config.sha256
    lib = json.loads(records[1].payload)
    assert lib["library_sha256"] == library_sha256(load_library(config.protocols))
    assert {p["protocol_id"] for p in lib["protocols"]} >= {"ketamine-trd-standard"}
    assert json.loads(records[-1].payload) == {"reason_code": "sigterm"}
    assert chain_ok(rig)


async def test_sigterm_during_an_infusion_pauses_it(rig: Rig) -> None:
    daemon = rig.daemon()
    await daemon.start()
    stopped = False
    try:
        ctl = await to_infusing(daemon)
        await wait_until(
            lambda: rig.sim.pump(1).state is PumpState.INFUSING, what="the pump infusing"
        )
        daemon.install_signal_handlers()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(30):
                reason = await daemon.wait()
        finally:
            daemon.remove_signal_handlers()
        assert reason == "sigterm"
        await daemon.shutdown(reason)
        stopped = True
        assert ctl.session is not None
        assert ctl.session.state is State.PAUSED
    finally:
        if not stopped:
            await daemon.shutdown("test_failed")
    assert rig.sim.pump(1).state is PumpState.PAUSED, "the simulator's pump is paused"
    assert rig.sim.pump(2).state is PumpState.IDLE
    records = rig.events()
    kinds = [e.event_type for e in records]
    announced = next(
        i
        for i, e in enumerate(records)
        if e.event_type == "daemon.announced"
        and json.loads(e.payload)["notice_code"] == "daemon.shutdown"
    )
    notice = json.loads(records[announced].payload)
    assert notice["notice_code"] == "daemon.shutdown"
    assert "chair-1" in notice["message"]
    paused = kinds.index("session.paused", announced)
    requested = [
        e
        for e in records[announced:paused]
        if e.event_type == "pump.command.requested" and json.loads(e.payload)["command"] == "pause"
    ]
    assert len(requested) == 1
    assert requested[0].actor_name == "pumpd"
    assert json.loads(requested[0].payload)["reason_codes"] == ["daemon.shutdown"]
    assert records[paused].actor_name == "pumpd"
    assert kinds[-1] == "daemon.stopped"
    assert chain_ok(rig)


async def wait_draining(
    fake: FakeSystemd,
    predicate: Callable[[], bool],
    *,
    within_s: float,
    what: str,
    seen: Callable[[], str],
) -> None:
    """Wait for ``predicate`` while taking every datagram off the fake NOTIFY_SOCKET.

    Its queue holds 10 datagrams (net.unix.max_dgram_qlen), and pumpd's sd_notify send
    blocks when it is full, in the event loop this test shares: an undrained queue (a
    watchdog that pings every 0.2 s when it should not) would block the test's own
    bounded waits and hang instead of failing."""
    deadline = time.monotonic() + within_s
    while True:
        fake.drain()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}; {seen()}")
        await asyncio.sleep(0.02)


async def drain_for(fake: FakeSystemd, seconds: float) -> None:
    """Let ``seconds`` pass, taking the datagrams off the fake NOTIFY_SOCKET meanwhile."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        fake.drain()
        await asyncio.sleep(0.02)


async def test_watchdog_stops_pinging_while_a_poll_loop_is_stalled(
    tmp_path: Path, sim: Simulator
) -> None:
    config_path = write_config(tmp_path, sim, daemon_extra="loop_stale_s = 1.0")
    fake = FakeSystemd()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": fake.name, "WATCHDOG_USEC": "400000"})
    assert notifier is not None
    daemon = Daemon(load_config(config_path), notifier=notifier, out=io.StringIO())
    await daemon.start()
    try:
        assert daemon.watchdog is not None
        watchdog = daemon.watchdog

        def verdict() -> str:
            return f"watchdog verdict: {watchdog.verdict}"

        t0 = time.monotonic()
        await wait_draining(
            fake, lambda: fake.pings_since(t0) >= 3, within_s=30, what="pings while healthy",
            seen=verdict,
        )  # fmt: skip
        # Wedge the pumps' shared Modbus line: every poll loop on it hangs in its read.
        driver = daemon.drivers["chair-1"]
        line = acquire_line(driver.config.line_settings())
        try:
            async with line.lock:
                # Both loops hang on the wedged line; each is seen stale once it is
                # loop_stale_s late, the second one possibly a check after the first.
                await wait_draining(
                    fake,
                    lambda: set(watchdog.verdict.stale) == {"chair-1", "chair-2"},
                    within_s=20,
                    what="both stalls to be noticed",
                    seen=lambda: f"{verdict()}, {fake.pings_since(t0)} pings since healthy",
                )
                assert not watchdog.verdict.healthy
                fake.drain()  # stamps are arrival times: take what came before now
                quiet_from = time.monotonic()
                await drain_for(fake, 1.5)
                assert fake.pings_since(quiet_from) == 0, "no ping while a loop is stalled"
                status = [f["STATUS"] for _, f in fake.messages if "STATUS" in f]
                assert any("UNHEALTHY (poll loop stalled" in s for s in status), status
        finally:
            release_line(line)
        t1 = time.monotonic()
        await wait_draining(
            fake, lambda: fake.pings_since(t1) >= 1, within_s=30, what="pings after the stall",
            seen=verdict,
        )  # fmt: skip
    finally:
        fake.drain()  # room in the queue for the shutdown's own notifications
        await daemon.shutdown("sigterm")
        fake.close()
    withheld = [
        json.loads(e.payload)
        for e in events(tmp_path / "audit.db", event_type="daemon.announced")
        if json.loads(e.payload)["notice_code"] == "watchdog.withheld"
    ]
    assert withheld
    assert "poll loop stalled" in withheld[0]["message"]


async def test_sighup_reloads_roles_and_library_audited(rig: Rig) -> None:
    daemon = rig.daemon()
    await daemon.start()
    try:
        before = daemon.config.sha256
        text = rig.config_path.read_text()
        rig.config_path.write_text(
            text + '\n[roles]\nnurse = ["ward-nurses"]\n[staff]\nmax_failures = 3\n'
        )
        daemon.install_signal_handlers()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: daemon.config.sha256 != before, within_s=30, what="reload")
        finally:
            daemon.remove_signal_handlers()
        assert daemon.config.roles["nurse"] == frozenset({"ward-nurses"})
        assert daemon.control is not None
        assert daemon.control.server.ctx.roles["nurse"] == frozenset({"ward-nurses"})
        assert daemon.control.server.service.registry.max_failures == 3
        # A broken file changes nothing.
        rig.config_path.write_text(text + "\n[roles]\nnurse = 'oops'\n")
        with pytest.raises(Exception, match=r"roles\.nurse"):
            await daemon.reload()
        assert daemon.config.roles["nurse"] == frozenset({"ward-nurses"})
    finally:
        await daemon.shutdown("sigterm")
    loaded = rig.types(event_type="config.loaded")
    assert len(loaded) == 2
    assert rig.types(event_type="protocol_library.loaded") == ["protocol_library.loaded"] * 2


async def test_an_unreachable_pump_does_not_hold_the_others(rig: Rig) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    text = rig.config_path.read_text()
    host, port = rig.sim.tcp_address or ("", 0)
    text = text.replace(
        f'address = "{host}:{port}"\nunit = 2', f'address = "127.0.0.1:{dead_port}"\nunit = 2'
    )
    rig.config_path.write_text(text)
    daemon = rig.daemon()
    await daemon.start()
    try:
        assert daemon.supervisor is not None
        assert set(daemon.supervisor.controllers) == {"chair-1"}
        assert "chair-2 unreachable" in daemon.summary()
    finally:
        await daemon.shutdown("sigterm")
    unreachable = rig.events(event_type="pump.unreachable", pump="chair-2")
    assert unreachable
    assert json.loads(unreachable[0].payload)["error_code"] == "connect_failed"


async def test_rtu_and_tcp_pumps_in_one_daemon(tmp_path: Path) -> None:
    """The simulator's RTU line (a pseudo-terminal behind a link) next to a TCP pump."""
    link = tmp_path / "pump-rtu"
    async with Simulator(pumps=2, tcp=True, rtu_link=str(link), time_scale=60.0) as sim:
        assert sim.tcp_address is not None
        host, port = sim.tcp_address
        config_path = tmp_path / "pumpd.toml"
        config_path.write_text(
            f"""
[daemon]
socket = "{tmp_path / "pumpd.sock"}"
database = "sqlite:///{tmp_path / "audit.db"}"
audit_spool = "{tmp_path / "audit.spool"}"
simulation = true
time_scale = 60
[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "{host}:{port}"
unit = 1
[[pump]]
id = "chair-2"
transport = "modbus-rtu"
device = "{link}"
baudrate = 115200
unit = 2
"""
        )
        daemon = Daemon(load_config(config_path), out=io.StringIO())
        await daemon.start()
        try:
            assert daemon.supervisor is not None
            controllers = daemon.supervisor.controllers
            assert set(controllers) == {"chair-1", "chair-2"}
            rtu = controllers["chair-2"]
            polls = rtu.polls
            await wait_until(lambda: rtu.polls > polls + 5, what="polls over the RTU line")
            assert rtu.status().reachable
        finally:
            await daemon.shutdown("sigterm")


async def test_a_second_daemon_on_the_same_configuration_touches_nothing(rig: Rig) -> None:
    first = rig.daemon()
    await first.start()
    try:
        before = len(rig.events())
        second = rig.daemon()
        with pytest.raises(StartupError, match=r"another pumpd holds .*pumpd\.sock\.lock"):
            await second.start()
        await second.shutdown("startup_failed")
        assert len(rig.events()) == before, "the second daemon wrote nothing"
        assert first.supervisor is not None
        assert set(first.supervisor.controllers) == {"chair-1", "chair-2"}
    finally:
        await first.shutdown("sigterm")
    # Once the first is gone, a new one starts.
    third = rig.daemon()
    await third.start()
    await third.shutdown("sigterm")
