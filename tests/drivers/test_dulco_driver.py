"""The register-map driver with the prominent-dulcoflex profile, against pumpsim's DULCO pump
on a real pseudo-terminal: the word-order pattern, the timeout-register refusals, the forced
power-up behaviour and stop, exact rates, absent readings, faults and what follows them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pumpsim import dulco_map as sim_map
from pumpsim.dulco_model import DulcoModel
from pumpsim.harness import Simulator
from pymodbus.client import AsyncModbusSerialClient

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandRejected,
    CommandResult,
    InvalidProgram,
    PumpProgram,
    PumpState,
    WarningFlag,
)
from pumpd.drivers.modbus import ModbusConfig
from pumpd.drivers.regmap import RegisterMap, load_any_profile, nearest_float32
from pumpd.drivers.regmap_driver import PumpUnfit, RegisterMapDriver

UNIT = 20
SCALE = 60.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # A 3 s pump timeout: a loaded machine's pauses must not look like the link going quiet;
    # the tests of the timeout itself set 1 s.
    async with Simulator(
        pumps=1, tcp=False, dulco=True, time_scale=SCALE, dulco_baud=115_200, dulco_timeout_ms=3000
    ) as s:
        yield s


def rmap() -> RegisterMap:
    loaded = load_any_profile("prominent-dulcoflex")
    assert isinstance(loaded, RegisterMap)
    return loaded


def driver(sim: Simulator, heartbeat_timeout_s: int = 10) -> RegisterMapDriver:
    assert sim.dulco_path is not None
    config = ModbusConfig(
        transport="rtu",
        device=sim.dulco_path,
        baudrate=115_200,
        unit=UNIT,
        profile="prominent-dulcoflex",
    )
    return RegisterMapDriver(config, rmap(), heartbeat_timeout_s=heartbeat_timeout_s)


def program(rate_ml_h: str = "150.00", vtbi_ul: int = 100_000) -> PumpProgram:
    return PumpProgram(
        rate_ml_h=Decimal(rate_ml_h),
        vtbi_ul=vtbi_ul,
        kvo_rate_ml_h=Decimal(0),
        prime_volume_ul=15_000,
        prime_rate_ml_h=Decimal("300.00"),
    )


def pump(sim: Simulator) -> DulcoModel:
    assert sim.dulco is not None
    return sim.dulco.pump(UNIT)


async def test_connect_stops_first_and_forces_power_up_off(sim: Simulator) -> None:
    p = pump(sim)
    p.run = True  # set at the keypad: start/stop at run, power-up "last state"
    assert p.power_up == sim_map.PowerUp.LAST_STATE
    d = driver(sim)
    await d.connect()
    try:
        assert sim.dulco is not None
        first = sim.dulco.writes[0]
        assert (first["address"], first["words"]) == (1200, [0])  # the stop, before anything
        assert p.power_up == sim_map.PowerUp.ALWAYS_OFF
        assert p.run is False
        # A power loss now brings the pump up stopped, and the driver sees the restart.
        before = await d.read_status()
        await asyncio.sleep(1.1)
        p.power_loss()
        after = await d.read_status()
        assert after.uptime_s is None  # the pump keeps none; its switch-on count shows it
        assert before.switch_on_count is not None
        assert after.switch_on_count == before.switch_on_count + 1
        assert p.motor_running is False
        assert p.restarts_by_itself == 0
    finally:
        await d.close()


@pytest.mark.parametrize("order", ["high_first", "low_first"])
async def test_the_word_order_is_learned_from_the_pattern(sim: Simulator, order: str) -> None:
    pump(sim).word_order = order
    async with driver(sim) as d:
        status = await d.read_status()
        assert status.max_rate_ml_h == Decimal("1200.00")  # a float32 decoded the right way
        await d.write_program(program())
        assert pump(sim).target_l_h == Decimal("0.150000005960464477539062500")


async def test_an_unknown_pattern_refuses_the_pump(sim: Simulator) -> None:
    pump(sim).word_order = "byte_swapped"
    d = driver(sim)
    with pytest.raises(PumpUnfit, match="pattern AABBCCDD"):
        await d.connect()
    await d.close()
    assert pump(sim).run is False


@pytest.mark.parametrize(
    ("timeout_ms", "heartbeat_s", "why"),
    [(0, 10, "is off"), (10_000, 5, "longer than heartbeat_timeout_s = 5 s")],
)
async def test_the_pumps_timeout_register_refuses_live_use(
    sim: Simulator, timeout_ms: int, heartbeat_s: int, why: str
) -> None:
    pump(sim).modbus_timeout_ms = timeout_ms
    d = driver(sim, heartbeat_timeout_s=heartbeat_s)
    with pytest.raises(PumpUnfit, match=why):
        await d.connect()
    await d.close()


async def test_set_heartbeat_timeout_checks_the_pump_in_wall_seconds(sim: Simulator) -> None:
    async with driver(sim) as d:
        d.clock_scale = SCALE
        await d.set_heartbeat_timeout(int(3 * SCALE))  # 3 wall s ≥ the pump's 3000 ms
        pump(sim).modbus_timeout_ms = 4000  # changed at the keypad meanwhile
        with pytest.raises(PumpUnfit, match="4000 ms"):
            await d.set_heartbeat_timeout(int(3 * SCALE))


async def test_rates_are_exact_or_refused_and_absent_values_are_none(sim: Simulator) -> None:
    async with driver(sim) as d:
        with pytest.raises(InvalidProgram, match="float32"):
            await d.write_program(program(rate_ml_h="1000000.01"))
        with pytest.raises(InvalidProgram, match="KVO"):
            await d.write_program(
                PumpProgram(
                    rate_ml_h=Decimal("150.00"),
                    vtbi_ul=1000,
                    kvo_rate_ml_h=Decimal("1.00"),
                    prime_volume_ul=0,
                    prime_rate_ml_h=Decimal(0),
                )
            )
        assert pump(sim).target_bits == 0  # nothing was written
        await d.write_program(program("0.01"))
        started = await d.command(Command.START)
        assert started.status.state is PumpState.INFUSING
        assert started.status.rate_actual_ml_h == Decimal("0.01")
        status = started.status
        for absent in (
            status.pressure_downstream_mmhg,
            status.battery_percent,
            status.heartbeat_echo,
            status.serial_number,
            status.profile_version,
        ):
            assert absent is None
        with pytest.raises(CommandRejected) as caught:
            await d.command(Command.PRIME)
        assert caught.value.result is CommandResult.UNKNOWN_COMMAND
        paused = await d.command(Command.PAUSE)
        assert paused.status.state is PumpState.PAUSED
        stopped = await d.command(Command.STOP)
        assert stopped.status.state is PumpState.IDLE


async def test_a_pause_of_a_pump_not_infusing_is_refused_and_still_stops_it(
    sim: Simulator,
) -> None:
    """The pump only knows "stopped": PAUSED is the driver's memory, so a PAUSE of an idle
    or already paused pump must not turn it into PAUSED (a completed pump would hide its
    VTBI_COMPLETE), yet the stop it writes still goes out."""
    assert sim.dulco is not None
    async with driver(sim) as d:
        await d.write_program(program())
        with pytest.raises(CommandRejected) as idle:
            await d.command(Command.PAUSE)
        assert idle.value.result is CommandResult.REJECTED_STATE
        assert idle.value.status.state is PumpState.IDLE
        assert sim.dulco.writes[-1]["words"] == [0]  # the stop went out all the same
        await d.command(Command.START)
        assert (await d.command(Command.PAUSE)).status.state is PumpState.PAUSED
        with pytest.raises(CommandRejected) as again:
            await d.command(Command.PAUSE)
        assert again.value.result is CommandResult.REJECTED_STATE
        assert again.value.status.state is PumpState.PAUSED
        assert pump(sim).motor_running is False


async def test_the_driver_stops_at_the_programmed_volume(sim: Simulator) -> None:
    async with driver(sim) as d:
        d.clock_scale = SCALE
        await d.write_program(program("600.00", vtbi_ul=2_000))  # 12 s of pump time
        await d.command(Command.START)
        deadline = time.monotonic() + 10
        while (status := await d.read_status()).state is PumpState.INFUSING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert status.state is PumpState.IDLE
        assert pump(sim).motor_running is False
        # Stopped at the volume, by the driver (the pump has no VTBI of its own); how far
        # past it depends on the line's latency times the time scale, so only a sanity bound.
        assert 2_000 <= status.volume_infused_ul < 3_000
        assert WarningFlag.VTBI_COMPLETE in status.warnings


async def test_an_error_stops_it_and_the_reset_never_restarts_it(sim: Simulator) -> None:
    assert sim.dulco is not None
    async with driver(sim) as d:
        await d.write_program(program())
        await d.command(Command.START)
        sim.dulco.inject(UNIT, "metering-monitor", True)
        status = await d.read_status()
        assert status.state is PumpState.ALARM
        assert AlarmFlag.OCCLUSION_DOWNSTREAM in status.alarms
        assert pump(sim).motor_running is False
        sim.dulco.inject(UNIT, "metering-monitor", False)
        acked = await d.command(Command.ACK_ALARM)
        assert acked.status.state is PumpState.IDLE
        assert pump(sim).motor_running is False
        assert pump(sim).restarts_by_itself == 0
        # A bit no name covers is still an alarm.
        sim.dulco.inject(UNIT, "error-bit", True, value=20)
        assert AlarmFlag.UNKNOWN in (await d.read_status()).alarms


async def test_after_a_silence_the_stop_goes_out_first(sim: Simulator) -> None:
    assert sim.dulco is not None
    pump(sim).modbus_timeout_ms = 1000
    async with driver(sim) as d:
        await d.write_program(program())
        await d.command(Command.START)
        await asyncio.sleep(1.5)  # no request for longer than the pump's 1000 ms
        assert pump(sim).timed_out
        status = await d.read_status()
        assert d.guard_stops == 1
        assert pump(sim).restarts_by_itself == 0
        assert pump(sim).motor_running is False
        assert AlarmFlag.COMM_LOSS in status.alarms


async def test_a_pump_stopped_by_its_timeout_is_driven_again_after_a_new_connect(
    sim: Simulator,
) -> None:
    """pumpd gone (killed) while the pump ran: the pump's timeout stopped it and set its
    "stopped by timeout" bit beside the run bit. The next connect's stop is confirmed by
    the run bit alone, the timeout shows as COMM_LOSS, and the nurse's ACK clears it."""
    assert sim.dulco is not None
    pump(sim).modbus_timeout_ms = 1000
    first = driver(sim)
    await first.connect()
    await first.write_program(program())
    await first.command(Command.START)
    await first.close()  # no failsafe stop: the daemon was killed
    await asyncio.sleep(1.5)
    assert pump(sim).stopped_by_timeout
    async with driver(sim) as again:
        assert pump(sim).restarts_by_itself == 0
        assert pump(sim).motor_running is False
        status = await again.read_status()
        assert status.state is PumpState.ALARM
        assert AlarmFlag.COMM_LOSS in status.alarms
        acked = await again.command(Command.ACK_ALARM)
        assert acked.status.state is PumpState.IDLE
        assert not pump(sim).stopped_by_timeout


