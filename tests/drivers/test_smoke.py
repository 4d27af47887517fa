"""The basic round trip over TCP and RTU: status, program read-back, confirmed command."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers.base import Command, CommandResult, PumpDriver, PumpState
from pumpd.drivers.modbus import ModbusPumpDriver

from .conftest import program, rtu_config, tcp_config


async def _round_trip(drv: ModbusPumpDriver, sim: Simulator) -> None:
    status = await drv.read_status()
    assert status.state is PumpState.IDLE
    assert status.profile_version == 1
    assert status.serial_number == sim.pump(1).snapshot()["serial_number"]
    assert status.max_rate_ml_h == Decimal("1200.00")
    held = await drv.write_program(program(rate_ml_h="150.25", vtbi_ul=10_000))
    assert held.rate_ml_h == Decimal("150.25")
    assert held.vtbi_ul == 10_000
    outcome = await drv.command(Command.START)
    assert outcome.result is CommandResult.OK
    assert outcome.status.state is PumpState.INFUSING
    assert outcome.status.last_cmd_seq == outcome.cmd_seq
    assert outcome.status.rate_actual_ml_h == Decimal("150.25")
    log = sim.command_log(1)
    assert [(r.cmd_seq, r.command, r.result) for r in log] == [(outcome.cmd_seq, 1, 0)]


async def test_round_trip_tcp(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _round_trip(drv, sim_tcp)


async def test_round_trip_rtu(sim_rtu: Simulator) -> None:
    async with ModbusPumpDriver(rtu_config(sim_rtu)) as drv:
        await _round_trip(drv, sim_rtu)


async def test_raw_frames_logged_at_debug_when_asked(
    sim_tcp: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    async with ModbusPumpDriver(tcp_config(sim_tcp, trace_frames=True)) as drv:
        await drv.read_status()
    frames = [r.getMessage() for r in caplog.records if r.name == "pumpd.drivers.line"]
    # MBAP header, unit 1, fc 4, address 0, count 21 (0x15)
    assert any(" tx " in m and m.endswith("00 00 00 06 01 04 00 00 00 15") for m in frames)
    assert any(" rx " in m and " 01 04 2a " in m for m in frames)


async def test_no_frames_logged_by_default(
    sim_tcp: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pumpd.drivers.line")
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.read_status()
    assert not [r for r in caplog.records if " rx " in r.getMessage()]


def as_contract(drv: ModbusPumpDriver) -> PumpDriver:
    """mypy --strict checks here that ModbusPumpDriver satisfies the PumpDriver protocol."""
    return drv


async def test_modbus_driver_is_a_pump_driver(sim_tcp: Simulator) -> None:
    drv = as_contract(ModbusPumpDriver(tcp_config(sim_tcp)))
    assert isinstance(drv, PumpDriver)
