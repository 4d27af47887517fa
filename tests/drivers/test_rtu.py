"""RTU on a pseudo-terminal: two pumps on one line, frame corruption, late replies."""

from __future__ import annotations

import asyncio
import time

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers.base import Command, CommandResult, PumpState, PumpUnreachable
from pumpd.drivers.line import LineConflict
from pumpd.drivers.modbus import ModbusPumpDriver

from .conftest import program, rtu_config
from .test_faults import read_when_back


async def test_two_pumps_on_one_line_driven_concurrently(sim_rtu: Simulator) -> None:
    one = ModbusPumpDriver(rtu_config(sim_rtu, unit=1))
    two = ModbusPumpDriver(rtu_config(sim_rtu, unit=2))
    async with one, two:
        serials = {1: sim_rtu.pump(1).snapshot()["serial_number"]}
        serials[2] = sim_rtu.pump(2).snapshot()["serial_number"]
        assert serials[1] != serials[2]

        async def drive(drv: ModbusPumpDriver, unit: int, rate: str) -> list[int]:
            seen = []
            await drv.write_program(program(rate_ml_h=rate))
            outcome = await drv.command(Command.START)
            assert outcome.result is CommandResult.OK
            for _ in range(40):
                status = await drv.read_status()
                seen.append(status.serial_number)
                assert status.state is PumpState.INFUSING
                assert str(status.rate_actual_ml_h) == rate
            await drv.command(Command.STOP)
            return seen

        seen_one, seen_two = await asyncio.gather(drive(one, 1, "12.34"), drive(two, 2, "56.78"))
        # Every reply went to the driver that asked: no cross-talk on the shared line.
        assert set(seen_one) == {serials[1]}
        assert set(seen_two) == {serials[2]}
        assert [r.command for r in sim_rtu.command_log(1)] == [1, 3]
        assert [r.command for r in sim_rtu.command_log(2)] == [1, 3]


async def test_second_driver_on_a_line_must_agree_on_its_settings(sim_rtu: Simulator) -> None:
    async with ModbusPumpDriver(rtu_config(sim_rtu, unit=1)):
        other = ModbusPumpDriver(rtu_config(sim_rtu, unit=2, baudrate=9600))
        with pytest.raises(LineConflict):
            await other.connect()


async def test_corrupt_frames_are_an_error_not_a_value(sim_rtu: Simulator) -> None:
    async with ModbusPumpDriver(rtu_config(sim_rtu, timeout_s=0.2)) as drv:
        good = await drv.read_status()
        sim_rtu.inject(1, Fault.CORRUPT_RTU, on=True)
        for _ in range(3):
            with pytest.raises(PumpUnreachable):
                await drv.read_status()
        sim_rtu.inject(1, Fault.CORRUPT_RTU, on=False)
        again = await read_when_back(drv)
        assert again.serial_number == good.serial_number
        assert again.profile_version == 1


async def test_late_reply_is_not_taken_for_the_next_request(sim_rtu: Simulator) -> None:
    # The late status reply (fc 4) must drain during the quiet period, not answer the
    # program read-back (fc 3) that follows.
    config = rtu_config(sim_rtu, timeout_s=0.2, quiet_after_timeout_s=1.0)
    async with ModbusPumpDriver(config) as drv:
        sim_rtu.inject(1, Fault.LATENCY, on=True, ms=500)
        with pytest.raises(PumpUnreachable):
            await drv.read_status()
        sim_rtu.inject(1, Fault.LATENCY, on=False)
        started = time.monotonic()
        held = await drv.write_program(program(rate_ml_h="7.25", vtbi_ul=4321))
        assert time.monotonic() - started >= 0.5  # it waited out the quiet period
        assert str(held.rate_ml_h) == "7.25"
        assert held.vtbi_ul == 4321


async def test_unit_without_pump_is_unreachable(sim_rtu: Simulator) -> None:
    drv = ModbusPumpDriver(rtu_config(sim_rtu, unit=7, timeout_s=0.2))
    try:
        with pytest.raises(PumpUnreachable):
            await drv.connect()
    finally:
        await drv.close()


async def test_drop_link_on_rtu_then_back(sim_rtu: Simulator) -> None:
    async with ModbusPumpDriver(rtu_config(sim_rtu, timeout_s=0.2)) as drv:
        before = await drv.read_status()
        sim_rtu.inject(1, Fault.DROP_LINK, on=True)
        for _ in range(3):
            with pytest.raises(PumpUnreachable):
                await drv.read_status()
        sim_rtu.inject(1, Fault.DROP_LINK, on=False)
        after = await read_when_back(drv)
        assert after.serial_number == before.serial_number
        assert after.uptime_s >= before.uptime_s


async def test_late_reply_never_answers_the_next_request() -> None:
    # At 9600 baud the status reply (47 bytes) takes 49 ms on the wire. The pump begins
    # each reply 20 ms before the 0.25 s timeout, so it finishes about 30 ms after it.
    # Without the quiet period the second read would be sent at once and take the first
    # read's late reply as its answer: a stale status, returned as if fresh. The default
    # quiet period (the longest RTU frame at this baud rate, 267 ms, plus the gap) lets
    # that reply drain before the next request, so each read fails instead.
    async with Simulator(pumps=1, tcp=False, rtu=True, baud=9600, time_scale=60.0) as sim:
        config = rtu_config(sim, baudrate=9600, timeout_s=0.25)
        assert config.line_settings().quiet_after_timeout_s > 0.26
        async with ModbusPumpDriver(config) as drv:
            sim.inject(1, Fault.LATENCY, on=True, ms=230)
            for _ in range(3):
                with pytest.raises(PumpUnreachable):
                    await drv.read_status()
            sim.inject(1, Fault.LATENCY, on=False)
            assert (await read_when_back(drv)).state is PumpState.IDLE
