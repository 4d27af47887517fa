"""One clock object for all timing, so a simulation can run faster and a test can stop time.

Durations come from a monotonic source (a wall-clock step must never stretch or shorten an
infusion); timestamps for people and the audit log are aware UTC datetimes. A
:class:`Stamp` carries both, read at the same moment, because the session machine never
reads a clock itself: every command and device fact is handed the moment it happened.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class InvalidClockSetting(ValueError):
    """A clock asked to run backwards, at no speed, or from a naive start time."""


@runtime_checkable
class Clock(Protocol):
    """Where pumpd gets the time; the only two readings it ever needs."""

    def monotonic(self) -> float:
        """Seconds on a clock that never steps; only differences mean anything."""
        ...

    def now_utc(self) -> dt.datetime:
        """The current time as an aware UTC datetime."""
        ...


def _check_utc(name: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.utcoffset() != dt.timedelta(0):
        raise InvalidClockSetting(f"{name} must be an aware UTC datetime, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Stamp:
    """One moment: monotonic seconds for durations, UTC for records."""

    mono_s: float
    utc: dt.datetime

    def __post_init__(self) -> None:
        m = self.mono_s
        if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m):
            raise InvalidClockSetting(f"mono_s must be a finite number of seconds, got {m!r}")
        _check_utc("utc", self.utc)

    def as_dict(self) -> dict[str, str]:
        """JSON-ready; the float goes through repr so it comes back bit for bit."""
        return {"mono_s": repr(float(self.mono_s)), "utc": self.utc.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Stamp:
        return cls(float(data["mono_s"]), dt.datetime.fromisoformat(data["utc"]))


def stamp(clock: Clock) -> Stamp:
    """Both readings of ``clock`` for one event."""
    return Stamp(clock.monotonic(), clock.now_utc())


class SystemClock:
    """The real clocks: ``time.monotonic`` and the system's UTC time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_utc(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ScaledClock:
    """Runs ``scale`` times faster than real time from the moment it is created.

    For simulation only: a scaled clock next to a real pump would make every timeout and
    every volume estimate wrong by the same factor. The daemon refuses the combination;
    this class only refuses a scale that is not a positive finite number.

    ``epoch_utc``: the simulated UTC time is then a function of the real one,
    ``epoch + (real − epoch) × scale``, so every process started on the same epoch agrees
    on it. A daemon restarted in a simulation (killed, or stopped and started) therefore
    continues the simulated time of the one before it, downtime included at the same
    scale as the simulated pumps ran through it. Without an epoch, simulated time starts
    at the real time of creation, and a restarted daemon's "now" would lie behind the
    stamps its predecessor recorded.
    """

    def __init__(
        self, scale: float, base: Clock | None = None, *, epoch_utc: dt.datetime | None = None
    ) -> None:
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise InvalidClockSetting(f"scale must be a number, got {scale!r}")
        if not math.isfinite(scale) or scale <= 0:
            raise InvalidClockSetting(f"scale must be finite and > 0, got {scale!r}")
        self.scale = float(scale)
        self._base = base if base is not None else SystemClock()
        self._mono0 = self._base.monotonic()
        real_utc = self._base.now_utc()
        if epoch_utc is None:
            self._utc0 = real_utc
        else:
            epoch = _check_utc("epoch_utc", epoch_utc)
            if epoch > real_utc:
                raise InvalidClockSetting(f"epoch_utc {epoch.isoformat()} is in the future")
            self._utc0 = epoch + (real_utc - epoch) * self.scale

    def _elapsed_s(self) -> float:
        return (self._base.monotonic() - self._mono0) * self.scale

    def monotonic(self) -> float:
        return self._mono0 + self._elapsed_s()

    def now_utc(self) -> dt.datetime:
        return self._utc0 + dt.timedelta(seconds=self._elapsed_s())


class ManualClock:
    """A clock for tests: it moves only when :meth:`advance` is called."""

    def __init__(self, start_utc: dt.datetime | None = None, start_mono_s: float = 1000.0) -> None:
        utc = start_utc if start_utc is not None else dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
        self._utc = _check_utc("start_utc", utc)
        self._mono_s = float(start_mono_s)

    def monotonic(self) -> float:
        return self._mono_s

    def now_utc(self) -> dt.datetime:
        return self._utc

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` (never backwards)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise InvalidClockSetting(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise InvalidClockSetting(f"a clock only moves forward, got {seconds!r} s")
        self._mono_s += seconds
        self._utc += dt.timedelta(seconds=seconds)
