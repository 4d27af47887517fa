"""Wire-fault tests: the real simulator, real sockets, a real pty.

Every fault lives in the simulator's byte bridge (`pumpsim/bridge.py`), so the driver and
the controller meet it exactly as they would meet a bad cable, a second master or a peer
that vanished. Timeouts are short so the whole folder stays quick; every wait is a bound,
never a speed check. docs/safety/robustness.md lists each fault, the expected behaviour
and the test that shows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers import ModbusConfig, ModbusPumpDriver, PumpProgram, PumpStatus, PumpUnreachable

TIME_SCALE = 60.0
START, PAUSE, STOP, PRIME = 1, 2, 3, 4
"""GIP-MB1 command codes as the simulator logs them."""


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
    fields: dict[str, object] = {
        "transport": "tcp",
        "host": host,
        "port": port,
        "unit": unit,
        "timeout_s": 0.2,
        "reconnect_delay_max_s": 0.5,
    }
    fields.update(overrides)
    return ModbusConfig.model_validate(fields)


def rtu_config(sim: Simulator, unit: int = 1, **overrides: object) -> ModbusConfig:
    assert sim.rtu_path is not None
    fields: dict[str, object] = {
        "transport": "rtu",
        "device": sim.rtu_path,
        "baudrate": 115_200,
        "unit": unit,
        "timeout_s": 0.2,
    }
    fields.update(overrides)
    return ModbusConfig.model_validate(fields)


def program(rate_ml_h: str = "60.00", vtbi_ul: int = 100_000) -> PumpProgram:
    return PumpProgram(
        rate_ml_h=Decimal(rate_ml_h),
        vtbi_ul=vtbi_ul,
        kvo_rate_ml_h=Decimal(0),
        prime_volume_ul=2_000,
        prime_rate_ml_h=Decimal("300.00"),
    )


async def read_when_back(drv: ModbusPumpDriver, within_s: float = 20.0) -> PumpStatus:
    """The first status the pump answers once the link works again (a bound, not a speed)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await drv.read_status()
        except PumpUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def commands(sim: Simulator, unit: int = 1) -> list[int]:
    """The command codes the pump took, from the simulator's own log (not the driver's)."""
    return [r.command for r in sim.command_log(unit)]
