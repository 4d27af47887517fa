"""Every fault, injected through the Python API of a running Simulator (no wire needed here;
the wire faults are exercised over real Modbus in test_wire_*.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from pumpsim.errors import FaultParameterError, UnknownFaultError, UnknownUnitError
from pumpsim.harness import Fault, Simulator
from pumpsim.registers import AlarmFlag, CmdResult, Command, State, WarningFlag

from .helpers import Controller, state_of

CONDITIONS = {
    Fault.OCCLUSION_DOWNSTREAM: AlarmFlag.OCCLUSION_DOWNSTREAM,
    Fault.OCCLUSION_UPSTREAM: AlarmFlag.OCCLUSION_UPSTREAM,
    Fault.AIR_IN_LINE: AlarmFlag.AIR_IN_LINE,
    Fault.DOOR_OPEN: AlarmFlag.DOOR_OPEN,
    Fault.SYSTEM_FAULT: AlarmFlag.SYSTEM_FAULT,
    Fault.BATTERY_DEPLETED: AlarmFlag.BATTERY_DEPLETED,
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # No wire at all: the Python API alone, as the model lives in the caller's loop.
    async with Simulator(pumps=2, tcp=False, time_scale=1.0) as simulator:
        yield simulator


def start_infusion(sim: Simulator, unit: int = 1) -> Controller:
    ctl = Controller(sim.pump(unit))
    ctl.program()
    assert ctl.command(Command.START) == CmdResult.OK
    return ctl


@pytest.mark.parametrize(("fault", "flag"), list(CONDITIONS.items()), ids=lambda v: str(v))
async def test_condition_alarms_a_running_pump_and_latches(
    sim: Simulator, fault: Fault, flag: AlarmFlag
) -> None:
    ctl = start_infusion(sim)
    sim.inject(1, fault, on=True)
    pump = sim.pump(1)
    assert state_of(pump) is State.ALARM
    assert pump.rate_actual_centi_ml_h == 0
    assert pump.alarm_flags == flag
    assert ctl.command(Command.ACK_ALARM) == CmdResult.REJECTED_ALARM
    sim.inject(1, fault, on=False)
    assert sim.pump(1).alarm_flags == flag  # latched after the condition is gone
    assert ctl.command(Command.ACK_ALARM) == CmdResult.OK
    assert not sim.pump(1).alarm_flags
    assert state_of(sim.pump(2)) is State.IDLE  # the other pump is untouched


@pytest.mark.parametrize(("fault", "flag"), list(CONDITIONS.items()), ids=lambda v: str(v))
async def test_condition_in_idle_is_reported_and_blocks_start(
    sim: Simulator, fault: Fault, flag: AlarmFlag
) -> None:
    sim.inject(1, fault, on=True)
    pump = sim.pump(1)
    assert state_of(pump) is State.IDLE
    assert pump.alarm_flags == flag
    ctl = Controller(pump)
    ctl.program()
    assert ctl.command(Command.START) == CmdResult.REJECTED_ALARM


async def test_second_condition_during_alarm_joins_the_latch(sim: Simulator) -> None:
    start_infusion(sim)
    sim.inject(1, Fault.DOOR_OPEN)
    sim.inject(1, Fault.AIR_IN_LINE)
    assert sim.pump(1).alarm_flags == AlarmFlag.DOOR_OPEN | AlarmFlag.AIR_IN_LINE


async def test_battery_faults_show_in_percent_and_flags(sim: Simulator) -> None:
    sim.inject(1, Fault.LOW_BATTERY)
    pump = sim.pump(1)
    assert pump.battery_percent <= 15
    assert WarningFlag.LOW_BATTERY in pump.warning_flags
    assert state_of(pump) is State.IDLE  # a warning, not an alarm
    sim.inject(1, Fault.LOW_BATTERY, on=False)
    assert sim.pump(1).battery_percent == 100
    sim.inject(1, Fault.BATTERY_DEPLETED)
    assert sim.pump(1).battery_percent == 0


async def test_runaway_delivers_factor_times_setpoint_and_reports_it(sim: Simulator) -> None:
    start_infusion(sim)  # 150 mL/h
    sim.inject(1, Fault.RUNAWAY, factor=Decimal("1.5"))
    pump = sim.pump(1)
    assert pump.rate_actual_centi_ml_h == 22_500
    assert pump.input_registers()[6:8] == [0, 22_500]
    assert pump.rate_setpoint_centi_ml_h == 15_000
    sim.inject(1, Fault.RUNAWAY, on=False)
    assert sim.pump(1).rate_actual_centi_ml_h == 15_000


async def test_stuck_volume_freezes_the_counter_not_the_fluid(sim: Simulator) -> None:
    pump = sim.pump(1)
    start_infusion(sim)
    sim.inject(1, Fault.STUCK_VOLUME)
    counter = pump.volume_infused_ul
    true_before = pump.true_infused_ul
    pump.advance(3600)  # the model's own time runs ahead of the clock here
    assert pump.volume_infused_ul == counter
    assert pump.true_infused_ul > true_before
    assert state_of(pump) is State.INFUSING  # it cannot see VTBI coming


async def test_ignore_commands_means_no_execution_and_no_echo(sim: Simulator) -> None:
    pump = sim.pump(1)
    Controller(pump).program()
    sim.inject(1, Fault.IGNORE_COMMANDS)
    assert pump.write_holding(112, [1, Command.START]) is None
    assert state_of(pump) is State.IDLE
    assert pump.last_cmd_seq == 0
    assert pump.commands_ignored == 1
    assert sim.command_log() == []
    sim.inject(1, Fault.IGNORE_COMMANDS, on=False)
    taken = pump.write_holding(112, [1, Command.START])  # the controller's retry, same seq
    assert taken is not None
    assert state_of(pump) is State.INFUSING


async def test_reboot_resets_the_pump_but_not_the_faults(sim: Simulator) -> None:
    ctl = start_infusion(sim)
    sim.pump(1).advance(600)
    sim.inject(1, Fault.DOOR_OPEN)
    sim.reboot(1)
    pump = sim.pump(1)
    assert state_of(pump) is State.IDLE
    assert pump.volume_infused_ul == 0
    assert pump.volume_primed_ul == 0
    assert pump.uptime_s == 0
    assert pump.last_cmd_seq == 0
    assert pump.rate_setpoint_centi_ml_h == 0
    assert pump.alarm_flags == AlarmFlag.DOOR_OPEN  # the door is still open
    assert ctl.model is pump


async def test_wire_faults_are_recorded_per_unit(sim: Simulator) -> None:
    sim.inject(2, Fault.LATENCY, ms=40)
    sim.inject(2, Fault.DROP_LINK)
    sim.inject(2, Fault.CORRUPT_RTU, count=3)
    wire = sim.wire_faults(2)
    assert (wire.latency_ms, wire.drop, wire.corrupt, wire.corrupt_remaining) == (40, True, True, 3)
    assert sim.wire_faults(1).latency_ms == 0
    sim.inject(2, Fault.LATENCY, on=False)
    sim.inject(2, Fault.CORRUPT_RTU, on=False)
    assert (wire.latency_ms, wire.corrupt) == (0, False)


@pytest.mark.parametrize(
    ("fault", "on", "params", "error"),
    [
        ("no-such-fault", True, {}, UnknownFaultError),
        (Fault.RUNAWAY, True, {}, FaultParameterError),
        (Fault.RUNAWAY, True, {"factor": 0}, FaultParameterError),
        (Fault.RUNAWAY, True, {"factor": "abc"}, FaultParameterError),
        (Fault.RUNAWAY, True, {"factor": 101}, FaultParameterError),
        (Fault.RUNAWAY, False, {"factor": 2}, FaultParameterError),
        (Fault.LATENCY, True, {}, FaultParameterError),
        (Fault.LATENCY, True, {"ms": 0}, FaultParameterError),
        (Fault.LATENCY, True, {"ms": 60_001}, FaultParameterError),
        (Fault.CORRUPT_RTU, True, {"probability": 0.0}, FaultParameterError),
        (Fault.CORRUPT_RTU, True, {"probability": 1.5}, FaultParameterError),
        (Fault.CORRUPT_RTU, True, {"count": 0}, FaultParameterError),
        (Fault.CORRUPT_RTU, True, {"count": 1, "probability": 0.5}, FaultParameterError),
        (Fault.DOOR_OPEN, True, {"ms": 5}, FaultParameterError),
    ],
)
async def test_bad_fault_requests_are_refused_and_change_nothing(
    sim: Simulator, fault: str, on: bool, params: dict[str, object], error: type[Exception]
) -> None:
    before = sim.status(1)
    with pytest.raises(error):
        sim.inject(1, fault, on, **params)  # type: ignore[arg-type]
    after = sim.status(1)
    for key in ("faults", "wire", "state", "alarm_flags"):
        assert after[key] == before[key]


async def test_unknown_unit_is_a_typed_error(sim: Simulator) -> None:
    with pytest.raises(UnknownUnitError):
        sim.inject(3, Fault.DOOR_OPEN)
    with pytest.raises(UnknownUnitError):
        sim.pump(0)
