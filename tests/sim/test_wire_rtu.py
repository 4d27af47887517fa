"""The simulator over Modbus RTU on a pseudo-terminal, two pumps sharing the one line."""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
from pumpsim.errors import SimConfigError
from pumpsim.harness import Fault, Simulator
from pumpsim.registers import CmdResult, Command, State
from pymodbus.exceptions import ModbusIOException

from .wire import rtu_client, send_command, write_program

# After a failed exchange on RTU (no transaction id) wait out stray bytes before the next.
QUIET_S = 0.1


async def test_two_pumps_on_one_line(sim_rtu: Simulator) -> None:
    async with rtu_client(sim_rtu) as client:
        for unit in (1, 2):
            rr = await client.read_input_registers(1, count=2, device_id=unit)
            assert (rr.registers[0] << 16) | rr.registers[1] == sim_rtu.pump(unit).serial_number
        await write_program(client, 2)
        assert await send_command(client, 2, 1, Command.START) == (1, CmdResult.OK)
        rr = await client.read_input_registers(3, count=1, device_id=1)
        assert rr.registers == [State.IDLE]
        rr = await client.read_input_registers(3, count=1, device_id=2)
        assert rr.registers == [State.INFUSING]


async def test_rtu_link_symlink_lives_as_long_as_the_simulator(tmp_path: Path) -> None:
    link = tmp_path / "pump-rtu"
    async with Simulator(pumps=1, tcp=False, rtu_link=str(link), time_scale=1.0) as sim:
        assert sim.rtu_path == str(link)
        assert link.is_symlink()
        assert os.readlink(link).startswith("/dev/pts/")
        async with rtu_client(sim) as client:
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert rr.registers == [1]
    assert not link.exists()
    assert not link.is_symlink()


async def test_rtu_link_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-link"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        async with Simulator(pumps=1, tcp=False, rtu_link=str(path)):
            pass
    assert path.read_text() == "keep me"


async def test_exception_2_over_rtu(sim_rtu: Simulator) -> None:
    async with rtu_client(sim_rtu) as client:
        rr = await client.read_holding_registers(114, count=1, device_id=2)
        assert rr.isError()
        assert rr.exception_code == 2


async def test_corrupt_reply_fails_crc_then_the_line_recovers(sim_rtu: Simulator) -> None:
    sim_rtu.inject(1, Fault.CORRUPT_RTU, count=1)
    async with rtu_client(sim_rtu) as client:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=21, device_id=1)
        await asyncio.sleep(QUIET_S)
        rr = await client.read_input_registers(0, count=1, device_id=1)
        assert rr.registers == [1]
    wire = sim_rtu.wire_faults(1)
    assert wire.frames_corrupted == 1
    assert not wire.corrupt  # a count fault switches itself off


async def test_corrupt_every_frame_until_off(sim_rtu: Simulator) -> None:
    sim_rtu.inject(2, Fault.CORRUPT_RTU)
    async with rtu_client(sim_rtu, timeout_s=0.3) as client:
        for _ in range(3):
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=1, device_id=2)
            await asyncio.sleep(QUIET_S)
        rr = await client.read_input_registers(0, count=1, device_id=1)  # the neighbour is fine
        assert rr.registers == [1]
        sim_rtu.inject(2, Fault.CORRUPT_RTU, on=False)
        rr = await client.read_input_registers(0, count=1, device_id=2)
        assert rr.registers == [1]
    assert sim_rtu.wire_faults(2).frames_corrupted == 3


async def test_drop_link_on_one_unit_of_the_line(sim_rtu: Simulator) -> None:
    sim_rtu.inject(1, Fault.DROP_LINK)
    async with rtu_client(sim_rtu, timeout_s=0.3) as client:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=1, device_id=1)
        await asyncio.sleep(QUIET_S)
        rr = await client.read_input_registers(0, count=1, device_id=2)
        assert rr.registers == [1]
        sim_rtu.inject(1, Fault.DROP_LINK, on=False)
        rr = await client.read_input_registers(0, count=1, device_id=1)
        assert rr.registers == [1]


async def test_latency_on_rtu(sim_rtu: Simulator) -> None:
    sim_rtu.inject(2, Fault.LATENCY, ms=200)
    async with rtu_client(sim_rtu, timeout_s=1.0) as client:
        started = time.monotonic()
        rr = await client.read_input_registers(0, count=1, device_id=2)
        assert time.monotonic() - started >= 0.19
        assert rr.registers == [1]


async def test_nobody_answers_an_absent_unit(sim_rtu: Simulator) -> None:
    async with rtu_client(sim_rtu, timeout_s=0.3) as client:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=1, device_id=5)
        await asyncio.sleep(QUIET_S)
        rr = await client.read_input_registers(0, count=1, device_id=1)
        assert rr.registers == [1]


async def test_tcp_and_rtu_serve_the_same_pumps() -> None:
    from .wire import tcp_client

    async with (
        Simulator(pumps=2, tcp=True, rtu=True, time_scale=60.0) as sim,
        tcp_client(sim) as tcp,
        rtu_client(sim) as rtu,
    ):
        await write_program(tcp, 2)
        assert await send_command(tcp, 2, 1, Command.START) == (1, CmdResult.OK)
        rr = await rtu.read_input_registers(3, count=1, device_id=2)
        assert rr.registers == [State.INFUSING]
        assert await send_command(rtu, 2, 2, Command.PAUSE) == (2, CmdResult.OK)
        rr = await tcp.read_input_registers(3, count=1, device_id=2)
        assert rr.registers == [State.PAUSED]


async def test_frames_take_their_wire_time_at_the_configured_baud() -> None:
    # 8-byte request + 47-byte reply at 9600 baud 8N1 is 55 × 10 / 9600 s ≈ 57 ms on the wire.
    async with Simulator(pumps=1, tcp=False, rtu=True, baud=9_600) as sim:
        async with rtu_client(sim, timeout_s=2.0) as client:
            started = time.monotonic()
            rr = await client.read_input_registers(0, count=21, device_id=1)
            elapsed = time.monotonic() - started
        assert not rr.isError()
        assert elapsed >= 55 * 10 / 9_600 * 0.95


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pumps": 0},
        {"pumps": 248},
        {"baud": 0},
        {"time_scale": 0.0},
        {"time_scale": float("inf")},
        {"max_rate_ml_h": Decimal("0")},
        {"max_rate_ml_h": Decimal("1.005")},
    ],
)
def test_impossible_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(SimConfigError):
        Simulator(**kwargs)  # type: ignore[arg-type]
