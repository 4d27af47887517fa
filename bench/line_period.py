"""The poll period a benchmark line can carry, from the same computation the daemon's
start applies (`safety.line_capacity`), so the shared-line figures measure reactions at a
period the line keeps, not a line running behind its schedule.

Serial lines (Modbus RTU, New Era): the configuration's computation (frames, silences, the
turnaround allowance), and the same with the idle status read measured on this line in
place of the allowance when the line here is slower than it (a pseudo-terminal and a
Python simulator answer later than a pump); the longer period of the two. Modbus TCP has
no configuration fact to compute from: each of a poll's two requests (the status read,
the heartbeat) is taken as one measured idle round trip. Never faster than the nominal
100 ms.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal

from pumpd.config_pumps import PumpConfig
from pumpd.drivers import poll_on_line
from safety.line_capacity import MAX_UTILISATION, LineLoad, line_load

NOMINAL_POLL_HZ = 10.0
TCP_REQUESTS_PER_POLL = 2


@dataclass(frozen=True)
class LinePeriod:
    poll_period_s: float
    configured_s: float | None
    """What the daemon's check computes for this line (None: TCP, nothing to compute)."""
    measured_s: float
    """The same with the measured idle round trip for each exchange's turnaround."""
    utilisation_at_nominal: float
    """The share of the line 10 Hz would take, by the configuration's computation (or
    the measured round trips on TCP)."""

    def describe(self) -> str:
        configured = (
            f"{self.configured_s * 1000:.0f} ms by the configuration's computation, "
            if self.configured_s is not None
            else ""
        )
        return (
            f"poll period {self.poll_period_s * 1000:.0f} ms ({configured}"
            f"{self.measured_s * 1000:.0f} ms with the measured idle round trip, at most "
            f"{MAX_UTILISATION:.0%} of the line; 100 ms would take "
            f"{self.utilisation_at_nominal:.0%})"
        )


def _ceil_ms(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000


def bench_pumps(kind: str, device: str, pumps: int, baudrate: int) -> list[PumpConfig]:
    """The bench's line as a configuration would name it."""
    if kind == "rtu":
        return [
            PumpConfig(
                id=f"chair-{u}",
                transport="modbus-rtu",
                unit=u,
                profile="gip-mb1",
                heartbeat_timeout_s=10,
                device=device,
                baudrate=baudrate,
            )
            for u in range(1, pumps + 1)
        ]
    return [
        PumpConfig(
            id=f"chair-{u}",
            transport="newera-serial",
            unit=u,
            profile="newera",
            heartbeat_timeout_s=10,
            device=device,
            baudrate=baudrate,
            syringe_diameter_mm=Decimal("26.59"),
        )
        for u in range(1, pumps + 1)
    ]


def serial_period(pumps: list[PumpConfig], idle_read_ms: float) -> LinePeriod:
    polls = [q for q in (poll_on_line(p) for p in pumps) if q is not None]
    assert len(polls) == len(pumps), "serial pumps only"
    first = polls[0]
    exchanges = [p.exchanges for p in polls]
    configured = line_load(first.timing, exchanges, NOMINAL_POLL_HZ)
    # The idle read measured here is the status exchange, its silences and whatever the
    # line takes to answer: what is left over its frames and silences is this line's
    # turnaround, used when it is longer than the allowance.
    status = first.exchanges[0]
    frames_and_silences_s = first.timing.exchange_s(status) - first.timing.turnaround_s
    turnaround_s = max(first.timing.turnaround_s, idle_read_ms / 1000 - frames_and_silences_s)
    measured_timing = dataclasses.replace(first.timing, turnaround_s=turnaround_s)
    measured = line_load(measured_timing, exchanges, NOMINAL_POLL_HZ)
    configured_s = 1 / configured.fitting_poll_hz
    measured_s = 1 / measured.fitting_poll_hz
    period = _ceil_ms(max(1 / NOMINAL_POLL_HZ, configured_s, measured_s))
    return LinePeriod(period, configured_s, measured_s, configured.utilisation)


def tcp_period(pumps: int, idle_read_ms: float) -> LinePeriod:
    load = LineLoad(
        busy_s_per_poll=pumps * TCP_REQUESTS_PER_POLL * idle_read_ms / 1000,
        pumps=pumps,
        poll_hz=NOMINAL_POLL_HZ,
    )
    measured_s = 1 / load.fitting_poll_hz
    period = _ceil_ms(max(1 / NOMINAL_POLL_HZ, measured_s))
    return LinePeriod(period, None, measured_s, load.utilisation)
