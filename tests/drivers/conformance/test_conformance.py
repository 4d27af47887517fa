"""The driver contract, case by case, over every backend and its simulator.

Each case goes through the public `PumpDriver` interface only and runs on every entry of
`backends.BACKENDS` (GIP-MB1 over TCP, GIP-MB1 over RTU on a pty, New Era on a serial pty,
the DULCO flex register-map profile over RTU on a pty). Where a pump kind cannot do
something, the case asserts that the driver says so (an absent reading, a refused
setpoint, a refused command); nothing is skipped for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from pumpd.controller import CheckpointAccounting
from pumpd.controller.checkpoint import PumpRecord
from pumpd.controller.translate import to_snapshot
from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandRejected,
    CommandResult,
    CommandUncertain,
    InvalidProgram,
    PumpDriver,
    PumpState,
    PumpStatus,
    PumpUnreachable,
    WarningFlag,
    command_repeating,
)
from pumpd.drivers.regmap_driver import PumpUnfit
from safety.pump import restart_evidence

from .backends import FaultCase, Rig, Surface, program

REFUSED_IN_ALARM = {CommandResult.REJECTED_ALARM, CommandResult.REJECTED_STATE}


async def wait_for(
    driver: PumpDriver,
    predicate: Callable[[PumpStatus], bool],
    what: str,
    within_s: float = 10.0,
) -> PumpStatus:
    """Read until ``predicate`` holds; fail naming the last status seen."""
    deadline = time.monotonic() + within_s
    status = await driver.read_status()
    while not predicate(status):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within_s} s; last status {status}")
        await asyncio.sleep(0.02)
        status = await driver.read_status()
    return status


async def read_when_back(driver: PumpDriver, within_s: float = 15.0) -> PumpStatus:
    """The first status the pump answers once the link works again."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await driver.read_status()
        except PumpUnreachable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def infuse(driver: PumpDriver, rate_ml_h: str = "60", vtbi_ul: int = 50_000) -> None:
    await driver.write_program(program(rate_ml_h, vtbi_ul))
    outcome = await driver.command(Command.START)
    assert outcome.status.state is PumpState.INFUSING


# ---------------------------------------------------------------- what it reports


async def test_a_pump_driver_reports_what_it_cannot_measure_as_absent(
    rig: Rig, pump: PumpDriver
) -> None:
    assert isinstance(pump, PumpDriver)
    status = await pump.read_status()
    assert status.state is PumpState.IDLE
    assert status.alarms is AlarmFlag.NONE
    can = rig.abilities
    assert (status.pressure_downstream_mmhg is not None) is can.reports_pressure
    assert (status.battery_percent is not None) is can.reports_battery
    assert (status.heartbeat_echo is not None) is can.heartbeat_echo
    assert (status.max_rate_ml_h is not None) is can.reports_max_rate


async def test_a_declared_capability_record_matches_the_wire(rig: Rig, pump: PumpDriver) -> None:
    """The driver's own record of what it can do says what this suite finds on the wire."""
    record = getattr(pump, "capabilities", None)
    if record is None:
        pytest.skip("the drivers of this tree declare no capability record")
    can = rig.abilities
    assert record.reports_pressure is can.reports_pressure
    assert record.reports_battery is can.reports_battery
    assert record.kvo is can.kvo
    assert record.priming is can.priming
    assert record.pump_vtbi_stop is can.pump_vtbi_stop
    assert (record.watchdog is not None) is can.watchdog
    assert (str(record.confirmation) == "sequence-echo") is can.sequence_echo
    assert (str(record.max_rate_source) == "register") is can.reports_max_rate
    # The restart evidence declared is the one the pump gives, and no other is invented.
    status = await pump.read_status()
    assert (status.uptime_s is not None) is (record.restart_evidence == "uptime-register")
    assert (status.switch_on_count is not None) is (record.restart_evidence == "switch-on-counter")
    for fault in rig.faults:
        # An error bit the pump's documentation names nothing for is still an alarm
        # (UNKNOWN), but no detector the record could declare.
        if fault.surface is Surface.ALARM and fault.flag is not AlarmFlag.UNKNOWN:
            assert isinstance(fault.flag, AlarmFlag)
            declared = {a if isinstance(a, str) else a.name for a in record.detected_alarms}
            assert fault.flag.name in declared, fault


