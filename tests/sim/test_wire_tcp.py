"""The simulator over real Modbus TCP on loopback, through its proxy, with a bare client."""

from __future__ import annotations

import time

import pytest
from pumpsim.harness import Fault, Simulator
from pumpsim.registers import AlarmFlag, CmdResult, Command, State, WarningFlag
from pymodbus.exceptions import ModbusIOException

from .helpers import state_of
from .wire import send_command, tcp_client, wait_for, write_program


async def test_addresses_are_protocol_addresses_without_legacy_offset(sim_tcp: Simulator) -> None:
    # SimData(address) is the protocol address in 3.16 (the old data block was address-1).
    async with tcp_client(sim_tcp) as client:
        await client.write_register(100, 0x0001, device_id=1)
        await client.write_register(101, 0x86A0, device_id=1)
        assert sim_tcp.pump(1).rate_setpoint_centi_ml_h == 100_000
        rr = await client.read_holding_registers(100, count=2, device_id=1)
        assert rr.registers == [0x0001, 0x86A0]
        rr = await client.read_input_registers(0, count=21, device_id=1)
        pump = sim_tcp.pump(1)
        assert rr.registers[0] == 1  # profile_version
        assert (rr.registers[1] << 16) | rr.registers[2] == pump.serial_number
        assert rr.registers[3] == State.IDLE
        assert rr.registers[13] == pump.battery_percent
        assert (rr.registers[17] << 16) | rr.registers[18] == 120_000
        # The last address of each block is inside the map; one past it is not (see below).
        rr = await client.read_input_registers(20, count=1, device_id=1)
        assert not rr.isError()
        rr = await client.read_holding_registers(113, count=1, device_id=1)
        assert not rr.isError()


