"""Physics of the pure model: volume to the µL at any rate, events split exactly, failsafe."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pumpsim.errors import ModelInputError
from pumpsim.model import PumpModel
from pumpsim.registers import AlarmFlag, CmdResult, Command, State, WarningFlag

from .helpers import Controller, state_of, words32

# 0.1 mL/h .. 1200 mL/h in register units (0.01 mL/h).
RATES_CENTI_ML_H = [10, 11, 99, 150, 333, 1_000, 7_777, 15_000, 59_999, 100_000, 119_999, 120_000]


def infusing_at(rate: int, vtbi: int = 4_000_000_000, kvo: int = 0) -> tuple[PumpModel, Controller]:
    model = PumpModel(serial_number=1)
    ctl = Controller(model)
    ctl.program(rate=rate, vtbi=vtbi, kvo=kvo)
    assert ctl.command(Command.START) == CmdResult.OK
    return model, ctl


def expected_ul(rate_centi_ml_h: int, seconds: Fraction) -> Fraction:
    # 0.01 mL/h is 10 µL per 3600 s.
    return Fraction(rate_centi_ml_h) * 10 * seconds / 3600


@pytest.mark.parametrize("rate", RATES_CENTI_ML_H)
def test_volume_matches_rate_times_time_over_an_hour_of_uneven_steps(rate: int) -> None:
    model, _ = infusing_at(rate)
    steps = [0.001, 0.25, 1.5, 0.0333, 7.0, 59.9, 0.5] * 40
    for step in steps:
        model.advance(step)
    total = sum((Fraction(s) for s in steps), Fraction(0))
    exact = expected_ul(rate, total)
    assert model.volume_infused_ul == math.floor(exact)
    assert abs(model.volume_infused_ul - exact) < 1
    assert model.rate_actual_centi_ml_h == rate


@given(
    rate=st.integers(min_value=10, max_value=120_000),
    steps=st.lists(st.floats(min_value=0, max_value=600, allow_nan=False), min_size=1, max_size=40),
)
def test_volume_is_exact_for_any_rate_and_any_steps(rate: int, steps: list[float]) -> None:
    model, _ = infusing_at(rate)
    for step in steps:
        model.advance(step)
    exact = expected_ul(rate, sum((Fraction(s) for s in steps), Fraction(0)))
    assert model.volume_infused_ul == math.floor(exact)
    assert model.true_infused_ul == exact


def test_register_holds_32_bits_high_word_first() -> None:
    model, _ = infusing_at(120_000)
    model.advance(3600 * 60)  # 72 L at 1200 mL/h
    regs = model.input_registers()
    assert (regs[8] << 16) | regs[9] == 72_000_000
    assert regs[8] == 72_000_000 >> 16


@pytest.mark.parametrize("rate", [10, 15_000, 120_000])
def test_vtbi_reached_inside_one_big_step_stops_exactly_at_vtbi(rate: int) -> None:
    model, _ = infusing_at(rate, vtbi=1_000)
    model.advance(10 * 24 * 3600)
    assert state_of(model) is State.IDLE
    assert model.volume_infused_ul == 1_000
    assert model.true_infused_ul == 1_000
    assert WarningFlag.VTBI_COMPLETE in model.warning_flags
    assert model.rate_actual_centi_ml_h == 0


def test_vtbi_goes_to_kvo_and_kvo_volume_counts() -> None:
    model, _ = infusing_at(120_000, vtbi=1_000, kvo=100)
    # 1000 µL at 1200 mL/h takes 3 s; then 1 mL/h for the remaining 357 s.
    model.advance(360)
    assert state_of(model) is State.KVO
    assert model.rate_actual_centi_ml_h == 100
    assert model.true_infused_ul == 1_000 + expected_ul(100, Fraction(357))
    assert WarningFlag.VTBI_COMPLETE in model.warning_flags


def test_rate_change_while_infusing_takes_effect_at_once() -> None:
    model, _ = infusing_at(15_000)
    model.advance(60)
    model.write_holding(100, words32(60_000))
    assert model.rate_actual_centi_ml_h == 60_000
    model.advance(60)
    assert model.true_infused_ul == expected_ul(15_000, Fraction(60)) + expected_ul(
        60_000, Fraction(60)
    )


def test_rate_above_max_while_infusing_is_held_at_the_device_limit() -> None:
    model, _ = infusing_at(15_000)
    model.write_holding(100, words32(500_000))
    assert model.rate_actual_centi_ml_h == 120_000


def test_vtbi_lowered_below_volume_ends_the_infusion() -> None:
    model, _ = infusing_at(15_000, vtbi=10_000, kvo=0)
    model.advance(60)  # 2500 µL
    model.write_holding(102, words32(2_000))
    assert state_of(model) is State.IDLE
    assert WarningFlag.VTBI_COMPLETE in model.warning_flags
    volume = model.volume_infused_ul
    model.advance(60)
    assert model.volume_infused_ul == volume


def test_vtbi_lowered_while_paused_changes_nothing_until_start() -> None:
    model, ctl = infusing_at(15_000, vtbi=10_000)
    model.advance(60)
    assert ctl.command(Command.PAUSE) == CmdResult.OK
    model.write_holding(102, words32(2_000))
    assert state_of(model) is State.PAUSED
    assert ctl.command(Command.START) == CmdResult.REJECTED_PARAMS


def test_prime_delivers_prime_volume_then_idles() -> None:
    model = PumpModel(serial_number=1)
    ctl = Controller(model)
    ctl.program(prime_volume=500, prime_rate=30_000)
    assert ctl.command(Command.PRIME) == CmdResult.OK
    assert model.rate_actual_centi_ml_h == 30_000
    model.advance(3600)
    assert state_of(model) is State.IDLE
    assert model.volume_primed_ul == 500
    assert model.volume_infused_ul == 0
    assert ctl.command(Command.PRIME) == CmdResult.OK  # "prime_volume more µL"
    model.advance(3600)
    assert model.volume_primed_ul == 1_000


def test_paused_and_idle_deliver_nothing() -> None:
    model, ctl = infusing_at(15_000)
    model.advance(10)
    ctl.command(Command.PAUSE)
    volume = model.true_infused_ul
    model.advance(3600)
    assert model.true_infused_ul == volume
    assert model.rate_actual_centi_ml_h == 0


class TestHeartbeatFailsafe:
    def armed(self, timeout_s: int = 5) -> tuple[PumpModel, Controller]:
        model, ctl = infusing_at(120_000)
        model.write_holding(111, [timeout_s])
        return model, ctl

    def test_fires_after_timeout_and_stops_delivery_at_the_deadline(self) -> None:
        model, _ = self.armed(5)
        model.advance(Fraction(49, 10))
        assert state_of(model) is State.INFUSING
        model.advance(100)
        assert state_of(model) is State.ALARM
        assert model.alarm_flags == AlarmFlag.COMM_LOSS
        assert model.true_infused_ul == expected_ul(120_000, Fraction(5))

    def test_changing_heartbeat_keeps_it_alive(self) -> None:
        model, _ = self.armed(5)
        for beat in range(1, 20):
            model.advance(4)
            model.write_holding(110, [beat])
        assert state_of(model) is State.INFUSING
        assert model.heartbeat == beat

    def test_writing_the_same_heartbeat_value_does_not_count(self) -> None:
        model, _ = self.armed(5)
        model.write_holding(110, [7])
        model.advance(4)
        model.write_holding(110, [7])
        model.advance(2)
        assert state_of(model) is State.ALARM

    def test_comm_loss_is_latched_only_and_does_not_block_ack_or_start(self) -> None:
        model, ctl = self.armed(5)
        model.advance(6)
        assert state_of(model) is State.ALARM
        assert not model.conditions
        assert ctl.command(Command.ACK_ALARM) == CmdResult.OK
        assert ctl.command(Command.START) == CmdResult.OK

    def test_zero_timeout_disables(self) -> None:
        model, _ = self.armed(0)
        model.advance(3600)
        assert state_of(model) is State.INFUSING

    @pytest.mark.parametrize("state", [State.IDLE, State.PAUSED])
    def test_not_armed_outside_running_states(self, state: State) -> None:
        model, ctl = self.armed(5)
        ctl.command(Command.PAUSE if state is State.PAUSED else Command.STOP)
        model.advance(3600)
        assert state_of(model) is state

    def test_counts_from_entry_into_a_running_state(self) -> None:
        model, ctl = self.armed(5)
        ctl.command(Command.PAUSE)
        model.advance(600)
        assert ctl.command(Command.START) == CmdResult.OK
        model.advance(4)
        assert state_of(model) is State.INFUSING
        model.advance(2)
        assert state_of(model) is State.ALARM

    def test_also_guards_priming_and_kvo(self) -> None:
        model = PumpModel(serial_number=1)
        ctl = Controller(model)
        ctl.program(prime_volume=100_000, prime_rate=100)
        model.write_holding(111, [5])
        ctl.command(Command.PRIME)
        model.advance(6)
        assert state_of(model) is State.ALARM
        kvo_model, _ = infusing_at(120_000, vtbi=10, kvo=100)
        kvo_model.write_holding(111, [5])
        kvo_model.advance(1)
        assert state_of(kvo_model) is State.KVO
        kvo_model.advance(10)
        assert state_of(kvo_model) is State.ALARM


def test_battery_drains_warns_and_depletes_into_alarm() -> None:
    model, _ = infusing_at(100)
    start = model.battery_percent
    model.advance(3600)
    assert model.battery_percent < start
    model.advance(3600 * 79)  # about 80 %/80 h pumping
    assert WarningFlag.LOW_BATTERY in model.warning_flags
    model.advance(3600 * 30)
    assert model.battery_percent == 0
    assert state_of(model) is State.ALARM
    assert AlarmFlag.BATTERY_DEPLETED in model.alarm_flags


def test_pressure_rises_while_occluded_downstream_and_relaxes_after() -> None:
    model = PumpModel(serial_number=1)
    model.set_condition(AlarmFlag.OCCLUSION_DOWNSTREAM, True)
    readings = []
    for _ in range(5):
        model.advance(2)
        readings.append(model.pressure_downstream_mmhg)
    assert readings == sorted(readings)
    assert readings[-1] > readings[0] > 0
    model.set_condition(AlarmFlag.OCCLUSION_DOWNSTREAM, False)
    model.advance(600)
    assert model.pressure_downstream_mmhg == 0


def test_upstream_occlusion_reads_negative_signed_pressure() -> None:
    model = PumpModel(serial_number=1)
    model.set_condition(AlarmFlag.OCCLUSION_UPSTREAM, True)
    model.advance(60)
    assert model.pressure_downstream_mmhg < 0
    word = model.input_registers()[12]
    assert word & 0x8000
    assert word - 0x10000 == model.pressure_downstream_mmhg


def test_uptime_counts_scaled_seconds() -> None:
    model = PumpModel(serial_number=1)
    model.advance(Fraction(99_999, 10))
    assert model.uptime_s == 9_999
    assert model.input_registers()[19:21] == [0, 9_999]


def test_negative_time_is_refused() -> None:
    model = PumpModel(serial_number=1)
    with pytest.raises(ModelInputError):
        model.advance(-1)
    with pytest.raises(ModelInputError):
        model.advance(float("nan"))
    assert model.now_s == 0
