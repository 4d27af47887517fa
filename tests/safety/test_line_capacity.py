"""The line-capacity rule: a serial line whose polls take more than 80 % of it is refused for
live use (a warning in simulation), and the poll period it names does fit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.line_capacity import (
    MAX_UTILISATION,
    CharFormat,
    Exchange,
    InvalidLine,
    LineLoad,
    SerialTiming,
    line_load,
    line_verdicts,
)
from safety.verdicts import Severity

RTU_115200 = SerialTiming(
    baudrate=115_200, char=CharFormat(), end_of_request_s=0.00175, gap_s=0.00175
)
STATUS = Exchange(8, 47)
HEARTBEAT = Exchange(11, 8)


def test_a_character_counts_start_data_parity_and_stop_bits() -> None:
    assert CharFormat().bits == 10
    assert CharFormat(8, parity=True, stop_bits=1).bits == 11
    assert CharFormat(7, parity=True, stop_bits=2).bits == 11
    assert CharFormat(8, parity=False, stop_bits=2).bits == 11


def test_a_frame_and_an_exchange_in_seconds() -> None:
    assert RTU_115200.frame_s(55) == pytest.approx(55 * 10 / 115_200)
    expected = (8 + 47) * 10 / 115_200 + 0.00175 + RTU_115200.turnaround_s + 0.00175
    assert RTU_115200.exchange_s(STATUS) == pytest.approx(expected)
    assert RTU_115200.poll_s([STATUS, HEARTBEAT]) == pytest.approx(
        RTU_115200.exchange_s(STATUS) + RTU_115200.exchange_s(HEARTBEAT)
    )


def test_sixteen_pumps_at_10_hz_oversubscribe_115200_baud() -> None:
    load = line_load(RTU_115200, [[STATUS, HEARTBEAT]] * 16, 10.0)
    assert load.pumps == 16
    assert load.utilisation == pytest.approx(3.75, abs=0.01)
    assert not load.fits
    assert load.fitting_poll_hz == pytest.approx(2.13, abs=0.01)
    assert load.fitting_pumps == 3
    line = "/dev/ttyUSB0 @ 115200 8N1"
    [verdict] = line_verdicts(load, line=line, pumps="a, b", simulation=False)
    assert verdict.severity is Severity.HARD
    assert verdict.code == "line.oversubscribed"
    assert verdict.rule == "line.capacity"
    assert "Line /dev/ttyUSB0 @ 115200 8N1 cannot poll its 16 pump(s) (a, b) every 100 ms" in (
        verdict.message
    )
    assert "375% of its time at 10 Hz" in verdict.message
    assert "poll period of 469 ms or longer (poll_hz ≤ 2.13)" in verdict.message
    assert "at most 3 such pump(s)" in verdict.message
    assert (verdict.value, verdict.limit) == ("3.748", "0.800")


def test_in_simulation_the_same_line_is_a_warning() -> None:
    load = line_load(RTU_115200, [[STATUS, HEARTBEAT]] * 16, 10.0)
    [verdict] = line_verdicts(load, line="l", pumps="p", simulation=True)
    assert verdict.severity is Severity.NOTE
    assert verdict.code == "line.oversubscribed.simulated"


def test_a_line_that_carries_its_pumps_says_nothing() -> None:
    load = line_load(RTU_115200, [[STATUS, HEARTBEAT]] * 3, 10.0)
    assert load.fits
    assert line_verdicts(load, line="l", pumps="p", simulation=False) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: CharFormat(data_bits=9),
        lambda: CharFormat(stop_bits=3),
        lambda: Exchange(0, 5),
        lambda: Exchange(5, 0),
        lambda: SerialTiming(0, CharFormat(), 0.0, 0.0),
        lambda: SerialTiming(9600, CharFormat(), -0.001, 0.0),
        lambda: SerialTiming(9600, CharFormat(), 0.0, math.nan),
        lambda: SerialTiming(9600, CharFormat(), 0.0, 0.0, turnaround_s=math.inf),
        lambda: LineLoad(busy_s_per_poll=0.0, pumps=1, poll_hz=10.0),
        lambda: LineLoad(busy_s_per_poll=math.nan, pumps=1, poll_hz=10.0),
        lambda: LineLoad(busy_s_per_poll=0.01, pumps=0, poll_hz=10.0),
        lambda: LineLoad(busy_s_per_poll=0.01, pumps=1, poll_hz=0.0),
        lambda: LineLoad(busy_s_per_poll=0.01, pumps=1, poll_hz=math.inf),
        lambda: line_load(RTU_115200, [], 10.0),
    ],
)
def test_a_line_that_cannot_be_real_is_a_caller_bug(make: object) -> None:
    with pytest.raises(InvalidLine):
        make()  # type: ignore[operator]


timings = st.builds(
    SerialTiming,
    baudrate=st.sampled_from([1200, 2400, 9600, 19_200, 38_400, 57_600, 115_200, 230_400]),
    char=st.builds(
        CharFormat,
        data_bits=st.sampled_from([7, 8]),
        parity=st.booleans(),
        stop_bits=st.sampled_from([1, 2]),
    ),
    end_of_request_s=st.floats(0, 0.01),
    gap_s=st.floats(0, 0.01),
    turnaround_s=st.floats(0, 0.02),
)
exchanges = st.builds(Exchange, st.integers(1, 256), st.integers(1, 256))
polls = st.lists(st.lists(exchanges, min_size=1, max_size=3), min_size=1, max_size=32)
rates = st.floats(1, 50)


@given(timings, polls, rates, st.booleans())
def test_refused_exactly_when_live_and_beyond_the_limit(
    timing: SerialTiming, pumps: list[list[Exchange]], poll_hz: float, simulation: bool
) -> None:
    load = line_load(timing, pumps, poll_hz)
    verdicts = line_verdicts(load, line="l", pumps="p", simulation=simulation)
    assert load.fits == (load.utilisation <= MAX_UTILISATION + 1e-9)
    assert bool(verdicts) == (not load.fits)
    hard = [v for v in verdicts if v.severity is Severity.HARD]
    assert bool(hard) == (not load.fits and not simulation)


@given(timings, polls, rates)
def test_the_named_poll_rate_and_pump_count_do_fit(
    timing: SerialTiming, pumps: list[list[Exchange]], poll_hz: float
) -> None:
    load = line_load(timing, pumps, poll_hz)
    at_fitting_rate = line_load(timing, pumps, load.fitting_poll_hz)
    assert at_fitting_rate.fits
    assert line_verdicts(at_fitting_rate, line="l", pumps="p", simulation=False) == []
    # No faster rate fits: the named one is the limit, not merely a safe guess.
    assert not line_load(timing, pumps, load.fitting_poll_hz * 1.01).fits
    # With all pumps alike, the named number of them fits and one more does not.
    alike = [pumps[0]] * len(pumps)
    same = line_load(timing, alike, poll_hz)
    n = same.fitting_pumps
    if n >= 1:
        assert line_load(timing, [pumps[0]] * n, poll_hz).fits
    assert not line_load(timing, [pumps[0]] * (n + 1), poll_hz).fits


@given(timings, polls, rates)
def test_more_pumps_a_faster_poll_or_a_slower_line_never_lighten_the_load(
    timing: SerialTiming, pumps: list[list[Exchange]], poll_hz: float
) -> None:
    load = line_load(timing, pumps, poll_hz)
    assert line_load(timing, [*pumps, pumps[0]], poll_hz).utilisation > load.utilisation
    assert line_load(timing, pumps, poll_hz * 1.5).utilisation > load.utilisation
    slower = SerialTiming(
        timing.baudrate // 2,
        timing.char,
        timing.end_of_request_s,
        timing.gap_s,
        timing.turnaround_s,
    )
    assert line_load(slower, pumps, poll_hz).utilisation > load.utilisation
