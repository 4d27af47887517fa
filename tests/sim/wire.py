"""Bare pymodbus clients for the wire tests (built inside async code, retries off)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from pumpsim.harness import Simulator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from .helpers import words32


@contextlib.asynccontextmanager
async def tcp_client(sim: Simulator, timeout_s: float = 1.0) -> AsyncIterator[AsyncModbusTcpClient]:
    assert sim.tcp_address is not None
    host, port = sim.tcp_address
    client = AsyncModbusTcpClient(
        host, port=port, retries=0, timeout=timeout_s, reconnect_delay=0.1, reconnect_delay_max=1
    )
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


@contextlib.asynccontextmanager
async def rtu_client(
    sim: Simulator, timeout_s: float = 0.5
) -> AsyncIterator[AsyncModbusSerialClient]:
    assert sim.rtu_path is not None
    client = AsyncModbusSerialClient(
        sim.rtu_path, baudrate=115_200, retries=0, timeout=timeout_s, reconnect_delay=0.1
    )
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


Client = AsyncModbusTcpClient | AsyncModbusSerialClient


async def write_program(
    client: Client,
    unit: int,
    *,
    rate: int = 15_000,
    vtbi: int = 10_000,
    kvo: int = 0,
    prime_volume: int = 500,
    prime_rate: int = 30_000,
) -> None:
    words = words32(rate) + words32(vtbi) + words32(kvo) + words32(prime_volume)
    rr = await client.write_registers(100, words + words32(prime_rate), device_id=unit)
    assert not rr.isError(), rr


async def send_command(client: Client, unit: int, seq: int, command: int) -> tuple[int, int]:
    """Write cmd_seq+command in one fc16 and read back (last_cmd_seq, last_cmd_result)."""
    rr = await client.write_registers(112, [seq, command], device_id=unit)
    assert not rr.isError(), rr
    echo = await client.read_input_registers(14, count=2, device_id=unit)
    assert not echo.isError(), echo
    return echo.registers[0], echo.registers[1]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
