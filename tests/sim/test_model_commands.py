"""Every command in every pump state, per the GIP-MB1 rules."""

from __future__ import annotations

import pytest
from pumpsim.model import PumpModel
from pumpsim.registers import AlarmFlag, CmdResult, Command, State, WarningFlag

from .helpers import Controller, pump_in, state_of

OK, STATE_, PARAMS, ALARM_, UNKNOWN = (
    CmdResult.OK,
    CmdResult.REJECTED_STATE,
    CmdResult.REJECTED_PARAMS,
    CmdResult.REJECTED_ALARM,
    CmdResult.UNKNOWN_COMMAND,
)
S = State

# (command, state before) -> (result, state after); valid program, no alarm condition present.
TABLE: dict[tuple[int, State], tuple[CmdResult, State]] = {
    (Command.START, S.IDLE): (OK, S.INFUSING),
    (Command.START, S.PRIMING): (STATE_, S.PRIMING),
    (Command.START, S.INFUSING): (STATE_, S.INFUSING),
    (Command.START, S.PAUSED): (OK, S.INFUSING),
    (Command.START, S.KVO): (STATE_, S.KVO),
    (Command.START, S.ALARM): (STATE_, S.ALARM),
    (Command.PAUSE, S.IDLE): (STATE_, S.IDLE),
    (Command.PAUSE, S.PRIMING): (STATE_, S.PRIMING),
    (Command.PAUSE, S.INFUSING): (OK, S.PAUSED),
    (Command.PAUSE, S.PAUSED): (STATE_, S.PAUSED),
    (Command.PAUSE, S.KVO): (STATE_, S.KVO),
    (Command.PAUSE, S.ALARM): (STATE_, S.ALARM),
    (Command.STOP, S.IDLE): (OK, S.IDLE),
    (Command.STOP, S.PRIMING): (OK, S.IDLE),
    (Command.STOP, S.INFUSING): (OK, S.IDLE),
    (Command.STOP, S.PAUSED): (OK, S.IDLE),
    (Command.STOP, S.KVO): (OK, S.IDLE),
    (Command.STOP, S.ALARM): (OK, S.ALARM),
    (Command.PRIME, S.IDLE): (OK, S.PRIMING),
    (Command.PRIME, S.PRIMING): (STATE_, S.PRIMING),
    (Command.PRIME, S.INFUSING): (STATE_, S.INFUSING),
    (Command.PRIME, S.PAUSED): (STATE_, S.PAUSED),
    (Command.PRIME, S.KVO): (STATE_, S.KVO),
    (Command.PRIME, S.ALARM): (STATE_, S.ALARM),
    (Command.CLEAR_VOLUMES, S.IDLE): (OK, S.IDLE),
    (Command.CLEAR_VOLUMES, S.PRIMING): (STATE_, S.PRIMING),
    (Command.CLEAR_VOLUMES, S.INFUSING): (STATE_, S.INFUSING),
    (Command.CLEAR_VOLUMES, S.PAUSED): (STATE_, S.PAUSED),
    (Command.CLEAR_VOLUMES, S.KVO): (STATE_, S.KVO),
    (Command.CLEAR_VOLUMES, S.ALARM): (STATE_, S.ALARM),
    (Command.ACK_ALARM, S.IDLE): (STATE_, S.IDLE),
    (Command.ACK_ALARM, S.PRIMING): (STATE_, S.PRIMING),
    (Command.ACK_ALARM, S.INFUSING): (STATE_, S.INFUSING),
    (Command.ACK_ALARM, S.PAUSED): (STATE_, S.PAUSED),
    (Command.ACK_ALARM, S.KVO): (STATE_, S.KVO),
    (Command.ACK_ALARM, S.ALARM): (OK, S.IDLE),
}
for _state in State:
    for _unknown in (7, 99, 0xFFFF):
        TABLE[(_unknown, _state)] = (UNKNOWN, _state)


def test_table_covers_every_command_in_every_state() -> None:
    commands = {c for c, _ in TABLE}
    assert set(Command) <= commands
    assert {s for _, s in TABLE} == set(State)
    assert len(TABLE) == len(commands) * len(State)


@pytest.mark.parametrize(
    ("command", "before", "result", "after"),
    [(c, s, r, a) for (c, s), (r, a) in TABLE.items()],
    ids=[f"{getattr(c, 'name', c)}-in-{s.name}" for c, s in TABLE],
)
def test_command_in_state(command: int, before: State, result: CmdResult, after: State) -> None:
    model, ctl = pump_in(before)
    assert ctl.command(command) == result
    assert state_of(model) is after
    assert model.last_cmd_result == result


def test_start_needs_rate_within_limits_and_vtbi_above_volume() -> None:
    for rate, vtbi in ((0, 10_000), (120_001, 10_000), (15_000, 0)):
        model = PumpModel(serial_number=1)
        ctl = Controller(model)
        ctl.program(rate=rate, vtbi=vtbi)
        assert ctl.command(Command.START) == PARAMS
        assert state_of(model) is State.IDLE
    model = PumpModel(serial_number=1)
    ctl = Controller(model)
    ctl.program(rate=120_000, vtbi=10_000)  # exactly max_rate is allowed
    assert ctl.command(Command.START) == OK


