"""The simulator's finer wire faults themselves: parameters checked whole before anything
changes, the control channel carries them, and an `address` fault hits only the frames
that carry that register (so a test can aim at the command write and nothing else).
"""

from __future__ import annotations

import pytest
from pumpsim.control import handle_line
from pumpsim.errors import FaultParameterError
from pumpsim.faults import LINK_FAULTS, Fault
from pumpsim.harness import Simulator

from pumpd.drivers import Command, CommandUncertain, ModbusPumpDriver

from .conftest import START, commands, program, rtu_config


async def test_every_link_fault_switches_on_and_off_over_the_control_channel() -> None:
    async with Simulator(pumps=1, tcp=True, rtu=True, time_scale=60.0) as sim:
        for fault in sorted(LINK_FAULTS):
            on = handle_line(sim, f'{{"op": "fault", "unit": 1, "fault": "{fault}"}}'.encode())
            assert on["ok"], on
            off = handle_line(
                sim, f'{{"op": "fault", "unit": 1, "fault": "{fault}", "on": false}}'.encode()
            )
            assert off["ok"], off
        wire = sim.status(1)["wire"]
        assert isinstance(wire, dict)
        assert wire["silent_tcp"] is False
        assert {k: wire[k]["on"] for k in ("truncate_rtu", "noise_rtu", "reset_tcp")} == {
            "truncate_rtu": False,
            "noise_rtu": False,
            "reset_tcp": False,
        }


@pytest.mark.parametrize(
    ("fault", "params", "says"),
    [
        (Fault.TRUNCATE_RTU, {"direction": "sideways"}, "direction must be one of"),
        (Fault.RESET_TCP, {"direction": "both"}, "request, reply"),
        (Fault.CORRUPT_RTU, {"address": 70000}, "address must be in 0..65535"),
        (Fault.NOISE_RTU, {"probability": 0.5, "count": 2}, "probability or count, not both"),
        (Fault.NOISE_RTU, {"direction": "reply"}, "takes no parameter(s) direction"),
        (Fault.SILENT_TCP, {"count": 1}, "takes no parameter(s) count"),
        (Fault.HALF_OPEN_TCP, {"count": 0}, "count must be at least 1"),
    ],
    ids=lambda v: str(v),
)
async def test_bad_parameters_are_refused_and_change_nothing(
    fault: Fault, params: dict[str, object], says: str
) -> None:
    async with Simulator(pumps=1, tcp=True, time_scale=60.0) as sim:
        before = sim.status(1)["wire"]
        with pytest.raises(FaultParameterError, match=says.replace("(", r"\(").replace(")", r"\)")):
            sim.inject(1, fault, **params)  # type: ignore[arg-type]
        assert sim.status(1)["wire"] == before


async def test_control_channel_refuses_a_direction_that_is_not_a_string() -> None:
    async with Simulator(pumps=1, tcp=True, time_scale=60.0) as sim:
        reply = handle_line(
            sim, b'{"op": "fault", "unit": 1, "fault": "corrupt-rtu", "direction": 3}'
        )
        assert reply["ok"] is False
        assert reply["error"] == {
            "type": "ControlProtocolError",
            "message": "'direction' must be a string, got 3",
        }


async def test_address_aims_at_the_command_write_only(sim_rtu: Simulator) -> None:
    async with ModbusPumpDriver(rtu_config(sim_rtu)) as drv:
        sim_rtu.inject(1, Fault.CORRUPT_RTU, direction="request", address=112)
        for _ in range(3):  # status reads and the program write pass untouched
            await drv.read_status()
        await drv.write_program(program())
        await drv.heartbeat()
        assert sim_rtu.wire_faults(1).frames_corrupted == 0
        with pytest.raises(CommandUncertain):
            await drv.command(Command.START, timeout_s=0.5)
        assert sim_rtu.wire_faults(1).frames_corrupted == 1
        assert commands(sim_rtu) == []
        sim_rtu.inject(1, Fault.CORRUPT_RTU, on=False)
        await drv.command(Command.START)
        assert commands(sim_rtu) == [START]
