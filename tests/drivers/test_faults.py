"""Every simulator fault as the driver sees it, over real Modbus TCP (RTU-only faults in
test_rtu.py). Wire timeouts are kept short so the suite stays quick; the margins against
the simulator's injected delays are wide because the machine is shared.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandResult,
    CommandUncertain,
    PumpState,
    PumpStatus,
    PumpUnreachable,
    WarningFlag,
)
from pumpd.drivers.modbus import ModbusPumpDriver
from pumpd.drivers.profile import load_profile, parse_profile

from .conftest import program, tcp_config, wait_for, wait_state


async def _start_infusion(drv: ModbusPumpDriver, rate_ml_h: str = "1.00") -> None:
    await drv.write_program(program(rate_ml_h=rate_ml_h))
    await drv.command(Command.START)


async def read_when_back(drv: ModbusPumpDriver, within_s: float = 15.0) -> PumpStatus:
    """The first status the pump answers once the link works again."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await drv.read_status()
        except PumpUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("fault", "flag"),
    [
        (Fault.OCCLUSION_DOWNSTREAM, AlarmFlag.OCCLUSION_DOWNSTREAM),
        (Fault.OCCLUSION_UPSTREAM, AlarmFlag.OCCLUSION_UPSTREAM),
        (Fault.AIR_IN_LINE, AlarmFlag.AIR_IN_LINE),
        (Fault.DOOR_OPEN, AlarmFlag.DOOR_OPEN),
        (Fault.SYSTEM_FAULT, AlarmFlag.SYSTEM_FAULT),
        (Fault.BATTERY_DEPLETED, AlarmFlag.BATTERY_DEPLETED),
    ],
    ids=str,
)
async def test_alarm_condition_decoded(sim_tcp: Simulator, fault: Fault, flag: AlarmFlag) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        idle = await drv.read_status()
        assert idle.alarms is AlarmFlag.NONE
        await _start_infusion(drv)
        sim_tcp.inject(1, fault, on=True)
        status = await wait_state(drv, PumpState.ALARM)
        assert status.alarms == flag
        assert status.rate_actual_ml_h == 0
        # Latched: the flag stays after the condition is gone, until ACK_ALARM.
        sim_tcp.inject(1, fault, on=False)
        assert (await drv.read_status()).alarms == flag
        outcome = await drv.command(Command.ACK_ALARM)
        assert outcome.status.state is PumpState.IDLE
        assert outcome.status.alarms is AlarmFlag.NONE


