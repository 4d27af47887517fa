"""Delivered volume seen through the driver against rate × scaled time, 0.1–1200 mL/h.

The pump samples its clock somewhere between our request leaving and its reply arriving,
so the volume delivered between two reads is bracketed by the shortest and the longest
interval those four instants allow. The bracket holds however loaded the machine is; only
the 1 µL register resolution is added on each side.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers.base import Command, PumpState
from pumpd.drivers.modbus import ModbusPumpDriver

from .conftest import program, tcp_config

UL_PER_ML = 1000
SECONDS_PER_HOUR = 3600


@pytest.mark.parametrize("rate_ml_h", ["0.10", "1.00", "12.34", "150.00", "1200.00"])
async def test_delivered_volume_matches_rate_times_time(rate_ml_h: str) -> None:
    rate = Decimal(rate_ml_h)
    # Scale time so every rate delivers about 1 mL per real second.
    scale = float(Decimal(SECONDS_PER_HOUR) / rate)
    ul_per_real_s = rate * UL_PER_ML / SECONDS_PER_HOUR * Decimal(scale)
    async with (
        Simulator(pumps=1, tcp=True, time_scale=scale) as sim,
        ModbusPumpDriver(tcp_config(sim)) as drv,
    ):
        await drv.write_program(program(rate_ml_h=rate_ml_h, vtbi_ul=4_000_000_000))
        await drv.command(Command.START)
        sent_1 = time.monotonic()
        first = await drv.read_status()
        await asyncio.sleep(0.5)
        sent_2 = time.monotonic()
        second = await drv.read_status()
        assert first.state is second.state is PumpState.INFUSING
        assert second.rate_actual_ml_h == rate
        delivered = second.volume_infused_ul - first.volume_infused_ul
        shortest = Decimal(sent_2 - first.read_at_monotonic)
        longest = Decimal(second.read_at_monotonic - sent_1)
        assert ul_per_real_s * shortest - 1 <= delivered <= ul_per_real_s * longest + 1
