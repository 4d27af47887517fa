"""Program write/read-back, refused input, sequence numbers, protocol errors, repeats."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest
from pumpsim.harness import Fault, Simulator
from pymodbus.client import AsyncModbusTcpClient

from pumpd.drivers.base import (
    Command,
    CommandUncertain,
    InvalidProgram,
    NotRepeatable,
    ProgramMismatch,
    ProtocolError,
    PumpProgram,
    PumpState,
    PumpUnreachable,
    command_repeating,
)
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver, next_seq
from pumpd.drivers.profile import load_profile, parse_profile

from .clamping_pump import clamping_pump
from .conftest import program, tcp_config


@asynccontextmanager
async def bare_client(sim: Simulator) -> AsyncIterator[AsyncModbusTcpClient]:
    assert sim.tcp_address is not None
    client = AsyncModbusTcpClient(sim.tcp_address[0], port=sim.tcp_address[1], retries=0)
    await client.connect()
    try:
        yield client
    finally:
        client.close()


async def holding_image(sim: Simulator) -> list[int]:
    async with bare_client(sim) as client:
        reply = await client.read_holding_registers(100, count=14, device_id=1)
        assert not reply.isError()
        return list(reply.registers)


async def test_program_is_written_and_read_back_exactly(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        wanted = program("1199.99", 4_000_000_000, "0.01", 123_456, "999.50")
        assert await drv.write_program(wanted) == wanted
        words = await holding_image(sim_tcp)
        assert words[0:2] == [119_999 >> 16, 119_999 & 0xFFFF]  # high word first
        assert words[2:4] == [4_000_000_000 >> 16, 4_000_000_000 & 0xFFFF]
        assert words[4:6] == [0, 1]


async def test_clamped_setpoint_is_a_mismatch_naming_the_field() -> None:
    async with clamping_pump() as (host, port):
        config = ModbusConfig(transport="tcp", host=host, port=port, unit=1)
        async with ModbusPumpDriver(config) as drv:
            assert (await drv.write_program(program("500.00"))).rate_ml_h == Decimal("500.00")
            with pytest.raises(ProgramMismatch) as caught:
                await drv.write_program(program("600.00"))
            assert caught.value.field == "rate_ml_h"
            assert caught.value.written == Decimal("600.00")
            assert caught.value.read == Decimal("500.00")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_ml_h", Decimal("1.005")),
        ("kvo_rate_ml_h", Decimal("0.001")),
        ("prime_rate_ml_h", Decimal("-1")),
        ("rate_ml_h", 1.5),
        ("rate_ml_h", Decimal("NaN")),
        ("vtbi_ul", -1),
        ("vtbi_ul", 1.0),
        ("prime_volume_ul", True),
    ],
    ids=str,
)
def test_program_refuses_bad_values(field: str, value: object) -> None:
    fields: dict[str, object] = {
        "rate_ml_h": Decimal(1),
        "vtbi_ul": 1,
        "kvo_rate_ml_h": Decimal(0),
        "prime_volume_ul": 0,
        "prime_rate_ml_h": Decimal(0),
        field: value,
    }
    with pytest.raises(InvalidProgram) as caught:
        PumpProgram(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    "bad",
    [program(vtbi_ul=1 << 32), program(rate_ml_h="42949672.96")],
    ids=["vtbi_over_u32", "rate_over_u32"],
)
async def test_value_too_large_for_the_wire_changes_nothing(
    sim_tcp: Simulator, bad: PumpProgram
) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program("3.00", 777))
        before = await holding_image(sim_tcp)
        with pytest.raises(InvalidProgram):
            await drv.write_program(bad)
        assert await holding_image(sim_tcp) == before


async def test_exception_0x02_on_connect_and_on_read(sim_tcp: Simulator) -> None:
    data = load_profile().model_dump()
    data["input"]["count"] = 22
    drv = ModbusPumpDriver(tcp_config(sim_tcp), profile=parse_profile(data))
    try:
        with pytest.raises(ProtocolError) as caught:
            await drv.connect()
        assert caught.value.exception_code == 2
        with pytest.raises(ProtocolError) as again:
            await drv.read_status()
        assert again.value.exception_code == 2
    finally:
        await drv.close()


async def test_profile_version_mismatch_is_a_protocol_error(sim_tcp: Simulator) -> None:
    data = load_profile().model_dump()
    data["profile_version"] = 2
    drv = ModbusPumpDriver(tcp_config(sim_tcp), profile=parse_profile(data))
    try:
        with pytest.raises(ProtocolError, match="profile_version 1"):
            await drv.connect()
    finally:
        await drv.close()


def test_next_seq_never_zero_and_wraps() -> None:
    assert next_seq(0) == 1
    assert next_seq(1) == 2
    assert next_seq(65534) == 65535
    assert next_seq(65535) == 1
    seen = set()
    seq = 1
    for _ in range(65535):
        seen.add(seq)
        seq = next_seq(seq)
    assert seq == 1
    assert seen == set(range(1, 65536))


async def test_seq_wraps_from_65535_to_1_on_the_wire(sim_tcp: Simulator) -> None:
    async with bare_client(sim_tcp) as client:
        reply = await client.write_registers(112, [65535, 3], device_id=1)  # STOP, seq 65535
        assert not reply.isError()
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        assert (await drv.read_status()).last_cmd_seq == 65535
        assert drv.next_cmd_seq == 1
        outcome = await drv.command(Command.STOP)
        assert outcome.cmd_seq == 1
        assert outcome.status.last_cmd_seq == 1
        assert [r.cmd_seq for r in sim_tcp.command_log(1)] == [65535, 1]


async def test_new_driver_continues_after_the_pumps_last_seq(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as first:
        for _ in range(3):
            await first.command(Command.STOP)
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as second:
        outcome = await second.command(Command.STOP)
    seqs = [r.cmd_seq for r in sim_tcp.command_log(1)]
    assert seqs == [1, 2, 3, 4]
    assert outcome.cmd_seq == 4


async def test_connect_to_nothing_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        config = ModbusConfig(transport="tcp", host="127.0.0.1", port=port, unit=1, timeout_s=0.3)
        drv = ModbusPumpDriver(config)
        try:
            with pytest.raises(PumpUnreachable):
                await drv.connect()
            with pytest.raises(PumpUnreachable):
                await drv.read_status()
        finally:
            await drv.close()


async def test_closed_driver_refuses_to_send(sim_tcp: Simulator) -> None:
    drv = ModbusPumpDriver(tcp_config(sim_tcp))
    await drv.connect()
    await drv.close()
    with pytest.raises(PumpUnreachable):
        await drv.read_status()
    with pytest.raises(PumpUnreachable):
        await drv.command(Command.STOP)
    assert sim_tcp.command_log(1) == []


@pytest.mark.parametrize("seconds", [-1, 65536, 2.5])
async def test_heartbeat_timeout_out_of_range_is_refused(
    sim_tcp: Simulator, seconds: object
) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.set_heartbeat_timeout(30)
        with pytest.raises(InvalidProgram):
            await drv.set_heartbeat_timeout(seconds)  # type: ignore[arg-type]
        assert (await holding_image(sim_tcp))[11] == 30


async def test_start_and_prime_are_never_repeated(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        for command in (Command.START, Command.PRIME, Command.CLEAR_VOLUMES, Command.ACK_ALARM):
            with pytest.raises(NotRepeatable):
                await command_repeating(drv, command)
    assert sim_tcp.command_log(1) == []


async def test_stop_is_repeated_until_confirmed(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program())
        await drv.command(Command.START)
        sim_tcp.inject(1, Fault.IGNORE_COMMANDS, on=True)

        async def heal() -> None:
            await asyncio.sleep(0.4)  # after the first attempt (0.3 s) has given up
            sim_tcp.inject(1, Fault.IGNORE_COMMANDS, on=False)

        healer = asyncio.create_task(heal())
        outcome = await command_repeating(drv, Command.STOP, attempts=10, timeout_s=0.3)
        await healer
        assert outcome.attempts >= 2
        assert outcome.status.state is PumpState.IDLE
        assert [r.command for r in sim_tcp.command_log(1)] == [1, 3]


async def test_repeating_gives_up_as_uncertain(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        sim_tcp.inject(1, Fault.IGNORE_COMMANDS, on=True)
        with pytest.raises(CommandUncertain):
            await command_repeating(drv, Command.PAUSE, attempts=2, timeout_s=0.2)
        assert drv.next_cmd_seq == 3  # two attempts, two fresh sequence numbers


async def test_pump_that_appears_later_is_reached_without_a_new_driver() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = ModbusConfig(
        transport="tcp",
        host="127.0.0.1",
        port=port,
        unit=1,
        timeout_s=0.3,
        reconnect_delay_max_s=0.5,
    )
    drv = ModbusPumpDriver(config)
    try:
        with pytest.raises(PumpUnreachable):
            await drv.connect()
        async with Simulator(pumps=1, tcp=("127.0.0.1", port)) as sim:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                try:
                    status = await drv.read_status()
                    break
                except PumpUnreachable:
                    assert asyncio.get_running_loop().time() < deadline, "never reconnected"
                    await asyncio.sleep(0.05)
            assert status.state is PumpState.IDLE
            outcome = await drv.command(Command.STOP)
            assert outcome.cmd_seq == 1
            assert [r.cmd_seq for r in sim.command_log(1)] == [1]
    finally:
        await drv.close()