async def test_the_simulated_pump_restarts_by_itself_for_a_naive_master(sim: Simulator) -> None:
    """The hazard the driver guards against is in the simulator, so the tests above can fail."""
    assert sim.dulco_path is not None
    client = AsyncModbusSerialClient(sim.dulco_path, baudrate=115_200, timeout=1, retries=0)
    await client.connect()
    try:
        p = pump(sim)
        p.modbus_timeout_ms = 1000
        await client.write_register(1229, 1, device_id=UNIT)
        await client.write_registers(1211, [0x3E19, 0x999A], device_id=UNIT)  # 0.15 l/h
        await client.write_register(1200, 1, device_id=UNIT)
        assert p.motor_running
        await asyncio.sleep(1.5)
        assert p.timed_out
        assert not p.motor_running
        await client.read_holding_registers(1000, count=2, device_id=UNIT)
        assert p.motor_running
        assert p.restarts_by_itself == 1
    finally:
        client.close()


@given(cents=st.integers(min_value=1, max_value=10**9))
def test_a_rate_is_held_exactly_or_refused(cents: int) -> None:
    """mL/h → l/h float32 → mL/h: accepted only when it comes back as the same 0.01 mL/h."""
    d = RegisterMapDriver(
        ModbusConfig(transport="rtu", device="/dev/null", unit=UNIT), rmap(), heartbeat_timeout_s=10
    )
    rate = Decimal(cents) / 100
    try:
        held = d._rate_words(rate)
    except InvalidProgram:
        # Refused only when the float32 would not read back as the same rate.
        assert (nearest_float32(rate / 1000) * 1000).quantize(Decimal("0.01")) != rate
        return
    assert held == nearest_float32(rate / 1000)
    assert (held * 1000).quantize(Decimal("0.01")) == rate