# ---------------------------------------------------------------- program


async def test_a_program_is_written_and_read_back(rig: Rig, pump: PumpDriver) -> None:
    wanted = program("12.5", 5_000)
    assert await pump.write_program(wanted) == wanted
    # The simulator's own view; a pump with no VTBI of its own holds none (the driver does).
    vtbi_ul = 5_000 if rig.abilities.pump_vtbi_stop else None
    assert rig.held_setpoints() == (Decimal("12.5"), vtbi_ul)


async def test_an_unrepresentable_value_is_refused_before_anything_is_written(
    rig: Rig, pump: PumpDriver
) -> None:
    await pump.write_program(program("12.5", 5_000))
    held = rig.held_setpoints()
    bad, field = rig.unrepresentable()
    with pytest.raises(InvalidProgram) as refused:
        await pump.write_program(bad)
    assert refused.value.field == field
    assert rig.held_setpoints() == held


async def test_kvo_is_held_or_refused_by_name(rig: Rig, pump: PumpDriver) -> None:
    with_kvo = program("12.5", 5_000, kvo_rate_ml_h="1")
    if rig.abilities.kvo:
        assert await pump.write_program(with_kvo) == with_kvo
        return
    await pump.write_program(program("12.5", 5_000))
    held = rig.held_setpoints()
    with pytest.raises(InvalidProgram) as refused:
        await pump.write_program(with_kvo)
    assert refused.value.field == "kvo_rate_ml_h"
    assert rig.held_setpoints() == held


# ---------------------------------------------------------------- commands


async def test_each_command_and_its_confirmation(rig: Rig, pump: PumpDriver) -> None:
    await pump.write_program(program("60", 50_000))
    started = await pump.command(Command.START)
    assert started.result is CommandResult.OK
    assert started.status.state is PumpState.INFUSING
    assert started.status.rate_actual_ml_h == Decimal(60)
    if rig.abilities.sequence_echo:
        assert started.status.last_cmd_seq == started.cmd_seq  # the pump's echo confirmed it
    else:
        assert started.status.last_cmd_seq == 0  # no echo: confirmed by the state read back

    paused = await pump.command(Command.PAUSE)
    assert paused.status.state is PumpState.PAUSED
    assert paused.status.rate_actual_ml_h == 0
    with pytest.raises(CommandRejected) as again:
        await pump.command(Command.PAUSE)
    assert again.value.result is CommandResult.REJECTED_STATE
    assert again.value.status.state is PumpState.PAUSED

    resumed = await pump.command(Command.START)
    assert resumed.status.state is PumpState.INFUSING
    stopped = await command_repeating(pump, Command.STOP)
    assert stopped.status.state is PumpState.IDLE
    assert stopped.attempts == 1
    # STOP is repeatable: on a stopped pump it confirms the stop again.
    assert (await pump.command(Command.STOP)).status.state is PumpState.IDLE
    cleared = await pump.command(Command.CLEAR_VOLUMES)
    assert (cleared.status.volume_infused_ul, cleared.status.volume_primed_ul) == (0, 0)


async def test_start_is_refused_when_the_pump_is_not_ready(pump: PumpDriver) -> None:
    await infuse(pump)
    with pytest.raises(CommandRejected) as refused:
        await pump.command(Command.CLEAR_VOLUMES)  # not while it runs
    assert refused.value.result is CommandResult.REJECTED_STATE
    assert refused.value.status.state is PumpState.INFUSING
    await pump.command(Command.STOP)


async def test_a_prime_is_a_bounded_run_or_refused(rig: Rig, pump: PumpDriver) -> None:
    await pump.write_program(program("60", 5_000))
    with pytest.raises(CommandRejected) as no_setpoints:
        await pump.command(Command.PRIME)  # a prime of 0 µL is no prime
    assert no_setpoints.value.result in (
        CommandResult.REJECTED_PARAMS,
        CommandResult.UNKNOWN_COMMAND,
    )
    primed = program("60", 5_000, prime_volume_ul=1_000, prime_rate_ml_h="600")
    await pump.write_program(primed)
    if not rig.abilities.priming:
        with pytest.raises(CommandRejected) as cannot:
            await pump.command(Command.PRIME)
        assert cannot.value.result is CommandResult.UNKNOWN_COMMAND
        assert cannot.value.status.state is PumpState.IDLE  # nothing ran
        return
    outcome = await pump.command(Command.PRIME)
    assert outcome.status.state in (PumpState.PRIMING, PumpState.IDLE)
    done = await wait_for(pump, lambda s: s.state is PumpState.IDLE, "the prime's end")
    assert done.volume_primed_ul == 1_000  # the pump stopped itself at the prime's volume
    assert done.volume_infused_ul == 0  # a prime is never counted as given to the patient


