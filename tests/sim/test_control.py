"""The control channel over its real socket: every operation, and refusals that change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pumpsim.control import ControlClient
from pumpsim.errors import ControlRequestFailed
from pumpsim.harness import Simulator
from pumpsim.registers import AlarmFlag, Command, State

from .wire import send_command, tcp_client, write_program


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=True, control=True, time_scale=60.0) as simulator:
        yield simulator


async def raw_exchange(sim: Simulator, *lines: bytes) -> list[dict[str, object]]:
    """Send raw request lines over the socket and read one reply per line."""
    assert sim.control_address is not None
    reader, writer = await asyncio.open_connection(*sim.control_address)
    try:
        replies = []
        for line in lines:
            writer.write(line)
            await writer.drain()
            replies.append(json.loads(await reader.readline()))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


async def request(sim: Simulator, op: str, **fields: object) -> dict[str, object]:
    assert sim.control_address is not None
    address = sim.control_address

    def call() -> dict[str, object]:
        with ControlClient(*address) as client:
            return client.request(op, **fields)

    return await asyncio.to_thread(call)


async def test_ping_and_fault_list(sim: Simulator) -> None:
    reply = await request(sim, "ping")
    assert reply["units"] == [1, 2]
    assert reply["time_scale"] == 60.0
    faults = (await request(sim, "faults"))["faults"]
    assert isinstance(faults, list)
    assert "occlusion-downstream" in faults
    assert "corrupt-rtu" in faults


async def test_fault_on_and_off_and_status(sim: Simulator) -> None:
    async with tcp_client(sim) as client:
        await write_program(client, 1)
        await send_command(client, 1, 1, Command.START)
    reply = await request(sim, "fault", unit=1, fault="occlusion-downstream", on=True)
    status = reply["status"]
    assert isinstance(status, dict)
    assert status["state"] == "ALARM"
    assert status["alarm_flags"] == ["OCCLUSION_DOWNSTREAM"]
    assert sim.pump(1).alarm_flags == AlarmFlag.OCCLUSION_DOWNSTREAM
    await request(sim, "fault", unit=1, fault="occlusion-downstream", on=False)
    status = (await request(sim, "status", unit=1))["status"]
    assert isinstance(status, dict)
    assert status["conditions"] == []
    assert status["alarm_flags"] == ["OCCLUSION_DOWNSTREAM"]
    assert status["unit"] == 1


async def test_fault_parameters_over_the_channel(sim: Simulator) -> None:
    await request(sim, "fault", unit=2, fault="runaway", on=True, factor="1.5")
    await request(sim, "fault", unit=2, fault="latency", on=True, ms=30)
    await request(sim, "fault", unit=2, fault="corrupt-rtu", on=True, probability=0.25)
    status = (await request(sim, "status", unit=2))["status"]
    assert isinstance(status, dict)
    assert status["faults"]["runaway_factor"] == "1.5"
    assert status["wire"]["latency_ms"] == 30
    assert status["wire"]["corrupt_probability"] == 0.25


async def test_reboot_over_the_channel(sim: Simulator) -> None:
    async with tcp_client(sim) as client:
        await write_program(client, 1)
        await send_command(client, 1, 7, Command.START)
    status = (await request(sim, "reboot", unit=1))["status"]
    assert isinstance(status, dict)
    assert (status["state"], status["last_cmd_seq"], status["uptime_s"]) == ("IDLE", 0, 0)
    assert sim.pump(1).state is State.IDLE


async def test_command_log_carries_the_simulators_monotonic_time(sim: Simulator) -> None:
    before = time.monotonic()
    async with tcp_client(sim) as client:
        await write_program(client, 2)
        await send_command(client, 2, 1, Command.START)
        await send_command(client, 2, 2, Command.PAUSE)
    after = time.monotonic()
    records = (await request(sim, "log"))["records"]
    assert isinstance(records, list)
    assert [(r["unit"], r["cmd_seq"], r["command"], r["result"]) for r in records] == [
        (2, 1, Command.START, 0),
        (2, 2, Command.PAUSE, 0),
    ]
    assert all(before <= r["t_monotonic"] <= after for r in records)
    reply = await request(sim, "log", unit=1)
    assert reply["records"] == []
    reply = await request(sim, "log", since=1)
    assert [r["cmd_seq"] for r in reply["records"]] == [2]  # type: ignore[attr-defined]
    assert reply["next"] == 2


@pytest.mark.parametrize(
    ("fields", "error_type"),
    [
        ({"op": "fault", "unit": 1, "fault": "teleport", "on": True}, "UnknownFaultError"),
        ({"op": "fault", "unit": 1, "fault": "runaway", "on": True}, "FaultParameterError"),
        (
            {"op": "fault", "unit": 1, "fault": "latency", "on": True, "ms": -5},
            "FaultParameterError",
        ),
        ({"op": "fault", "unit": 1, "fault": "door-open", "on": "yes"}, "ControlProtocolError"),
        ({"op": "fault", "unit": 1, "fault": "door-open", "colour": 1}, "ControlProtocolError"),
        ({"op": "fault", "unit": 9, "fault": "door-open", "on": True}, "UnknownUnitError"),
        ({"op": "status", "unit": "1"}, "ControlProtocolError"),
        ({"op": "status", "unit": 0}, "UnknownUnitError"),
        ({"op": "log", "since": -1}, "ControlProtocolError"),
        ({"op": "explode"}, "ControlProtocolError"),
    ],
)
async def test_refusals_are_typed_and_change_nothing(
    sim: Simulator, fields: dict[str, object], error_type: str
) -> None:
    before = sim.status(1)
    fields = {"id": 41, **fields}
    (reply,) = await raw_exchange(sim, json.dumps(fields).encode() + b"\n")
    assert reply["ok"] is False
    assert reply["id"] == 41
    error = reply["error"]
    assert isinstance(error, dict)
    assert error["type"] == error_type
    assert error["message"]
    after = sim.status(1)
    for key in ("faults", "wire", "state", "alarm_flags"):
        assert after[key] == before[key]


async def test_garbage_lines_get_an_error_and_the_connection_keeps_working(
    sim: Simulator,
) -> None:
    replies = await raw_exchange(sim, b"not json\n", b"[1, 2]\n", b'{"op": "ping", "id": "x"}\n')
    assert [r["ok"] for r in replies] == [False, False, True]
    assert replies[0]["error"]["type"] == "ControlProtocolError"  # type: ignore[index]
    assert replies[2]["id"] == "x"


async def test_client_raises_the_remote_error_type(sim: Simulator) -> None:
    with pytest.raises(ControlRequestFailed) as caught:
        await request(sim, "status", unit=3)
    assert caught.value.error_type == "UnknownUnitError"


async def test_the_journal_keeps_every_request_that_changes_a_pump(tmp_path: Path) -> None:
    """`--control-journal`: what the simulator was told, in its own time, refusals too;
    requests that only read are not kept."""
    journal = tmp_path / "control.jsonl"
    async with Simulator(pumps=2, control=True, control_journal=journal) as sim:
        before = time.monotonic()
        await request(sim, "fault", unit=2, fault="runaway", on=True, factor="1.5")
        await request(sim, "status", unit=2)
        await request(sim, "log")
        await request(sim, "fault", unit=2, fault="runaway", on=False)
        with pytest.raises(ControlRequestFailed):
            await request(sim, "fault", unit=9, fault="door-open", on=True)
        await request(sim, "reboot", unit=1, id=7)
        after = time.monotonic()
    records = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [r["request"] for r in records] == [
        {"op": "fault", "unit": 2, "fault": "runaway", "on": True, "factor": "1.5"},
        {"op": "fault", "unit": 2, "fault": "runaway", "on": False},
        {"op": "fault", "unit": 9, "fault": "door-open", "on": True},
        {"op": "reboot", "unit": 1},
    ]
    assert [r["ok"] for r in records] == [True, True, False, True]
    assert records[2]["error"]["type"] == "UnknownUnitError"
    stamps = [r["t_monotonic"] for r in records]
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= stamps[3] <= after
    for r in records:
        wall = datetime.strptime(r["t_utc"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs(wall.timestamp() - time.time()) < 60
