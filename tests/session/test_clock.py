"""The clock: a scaled clock runs exactly ``scale`` times faster than its base, refuses a
scale that is not positive, and a manual clock moves only forward and only when told."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pumpd.clock import (
    Clock,
    InvalidClockSetting,
    ManualClock,
    ScaledClock,
    Stamp,
    SystemClock,
    stamp,
)

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("scale", [0, -1, -0.5, math.nan, math.inf, True, "10"])
def test_a_scaled_clock_refuses_a_scale_that_is_not_positive_and_finite(scale: object) -> None:
    with pytest.raises(InvalidClockSetting):
        ScaledClock(scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0.5, 1, 10, 600])
def test_a_scaled_clock_runs_scale_times_its_base(scale: float) -> None:
    base = ManualClock(START, start_mono_s=50.0)
    clock = ScaledClock(scale, base=base)
    mono0, utc0 = clock.monotonic(), clock.now_utc()
    assert mono0 == 50.0
    assert utc0 == START
    base.advance(3)
    assert clock.monotonic() - mono0 == pytest.approx(3 * scale)
    assert (clock.now_utc() - utc0).total_seconds() == pytest.approx(3 * scale)


def test_scaled_clocks_on_one_epoch_continue_each_other_across_a_restart() -> None:
    """A daemon restarted in a simulation continues its predecessor's simulated time,
    downtime included at the scale (without the epoch the second clock would start at
    the real time, far behind the first one's stamps: its restored times in its future)."""
    base = ManualClock(START)
    first = ScaledClock(60, base=base, epoch_utc=START)
    base.advance(10)
    last_of_first = first.now_utc()
    assert last_of_first == START + dt.timedelta(minutes=10)
    base.advance(2)  # the daemon is down for 2 real seconds
    second = ScaledClock(60, base=ManualClock(base.now_utc()), epoch_utc=START)
    assert second.now_utc() == last_of_first + dt.timedelta(minutes=2)
    assert ScaledClock(60, base=ManualClock(base.now_utc())).now_utc() < last_of_first


def test_a_scaled_clock_refuses_an_epoch_in_the_future_or_naive() -> None:
    base = ManualClock(START)
    with pytest.raises(InvalidClockSetting, match="in the future"):
        ScaledClock(60, base=base, epoch_utc=START + dt.timedelta(seconds=1))
    with pytest.raises(InvalidClockSetting, match="aware UTC"):
        ScaledClock(60, base=base, epoch_utc=START.replace(tzinfo=None))


def test_a_scaled_clock_on_the_system_clock_moves_forward_in_utc() -> None:
    clock = ScaledClock(100)
    first = stamp(clock)
    second = stamp(clock)
    assert second.mono_s >= first.mono_s
    assert second.utc >= first.utc
    assert second.utc.utcoffset() == dt.timedelta(0)


def test_the_system_clock_gives_aware_utc_and_a_monotonic_reading() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    readings = [clock.monotonic() for _ in range(100)]
    assert readings == sorted(readings)
    assert clock.now_utc().utcoffset() == dt.timedelta(0)


def test_a_manual_clock_moves_only_forward_and_only_when_told() -> None:
    clock = ManualClock(START)
    assert isinstance(clock, Clock)
    before = stamp(clock)
    assert stamp(clock) == before
    clock.advance(2.5)
    after = stamp(clock)
    assert after.mono_s - before.mono_s == 2.5
    assert after.utc - before.utc == dt.timedelta(seconds=2.5)
    for bad in (-1, math.nan, math.inf, True):
        with pytest.raises(InvalidClockSetting):
            clock.advance(bad)
    assert stamp(clock) == after


def test_a_manual_clock_refuses_a_naive_start() -> None:
    with pytest.raises(InvalidClockSetting):
        ManualClock(dt.datetime(2026, 3, 2, 9, 0))  # noqa: DTZ001


@pytest.mark.parametrize("mono", [0.1, 1e-9, 123456.789012345, 2.0**40 + 0.5])
def test_a_stamp_survives_json_exactly(mono: float) -> None:
    original = Stamp(mono, START + dt.timedelta(microseconds=7))
    assert Stamp.from_dict(original.as_dict()) == original


@pytest.mark.parametrize(
    ("mono", "utc"),
    [
        (math.nan, START),
        (math.inf, START),
        ("1", START),
        (1.0, dt.datetime(2026, 3, 2, 9, 0)),  # noqa: DTZ001
        (1.0, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
    ],
)
def test_a_stamp_refuses_bad_readings(mono: object, utc: dt.datetime) -> None:
    with pytest.raises(InvalidClockSetting):
        Stamp(mono, utc)  # type: ignore[arg-type]
