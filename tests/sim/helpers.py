"""Helpers that drive a `PumpModel` through its registers only, as a controller would,
so the model tests exercise the same path the Modbus server uses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from pumpsim.model import PumpModel
from pumpsim.registers import CmdResult, Command, State

RATE_150_ML_H = 15_000  # centi-mL/h
VTBI_10_ML = 10_000  # µL
KVO_1_ML_H = 100
PRIME_500_UL = 500
PRIME_300_ML_H = 30_000


def words32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


class Controller:
    """Writes a pump's holding registers like a GIP-MB1 controller, seq numbers included."""

    def __init__(self, model: PumpModel) -> None:
        self.model = model
        self._seq: Iterator[int] = itertools.count(1)

    def program(
        self,
        *,
        rate: int = RATE_150_ML_H,
        vtbi: int = VTBI_10_ML,
        kvo: int = 0,
        prime_volume: int = PRIME_500_UL,
        prime_rate: int = PRIME_300_ML_H,
    ) -> None:
        self.model.write_holding(
            100,
            words32(rate)
            + words32(vtbi)
            + words32(kvo)
            + words32(prime_volume)
            + words32(prime_rate),
        )

    def command(self, command: int) -> CmdResult:
        seq = next(self._seq)
        taken = self.model.write_holding(112, [seq, command])
        assert taken is not None, "the pump did not take the command"
        assert self.model.last_cmd_seq == seq
        return taken.result


def pump_in(state: State, *, kvo: int = KVO_1_ML_H) -> tuple[PumpModel, Controller]:
    """A fresh pump brought into `state` the way a controller would, with no condition left."""
    model = PumpModel(serial_number=4242)
    ctl = Controller(model)
    ctl.program(kvo=kvo)
    if state is State.PRIMING:
        assert ctl.command(Command.PRIME) == CmdResult.OK
    elif state in (State.INFUSING, State.PAUSED):
        assert ctl.command(Command.START) == CmdResult.OK
        if state is State.PAUSED:
            assert ctl.command(Command.PAUSE) == CmdResult.OK
    elif state is State.KVO:
        assert ctl.command(Command.START) == CmdResult.OK
        model.advance(3600)  # 150 mL/h for an hour is far past 10 mL
    elif state is State.ALARM:
        from pumpsim.registers import AlarmFlag

        assert ctl.command(Command.START) == CmdResult.OK
        model.set_condition(AlarmFlag.DOOR_OPEN, True)
        model.set_condition(AlarmFlag.DOOR_OPEN, False)
    assert model.state is state
    return model, ctl


def state_of(model: PumpModel) -> State:
    """The pump's state, read through a call so a type checker does not pin it."""
    return model.state
