"""The driver's cost over a bare pymodbus client, on one simulator, TCP and RTU at 115200.

Both sides do the same wire work: one fc 4 read of the 21-register status block; a command
is one fc 16 write of [cmd_seq, command] followed by fc 4 reads until the pump echoes the
sequence number. The ratio shows what decoding, locking, pacing and confirmation add.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from pumpsim.harness import Simulator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from bench.report import Report, Row
from pumpd.drivers import Command, ModbusConfig, ModbusPumpDriver

BAUD = 115_200
STOP_CODE = 3
LAST_CMD_SEQ_REG = 14


async def _rate(n: int, op: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await op()
    return n / (time.perf_counter() - started)


async def _samples_ms(n: int, op: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await op()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


ROUNDS = 20


async def _driver_round(
    config: ModbusConfig, reads: int, commands: int
) -> tuple[float, list[float], int]:
    async with ModbusPumpDriver(config) as drv:
        await drv.read_status()
        rate = await _rate(reads, drv.read_status)
        times = await _samples_ms(commands, lambda: drv.command(Command.STOP))
        return rate, times, (await drv.read_status()).last_cmd_seq


async def _bare_round(
    make: Callable[[], AsyncModbusTcpClient | AsyncModbusSerialClient],
    reads: int,
    commands: int,
    seq: int,
) -> tuple[float, list[float], int]:
    bare = make()
    await bare.connect()
    try:

        async def bare_read() -> None:
            reply = await bare.read_input_registers(0, count=21, device_id=1)
            assert not reply.isError()

        async def bare_command() -> None:
            nonlocal seq
            seq = seq % 0xFFFF + 1
            reply = await bare.write_registers(112, [seq, STOP_CODE], device_id=1)
            assert not reply.isError()
            while True:
                status = await bare.read_input_registers(0, count=21, device_id=1)
                if status.registers[LAST_CMD_SEQ_REG] == seq:
                    return

        await bare_read()
        rate = await _rate(reads, bare_read)
        times = await _samples_ms(commands, bare_command)
        return rate, times, seq
    finally:
        bare.close()


async def _measure(
    label: str,
    config: ModbusConfig,
    make_bare: Callable[[], AsyncModbusTcpClient | AsyncModbusSerialClient],
    reads: int,
    commands: int,
) -> list[Row]:
    """Alternate driver and bare rounds so load from other processes hits both alike."""
    driver_rates: list[float] = []
    bare_rates: list[float] = []
    driver_ms: list[float] = []
    bare_ms: list[float] = []
    for _ in range(ROUNDS):
        rate, times, seq = await _driver_round(config, reads // ROUNDS, commands // ROUNDS)
        driver_rates.append(rate)
        driver_ms += times
        rate, times, _ = await _bare_round(make_bare, reads // ROUNDS, commands // ROUNDS, seq)
        bare_rates.append(rate)
        bare_ms += times
    driver_reads, bare_reads = statistics.median(driver_rates), statistics.median(bare_rates)
    driver_cmd_ms, bare_cmd_ms = statistics.median(driver_ms), statistics.median(bare_ms)
    return [
        Row(
            "driver",
            f"{label} status reads",
            driver_reads,
            "reads/s",
            bare_reads,
            "bare pymodbus",
            "ratio ≥ 0.5",
            driver_reads / bare_reads >= 0.5,
        ),
        Row(
            "driver",
            f"{label} command round trip (median)",
            driver_cmd_ms,
            "ms",
            bare_cmd_ms,
            "bare write + poll",
            "ratio ≤ 2",
            driver_cmd_ms / bare_cmd_ms <= 2,
        ),
    ]


async def _run(quick: bool) -> list[Row]:
    reads, commands = (200, 40) if quick else (2000, 300)
    async with Simulator(pumps=1, tcp=True, rtu=True, baud=BAUD) as sim:
        assert sim.tcp_address is not None
        assert sim.rtu_path is not None
        host, port = sim.tcp_address
        rtu_path = sim.rtu_path
        rows = await _measure(
            "TCP",
            ModbusConfig(transport="tcp", host=host, port=port, unit=1, confirm_poll_s=0),
            lambda: AsyncModbusTcpClient(host, port=port, retries=0),
            reads,
            commands,
        )
        rows += await _measure(
            f"RTU {BAUD}",
            ModbusConfig(
                transport="rtu", device=sim.rtu_path, baudrate=BAUD, unit=1, confirm_poll_s=0
            ),
            lambda: AsyncModbusSerialClient(rtu_path, baudrate=BAUD, retries=0),
            reads,
            commands,
        )
    return rows


def run(report: Report, quick: bool) -> None:
    for row in asyncio.run(_run(quick)):
        report.add(row)
    report.note(
        "driver: same simulator for both sides; TCP passes through the simulator's fault "
        "proxy, RTU through its pty line with 115200-baud wire timing. Command round trip "
        "= fc16 write + fc4 polls until last_cmd_seq echoes; confirm_poll_s=0 on both "
        "sides. Twenty alternating rounds of driver and bare client; medians."
    )