def test_start_refused_when_vtbi_already_reached() -> None:
    model, ctl = pump_in(State.INFUSING, kvo=0)
    model.advance(3600)
    assert state_of(model) is State.IDLE
    assert model.volume_infused_ul == 10_000
    assert ctl.command(Command.START) == PARAMS
    ctl.program(vtbi=12_000)
    assert ctl.command(Command.START) == OK


def test_start_with_alarm_condition_present_is_result_3_before_params() -> None:
    model = PumpModel(serial_number=1)
    ctl = Controller(model)
    ctl.program(rate=0)  # bad params too: the alarm condition is reported first
    model.set_condition(AlarmFlag.AIR_IN_LINE, True)
    assert ctl.command(Command.START) == ALARM_
    assert state_of(model) is State.IDLE
    assert model.alarm_flags == AlarmFlag.AIR_IN_LINE  # not in ALARM: conditions present now


def test_prime_checks_condition_then_params() -> None:
    model = PumpModel(serial_number=1)
    ctl = Controller(model)
    for volume, rate in ((0, 30_000), (500, 0), (500, 120_001)):
        ctl.program(prime_volume=volume, prime_rate=rate)
        assert ctl.command(Command.PRIME) == PARAMS
        assert state_of(model) is State.IDLE
    ctl.program()
    model.set_condition(AlarmFlag.DOOR_OPEN, True)
    assert ctl.command(Command.PRIME) == ALARM_
    model.set_condition(AlarmFlag.DOOR_OPEN, False)
    assert ctl.command(Command.PRIME) == OK


def test_ack_alarm_refused_while_condition_remains() -> None:
    model, ctl = pump_in(State.INFUSING)
    model.set_condition(AlarmFlag.OCCLUSION_DOWNSTREAM, True)
    assert state_of(model) is State.ALARM
    assert ctl.command(Command.ACK_ALARM) == ALARM_
    assert state_of(model) is State.ALARM
    model.set_condition(AlarmFlag.OCCLUSION_DOWNSTREAM, False)
    assert model.alarm_flags == AlarmFlag.OCCLUSION_DOWNSTREAM  # latched
    assert ctl.command(Command.ACK_ALARM) == OK
    assert state_of(model) is State.IDLE
    assert not model.alarm_flags


def test_start_clears_vtbi_complete_and_clear_volumes_zeroes_everything() -> None:
    model, ctl = pump_in(State.INFUSING, kvo=0)
    model.advance(3600)
    assert WarningFlag.VTBI_COMPLETE in model.warning_flags
    ctl.program(vtbi=11_000)
    assert ctl.command(Command.START) == OK
    assert WarningFlag.VTBI_COMPLETE not in model.warning_flags
    model.advance(3600)
    assert WarningFlag.VTBI_COMPLETE in model.warning_flags
    assert ctl.command(Command.CLEAR_VOLUMES) == OK
    assert model.volume_infused_ul == 0
    assert model.volume_primed_ul == 0
    assert WarningFlag.VTBI_COMPLETE not in model.warning_flags


class TestCommandTaking:
    def test_same_seq_is_not_taken_twice(self) -> None:
        model = PumpModel(serial_number=1)
        Controller(model).program()
        assert model.write_holding(112, [5, Command.START]) is not None
        assert model.write_holding(112, [5, Command.PAUSE]) is None
        assert state_of(model) is State.INFUSING
        assert model.last_cmd_seq == 5

    def test_command_zero_is_not_taken(self) -> None:
        model = PumpModel(serial_number=1)
        assert model.write_holding(112, [9, 0]) is None
        assert model.last_cmd_seq == 0

    def test_seq_zero_at_power_up_is_not_taken(self) -> None:
        model = PumpModel(serial_number=1)
        assert model.write_holding(112, [0, Command.STOP]) is None

    def test_half_written_pair_is_stored_but_not_executed(self) -> None:
        model = PumpModel(serial_number=1)
        Controller(model).program()
        assert model.write_holding(113, [Command.START]) is None
        assert model.write_holding(112, [3]) is None
        assert state_of(model) is State.IDLE
        assert model.holding_registers()[12:14] == [3, Command.START]

    def test_rejected_command_is_echoed_too(self) -> None:
        model = PumpModel(serial_number=1)
        taken = model.write_holding(112, [17, Command.PAUSE])
        assert taken is not None
        assert (model.last_cmd_seq, model.last_cmd_result) == (17, STATE_)

    def test_one_write_of_program_and_command_applies_program_first(self) -> None:
        model = PumpModel(serial_number=1)
        words = [0, 15_000, 0, 10_000, 0, 0, 0, 0, 0, 0, 0, 0, 1, Command.START]
        taken = model.write_holding(100, words)
        assert taken is not None
        assert taken.result == OK
        assert state_of(model) is State.INFUSING

    @pytest.mark.parametrize(
        ("address", "values"), [(99, [1]), (113, [1, 2]), (100, []), (105, [70_000])]
    )
    def test_bad_write_is_refused_and_changes_nothing(
        self, address: int, values: list[int]
    ) -> None:
        from pumpsim.errors import ModelInputError

        model = PumpModel(serial_number=1)
        before = model.holding_registers()
        with pytest.raises(ModelInputError):
            model.write_holding(address, values)
        assert model.holding_registers() == before