async def test_occlusion_raises_downstream_pressure(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        before = await drv.read_status()
        await _start_infusion(drv)
        sim_tcp.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        after = await wait_for(
            drv, lambda s: s.pressure_downstream_mmhg > before.pressure_downstream_mmhg
        )
        assert after.alarms & AlarmFlag.OCCLUSION_DOWNSTREAM


async def test_low_battery_is_a_warning_not_an_alarm(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _start_infusion(drv)
        sim_tcp.inject(1, Fault.LOW_BATTERY, on=True)
        status = await wait_for(drv, lambda s: bool(s.warnings & WarningFlag.LOW_BATTERY))
        assert status.state is PumpState.INFUSING
        assert status.alarms is AlarmFlag.NONE


async def test_runaway_visible_in_rate_actual(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _start_infusion(drv, rate_ml_h="100.00")
        assert (await drv.read_status()).rate_actual_ml_h == Decimal("100.00")
        sim_tcp.inject(1, Fault.RUNAWAY, on=True, factor="1.5")
        status = await drv.read_status()
        assert status.rate_actual_ml_h == Decimal("150.00")
        assert status.state is PumpState.INFUSING


async def test_stuck_volume_counter(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _start_infusion(drv, rate_ml_h="600.00")
        moving = await wait_for(drv, lambda s: s.volume_infused_ul > 0)
        sim_tcp.inject(1, Fault.STUCK_VOLUME, on=True)
        stuck = await drv.read_status()
        await asyncio.sleep(0.3)  # 600 mL/h at scale 60 would add ~3000 µL meanwhile
        later = await drv.read_status()
        assert later.volume_infused_ul == stuck.volume_infused_ul >= moving.volume_infused_ul
        assert later.rate_actual_ml_h == Decimal("600.00")


async def test_ignored_command_is_uncertain(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program())
        sim_tcp.inject(1, Fault.IGNORE_COMMANDS, on=True)
        with pytest.raises(CommandUncertain) as caught:
            await drv.command(Command.START, timeout_s=0.3)
        assert "still echoes seq" in caught.value.reason
        assert sim_tcp.command_log(1) == []
        assert (await drv.read_status()).state is PumpState.IDLE


async def test_drop_link_is_unreachable_then_reconnects(sim_tcp: Simulator) -> None:
    config = tcp_config(sim_tcp, timeout_s=0.2, reconnect_delay_max_s=1.0)
    async with ModbusPumpDriver(config) as drv:
        await _start_infusion(drv)
        sim_tcp.inject(1, Fault.DROP_LINK, on=True)
        # Sent while the socket is still up: the write goes out and nothing comes back.
        with pytest.raises(CommandUncertain):
            await drv.command(Command.PAUSE, timeout_s=0.3)
        for _ in range(6):  # enough timeouts for pymodbus to close and redial the socket
            with pytest.raises(PumpUnreachable):
                await drv.read_status()
        sim_tcp.inject(1, Fault.DROP_LINK, on=False)
        status = await read_when_back(drv)
        # The PAUSE never reached the pump: the drop discards requests.
        assert status.state is PumpState.INFUSING
        assert sim_tcp.pump(1).snapshot()["state"] == "INFUSING"


async def test_latency_within_timeout_is_transparent(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp, timeout_s=1.5)) as drv:
        sim_tcp.inject(1, Fault.LATENCY, on=True, ms=100)
        started = time.monotonic()
        await drv.read_status()
        assert time.monotonic() - started >= 0.1
        await drv.write_program(program())
        outcome = await drv.command(Command.START)
        assert outcome.result is CommandResult.OK


async def test_latency_beyond_timeout_makes_command_uncertain(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp, timeout_s=0.2)) as drv:
        await drv.write_program(program())
        sim_tcp.inject(1, Fault.LATENCY, on=True, ms=600)
        with pytest.raises(PumpUnreachable):
            await drv.read_status()
        with pytest.raises(CommandUncertain) as caught:
            await drv.command(Command.START, timeout_s=0.8)
        sim_tcp.inject(1, Fault.LATENCY, on=False)
        # The pump did act: only its replies were late. Uncertain was the honest answer.
        status = await read_when_back(drv)
        assert status.state is PumpState.INFUSING
        assert status.last_cmd_seq == caught.value.cmd_seq


async def test_reboot_shows_as_uptime_drop_and_zero_volumes(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _start_infusion(drv, rate_ml_h="600.00")
        before = await wait_for(drv, lambda s: s.uptime_s >= 3 and s.volume_infused_ul > 0)
        sim_tcp.reboot(1)
        after = await drv.read_status()
        assert after.uptime_s < before.uptime_s
        assert (after.volume_infused_ul, after.volume_primed_ul) == (0, 0)
        assert after.state is PumpState.IDLE
        assert after.last_cmd_seq == 0
        # The driver keeps its own sequence; the rebooted pump takes the next command.
        await drv.write_program(program())
        outcome = await drv.command(Command.START)
        assert outcome.status.state is PumpState.INFUSING


async def test_heartbeat_changes_register_and_is_echoed(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        first = await drv.heartbeat()
        assert (await drv.read_status()).heartbeat_echo == first
        second = await drv.heartbeat()
        assert second != first
        assert (await drv.read_status()).heartbeat_echo == second


async def test_heartbeat_failsafe_latches_comm_loss(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.set_heartbeat_timeout(2)  # 2 s of pump time = 33 ms at scale 60
        await _start_infusion(drv)
        status = await wait_state(drv, PumpState.ALARM)
        assert status.alarms == AlarmFlag.COMM_LOSS
        # COMM_LOSS is latched only: it does not block ACK_ALARM.
        outcome = await drv.command(Command.ACK_ALARM)
        assert outcome.status.state is PumpState.IDLE


async def test_regular_heartbeat_keeps_infusion_running(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.set_heartbeat_timeout(60)  # 1 s of real time at scale 60
        await _start_infusion(drv)
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            await drv.heartbeat()
            await asyncio.sleep(0.02)
        assert (await drv.read_status()).state is PumpState.INFUSING


async def test_alarm_bit_the_profile_does_not_name_still_shows(sim_tcp: Simulator) -> None:
    # A site profile that puts OCCLUSION_DOWNSTREAM on bit 7: the pump's bit 0 is unnamed.
    data = load_profile().model_dump()
    data["alarm_bits"]["OCCLUSION_DOWNSTREAM"] = 7
    async with ModbusPumpDriver(tcp_config(sim_tcp), profile=parse_profile(data)) as drv:
        await _start_infusion(drv)
        sim_tcp.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        status = await wait_state(drv, PumpState.ALARM)
        assert status.alarms == AlarmFlag.UNKNOWN


async def test_late_tcp_reply_never_answers_the_next_request(sim_tcp: Simulator) -> None:
    # On TCP the transaction id does the job of the RTU quiet period: a reply to an
    # earlier request is refused, never returned as the status just asked for.
    async with ModbusPumpDriver(tcp_config(sim_tcp, timeout_s=0.25)) as drv:
        sim_tcp.inject(1, Fault.LATENCY, on=True, ms=300)
        for _ in range(3):
            with pytest.raises(PumpUnreachable):
                await drv.read_status()
        sim_tcp.inject(1, Fault.LATENCY, on=False)
        assert (await read_when_back(drv)).state is PumpState.IDLE