async def test_the_pump_stops_itself_at_the_vtbi_or_runs_on(rig: Rig, pump: PumpDriver) -> None:
    """A pump without its own VTBI stop runs past the volume unless its driver writes the
    stop at the programmed volume; pumpd's stop is then the primary one (or the backstop),
    and this case shows that it must be."""
    await infuse(pump, "600", 1_000)  # 1 mL at 600 mL/h: 6 s simulated, 0.1 s of wall
    if rig.abilities.driver_vtbi_stop:
        done = await wait_for(pump, lambda s: s.state is not PumpState.INFUSING, "the stop")
        assert done.state is PumpState.IDLE
        # Stopped by the driver's write, so a little past the volume (the line's latency
        # times the time scale), never short of it.
        assert done.volume_infused_ul >= 1_000
        assert WarningFlag.VTBI_COMPLETE in done.warnings
        return
    if rig.abilities.pump_vtbi_stop:
        done = await wait_for(pump, lambda s: s.state is not PumpState.INFUSING, "the VTBI")
        assert done.state is PumpState.IDLE
        assert done.volume_infused_ul == 1_000
        assert WarningFlag.VTBI_COMPLETE in done.warnings
        return
    past = await wait_for(pump, lambda s: s.volume_infused_ul > 1_000, "the volume passed")
    assert past.state is PumpState.INFUSING
    await pump.command(Command.STOP)


# ---------------------------------------------------------------- faults


def test_the_fault_table_covers_the_simulators_catalogue(backend: type[Rig]) -> None:
    """A fault added to a simulator without a conformance case fails here."""
    named = [f.name for f in backend.faults]
    assert len(named) == len(set(named))
    assert not set(named) & backend.other_wires
    assert set(named) | backend.other_wires == backend.catalogue()


async def test_each_fault_surfaces_as_its_table_says(
    rig: Rig, pump: PumpDriver, fault: FaultCase
) -> None:
    check = _SURFACE_CHECKS[fault.surface]
    await check(rig, pump, fault)


