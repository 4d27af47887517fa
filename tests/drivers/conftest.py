"""Driver tests run against the real simulator over real wires (TCP loopback, RTU on a pty).

Each test gets its own simulator so faults and pump state never leak between tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers.base import PumpProgram, PumpState, PumpStatus
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver

TIME_SCALE = 60.0


@pytest.fixture
async def sim_tcp() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=True, time_scale=TIME_SCALE) as sim:
        yield sim


@pytest.fixture
async def sim_rtu() -> AsyncIterator[Simulator]:
    async with Simulator(pumps=2, tcp=False, rtu=True, baud=115_200, time_scale=TIME_SCALE) as sim:
        yield sim


def tcp_config(sim: Simulator, unit: int = 1, **overrides: object) -> ModbusConfig:
    assert sim.tcp_address is not None
    host, port = sim.tcp_address
    fields: dict[str, object] = {"transport": "tcp", "host": host, "port": port, "unit": unit}
    fields.update(overrides)
    return ModbusConfig.model_validate(fields)


def rtu_config(sim: Simulator, unit: int = 1, **overrides: object) -> ModbusConfig:
    assert sim.rtu_path is not None
    fields: dict[str, object] = {
        "transport": "rtu",
        "device": sim.rtu_path,
        "baudrate": 115_200,
        "unit": unit,
    }
    fields.update(overrides)
    return ModbusConfig.model_validate(fields)


def traced_config(kind: str, sim: Simulator, unit: int) -> ModbusConfig:
    """A driver config on the simulator's TCP endpoint or RTU pty whose frames are logged
    (``trace_frames``), for tests that read what went on the wire and in which order."""
    make = tcp_config if kind == "tcp" else rtu_config
    return make(sim, unit=unit, timeout_s=2.0, trace_frames=True)


def program(
    rate_ml_h: str = "1.00",
    vtbi_ul: int = 100_000,
    kvo_rate_ml_h: str = "0",
    prime_volume_ul: int = 100_000,
    prime_rate_ml_h: str = "1.00",
) -> PumpProgram:
    return PumpProgram(
        rate_ml_h=Decimal(rate_ml_h),
        vtbi_ul=vtbi_ul,
        kvo_rate_ml_h=Decimal(kvo_rate_ml_h),
        prime_volume_ul=prime_volume_ul,
        prime_rate_ml_h=Decimal(prime_rate_ml_h),
    )


async def wait_for(
    drv: ModbusPumpDriver,
    predicate: Callable[[PumpStatus], bool],
    *,
    within_s: float = 10.0,
    what: str = "condition",
) -> PumpStatus:
    """Poll the pump until `predicate` holds; fail with the last status seen."""
    deadline = time.monotonic() + within_s
    status = await drv.read_status()
    while not predicate(status):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within_s} s; last status {status}")
        await asyncio.sleep(0.02)
        status = await drv.read_status()
    return status


async def wait_state(drv: ModbusPumpDriver, state: PumpState) -> PumpStatus:
    return await wait_for(drv, lambda s: s.state is state, what=f"state {state}")
