"""Whether a shared serial line can poll its pumps at the configured period.

Every pump on one RS-485 or RS-232 line takes its turn on the wire, one request and its
reply at a time. A line that cannot carry its pumps' polls does not fail: each controller
quietly runs behind its schedule, so every pump is polled less often than configured and
every reaction (a runaway seen, an alarm read, a halt sent) is later by the same factor,
with nothing to tell the nurse. So the load is computed from what the configuration
already says — the baud rate and character format, the frames one poll sends and
receives, the silences the protocol asks for, the pump's turnaround — before anything is
opened, and a live configuration that needs more than `MAX_UTILISATION` of its line is
refused (:func:`line_verdicts`).

The head-room above the polls is for what is not a poll: the commands (a STOP's write and
its confirming reads), a request's quiet period after a timeout, a pushed alarm's extra
read. A line at 100 % has none of it, and its halts wait behind the polls.

Pure: no I/O, no clock, no imports from ``pumpd``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from safety.verdicts import Severity, Verdict

MAX_UTILISATION = 0.8
"""The share of a line's time its pumps' polls may take; the rest is for commands and the
quiet period after a lost reply."""

TURNAROUND_S = 0.005
"""What one exchange costs beyond its frames and the protocol's silences: the pump's time
to answer and the host's serial latency (a USB adapter's receive timer). An allowance,
not a measurement: `make bench` measures a line's idle round trip beside it."""

RULE = "line.capacity"
_ROUNDING = 1e-9
"""Shares within this of the limit are at it: float sums of frame times are not exact."""


class InvalidLine(ValueError):
    """A line or exchange description that cannot be real (a caller bug)."""


@dataclass(frozen=True, slots=True)
class CharFormat:
    """One character on the wire: a start bit, the data bits, parity (if any), stop bits."""

    data_bits: int = 8
    parity: bool = False
    stop_bits: int = 1

    def __post_init__(self) -> None:
        if self.data_bits not in (7, 8) or self.stop_bits not in (1, 2):
            raise InvalidLine(f"no serial character has {self}")

    @property
    def bits(self) -> int:
        return 1 + self.data_bits + (1 if self.parity else 0) + self.stop_bits


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its reply, in bytes on the wire (framing and checksum included)."""

    request_bytes: int
    reply_bytes: int

    def __post_init__(self) -> None:
        if self.request_bytes < 1 or self.reply_bytes < 1:
            raise InvalidLine(f"an exchange sends and receives at least one byte, got {self}")


@dataclass(frozen=True, slots=True)
class SerialTiming:
    """How one line is driven: what an exchange costs beyond its bytes.

    ``end_of_request_s`` is the silence that ends a request before the pump may answer
    (Modbus RTU's 3.5 characters; 0 where a frame ends with its own end byte);
    ``gap_s`` the silence the driver keeps after a reply before the next request.
    """

    baudrate: int
    char: CharFormat
    end_of_request_s: float
    gap_s: float
    turnaround_s: float = TURNAROUND_S

    def __post_init__(self) -> None:
        if self.baudrate <= 0:
            raise InvalidLine(f"baud rate must be positive, got {self.baudrate}")
        silences = (self.end_of_request_s, self.gap_s, self.turnaround_s)
        if not all(math.isfinite(s) and s >= 0 for s in silences):
            raise InvalidLine(f"silences must be finite and not negative, got {silences}")

    def frame_s(self, size_bytes: int) -> float:
        """Seconds `size_bytes` take on the wire."""
        return size_bytes * self.char.bits / self.baudrate

    def exchange_s(self, exchange: Exchange) -> float:
        """Seconds the line is taken by one exchange, up to the moment the next may start."""
        return (
            self.frame_s(exchange.request_bytes)
            + self.end_of_request_s
            + self.turnaround_s
            + self.frame_s(exchange.reply_bytes)
            + self.gap_s
        )

    def poll_s(self, exchanges: Sequence[Exchange]) -> float:
        """Seconds one poll of one pump (these exchanges, one after another) takes."""
        return sum(self.exchange_s(e) for e in exchanges)


@dataclass(frozen=True, slots=True)
class LineLoad:
    """What the pumps on one line ask of it at a poll rate."""

    busy_s_per_poll: float
    """Seconds of line time one poll of every pump on it takes."""
    pumps: int
    poll_hz: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.busy_s_per_poll) and self.busy_s_per_poll > 0):
            raise InvalidLine(f"a poll takes some line time, got {self.busy_s_per_poll}")
        if self.pumps < 1 or not (math.isfinite(self.poll_hz) and self.poll_hz > 0):
            raise InvalidLine(f"a line load needs pumps and a poll rate, got {self}")

    @property
    def utilisation(self) -> float:
        """The share of the line's time its polls take (above 1: it cannot keep up)."""
        return self.busy_s_per_poll * self.poll_hz

    @property
    def fitting_poll_hz(self) -> float:
        """The fastest poll rate at which the polls take `MAX_UTILISATION` of the line."""
        return MAX_UTILISATION / self.busy_s_per_poll

    @property
    def fitting_pumps(self) -> int:
        """How many such pumps (of the average load) fit at this poll rate."""
        per_pump_s = self.busy_s_per_poll / self.pumps
        return math.floor((MAX_UTILISATION + _ROUNDING) / (per_pump_s * self.poll_hz))

    @property
    def fits(self) -> bool:
        return self.utilisation <= MAX_UTILISATION + _ROUNDING


def line_load(
    timing: SerialTiming, polls: Sequence[Sequence[Exchange]], poll_hz: float
) -> LineLoad:
    """The load of the pumps whose polls are `polls` (one sequence of exchanges each)."""
    if not polls:
        raise InvalidLine("a line load needs at least one pump")
    return LineLoad(
        busy_s_per_poll=sum(timing.poll_s(p) for p in polls), pumps=len(polls), poll_hz=poll_hz
    )


def line_verdicts(load: LineLoad, *, line: str, pumps: str, simulation: bool) -> list[Verdict]:
    """A line that its polls take beyond `MAX_UTILISATION` of: refused for live use, a
    warning in simulation (nobody is at risk, and a test may overload a line on purpose).

    `line` names the line and `pumps` the pumps on it, for the sentence.
    """
    if load.fits:
        return []
    period_ms = 1000 / load.poll_hz
    # Rounded the safe way: a period shown shorter, or a rate higher, would not fit.
    fitting_ms = math.ceil(1000 / load.fitting_poll_hz)
    fitting_hz = math.floor(load.fitting_poll_hz * 100) / 100
    said = (
        f"Line {line} cannot poll its {load.pumps} pump(s) ({pumps}) every {period_ms:.0f} ms: "
        f"one poll of them all takes {load.busy_s_per_poll * 1000:.1f} ms of the line, "
        f"{load.utilisation:.0%} of its time at {load.poll_hz:g} Hz, above the "
        f"{MAX_UTILISATION:.0%} that leaves room for commands. It fits at a poll period of "
        f"{fitting_ms} ms or longer (poll_hz ≤ {fitting_hz:.2f}), or with at "
        f"most {load.fitting_pumps} such pump(s) on the line at {load.poll_hz:g} Hz; "
        "otherwise each pump is polled late and every reaction is later by as much."
    )
    figures = {
        "value": f"{load.utilisation:.3f}",
        "limit": f"{MAX_UTILISATION:.3f}",
        "unit": "share of the line's time",
    }
    if simulation:
        return [Verdict("line.oversubscribed.simulated", Severity.NOTE, said, RULE, **figures)]
    return [Verdict("line.oversubscribed", Severity.HARD, said, RULE, **figures)]