async def _alarm(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    assert isinstance(fault.flag, AlarmFlag)
    await infuse(pump)
    rig.inject(fault, True)
    status = await wait_for(pump, lambda s: s.state is PumpState.ALARM, f"ALARM on {fault.name}")
    assert fault.flag in status.alarms
    assert status.rate_actual_ml_h == 0
    with pytest.raises(CommandRejected) as refused:
        await pump.command(Command.START)
    assert refused.value.result in REFUSED_IN_ALARM
    rig.inject(fault, False)
    assert fault.flag in (await pump.read_status()).alarms  # latched after the cause went
    # The STOP pumpd sends in answer is confirmed, never refused, and nothing flows.
    stopped = await pump.command(Command.STOP)
    assert stopped.status.state in (PumpState.ALARM, PumpState.IDLE)
    assert stopped.status.rate_actual_ml_h == 0
    acked = await pump.command(Command.ACK_ALARM)
    assert acked.status.state is PumpState.IDLE
    assert acked.status.alarms is AlarmFlag.NONE


async def _warning(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    assert isinstance(fault.flag, WarningFlag)
    flag = fault.flag
    await infuse(pump)
    rig.inject(fault, True)
    status = await wait_for(pump, lambda s: flag in s.warnings, f"warning {flag}")
    assert status.state is PumpState.INFUSING
    assert status.alarms is AlarmFlag.NONE


async def _rate(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    await infuse(pump, "60")
    rig.inject(fault, True)
    status = await pump.read_status()
    assert status.state is PumpState.INFUSING
    assert status.rate_actual_ml_h == Decimal(90)  # 1.5 x the setpoint, reported as measured


async def _stuck_volume(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    await infuse(pump, "600")
    moving = await wait_for(pump, lambda s: s.volume_infused_ul > 0, "volume counting")
    rig.inject(fault, True)
    stuck = await pump.read_status()
    await asyncio.sleep(0.3)  # 600 mL/h at x60 would add about 3 000 µL meanwhile
    later = await pump.read_status()
    assert later.volume_infused_ul == stuck.volume_infused_ul >= moving.volume_infused_ul
    assert later.state is PumpState.INFUSING


async def _uncertain(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    await pump.write_program(program("60", 5_000))
    rig.inject(fault, True)
    with pytest.raises(CommandUncertain):
        await pump.command(Command.START, timeout_s=0.6)
    rig.inject(fault, False)
    status = await read_when_back(pump)
    assert status.state is PumpState.IDLE  # it never ran; "uncertain" was the honest answer


async def _unreachable(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    before = await pump.read_status()
    rig.inject(fault, True)
    for _ in range(1 if fault.once else 3):
        with pytest.raises(PumpUnreachable):
            await pump.read_status()
    rig.inject(fault, False)
    after = await read_when_back(pump)
    assert after.state is before.state
    assert after.serial_number == before.serial_number
    assert restart_evidence(to_snapshot(before), to_snapshot(after)) is None  # no restart


async def _right_or_unreachable(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    """A second master or noise on the line: some replies survive, some do not; never one
    of another pump, never garbage taken for a value."""
    await infuse(pump, "12.34")
    truth = await pump.read_status()
    rig.inject(fault, True)
    for _ in range(15):
        try:
            status = await pump.read_status()
        except PumpUnreachable:
            continue
        assert status.serial_number == truth.serial_number
        assert status.state is PumpState.INFUSING
        assert status.rate_actual_ml_h == Decimal("12.34")
    rig.inject(fault, False)
    assert (await read_when_back(pump)).state is PumpState.INFUSING


def _up(status: PumpStatus) -> bool:
    """Delivering, and up long enough that a restart shows in an uptime that has one."""
    return status.volume_infused_ul > 0 and (status.uptime_s is None or status.uptime_s >= 1)


async def _restart(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    await infuse(pump, "600")
    before = await wait_for(pump, _up, "uptime and volume")
    rig.inject(fault, True)
    after = await read_when_back(pump)
    # The kernel's own rule sees it, on the evidence this pump kind gives.
    assert restart_evidence(to_snapshot(before), to_snapshot(after)) is not None
    if rig.abilities.volume_kept_over_power_loss:
        assert after.volume_infused_ul >= before.volume_infused_ul  # never went back
    else:
        assert after.volume_infused_ul == 0
    assert after.volume_primed_ul == 0
    assert after.state in (PumpState.IDLE, PumpState.ALARM)
    assert after.rate_actual_ml_h == 0


async def _unfit(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    """Set at the pump's keypad while it runs: the next connect stops it first, then
    refuses it by name; nothing runs."""
    await infuse(pump)
    rig.inject(fault, True)
    again = rig.driver()
    try:
        with pytest.raises(PumpUnfit):
            await again.connect()
    finally:
        await again.close()
    rig.inject(fault, False)
    status = await pump.read_status()
    assert status.state is PumpState.IDLE
    assert status.rate_actual_ml_h == 0


async def _forced(rig: Rig, pump: PumpDriver, fault: FaultCase) -> None:
    """A setting that would restart delivery by itself is put back at connect."""
    rig.inject(fault, True)
    again = rig.driver()
    await again.connect()
    try:
        await infuse(again)
        power_loss = next(f for f in rig.faults if f.surface is Surface.RESTART)
        rig.inject(power_loss, True)
        after = await read_when_back(again)
        assert after.state is PumpState.IDLE
        assert after.rate_actual_ml_h == 0
    finally:
        await again.close()


_SURFACE_CHECKS = {
    Surface.ALARM: _alarm,
    Surface.WARNING: _warning,
    Surface.RATE: _rate,
    Surface.STUCK_VOLUME: _stuck_volume,
    Surface.UNCERTAIN: _uncertain,
    Surface.UNREACHABLE: _unreachable,
    Surface.RIGHT_OR_UNREACHABLE: _right_or_unreachable,
    Surface.RESTART: _restart,
    Surface.UNFIT: _unfit,
    Surface.FORCED: _forced,
}


# ---------------------------------------------------------------- the link


async def test_a_pump_that_is_not_there_is_unreachable(rig: Rig) -> None:
    driver = rig.absent_driver()
    try:
        with pytest.raises(PumpUnreachable):
            await driver.connect()
    finally:
        await driver.close()


async def test_the_link_cut_and_back_reconnects(rig: Rig, pump: PumpDriver) -> None:
    await infuse(pump)
    before = await pump.read_status()
    rig.cut_link(True)
    for _ in range(3):
        with pytest.raises(PumpUnreachable):
            await pump.read_status()
    rig.cut_link(False)
    after = await read_when_back(pump)
    # The pump ran on by itself (its watchdog is longer than the cut); the driver reports
    # it as it is now, with a counter that never went back.
    assert after.state is PumpState.INFUSING
    assert after.volume_infused_ul >= before.volume_infused_ul
    await pump.command(Command.STOP)


async def test_the_pumps_watchdog_stops_a_quiet_link(rig: Rig, pump: PumpDriver) -> None:
    if not rig.abilities.watchdog:
        with pytest.raises(InvalidProgram):
            await pump.set_heartbeat_timeout(rig.watchdog_arm_s)
        return
    await pump.set_heartbeat_timeout(rig.watchdog_arm_s)  # about one wall second
    await infuse(pump)
    await asyncio.sleep(rig.watchdog_wall_s + 0.6)  # no request at all: the pump is alone
    status = await pump.read_status()
    assert status.state is PumpState.ALARM
    assert AlarmFlag.COMM_LOSS in status.alarms
    assert status.rate_actual_ml_h == 0
    assert (await pump.command(Command.ACK_ALARM)).status.state is PumpState.IDLE


async def test_heartbeats_keep_the_watchdog_quiet(rig: Rig, pump: PumpDriver) -> None:
    if not rig.abilities.watchdog:
        with pytest.raises(InvalidProgram):  # nothing to keep quiet: the driver says so
            await pump.set_heartbeat_timeout(rig.watchdog_arm_s)
        return
    await pump.set_heartbeat_timeout(rig.watchdog_arm_s)
    await infuse(pump)
    for _ in range(round(rig.watchdog_wall_s * 12)):  # more than twice the watchdog
        await asyncio.sleep(0.2)
        await pump.heartbeat()
    assert (await pump.read_status()).state is PumpState.INFUSING
    with pytest.raises(InvalidProgram):
        await pump.set_heartbeat_timeout(-1)


# ---------------------------------------------------------------- a restart of pumpd


def _power_loss(rig: Rig) -> FaultCase:
    (case,) = [f for f in rig.faults if f.surface is Surface.RESTART]
    return case


async def _reconnected(rig: Rig, pump: PumpDriver) -> tuple[PumpStatus, CheckpointAccounting]:
    """pumpd's life ended mid-infusion: the checkpoint's pump figures, and the driver gone."""
    await infuse(pump, "600")
    before = await wait_for(pump, _up, "uptime and volume")
    record = CheckpointAccounting(None, PumpRecord.of(before))
    record = CheckpointAccounting.from_dict(record.as_dict())  # as the audit keeps it
    await pump.close()
    return before, record


async def test_a_new_driver_on_a_pump_that_kept_running_sees_no_restart(
    rig: Rig, pump: PumpDriver
) -> None:
    """A restart of pumpd is a new driver and a new connect: nothing the pump proves
    changed, so the checkpoint's figures show no restart of the pump."""
    before, record = await _reconnected(rig, pump)
    await asyncio.sleep(0.2)
    again = rig.driver()
    await again.connect()
    try:
        after = await again.read_status()
        assert record.restart_evidence(after) is None
        assert record.pump_lost(after) == (False, False)
        assert after.volume_infused_ul >= before.volume_infused_ul
    finally:
        await again.close()


async def test_a_pump_power_cycled_while_pumpd_was_down_is_a_restart(
    rig: Rig, pump: PumpDriver
) -> None:
    """The same new driver, after a power loss nobody watched: the pump's own evidence
    (uptime, switch-on count, reset alarm) shows it against the checkpoint."""
    _, record = await _reconnected(rig, pump)
    rig.inject(_power_loss(rig), True)
    await asyncio.sleep(0.1)
    again = rig.driver()
    await again.connect()
    try:
        after = await again.read_status()
        assert record.restart_evidence(after) is not None
        assert record.pump_lost(after) == (True, True)
    finally:
        await again.close()