@pytest.mark.parametrize(
    ("function", "address", "payload"),
    [
        ("read_input_registers", 21, 1),
        ("read_input_registers", 0, 22),
        ("read_input_registers", 100, 1),
        ("read_holding_registers", 0, 1),
        ("read_holding_registers", 99, 1),
        ("read_holding_registers", 113, 2),
        ("read_holding_registers", 114, 1),
        ("write_register", 5, 1),
        ("write_register", 99, 1),
        ("write_register", 114, 1),
        ("write_registers", 113, [7, 3]),
        ("write_registers", 98, [0, 0, 1]),
    ],
)
async def test_outside_the_map_is_exception_2_and_changes_nothing(
    sim_tcp: Simulator, function: str, address: int, payload: int | list[int]
) -> None:
    before = sim_tcp.pump(1).holding_registers()
    async with tcp_client(sim_tcp) as client:
        call = getattr(client, function)
        if function.startswith("read"):
            rr = await call(address, count=payload, device_id=1)
        else:
            rr = await call(address, payload, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 2
    assert sim_tcp.pump(1).holding_registers() == before
    assert sim_tcp.command_log() == []


async def test_functions_outside_the_map_are_exception_1(sim_tcp: Simulator) -> None:
    before = sim_tcp.pump(1).holding_registers()
    async with tcp_client(sim_tcp) as client:
        rr = await client.read_coils(0, count=1, device_id=1)
        assert rr.isError()
        assert rr.exception_code == 1
        rr = await client.readwrite_registers(
            read_address=100, read_count=2, write_address=100, values=[1, 2], device_id=1
        )
        assert rr.isError()
        assert rr.exception_code == 1
    assert sim_tcp.pump(1).holding_registers() == before


async def test_command_semantics_over_the_wire(sim_tcp: Simulator) -> None:
    async with tcp_client(sim_tcp) as client:
        await write_program(client, 1)
        assert await send_command(client, 1, 1, Command.START) == (1, CmdResult.OK)
        assert sim_tcp.pump(1).state is State.INFUSING
        # The same seq again is not a new command, whatever the command word says.
        assert await send_command(client, 1, 1, Command.PAUSE) == (1, CmdResult.OK)
        assert state_of(sim_tcp.pump(1)) is State.INFUSING
        # Command 0 is never taken.
        assert await send_command(client, 1, 2, 0) == (1, CmdResult.OK)
        # A single-register write of the command word alone is stored, not executed.
        await client.write_register(112, 3, device_id=1)
        await client.write_register(113, Command.STOP, device_id=1)
        assert state_of(sim_tcp.pump(1)) is State.INFUSING
        assert await send_command(client, 1, 4, 42) == (4, CmdResult.UNKNOWN_COMMAND)
        assert await send_command(client, 1, 5, Command.PAUSE) == (5, CmdResult.OK)
        assert await send_command(client, 1, 6, Command.CLEAR_VOLUMES) == (
            6,
            CmdResult.REJECTED_STATE,
        )
    log = sim_tcp.command_log(1)
    assert [(r.cmd_seq, r.command, r.result) for r in log] == [
        (1, Command.START, CmdResult.OK),
        (4, 42, CmdResult.UNKNOWN_COMMAND),
        (5, Command.PAUSE, CmdResult.OK),
        (6, Command.CLEAR_VOLUMES, CmdResult.REJECTED_STATE),
    ]
    assert all(r.unit == 1 for r in log)
    stamps = [r.t_monotonic for r in log]
    assert stamps == sorted(stamps)
    assert stamps[-1] <= time.monotonic()


async def test_two_pumps_are_independent(sim_tcp: Simulator) -> None:
    async with tcp_client(sim_tcp) as client:
        await write_program(client, 2)
        assert await send_command(client, 2, 1, Command.START) == (1, CmdResult.OK)
        rr = await client.read_input_registers(3, count=1, device_id=1)
        assert rr.registers == [State.IDLE]
        rr = await client.read_input_registers(3, count=1, device_id=2)
        assert rr.registers == [State.INFUSING]
        rr = await client.read_input_registers(14, count=1, device_id=1)
        assert rr.registers == [0]


async def test_heartbeat_echo(sim_tcp: Simulator) -> None:
    async with tcp_client(sim_tcp) as client:
        await client.write_register(110, 1234, device_id=1)
        rr = await client.read_input_registers(16, count=1, device_id=1)
        assert rr.registers == [1234]


async def test_infusion_ends_exactly_at_vtbi_in_scaled_time() -> None:
    async with Simulator(pumps=1, tcp=True, time_scale=3600.0) as sim, tcp_client(sim) as client:
        await write_program(client, 1, rate=120_000, vtbi=5_000)
        assert await send_command(client, 1, 1, Command.START) == (1, CmdResult.OK)
        await wait_for(lambda: sim.peek(1).state is not State.INFUSING)
        rr = await client.read_input_registers(0, count=21, device_id=1)
        assert rr.registers[3] == State.IDLE
        assert (rr.registers[8] << 16) | rr.registers[9] == 5_000
        assert rr.registers[5] & WarningFlag.VTBI_COMPLETE


async def test_heartbeat_failsafe_fires_with_no_client_asking() -> None:
    async with Simulator(pumps=1, tcp=True, time_scale=60.0) as sim:
        async with tcp_client(sim) as client:
            await write_program(client, 1)
            await client.write_register(111, 2, device_id=1)  # 2 scaled s = 33 ms real
            assert await send_command(client, 1, 1, Command.START) == (1, CmdResult.OK)
        await wait_for(lambda: sim.peek(1).state is State.ALARM)  # the tick, not a read
        assert sim.peek(1).alarm_flags == AlarmFlag.COMM_LOSS


class TestWireFaultsOnTcp:
    async def test_drop_link_silences_one_unit_only(self, sim_tcp: Simulator) -> None:
        sim_tcp.inject(1, Fault.DROP_LINK)
        async with tcp_client(sim_tcp, timeout_s=0.3) as client:
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=1, device_id=1)
        async with tcp_client(sim_tcp) as client:
            rr = await client.read_input_registers(0, count=1, device_id=2)
            assert rr.registers == [1]
        sim_tcp.inject(1, Fault.DROP_LINK, on=False)
        async with tcp_client(sim_tcp) as client:
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert rr.registers == [1]
        assert sim_tcp.wire_faults(1).frames_dropped >= 1

    async def test_dropped_link_does_not_deliver_commands(self, sim_tcp: Simulator) -> None:
        sim_tcp.inject(1, Fault.DROP_LINK)
        async with tcp_client(sim_tcp, timeout_s=0.3) as client:
            with pytest.raises(ModbusIOException):
                await client.write_registers(112, [1, Command.STOP], device_id=1)
        assert sim_tcp.command_log() == []

    async def test_latency_delays_replies_of_that_unit(self, sim_tcp: Simulator) -> None:
        sim_tcp.inject(1, Fault.LATENCY, ms=250)
        async with tcp_client(sim_tcp) as client:
            started = time.monotonic()
            rr = await client.read_input_registers(0, count=1, device_id=1)
            assert time.monotonic() - started >= 0.24
            assert rr.registers == [1]

    async def test_late_reply_leaves_an_executed_but_unconfirmed_command(
        self, sim_tcp: Simulator
    ) -> None:
        async with tcp_client(sim_tcp) as client:
            await write_program(client, 1)
        sim_tcp.inject(1, Fault.LATENCY, ms=1_500)
        async with tcp_client(sim_tcp, timeout_s=0.3) as client:
            with pytest.raises(ModbusIOException):
                await client.write_registers(112, [1, Command.START], device_id=1)
        # The pump acted even though the controller never heard back: an uncertain command.
        assert [r.cmd_seq for r in sim_tcp.command_log(1)] == [1]
        assert sim_tcp.pump(1).state is State.INFUSING

    async def test_unknown_unit_gets_no_answer(self, sim_tcp: Simulator) -> None:
        async with tcp_client(sim_tcp, timeout_s=0.3) as client:
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=1, device_id=9)
