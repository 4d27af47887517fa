"""The pumps of one simulator, their shared scaled clock and the command log.

Every path that touches a pump (Modbus action, periodic tick, control channel, Python API)
goes through `PumpBank.sync`, so the physics is always brought to "now" before a value is
read or changed, whichever path comes first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

from pumpsim.errors import SimConfigError, UnknownUnitError
from pumpsim.model import DEFAULT_MAX_RATE_CENTI_ML_H, PumpModel

MAX_UNITS = 247
MAX_TIME_SCALE = 1_000_000


class ScaledClock:
    """Simulated seconds since start: monotonic nanoseconds times the time scale, exactly."""

    def __init__(self, time_scale: float) -> None:
        if not math.isfinite(time_scale) or not 0 < time_scale <= MAX_TIME_SCALE:
            raise SimConfigError(f"time_scale must be in (0, {MAX_TIME_SCALE}], got {time_scale}")
        self.time_scale = time_scale
        self._scale = Fraction(time_scale)
        self._t0_ns = time.monotonic_ns()

    def now_s(self) -> Fraction:
        return Fraction(time.monotonic_ns() - self._t0_ns, 1_000_000_000) * self._scale


@dataclass(frozen=True)
class CommandRecord:
    """A command a pump took (executed or rejected), stamped with this process's monotonic."""

    unit: int
    cmd_seq: int
    command: int
    result: int
    t_monotonic: float
    sim_time_s: float

    def as_json(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "cmd_seq": self.cmd_seq,
            "command": self.command,
            "result": self.result,
            "t_monotonic": self.t_monotonic,
            "sim_time_s": self.sim_time_s,
        }


class PumpBank:
    def __init__(
        self,
        *,
        pumps: int,
        time_scale: float,
        serial_base: int,
        max_rate_centi_ml_h: int = DEFAULT_MAX_RATE_CENTI_ML_H,
    ) -> None:
        if not 1 <= pumps <= MAX_UNITS:
            raise SimConfigError(f"pumps must be in 1..{MAX_UNITS}, got {pumps}")
        self.clock = ScaledClock(time_scale)
        self._models = {
            unit: PumpModel(
                serial_number=serial_base + unit, max_rate_centi_ml_h=max_rate_centi_ml_h
            )
            for unit in range(1, pumps + 1)
        }
        self._log: list[CommandRecord] = []

    @property
    def units(self) -> tuple[int, ...]:
        return tuple(self._models)

    def model(self, unit: int) -> PumpModel:
        """The model without advancing it (for the Modbus action's hot path use `sync`)."""
        try:
            return self._models[unit]
        except KeyError:
            raise UnknownUnitError(
                f"no pump with unit id {unit}; this simulator has units 1..{len(self._models)}"
            ) from None

    def sync(self, unit: int) -> PumpModel:
        model = self.model(unit)
        model.advance_to(self.clock.now_s())
        return model

    def sync_all(self) -> None:
        now = self.clock.now_s()
        for model in self._models.values():
            model.advance_to(now)

    def write(self, unit: int, address: int, values: list[int]) -> None:
        """A register write from the wire; a taken command goes to the log."""
        model = self.sync(unit)
        taken = model.write_holding(address, values)
        if taken is not None:
            self._log.append(
                CommandRecord(
                    unit=unit,
                    cmd_seq=taken.cmd_seq,
                    command=taken.command,
                    result=int(taken.result),
                    t_monotonic=time.monotonic(),
                    sim_time_s=float(model.now_s),
                )
            )

    def command_log(self, unit: int | None = None) -> list[CommandRecord]:
        if unit is not None:
            self.model(unit)
            return [r for r in self._log if r.unit == unit]
        return list(self._log)
