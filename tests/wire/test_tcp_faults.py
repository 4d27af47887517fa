"""TCP wire faults against the driver: a connection reset (RST) before or after the pump
saw the request, a half-open connection (the peer vanished without FIN), a pump that
accepts and never answers. A START whose fate is unknown is CommandUncertain, never "not
sent" and never sent again (the simulator's command log is the proof), and the driver
recovers without a restart once the fault clears.
"""

from __future__ import annotations

import time

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers import (
    Command,
    CommandResult,
    CommandUncertain,
    ModbusPumpDriver,
    PumpState,
    PumpUnreachable,
)

from .conftest import START, commands, program, read_when_back, tcp_config


async def test_reset_before_the_pump_saw_start(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program())
        sim_tcp.inject(1, Fault.RESET_TCP, count=1, direction="request")
        with pytest.raises((CommandUncertain, PumpUnreachable)) as caught:
            await drv.command(Command.START, timeout_s=1.0)
        assert commands(sim_tcp) == []  # the RST came instead of the request
        if isinstance(caught.value, CommandUncertain):
            assert caught.value.command is Command.START
        settled = await read_when_back(drv)
        assert settled.state is PumpState.IDLE
        outcome = await drv.command(Command.START)  # recovered: a new, deliberate START
        assert outcome.result is CommandResult.OK
        assert commands(sim_tcp) == [START]


async def test_reset_after_the_pump_took_start_is_never_called_not_sent(
    sim_tcp: Simulator,
) -> None:
    # The pump executes START and the connection is reset instead of the reply. The driver
    # must not say "not sent" (PumpUnreachable): the request left, so it is confirmed by
    # the echo after the redial, or uncertain. Never repeated.
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program())
        sim_tcp.inject(1, Fault.RESET_TCP, count=1, direction="reply")
        try:
            outcome = await drv.command(Command.START, timeout_s=3.0)
        except CommandUncertain as exc:
            seq = exc.cmd_seq
        else:
            assert outcome.result is CommandResult.OK
            seq = outcome.cmd_seq
        assert commands(sim_tcp) == [START]
        settled = await read_when_back(drv)
        assert settled.state is PumpState.INFUSING
        assert settled.last_cmd_seq == seq
        assert commands(sim_tcp) == [START]


async def test_half_open_connection_is_detected_and_redialled(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program())
        await drv.command(Command.START)
        sim_tcp.inject(1, Fault.HALF_OPEN_TCP, count=1)  # the next request's connection dies
        failures = 0
        started = time.monotonic()
        while True:
            try:
                status = await drv.read_status()
            except PumpUnreachable:
                failures += 1
                assert time.monotonic() - started < 30, "never redialled the dead connection"
                continue
            if failures:
                break
        # pymodbus closed the silent connection after its run of timeouts and redialled;
        # the same driver object reads the pump again, nothing restarted.
        assert failures >= 1
        assert status.state is PumpState.INFUSING
        assert sim_tcp.status(1)["wire"]["half_open_tcp"]["fired"] == 1  # type: ignore[index]
        print(f"half-open: {failures} failed reads, back after {time.monotonic() - started:.2f} s")


async def test_pump_that_accepts_and_never_answers(sim_tcp: Simulator) -> None:
    sim_tcp.inject(1, Fault.SILENT_TCP)
    drv = ModbusPumpDriver(tcp_config(sim_tcp))
    try:
        started = time.monotonic()
        with pytest.raises(PumpUnreachable):
            await drv.connect()  # TCP connects; Modbus never answers; bounded, not hung
        assert time.monotonic() - started < 10
        # A START sent into the silence: not executed, not confirmed, not repeated.
        with pytest.raises((CommandUncertain, PumpUnreachable)):
            await drv.command(Command.START, timeout_s=0.6)
        assert commands(sim_tcp) == []
        sim_tcp.inject(1, Fault.SILENT_TCP, on=False)
        back = await read_when_back(drv)
        assert back.state is PumpState.IDLE
        assert sim_tcp.wire_faults(1).frames_swallowed >= 2
        await drv.write_program(program())
        assert (await drv.command(Command.START)).result is CommandResult.OK
        assert commands(sim_tcp) == [START]
    finally:
        await drv.close()
