"""`pumpsim` as a real subprocess: ready line, fault/status/log commands, clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pumpsim.registers import AlarmFlag, Command
from pymodbus.client import AsyncModbusTcpClient

from .wire import send_command, write_program

READY_TIMEOUT_S = 20.0


def is_link(path: str) -> bool:
    return Path(path).is_symlink()


def exists(path: str) -> bool:
    return Path(path).exists() or Path(path).is_symlink()


@dataclass
class Running:
    process: asyncio.subprocess.Process
    tcp: tuple[str, int]
    rtu: str
    control: str


async def pumpsim(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpsim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), READY_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    link = tmp_path / "rtu"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pumpsim",
        "--pumps",
        "2",
        "--tcp",
        "127.0.0.1:0",
        "--rtu-link",
        str(link),
        "--control",
        "127.0.0.1:0",
        "--time-scale",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT_S)).decode()
        assert line.startswith("pumpsim ready "), line
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        host, port = fields["tcp"].rsplit(":", 1)
        yield Running(process, (host, int(port)), fields["rtu"], fields["control"])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_ready_line_fault_status_log_and_clean_sigterm(running: Running) -> None:
    assert is_link(running.rtu)
    code, out, err = await pumpsim(
        "fault", "--control", running.control, "--unit", "1", "occlusion-downstream", "on"
    )
    assert code == 0, err
    assert json.loads(out)["alarm_flags"] == ["OCCLUSION_DOWNSTREAM"]

    client = AsyncModbusTcpClient(running.tcp[0], port=running.tcp[1], retries=0, timeout=2)
    assert await client.connect()
    try:
        rr = await client.read_input_registers(4, count=1, device_id=1)
        assert rr.registers == [AlarmFlag.OCCLUSION_DOWNSTREAM]
        await client.write_registers(112, [1, Command.STOP], device_id=2)
    finally:
        client.close()

    code, out, err = await pumpsim("status", "--control", running.control, "--unit", "2")
    assert code == 0, err
    assert json.loads(out)["last_cmd_seq"] == 1
    code, out, err = await pumpsim("log", "--control", running.control)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["unit"], r["cmd_seq"], r["command"]) for r in records] == [(2, 1, Command.STOP)]

    running.process.send_signal(signal.SIGTERM)
    assert running.process.stdout is not None
    rest = await asyncio.wait_for(running.process.stdout.read(), READY_TIMEOUT_S)
    assert await asyncio.wait_for(running.process.wait(), READY_TIMEOUT_S) == 0
    assert "pumpsim stopped" in rest.decode()
    assert not exists(running.rtu)


async def test_runaway_factor_and_reboot_from_the_shell(running: Running) -> None:
    code, out, err = await pumpsim(
        "fault", "--control", running.control, "--unit", "2", "runaway", "on", "--factor", "1.5"
    )
    assert code == 0, err
    assert json.loads(out)["faults"]["runaway_factor"] == "1.5"
    code, out, err = await pumpsim("fault", "--control", running.control, "--unit", "2", "reboot")
    assert code == 0, err
    assert json.loads(out)["uptime_s"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runaway", "on"], "FaultParameterError"),
        (["teleport", "on"], "UnknownFaultError"),
    ],
)
async def test_refused_fault_exits_1_with_the_reason(
    running: Running, args: list[str], message: str
) -> None:
    code, _, err = await pumpsim("fault", "--control", running.control, "--unit", "1", *args)
    assert code == 1
    assert message in err


async def test_nothing_to_serve_is_a_usage_error() -> None:
    code, _, err = await pumpsim("--pumps", "2")
    assert code == 2
    assert "nothing to serve" in err


async def test_unreachable_control_channel_exits_1() -> None:
    code, _, err = await pumpsim("status", "--control", "127.0.0.1:1", "--unit", "1")
    assert code == 1
    assert "cannot reach control channel" in err


async def test_sigint_stops_cleanly_too(running: Running) -> None:
    running.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(running.process.wait(), READY_TIMEOUT_S) == 0
    assert not exists(running.rtu)
    assert running.process.stderr is not None
    assert b"Traceback" not in await running.process.stderr.read()


async def test_press_alarm_key_clears_a_cleared_alarm_at_the_pump(running: Running) -> None:
    """The pump's own alarm key: refused while the cause is present (nothing changes),
    then, the cause gone, the pump leaves ALARM for IDLE; no wire command is logged."""
    control = running.control
    code, _, err = await pumpsim("press-alarm-key", "--control", control, "--unit", "1")
    assert code == 1
    assert "not in alarm" in err
    client = AsyncModbusTcpClient(running.tcp[0], port=running.tcp[1], retries=0, timeout=2)
    assert await client.connect()
    try:
        await write_program(client, 1)
        assert await send_command(client, 1, 1, Command.START) == (1, 0)
    finally:
        client.close()
    code, out, err = await pumpsim(
        "fault", "--control", control, "--unit", "1", "occlusion-downstream", "on"
    )
    assert code == 0, err
    assert json.loads(out)["state"] == "ALARM"
    code, _, err = await pumpsim("press-alarm-key", "--control", control, "--unit", "1")
    assert code == 1
    assert "OCCLUSION_DOWNSTREAM" in err
    code, out, _ = await pumpsim("status", "--control", control, "--unit", "1")
    assert json.loads(out)["state"] == "ALARM"
    code, out, err = await pumpsim(
        "fault", "--control", control, "--unit", "1", "occlusion-downstream", "off"
    )
    assert code == 0, err
    assert json.loads(out)["state"] == "ALARM"  # latched until the key is pressed
    code, out, err = await pumpsim("press-alarm-key", "--control", control, "--unit", "1")
    assert code == 0, err
    status = json.loads(out)
    assert status["state"] == "IDLE"
    assert status["alarm_flags"] == []
    assert status["last_cmd_seq"] == 1  # the key is not a wire command
    code, out, _ = await pumpsim("log", "--control", control)
    assert [json.loads(line)["command"] for line in out.splitlines()] == [Command.START]
