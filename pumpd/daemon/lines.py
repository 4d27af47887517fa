"""Whether each shared serial line can poll its pumps at ``poll_hz``: ``pumpd --check`` and
every start, before any pump is contacted.

A line its polls oversubscribe does not fail: every pump on it is polled late, and every
reaction is late by as much, silently. So a live configuration whose polls would take more
than `safety.line_capacity.MAX_UTILISATION` of a line is refused, naming the line, its
pumps, the load and the poll period that would fit; in simulation it is a loud warning
(docs/driver.md, "Line capacity"; docs/safety/hazards.md H88–H90). Modbus TCP endpoints
are not judged here: their capacity is the network's round trip, which ``make bench``
measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpd.config import DaemonConfig
from pumpd.drivers import PollOnLine, poll_on_line
from safety.line_capacity import LineLoad, line_load, line_verdicts
from safety.verdicts import Severity


@dataclass(frozen=True, slots=True)
class LineRefusal:
    """A line the start would refuse: the configuration key at fault and why."""

    key: str
    message: str


@dataclass(frozen=True, slots=True)
class LineReview:
    line: str
    pump_ids: tuple[str, ...]
    load: LineLoad


def line_loads(config: DaemonConfig) -> list[LineReview]:
    """Every serial line of the configuration with the load its pumps' polls put on it."""
    lines: dict[str, list[tuple[str, PollOnLine]]] = {}
    for pump in config.pumps:
        poll = poll_on_line(pump)
        if poll is not None:
            lines.setdefault(poll.key, []).append((pump.id, poll))
    out = []
    for members in lines.values():
        first = members[0][1]
        load = line_load(first.timing, [poll.exchanges for _, poll in members], config.poll_hz)
        out.append(LineReview(first.line, tuple(pump_id for pump_id, _ in members), load))
    return out


def review(config: DaemonConfig) -> tuple[list[LineRefusal], list[str]]:
    """The lines refused for live use, and warnings (an oversubscribed simulated line)."""
    refused: list[LineRefusal] = []
    warnings: list[str] = []
    for r in line_loads(config):
        for verdict in line_verdicts(
            r.load, line=r.line, pumps=", ".join(r.pump_ids), simulation=config.simulation
        ):
            if verdict.severity is Severity.HARD:
                refused.append(LineRefusal("daemon.poll_hz", verdict.message))
            else:
                warnings.append(f"SIMULATION ONLY, refused for live use: {verdict.message}")
    return refused, warnings
