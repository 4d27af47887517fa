"""A real `pumpd --config` process against the simulator: the ready line after READY=1,
SIGKILL and restart resuming supervision without a single delivery command, SIGTERM during
an infusion pausing it, and configuration errors refused before anything starts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from pumpsim.harness import Simulator
from pumpsim.registers import Command
from pumpsim.registers import State as PumpState

from .conftest import FakeSystemd, Rig, to_infusing, wait_until

READY_PREFIX = "pumpd ready "


class PumpdProcess:
    """``python -m pumpd.cli.daemon --config PATH`` with its stdout collected line by line."""

    def __init__(
        self, config: Path, notify: FakeSystemd | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.notify = notify
        self.extra_env = env or {}
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> str:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        env.pop("JOURNAL_STREAM", None)
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.name
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pumpd.cli.daemon",
            "--config",
            str(self.config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            async with asyncio.timeout(90):
                await self._ready.wait()
        except TimeoutError:
            raise AssertionError("no ready line; output:\n" + "\n".join(self.lines)) from None
        return next(line for line in self.lines if line.startswith(READY_PREFIX))

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if line.startswith(READY_PREFIX):
                self._ready.set()

    async def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        async with asyncio.timeout(90):
            rc = await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 10)
        return rc

    def logs(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]


def starts(sim: Simulator, unit: int) -> int:
    return sum(1 for c in sim.command_log(unit) if c.command == Command.START)


async def abandon(rig: Rig) -> None:
    """An in-process daemon that starts an infusion on chair-1 and then vanishes without
    pausing anything (supervision ends; the pump keeps infusing on its own)."""
    daemon = rig.daemon()
    await daemon.start()
    await to_infusing(daemon)
    assert daemon.supervisor is not None
    for task in daemon._tasks:  # its watchdog and status tasks die with it
        task.cancel()
    await daemon.supervisor.close()
    for driver in daemon.drivers.values():
        await driver.close()
    if daemon.control is not None:
        await daemon.control.close()
    assert daemon.writer is not None
    await daemon.writer.aclose()
    assert daemon.engine is not None
    daemon.engine.dispose()
    daemon._unlock_instance()  # the kernel would drop it when the process died


@pytest.mark.slow
async def test_kill_restart_resumes_supervision_and_sigterm_pauses(rig: Rig) -> None:
    await abandon(rig)
    assert rig.sim.pump(1).state is PumpState.INFUSING
    assert starts(rig.sim, 1) == 1

    fake = FakeSystemd()
    try:
        first = PumpdProcess(rig.config_path, fake)
        ready = await first.start()
        assert ready == (
            f"pumpd ready socket={rig.directory / 'pumpd.sock'} pumps=2 simulated=true"
        )
        # READY=1 went to systemd before the line was printed.
        assert any(f.get("READY") == "1" for _, f in fake.drain())
        await wait_until(
            lambda: len(rig.events(event_type="daemon.recovered", pump="chair-1")) >= 2,
            what="the first restart's recovery of chair-1",
        )
        assert first.proc is not None
        rc = await first.signal(signal.SIGKILL)
        assert rc == -signal.SIGKILL
        assert rig.sim.pump(1).state is PumpState.INFUSING, "the pump infuses on, alone"

        second = PumpdProcess(rig.config_path, fake)
        await second.start()
        await wait_until(
            lambda: len(rig.events(event_type="daemon.recovered", pump="chair-1")) >= 3,
            what="the second restart's recovery of chair-1",
        )
        recovered = rig.events(event_type="daemon.recovered", pump="chair-1")[-1]
        assert json.loads(recovered.payload)["open_sessions"] == ["S-1"]
        assert starts(rig.sim, 1) == 1, "recovery sent no START"
        assert rig.sim.pump(1).state is PumpState.INFUSING

        rc = await second.signal(signal.SIGTERM)
        assert rc == 0, "\n".join(second.lines[-20:])
    finally:
        fake.close()
    assert rig.sim.pump(1).state is PumpState.PAUSED
    assert starts(rig.sim, 1) == 1
    records = rig.events()
    last_start = max(i for i, e in enumerate(records) if e.event_type == "daemon.started")
    after = records[last_start:]
    kinds = [e.event_type for e in after]
    announced = kinds.index("daemon.announced")
    shutdown_pauses = [
        e
        for e in after[announced:]
        if e.event_type == "pump.command.requested"
        and json.loads(e.payload)["reason_codes"] == ["daemon.shutdown"]
    ]
    assert len(shutdown_pauses) == 1, [(e.event_type, e.payload[:80]) for e in after]
    assert shutdown_pauses[0].actor_name == "pumpd"
    assert shutdown_pauses[0].pump_id == "chair-1"
    assert "pump.command.confirmed" in kinds[announced:]
    assert kinds[-1] == "daemon.stopped"
    logs = second.logs()
    assert all(entry.get("simulated") is True for entry in logs)
    paused = [e for e in logs if e.get("event") == "infusion paused for shutdown"]
    assert paused
    assert paused[0]["pump"] == "chair-1"
    assert paused[0].get("session") == "S-1"


async def test_bad_config_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "pumpd.toml"
    config.write_text(
        '[daemon]\ntime_scale = 60\ndatabase = "sqlite:///'
        + str(tmp_path / "audit.db")
        + '"\n[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "10.0.0.9:502"\nunit = 1\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpd.cli.daemon",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 2
    assert f"{config}: daemon.time_scale: 60 is allowed only with simulation = true" in err.decode()
    assert not (tmp_path / "audit.db").exists(), "nothing was started or created"
    assert out == b""


async def test_check_flag_validates_only(rig: Rig) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpd.cli.daemon",
        "--config",
        str(rig.config_path),
        "--check",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().startswith(f"{rig.config_path}: ok (2 pumps, sha256 ")
    assert "SIMULATION" in out.decode()
    assert not rig.db.exists()


async def test_an_unusable_database_is_exit_3(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = tmp_path / "pumpd.toml"
    config.write_text(
        f'[daemon]\nsocket = "{tmp_path / "s.sock"}"\n'
        f'database = "sqlite:///{blocker / "audit.db"}"\n'
        '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "127.0.0.1:9"\nunit = 1\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpd.cli.daemon",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 3, out.decode()
    entries = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any(e["event"] == "audit database refused" for e in entries)
    assert "pumpd ready" not in out.decode()


@pytest.mark.slow
async def test_a_frozen_process_withholds_pings_after_it_thaws(rig: Rig) -> None:
    """SIGSTOP freezes everything (as a hung interpreter would); on SIGCONT the first
    checks see stale poll loops and a late event loop, so no ping is sent until the
    loops have polled again, and the stall is written down."""
    text = rig.config_path.read_text().replace(
        'log_format = "json"', 'log_format = "json"\nloop_stale_s = 1.0'
    )
    rig.config_path.write_text(text)
    fake = FakeSystemd()
    daemon = PumpdProcess(rig.config_path, fake, env={"WATCHDOG_USEC": "400000"})
    try:
        await daemon.start()
        assert daemon.proc is not None
        await wait_until(
            lambda: sum(1 for _, f in fake.drain() if f.get("WATCHDOG") == "1") >= 3,
            what="pings while healthy",
        )
        daemon.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(3.0)
        fake.drain()
        daemon.proc.send_signal(signal.SIGCONT)
        await wait_until(
            lambda: any(
                json.loads(e.payload)["notice_code"] == "watchdog.withheld"
                for e in rig.events(event_type="daemon.announced")
            ),
            what="the stall written down",
        )
        thawed = fake.drain()[-1][0] if fake.messages else 0.0
        await wait_until(
            lambda: any(at > thawed and f.get("WATCHDOG") == "1" for at, f in fake.drain()),
            what="pings again once the loops poll",
        )
        rc = await daemon.signal(signal.SIGTERM)
        assert rc == 0
    finally:
        fake.close()
        if daemon.proc is not None and daemon.proc.returncode is None:
            daemon.proc.kill()
            await daemon.proc.wait()
    withheld = [
        json.loads(e.payload)["message"]
        for e in rig.events(event_type="daemon.announced")
        if json.loads(e.payload)["notice_code"] == "watchdog.withheld"
    ]
    assert withheld[0].startswith(("poll loop stalled", "event loop lagging"))


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _check(config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pumpd.cli.daemon", "--config", str(config), "--check",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_finds_every_start_up_refusal_it_can(tmp_path: Path) -> None:
    """A missing spool directory (the start refuses it, exit 3), a missing socket
    directory, a database without schema where the start would not upgrade, a protocol
    library that does not load: --check names each, with the start's exit status, and
    creates nothing; and the same refusals stop the real start."""
    bad_protocols = tmp_path / "protocols"
    bad_protocols.mkdir()
    (bad_protocols / "broken.v1.toml").write_text("id = 'broken'\n")
    config = tmp_path / "pumpd.toml"
    config.write_text(
        f'[daemon]\nsocket = "{tmp_path / "run" / "s.sock"}"\n'
        f'database = "sqlite:///{tmp_path / "audit.db"}"\n'
        f'audit_spool = "{tmp_path / "spool" / "audit.spool"}"\n'
        f'protocols = "{bad_protocols}"\n'
        "upgrade_schema = false\n"
        '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "127.0.0.1:9"\nunit = 1\n'
    )
    code, out, err = await _check(config)
    assert code == 1, err  # the first finding's: the socket directory
    assert f"daemon.socket: the socket's directory {tmp_path / 'run'} does not exist" in err
    assert f"daemon.audit_spool: the spool's directory {tmp_path / 'spool'} does not exist" in err
    assert "daemon.protocols: " in err
    assert "daemon.database: " in err
    assert "ok (" not in out
    assert _names(tmp_path) == ["protocols", "pumpd.toml"]

    # Only the spool directory missing: --check says so with the start's exit status 3.
    (tmp_path / "run").mkdir()
    config.write_text(
        f'[daemon]\nsocket = "{tmp_path / "run" / "s.sock"}"\n'
        f'database = "sqlite:///{tmp_path / "audit.db"}"\n'
        f'audit_spool = "{tmp_path / "spool" / "audit.spool"}"\n'
        '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "127.0.0.1:9"\nunit = 1\n'
    )
    code, out, err = await _check(config)
    assert code == 3, err
    assert "daemon.audit_spool: the spool's directory" in err
    (tmp_path / "spool").mkdir()
    code, out, err = await _check(config)
    assert code == 0, err
    assert out.startswith(f"{config}: ok (1 pumps")
