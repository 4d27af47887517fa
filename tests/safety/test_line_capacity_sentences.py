"""The line-capacity rule's sentences, figures and refusals held to the letter: what a
clinic administrator reads when `pumpd --check` refuses a line is the whole sentence, and
the override record's figures are data, not prose."""

from __future__ import annotations

import pytest

from safety.line_capacity import (
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
POLL = [Exchange(8, 47), Exchange(11, 8)]

SENTENCE = (
    "Line /dev/ttyUSB0 cannot poll its 16 pump(s) (chair-1 … chair-16) every 100 ms: one "
    "poll of them all takes 374.8 ms of the line, 375% of its time at 10 Hz, above the 80% "
    "that leaves room for commands. It fits at a poll period of 469 ms or longer "
    "(poll_hz ≤ 2.13), or with at most 3 such pump(s) on the line at 10 Hz; otherwise each "
    "pump is polled late and every reaction is later by as much."
)


@pytest.mark.parametrize(
    ("simulation", "code", "severity"),
    [
        (False, "line.oversubscribed", Severity.HARD),
        (True, "line.oversubscribed.simulated", Severity.NOTE),
    ],
)
def test_the_whole_sentence_and_its_figures(
    simulation: bool, code: str, severity: Severity
) -> None:
    load = line_load(RTU_115200, [POLL] * 16, 10.0)
    [verdict] = line_verdicts(
        load, line="/dev/ttyUSB0", pumps="chair-1 … chair-16", simulation=simulation
    )
    assert verdict.message == SENTENCE
    assert (verdict.code, verdict.severity, verdict.rule) == (code, severity, "line.capacity")
    assert (verdict.value, verdict.limit, verdict.unit) == (
        "3.748",
        "0.800",
        "share of the line's time",
    )


def test_the_period_is_a_thousand_milliseconds_over_the_rate() -> None:
    [verdict] = line_verdicts(
        LineLoad(busy_s_per_poll=0.5, pumps=2, poll_hz=4.0), line="l", pumps="p", simulation=False
    )
    assert "every 250 ms: one poll of them all takes 500.0 ms of the line" in verdict.message
    [verdict] = line_verdicts(
        LineLoad(busy_s_per_poll=0.05, pumps=1, poll_hz=1000 / 59.45),
        line="l",
        pumps="p",
        simulation=False,
    )
    assert "every 59 ms:" in verdict.message  # 59.45 ms; 1001 / rate would read 60


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: CharFormat(data_bits=9), "no serial character has CharFormat(data_bits=9"),
        (lambda: Exchange(0, 5), "an exchange sends and receives at least one byte, got"),
        (lambda: Exchange(5, 0), "an exchange sends and receives at least one byte, got"),
        (lambda: SerialTiming(0, CharFormat(), 0.0, 0.0), "baud rate must be positive, got 0"),
        (
            lambda: SerialTiming(9600, CharFormat(), -0.001, 0.0),
            "silences must be finite and not negative, got (-0.001, 0.0, ",
        ),
        (
            lambda: LineLoad(busy_s_per_poll=0.0, pumps=1, poll_hz=10.0),
            "a poll takes some line time, got 0.0",
        ),
        (
            lambda: LineLoad(busy_s_per_poll=0.01, pumps=0, poll_hz=10.0),
            "a line load needs pumps and a poll rate, got LineLoad(",
        ),
        (lambda: line_load(RTU_115200, [], 10.0), "a line load needs at least one pump"),
    ],
)
def test_each_refusal_says_what_is_wrong(make: object, says: str) -> None:
    with pytest.raises(InvalidLine) as refused:
        make()  # type: ignore[operator]
    assert str(refused.value).startswith(says)


def test_one_baud_and_one_pump_are_real_lines() -> None:
    slow = SerialTiming(1, CharFormat(), 0.0, 0.0, turnaround_s=0.0)
    assert slow.frame_s(1) == 10.0
    assert LineLoad(busy_s_per_poll=1e-9, pumps=1, poll_hz=1e-3).fits
