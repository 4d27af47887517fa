"""The New Era driver against pumpsim's New Era pumps over a real pseudo-terminal.

Several addresses share one line in most tests, as daisy-chained pumps do. Delivery runs
at TIME_SCALE; the Safe-mode watchdog counts wall seconds (never scaled).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandRejected,
    CommandResult,
    InvalidProgram,
    PumpDriver,
    PumpProgram,
    PumpState,
    PumpUnreachable,
    WarningFlag,
)
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver, PumpRefused
from pumpd.drivers.newera_codec import ErrorCode

TIME_SCALE = 60.0


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1,
        tcp=False,
        newera_pumps=3,
        newera_link=str(tmp_path / "newera"),
        time_scale=TIME_SCALE,
    ) as sim:
        yield sim


def config(sim: Simulator, address: int = 1, **overrides: object) -> NewEraConfig:
    assert sim.newera_path is not None
    fields: dict[str, object] = {
        "device": sim.newera_path,
        "address": address,
        "syringe_diameter_mm": Decimal("26.59"),
        "heartbeat_timeout_s": 5,
        "timeout_s": 0.3,
    }
    fields.update(overrides)
    return NewEraConfig.model_validate(fields)


def program(rate: str = "12.5", vtbi_ul: int = 5_000) -> PumpProgram:
    return PumpProgram(
        rate_ml_h=Decimal(rate),
        vtbi_ul=vtbi_ul,
        kvo_rate_ml_h=Decimal(0),
        prime_volume_ul=0,
        prime_rate_ml_h=Decimal(0),
    )


@pytest.fixture
async def pump(sim: Simulator) -> AsyncIterator[NewEraPumpDriver]:
    async with NewEraPumpDriver(config(sim)) as driver:
        yield driver


async def test_is_a_pump_driver_and_reports_what_it_cannot_measure_as_absent(
    pump: NewEraPumpDriver,
) -> None:
    assert isinstance(pump, PumpDriver)
    status = await pump.read_status()
    assert status.state is PumpState.IDLE
    assert status.pressure_downstream_mmhg is None
    assert status.battery_percent is None
    assert status.heartbeat_echo is None
    assert status.max_rate_ml_h is None
    assert status.serial_number is None
    assert pump.model_number == 1000


async def test_connect_arms_safe_mode_and_sets_the_diameter(sim: Simulator) -> None:
    assert sim.newera is not None
    async with NewEraPumpDriver(config(sim, syringe_diameter_mm=Decimal("14.43"))):
        nera = sim.newera.pump(1)
        assert nera.safe_timeout_s == 5
        assert nera.diameter_mm == Decimal("14.43")


async def test_program_is_written_and_read_back(sim: Simulator, pump: NewEraPumpDriver) -> None:
    assert sim.newera is not None
    assert await pump.write_program(program("0.05", 999)) == program("0.05", 999)
    nera = sim.newera.pump(1)
    assert (nera.rate, nera.rate_unit, nera.volume, nera.volume_unit) == (
        Decimal("0.05"),
        "MH",
        Decimal("0.999"),
        "ML",
    )
    assert nera.direction == "INF"


@pytest.mark.parametrize(
    ("prog", "field"),
    [
        (program("1234.56"), "rate_ml_h"),  # 6 digits in every unit: the pump would cut it
        (program("12.5", 12_345), "vtbi_ul"),  # 12.345 mL: the pump would keep 12.34
        (
            PumpProgram(
                rate_ml_h=Decimal(1),
                vtbi_ul=1000,
                kvo_rate_ml_h=Decimal("0.1"),
                prime_volume_ul=0,
                prime_rate_ml_h=Decimal(0),
            ),
            "kvo_rate_ml_h",
        ),
    ],
)
async def test_unrepresentable_setpoints_are_refused_before_anything_is_sent(
    sim: Simulator, pump: NewEraPumpDriver, prog: PumpProgram, field: str
) -> None:
    assert sim.newera is not None
    seen = sim.newera.requests_seen
    with pytest.raises(InvalidProgram) as info:
        await pump.write_program(prog)
    assert info.value.field == field
    assert sim.newera.requests_seen == seen
    assert sim.newera.pump(1).rate == Decimal(1)  # the simulator's initial rate, untouched


async def test_a_rate_above_the_syringes_maximum_is_refused_by_the_pump(
    pump: NewEraPumpDriver,
) -> None:
    with pytest.raises(InvalidProgram, match="out of the pump's range"):
        await pump.write_program(program("9000"))


async def test_start_pause_resume_stop_and_clear(sim: Simulator, pump: NewEraPumpDriver) -> None:
    await pump.write_program(program("60", 5_000))
    started = await pump.command(Command.START)
    assert started.status.state is PumpState.INFUSING
    assert started.status.rate_actual_ml_h == Decimal(60)
    await asyncio.sleep(0.3)  # 18 s simulated at 60 mL/h: about 300 µL
    paused = await pump.command(Command.PAUSE)
    assert paused.status.state is PumpState.PAUSED
    assert paused.status.rate_actual_ml_h == 0
    assert 150 <= paused.status.volume_infused_ul <= 600
    with pytest.raises(CommandRejected) as again:
        await pump.command(Command.PAUSE)
    assert again.value.result is CommandResult.REJECTED_STATE
    resumed = await pump.command(Command.START)
    assert resumed.status.state is PumpState.INFUSING
    stopped = await pump.command(Command.STOP)
    assert stopped.status.state is PumpState.IDLE
    assert (await pump.command(Command.STOP)).status.state is PumpState.IDLE
    cleared = await pump.command(Command.CLEAR_VOLUMES)
    assert cleared.status.volume_infused_ul == 0


async def test_the_pump_stops_itself_at_the_volume(sim: Simulator, pump: NewEraPumpDriver) -> None:
    await pump.write_program(program("600", 1_000))  # 1 mL at 600 mL/h: 6 s simulated
    await pump.command(Command.START)
    await asyncio.sleep(0.3)
    status = await pump.read_status()
    assert status.state is PumpState.IDLE
    assert status.volume_infused_ul == 1_000
    assert WarningFlag.VTBI_COMPLETE in status.warnings


async def test_prime_without_prime_setpoints_is_refused(pump: NewEraPumpDriver) -> None:
    await pump.write_program(program())
    with pytest.raises(CommandRejected) as info:
        await pump.command(Command.PRIME)
    assert info.value.result is CommandResult.REJECTED_PARAMS
    assert (await pump.read_status()).state is PumpState.IDLE


async def test_prime_is_a_bounded_run_kept_out_of_the_infused_volume(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    primed = PumpProgram(
        rate_ml_h=Decimal(60),
        vtbi_ul=2_000,
        kvo_rate_ml_h=Decimal(0),
        prime_volume_ul=1_500,
        prime_rate_ml_h=Decimal(900),
    )
    await pump.write_program(primed)
    outcome = await pump.command(Command.PRIME)
    assert outcome.status.state is PumpState.PRIMING
    # The pump stops itself at the prime's volume: 1.5 mL at 900 mL/h is 6 s simulated.
    for _ in range(50):
        status = await pump.read_status()
        if status.state is PumpState.IDLE:
            break
        await asyncio.sleep(0.02)
    assert status.state is PumpState.IDLE
    assert status.volume_primed_ul == 1_500
    assert status.volume_infused_ul == 0  # the pump's counter holds the prime; pumpd not
    assert sim.newera.pump(1).infused_ul == 1_500
    await pump.write_program(primed)  # as the controller does before every moving command
    await pump.command(Command.START)
    await asyncio.sleep(0.3)
    status = await pump.read_status()
    assert 100 <= status.volume_infused_ul <= 600
    assert status.volume_primed_ul == 1_500
    # The pump's own counter was cleared of the prime at START: a restarted driver, which
    # knows nothing of the prime, reads the infusion alone too.
    assert sim.newera.pump(1).infused_ul < 1_000
    async with NewEraPumpDriver(config(sim)) as restarted:
        again = await restarted.read_status()
    assert 0 <= again.volume_infused_ul - status.volume_infused_ul <= 300
    cleared = await pump.command(Command.STOP)
    assert cleared.status.state is PumpState.IDLE
    cleared = await pump.command(Command.CLEAR_VOLUMES)
    assert (cleared.status.volume_infused_ul, cleared.status.volume_primed_ul) == (0, 0)


async def test_a_prime_paused_halfway_resumes_as_a_prime(pump: NewEraPumpDriver) -> None:
    primed = PumpProgram(
        rate_ml_h=Decimal(60),
        vtbi_ul=2_000,
        kvo_rate_ml_h=Decimal(0),
        prime_volume_ul=5_000,
        prime_rate_ml_h=Decimal(60),
    )
    await pump.write_program(primed)
    await pump.command(Command.PRIME)
    assert (await pump.command(Command.PAUSE)).status.state is PumpState.PAUSED
    assert (await pump.command(Command.START)).status.state is PumpState.PRIMING
    assert (await pump.command(Command.STOP)).status.state is PumpState.IDLE


async def test_the_rate_changes_while_running_but_the_vtbi_does_not(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    assert await pump.write_program(program("90", 5_000)) == program("90", 5_000)
    assert (await pump.read_status()).rate_actual_ml_h == Decimal(90)
    with pytest.raises(InvalidProgram, match="while the pump runs"):
        await pump.write_program(program("90", 4_000))
    assert sim.newera.pump(1).volume == Decimal(5)


async def test_purge_runs_until_stopped(pump: NewEraPumpDriver) -> None:
    assert (await pump.purge()).state is PumpState.PRIMING
    assert (await pump.command(Command.STOP)).status.state is PumpState.IDLE


async def test_stall_is_pushed_at_once_and_latched_as_occlusion(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    pump.alarm_pushed.clear()
    sim.newera.inject(1, "stall")
    await asyncio.wait_for(pump.alarm_pushed.wait(), 1.0)  # no request asked for it
    mark = len(sim.newera.request_log)
    status = await pump.read_status()
    assert status.state is PumpState.ALARM
    assert AlarmFlag.OCCLUSION_DOWNSTREAM in status.alarms
    assert status.rate_actual_ml_h == 0
    # The pump answered DIS with its alarm: that answer is the reading, not asked again
    assert [r.text for r in list(sim.newera.request_log)[mark:]] == ["DIS"]
    # Acknowledged at the pump by that read, the alarm stays latched in the driver
    assert (await pump.read_status()).state is PumpState.ALARM
    with pytest.raises(CommandRejected) as info:
        await pump.command(Command.START)
    assert info.value.result is CommandResult.REJECTED_ALARM
    sim.newera.inject(1, "stall", on=False)
    acked = await pump.command(Command.ACK_ALARM)
    assert acked.status.state is PumpState.IDLE
    assert acked.status.alarms == AlarmFlag.NONE


async def test_a_pushed_stall_is_a_status_at_once_and_the_stop_needs_no_read_first(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    await asyncio.sleep(0.2)
    last = await pump.read_status()
    assert last.state is PumpState.INFUSING
    assert last.rate_actual_ml_h == Decimal(60)
    assert pump.take_pushed_alarm() is None
    pump.alarm_pushed.clear()
    mark = len(sim.newera.request_log)
    sim.newera.inject(1, "stall")
    await asyncio.wait_for(pump.alarm_pushed.wait(), 1.0)
    report = pump.take_pushed_alarm()
    assert report is not None
    assert not report.restarted
    assert report.alarms == AlarmFlag.OCCLUSION_DOWNSTREAM
    assert report.status is not None
    assert report.status.state is PumpState.ALARM
    assert AlarmFlag.OCCLUSION_DOWNSTREAM in report.status.alarms
    assert report.status.rate_actual_ml_h == 0  # the pump stopped on its stall
    assert report.status.volume_infused_ul == last.volume_infused_ul  # the packet has none
    assert report.status.read_at_monotonic == report.received_at_monotonic
    assert pump.take_pushed_alarm() is None  # taken once
    assert len(sim.newera.request_log) == mark  # nothing was asked to know it
    # The STP is the first request after the push; the pump answers it with its alarm
    # (not executed), so it goes again, and the STOP is confirmed, not refused.
    stopped = await pump.command(Command.STOP)
    assert stopped.status.state is PumpState.IDLE
    heard = [r.text for r in list(sim.newera.request_log)[mark:]]
    assert heard[:2] == ["STP", "STP"], heard


async def test_a_status_read_queued_for_the_line_when_an_alarm_is_pushed_is_not_sent(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    await pump.read_status()
    async with NewEraPumpDriver(config(sim, address=2)) as other:
        sim.newera.inject(2, "silent")  # its next request holds the line for one timeout
        held = asyncio.create_task(other.read_status())
        await asyncio.sleep(0.05)
        mark = len(sim.newera.request_log)
        queued = asyncio.create_task(pump.read_status())  # waits behind the held request
        await asyncio.sleep(0.02)
        sim.newera.inject(1, "stall")
        status = await queued
        with pytest.raises(PumpUnreachable):
            await held
        sim.newera.inject(2, "silent", on=False)
    assert status.state is PumpState.ALARM
    assert AlarmFlag.OCCLUSION_DOWNSTREAM in status.alarms
    assert status.rate_actual_ml_h == 0
    # The alarm answered the queued read: it never went out
    assert [r.text for r in list(sim.newera.request_log)[mark:] if r.address == 1] == []


async def test_a_pushed_alarm_a_reading_has_overtaken_brings_no_status(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    pump.alarm_pushed.clear()
    sim.newera.inject(1, "stall")
    await asyncio.wait_for(pump.alarm_pushed.wait(), 1.0)
    assert (await pump.read_status()).state is PumpState.ALARM
    report = pump.take_pushed_alarm()
    assert report is not None
    assert report.alarms == AlarmFlag.OCCLUSION_DOWNSTREAM
    assert report.status is None  # the reading is newer than the packet: read again


async def test_a_pushed_reset_brings_no_status_only_a_read_tells(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.read_status()
    pump.alarm_pushed.clear()
    sim.newera.inject(1, "power-loss")
    await asyncio.wait_for(pump.alarm_pushed.wait(), 1.0)
    report = pump.take_pushed_alarm()
    assert report is not None
    assert report.restarted
    assert report.alarms == AlarmFlag.NONE
    assert report.status is None


async def test_the_watchdog_counts_wall_seconds_not_simulated_ones(
    sim: Simulator,
) -> None:
    assert sim.newera is not None
    async with NewEraPumpDriver(config(sim, heartbeat_timeout_s=1)) as pump:
        await pump.write_program(program("60", 5_000))
        await pump.command(Command.START)
        await asyncio.sleep(0.6)  # 36 simulated seconds, 0.6 wall seconds
        assert sim.newera.pump(1).state == "I"
        await asyncio.sleep(0.8)
        assert sim.newera.pump(1).state == "S"
        status = await pump.read_status()
        assert status.state is PumpState.ALARM
        assert AlarmFlag.COMM_LOSS in status.alarms


async def test_heartbeats_keep_the_watchdog_quiet(sim: Simulator) -> None:
    assert sim.newera is not None
    async with NewEraPumpDriver(config(sim, heartbeat_timeout_s=1)) as pump:
        await pump.write_program(program("60", 50_000))
        await pump.command(Command.START)
        for _ in range(6):
            await asyncio.sleep(0.25)
            await pump.heartbeat()
        assert (await pump.read_status()).state is PumpState.INFUSING
        await pump.set_heartbeat_timeout(7)
        assert sim.newera.pump(1).safe_timeout_s == 7
        with pytest.raises(InvalidProgram):
            await pump.set_heartbeat_timeout(0)  # would leave Safe mode


async def test_a_read_is_the_heartbeat_on_a_shared_line(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    await pump.read_status()
    seen = sim.newera.requests_seen
    assert await pump.heartbeat() == 1  # the read's reply just restarted the watchdog
    assert sim.newera.requests_seen == seen
    await asyncio.sleep(0.3)
    assert await pump.heartbeat() == 2
    assert sim.newera.requests_seen == seen + 1


async def test_the_callers_scaled_seconds_become_wall_seconds_for_saf(sim: Simulator) -> None:
    assert sim.newera is not None
    async with NewEraPumpDriver(config(sim, clock_scale=TIME_SCALE)) as pump:
        await pump.set_heartbeat_timeout(300)  # 300 simulated seconds at × 60
        assert sim.newera.pump(1).safe_timeout_s == 5


async def test_an_injected_watchdog_expiry_is_latched(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    sim.newera.inject(1, "watchdog-expire")
    await asyncio.wait_for(pump.alarm_pushed.wait(), 1.0)
    assert AlarmFlag.COMM_LOSS in (await pump.read_status()).alarms


async def test_power_loss_shows_as_a_restart(sim: Simulator, pump: NewEraPumpDriver) -> None:
    assert sim.newera is not None
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    await asyncio.sleep(1.1)
    before = await pump.read_status()
    assert before.uptime_s is None  # the pump keeps none: the A?R reset is its evidence
    sim.newera.inject(1, "power-loss")
    await asyncio.sleep(0.05)
    after = await pump.read_status()
    assert after.resets_seen > before.resets_seen  # the kernel's reboot rule sees this
    assert after.state is PumpState.IDLE
    assert after.volume_infused_ul == 0
    assert sim.newera.pump(1).safe_timeout_s == 5  # SAF survives power loss


@pytest.mark.parametrize("fault", ["garble", "bad-crc"])
async def test_damaged_replies_are_unreachable_not_believed(
    sim: Simulator, pump: NewEraPumpDriver, fault: str
) -> None:
    assert sim.newera is not None
    sim.newera.inject(1, fault, count=1)
    with pytest.raises(PumpUnreachable):
        await pump.read_status()
    await asyncio.sleep(0.35)  # the line's quiet period after a failed request
    assert (await pump.read_status()).state is PumpState.IDLE


async def test_a_silent_pump_is_unreachable_and_comes_back(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    assert sim.newera is not None
    sim.newera.inject(1, "silent")
    with pytest.raises(PumpUnreachable):
        await pump.read_status()
    sim.newera.inject(1, "silent", on=False)
    await asyncio.sleep(0.35)
    assert (await pump.read_status()).state is PumpState.IDLE


async def test_a_missing_device_is_unreachable(tmp_path: Path) -> None:
    driver = NewEraPumpDriver(
        NewEraConfig(
            device=str(tmp_path / "nothing"), address=1, syringe_diameter_mm=Decimal("26.59")
        )
    )
    with pytest.raises(PumpUnreachable):
        await driver.connect()
    await driver.close()


async def test_reconnects_after_the_line_comes_back(tmp_path: Path) -> None:
    link = str(tmp_path / "newera")
    async with Simulator(pumps=1, tcp=False, newera_pumps=1, newera_link=link) as first:
        driver = NewEraPumpDriver(config(first, reconnect_delay_s=0.05))
        await driver.connect()
    # The simulator (and its pty) is gone: the driver says so, never an old reading.
    with pytest.raises(PumpUnreachable):
        await driver.read_status()
    async with Simulator(pumps=1, tcp=False, newera_pumps=1, newera_link=link):
        await asyncio.sleep(0.1)
        for _ in range(20):
            try:
                await driver.connect()
                break
            except PumpUnreachable:
                await asyncio.sleep(0.05)
        assert (await driver.read_status()).state is PumpState.IDLE
    await driver.close()


async def test_three_addresses_share_one_line(sim: Simulator) -> None:
    assert sim.newera is not None
    drivers = [NewEraPumpDriver(config(sim, address)) for address in (1, 2, 3)]
    for driver in drivers:
        await driver.connect()
    try:
        rates = ("1.5", "25", "300")
        await asyncio.gather(
            *(d.write_program(program(r)) for d, r in zip(drivers, rates, strict=True))
        )
        await asyncio.gather(*(d.command(Command.START) for d in drivers))
        statuses = await asyncio.gather(*(d.read_status() for _ in range(5) for d in drivers))
        for i, status in enumerate(statuses):
            assert status.rate_actual_ml_h == Decimal(rates[i % 3])
        sim.newera.inject(2, "stall")
        await asyncio.wait_for(drivers[1].alarm_pushed.wait(), 1.0)
        assert not drivers[0].alarm_pushed.is_set()
        assert (await drivers[0].read_status()).state is PumpState.INFUSING
        assert (await drivers[1].read_status()).state is PumpState.ALARM
    finally:
        for driver in drivers:
            await driver.close()


async def test_basic_mode_works_in_simulation_but_has_no_watchdog(sim: Simulator) -> None:
    async with NewEraPumpDriver(config(sim, mode="basic")) as pump:
        await pump.write_program(program("2"))
        assert (await pump.command(Command.START)).status.state is PumpState.INFUSING
        with pytest.raises(InvalidProgram, match="no communications watchdog"):
            await pump.set_heartbeat_timeout(5)
        await pump.command(Command.STOP)


async def test_a_diameter_the_pump_will_not_hold_is_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="cannot hold it exactly"):
        config(sim, syringe_diameter_mm=Decimal("26.591"))
    driver = NewEraPumpDriver(config(sim, syringe_diameter_mm=Decimal("80")))
    with pytest.raises(PumpRefused) as info:
        await driver.connect()
    assert info.value.code is ErrorCode.OUT_OF_RANGE
    await driver.close()


async def test_a_second_session_on_the_pump_never_sees_its_counter_go_back(
    pump: NewEraPumpDriver,
) -> None:
    """After one infusion the pump's counter holds its volume. The contract's VTBI counts
    on from there (the controller sends the volume at the session's start plus the plan),
    the pump stops itself at it, and the reported infused volume only ever rises, though
    the pump's own counter is cleared before each run."""
    readings: list[int] = []

    async def until_idle() -> None:
        for _ in range(100):
            status = await pump.read_status()
            readings.append(status.volume_infused_ul)
            if status.state is PumpState.IDLE:
                return
            await asyncio.sleep(0.02)
        pytest.fail("the pump did not stop by itself")

    for session in range(2):
        primed = PumpProgram(
            rate_ml_h=Decimal(600),
            vtbi_ul=1_000 * (session + 1),
            kvo_rate_ml_h=Decimal(0),
            prime_volume_ul=500,
            prime_rate_ml_h=Decimal(600),
        )
        await pump.write_program(primed)
        await pump.command(Command.PRIME)
        await until_idle()
        await pump.write_program(primed)
        readings.append((await pump.command(Command.START)).status.volume_infused_ul)
        await until_idle()
    assert readings == sorted(readings), readings
    assert readings[-1] == 2_000  # two infusions of 1 mL, each stopped by the pump itself
    assert WarningFlag.VTBI_COMPLETE in (await pump.read_status()).warnings


async def test_a_reset_pushed_inside_a_read_belongs_to_the_next_reading(
    sim: Simulator, pump: NewEraPumpDriver
) -> None:
    """The pump answers ``DIS`` while it infuses, then loses power: its ``A?R`` push
    arrives before the read's ``RAT``. The read is of the pump as ``DIS`` found it, all of
    it: its volume (with what the driver carried over the counter's last clear) and no
    restart yet; the next read is the restarted pump's (the reset, the counter at 0).
    Were the restart told with the old volume, the controller would take that volume for
    the new counter's and count it twice."""
    assert sim.newera is not None
    line = sim.newera
    # A first run leaves a volume on the counter: the next START clears it and the
    # driver carries it, so the figure reported is carried + counter.
    await pump.write_program(program("600", 1_000))
    await pump.command(Command.START)
    for _ in range(100):
        if (await pump.read_status()).state is PumpState.IDLE:
            break
        await asyncio.sleep(0.02)
    await pump.write_program(program("60", 5_000))
    await pump.command(Command.START)
    await asyncio.sleep(0.5)
    before = await pump.read_status()
    assert before.volume_infused_ul > 1_000

    sim_pump = line.pumps[1]
    original = sim_pump.handle
    answered: list[int] = []

    def handle(text: str, sim_s: Fraction, wall_s: float) -> str:
        reply = original(text, sim_s, wall_s)
        if not answered and text.strip().upper().startswith("DIS") and sim_pump.state == "I":
            answered.append(int(sim_pump.infused_ul))
            asyncio.get_running_loop().call_soon(line.inject, 1, "power-loss")
        return reply

    sim_pump.handle = handle  # type: ignore[method-assign]
    reading = await pump.read_status()
    assert answered, "the power loss was not injected"
    assert pump.alarm_packets, "the reset was not pushed"
    assert reading.resets_seen == before.resets_seen
    assert reading.volume_infused_ul == 1_000 + answered[0]
    assert reading.volume_infused_ul >= before.volume_infused_ul
    after = await pump.read_status()
    assert after.resets_seen > before.resets_seen
    assert after.volume_infused_ul == 0
    assert after.state is PumpState.IDLE
