"""Reactions on a shared line: sixteen Modbus pumps on one TCP endpoint or one RTU line, and
New Era pumps daisy-chained on one RS-232 line; with and without the line's priority for
halts, and, for New Era, with and without the wake on a pump-pushed alarm.

The rig is the controller benchmark's (``bench/bench_controller.py``): pumpsim in a child
process at time scale 1 (``bench/simhost.py``), one real ``Controller`` per pump on the real
clock at a poll period the line can carry (``bench/line_period.py``: the daemon's own
line-capacity computation, checked against the idle round trip measured first; never
faster than 100 ms), the group-committing ``AsyncAuditWriter`` on a SQLite store on disk. Each
lane cycles on its pump: fresh controller, session started (line primed by hand), a wait
to a random phase of the poll, the fault, the measurement, clean-up.

Figures, each beside the goal computed in the same run, "reaction p99 ≤ poll period +
2 × one round trip on that line", where the poll period is the one the line was run at and
the round trip is the median of a driver's status reads on that line, idle, measured first:

- Modbus (TCP, RTU on a pty at 115200 baud): **A** runaway ×1.5 → the halting command (the
  kernel's PAUSE) taken by the pump, stamped by the simulator's command log; **B** pump
  occlusion → the ``alarm.raised`` event durable in the store.
- New Era (19200 baud, Safe mode): **push → STP** the stall alarm the pump sent unasked
  (stamped when the simulator queued it) → the STP the pump heard (the simulator's request
  log), in ms and in round trips (the pump's own requests from the push to its first STP,
  the STP included: 1 is "the STP was the first thing it heard"); **B** the stall fault →
  ``alarm.raised`` durable. With the wake the controller ticks on the pushed packet when
  it arrives; without it (a driver that does not offer ``alarm_pushed``) it reads the
  alarm at its next regular poll.

The modes of one figure are measured in alternating rounds (the order rotated each round)
and pooled, so a change in the machine's load hits every mode alike. Each cycle notes the
polls per second its pump really got: on a line that carries fewer requests per second
than its pumps ask for, the controllers run behind their schedule and poll back to back,
and then the wait a push could cut short does not exist. Nothing here asserts a timing;
the figures are printed beside their goals.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pumpd.controller.loop as controller_loop  # white box: the breakdown stamps decide
import pumpd.drivers.priority as priority  # white box: the bench switches it off
from bench.bench_controller import (
    PAUSE_CODE,
    POLL_PERIOD_S,
    PROTOCOL,
    RATE_SETTLE_S,
    ROOT,
    STOP_CODE,
    HandoverStampingWriter,
    Reactions,
    Rig,
    SimProcess,
    StampingStore,
    _config,
    _to_infusing,
    daemon_logs_to_nowhere,
)
from bench.line_period import LinePeriod, bench_pumps, serial_period, tcp_period
from bench.report import Report, Row
from pumpd.audit import AuditStore, migrate
from pumpd.controller import Controller
from pumpd.drivers import (
    Command,
    CommandOutcome,
    ModbusConfig,
    ModbusPumpDriver,
    NewEraConfig,
    NewEraPumpDriver,
    PollSlot,
    PumpCapabilities,
    PumpDriver,
    PumpProgram,
    PumpStatus,
)
from pumpd.protocols import load_library
from safety.actions import ActionKind

REACTION_TIMEOUT_S = 15.0
MODBUS_PUMPS = 16
NEWERA_PUMPS = 2
RTU_BAUD = 115_200
NEWERA_BAUD = 19_200
SYRINGE_MM = Decimal("26.59")
MAX_SETUP_FAILURES = 30


@dataclass(frozen=True)
class Sizes:
    injections: int
    newera_injections: int
    round_trips: int
    rounds: int = 4


FULL = Sizes(injections=96, newera_injections=48, round_trips=200)
QUICK = Sizes(injections=16, newera_injections=8, round_trips=50, rounds=2)


# --------------------------------------------------------------------- the line under test


class NoPush:
    """A New Era driver seen without its ``alarm_pushed``: the controller polls on its clock
    only (the comparison for the wake)."""

    def __init__(self, driver: NewEraPumpDriver) -> None:
        self._d = driver

    @property
    def capabilities(self) -> PumpCapabilities:
        return self._d.capabilities

    async def connect(self) -> None:
        await self._d.connect()

    async def close(self) -> None:
        await self._d.close()

    async def read_status(self) -> PumpStatus:
        return await self._d.read_status()

    async def write_program(self, program: PumpProgram) -> PumpProgram:
        return await self._d.write_program(program)

    async def command(self, command: Command, *, timeout_s: float | None = None) -> CommandOutcome:
        return await self._d.command(command, timeout_s=timeout_s)

    async def heartbeat(self) -> int:
        return await self._d.heartbeat()

    async def set_heartbeat_timeout(self, seconds: int) -> None:
        await self._d.set_heartbeat_timeout(seconds)

    @property
    def poll_slot(self) -> PollSlot | None:
        return self._d.poll_slot


@dataclass
class Line:
    kind: str  # "tcp", "rtu", "newera"
    sim: SimProcess
    ready: dict[str, Any]
    wake: bool = True
    poll_period_s: float = POLL_PERIOD_S
    """The period every controller on this line polls at (`bench/line_period.py`)."""

    def driver(self, unit: int) -> PumpDriver:
        if self.kind == "newera":
            d = NewEraPumpDriver(
                NewEraConfig(
                    device=str(self.ready["newera_path"]),
                    address=unit,
                    baudrate=NEWERA_BAUD,
                    syringe_diameter_mm=SYRINGE_MM,
                    heartbeat_timeout_s=10,
                )
            )
            return d if self.wake else NoPush(d)
        if self.kind == "rtu":
            return ModbusPumpDriver(
                ModbusConfig(
                    transport="rtu",
                    device=str(self.ready["rtu_path"]),
                    baudrate=RTU_BAUD,
                    unit=unit,
                )
            )
        return ModbusPumpDriver(
            ModbusConfig(transport="tcp", host=self.sim.host, port=self.sim.port, unit=unit)
        )

    @property
    def pumps(self) -> int:
        return NEWERA_PUMPS if self.kind == "newera" else MODBUS_PUMPS

    async def inject(self, unit: int, fault: str, on: bool = True, **params: Any) -> float:
        if self.kind == "newera":
            reply = await self.sim.request("nera_inject", unit=unit, fault=fault, on=on)
            return float(reply["t"])
        return await self.sim.inject(unit, fault, on, **params)

    async def reboot(self, unit: int) -> None:
        await self.sim.request("nera_reboot" if self.kind == "newera" else "reboot", unit=unit)


async def _start_sim(kind: str) -> tuple[SimProcess, dict[str, Any]]:
    args = ["--pumps", str(MODBUS_PUMPS if kind != "newera" else 1)]
    if kind == "rtu":
        args.append("--rtu")
    if kind == "newera":
        args += ["--newera", str(NEWERA_PUMPS)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.simhost",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    ready: dict[str, Any] = json.loads(first or b"{}")
    if not ready.get("ready"):
        proc.kill()
        raise RuntimeError(f"simulator child did not start: {first!r}")
    return SimProcess(proc, str(ready["host"]), int(ready["port"])), ready


@contextlib.asynccontextmanager
async def _rig(kind: str) -> AsyncIterator[tuple[Rig, Line]]:
    with tempfile.TemporaryDirectory(prefix="pumpd-bench-line-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.db'}"
        migrate.upgrade_url(url)
        store = AuditStore.open(url, simulated=True)
        stamps = StampingStore(store)
        writer = HandoverStampingWriter(stamps)
        sim, ready = await _start_sim(kind)
        try:
            yield Rig(sim, writer, stamps, load_library().get(PROTOCOL)), Line(kind, sim, ready)
        finally:
            await sim.close()
            await writer.aclose()
            store.close()


# --------------------------------------------------------------------- one reaction


@dataclass
class Samples(Reactions):
    polls_per_s: list[float] = field(default_factory=list)
    """Each cycle's achieved polls per second of its pump, before the fault."""


async def _log_since(line: Line, cursor: dict[str, int]) -> dict[str, Any]:
    if line.kind == "newera":
        reply = await line.sim.request(
            "nera_log", since=cursor.get("heard", 0), since_push=cursor.get("pushed", 0)
        )
        cursor["heard"], cursor["pushed"] = int(reply["next"]), int(reply["next_push"])
        return reply
    reply = await line.sim.request("log", since=cursor.get("log", 0))
    cursor["log"] = int(reply["next"])
    return reply


class Watch:
    """The simulator's logs, read incrementally by every lane of one figure."""

    def __init__(self, line: Line) -> None:
        self.line = line
        self.cursor: dict[str, int] = {}
        self.heard: list[dict[str, Any]] = []
        self.pushed: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            reply = await _log_since(self.line, self.cursor)
            self.heard.extend(reply["records"])
            self.pushed.extend(reply.get("pushed", []))

    async def first(self, pick: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + REACTION_TIMEOUT_S
        while True:
            await self.refresh()
            if (found := pick()) is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {REACTION_TIMEOUT_S} s of the fault")
            await asyncio.sleep(0.02)

    def halting(self, unit: int, t0: float) -> dict[str, Any] | None:
        for r in self.heard:
            if self.line.kind == "newera":
                if r["address"] == unit and r["t_monotonic"] >= t0 and r["text"] == "STP":
                    return r
            elif (
                r["unit"] == unit
                and r["t_monotonic"] >= t0
                and r["command"] in (PAUSE_CODE, STOP_CODE)
            ):
                return r
        return None

    def requests_between(self, unit: int, t0: float, last: dict[str, Any]) -> int:
        """The pump's requests heard after ``t0`` up to and including ``last``."""
        return sum(
            1
            for r in self.heard
            if r["address"] == unit and t0 < r["t_monotonic"] <= last["t_monotonic"]
        )

    def push(self, unit: int, t0: float) -> dict[str, Any] | None:
        for r in self.pushed:
            if r["address"] == unit and r["t_monotonic"] >= t0 and r["text"] == "A?S":
                return r
        return None


async def _alarm_durable(rig: Rig, pump_id: str, t0: float) -> float:
    deadline = time.monotonic() + REACTION_TIMEOUT_S
    while (found := rig.stamps.first_alarm_after(pump_id, t0, "tick.pump")) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no pump alarm event from {pump_id} within {REACTION_TIMEOUT_S} s")
        await asyncio.sleep(0.02)
    return found[0]


async def _intents_after(rig: Rig, pump_id: str, t0: float) -> list[float]:
    """When ``pump_id``'s ``interlock.triggered`` events after ``t0`` committed (waited for
    up to one second: after the change that sends a halt first, its intent commits later)."""
    deadline = time.monotonic() + 1.0
    while True:
        found = [t for pid, t, _ in list(rig.stamps.interlocks) if pid == pump_id and t >= t0]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


@dataclass
class Figure:
    kind: str  # "A", "B" (Modbus); "P" (New Era: the push and the stall's alarm)
    out: Samples = field(default_factory=Samples)
    alarm: Samples = field(default_factory=Samples)
    """New Era only: the stall → durable alarm of the same injections."""
    replied: int = 0
    """New Era only: stalls the pump reported in a reply, before its push."""
    round_trips: list[int] = field(default_factory=list)
    """New Era only: the pump's requests from the push to its first STP, STP included."""
    halt_waits: Samples = field(default_factory=Samples)
    """Each halting request's wait for the line."""
    parts: list[dict[str, float]] = field(default_factory=list)
    """A only: each reaction cut into its segments (:class:`Breakdown`), in ms."""
    b_parts: list[dict[str, float]] = field(default_factory=list)
    """B, one fault at a time: each reaction cut into its segments (:func:`b_parts`), in ms."""
    b_uncut: list[str] = field(default_factory=list)
    """B, one fault at a time: each reaction that could not be cut, and why (:func:`b_uncut`)."""

    def merge(self, other: Figure) -> None:
        for mine, theirs in (
            (self.out, other.out),
            (self.alarm, other.alarm),
            (self.halt_waits, other.halt_waits),
        ):
            mine.samples_ms += theirs.samples_ms
            mine.misses += theirs.misses
            mine.setup_failures += theirs.setup_failures
            mine.polls_per_s += theirs.polls_per_s
        self.replied += other.replied
        self.round_trips += other.round_trips
        self.parts += other.parts
        self.b_parts += other.b_parts
        self.b_uncut += other.b_uncut


SEGMENTS = (
    ("fault → read asked", "fault", "read_asked"),
    ("read asked → line granted", "read_asked", "read_granted"),
    ("read's line granted → answered", "read_granted", "read_answered"),
    ("answered → kernel decision", "read_answered", "decided"),
    ("decision → halt asked of the driver", "decided", "halt_asked"),
    ("halt asked → at the pump", "halt_asked", "at_pump"),
    ("decision → its intent durable", "decided", "intent_durable"),
)
"""Figure A's reaction cut at the stamps of :class:`Breakdown`: the first six add up to
the whole; the last says where the intent's commit fell (before or after the halt)."""

B_SEGMENTS = (
    ("fault → read asked", "fault", "read_asked"),
    ("read asked → answered", "read_asked", "read_answered"),
    ("answered → alarm handed to the writer", "read_answered", "handed"),
    ("handed → its write began", "handed", "write_began"),
    ("write began → committed", "write_began", "committed"),
)
"""Figure B's reaction cut at the stamps of :func:`b_parts`; they add up to the whole."""


def _read_before(
    reads: list[tuple[float, float, float, int, int]], handed: float
) -> tuple[float, float, float, int, int] | None:
    """The read that found it: the last one answered before the alarm was handed over."""
    return next((r for r in reversed(reads) if r[2] <= handed), None)


def b_parts(
    reads: list[tuple[float, float, float, int, int]],
    t0: float,
    handed: float | None,
    write: tuple[float, int] | None,
    committed: float,
) -> dict[str, float] | None:
    """Figure B's segments in ms (the read that found the occlusion is the last one answered
    before the alarm was handed over), or None when a stamp is missing (not counted)."""
    if handed is None or write is None:
        return None
    read = _read_before(reads, handed)
    if read is None or read[0] < t0:
        return None
    stamps = {
        "fault": t0,
        "read_asked": read[0],
        "read_answered": read[2],
        "handed": handed,
        "write_began": write[0],
        "committed": committed,
    }
    parts = {name: (stamps[b] - stamps[a]) * 1000 for name, a, b in B_SEGMENTS}
    parts["batch"] = float(write[1])
    return parts


def b_uncut(
    reads: list[tuple[float, float, float, int, int]],
    t0: float,
    handed: float | None,
    write: tuple[float, int] | None,
    committed: float,
) -> str:
    """Why :func:`b_parts` could not cut a reaction: the report names these, since the
    slowest reactions are often the ones whose stamps do not line up."""
    total = f"{(committed - t0) * 1000:.0f} ms"
    if handed is None:
        return f"{total}: no hand-over of its alarm seen"
    if write is None:
        return f"{total}: its write was not stamped"
    read = _read_before(reads, handed)
    if read is None:
        return f"{total}: no read answered before the alarm was handed over"
    return (
        f"{total}: the last read before the hand-over was asked {(t0 - read[0]) * 1000:.0f} ms "
        f"before the fault and answered {(read[2] - t0) * 1000:.0f} ms after it; the "
        f"hand-over came {(handed - t0) * 1000:.0f} ms after the fault"
    )


_GRANTS: contextvars.ContextVar[list[tuple[float, int, int]] | None] = contextvars.ContextVar(
    "bench_line_grants", default=None
)
"""The line grants of the status read in progress in this task (:class:`Breakdown`): when,
how many requests held or waited for the line when it asked, and how many halting requests
(of any pump on any line) were granted while it waited."""


class Breakdown:
    """Stamps (time.monotonic, the simulator's clock too) of one A reaction's steps.

    The driver of the cycle's pump has its ``read_status`` and ``command`` wrapped on the
    instance (each status read asked and answered; each STOP/PAUSE asked of the driver,
    before the line's lock); the kernel's halting decisions are stamped around
    ``decide`` (:func:`decisions_stamped`); the halt at the pump is the simulator's
    command log, the intent's commit the store's (``StampingStore.interlocks``)."""

    def __init__(self, driver: PumpDriver) -> None:
        self.reads: list[tuple[float, float, float, int, int]] = []
        """(asked, the line granted to it, answered, requests ahead of it on the line when
        it asked, halting requests granted while it waited)."""
        self.halts: list[float] = []
        read_status, command = driver.read_status, driver.command

        async def stamped_read() -> PumpStatus:
            asked = time.monotonic()
            grants: list[tuple[float, int, int]] = []
            token = _GRANTS.set(grants)
            try:
                status = await read_status()
            finally:
                _GRANTS.reset(token)
            answered = time.monotonic()
            granted, ahead, halts = grants[0] if grants else (math.nan, -1, -1)
            self.reads.append((asked, granted, answered, ahead, halts))
            return status

        async def stamped_command(
            which: Command, *, timeout_s: float | None = None
        ) -> CommandOutcome:
            if which in (Command.STOP, Command.PAUSE):
                self.halts.append(time.monotonic())
            return await command(which, timeout_s=timeout_s)

        driver.read_status = stamped_read  # type: ignore[method-assign]
        driver.command = stamped_command  # type: ignore[method-assign, assignment]

    def parts(
        self, t0: float, at_pump: float, decided: list[float], intents: list[float]
    ) -> dict[str, float] | None:
        """The segments in ms, or None when a stamp is missing (not counted)."""
        decision = next((t for t in decided if t0 <= t <= at_pump), None)
        if decision is None:
            return None
        read = next((r for r in reversed(self.reads) if r[2] <= decision), None)
        halt = next((t for t in self.halts if decision <= t <= at_pump), None)
        if read is None or halt is None:
            return None
        stamps = {
            "fault": t0,
            "read_asked": read[0],
            "read_granted": read[1],
            "read_answered": read[2],
            "decided": decision,
            "halt_asked": halt,
            "at_pump": at_pump,
            "intent_durable": next((t for t in intents if t >= decision), math.nan),
        }
        parts = {name: (stamps[b] - stamps[a]) * 1000 for name, a, b in SEGMENTS}
        parts["ahead"] = float(read[3])
        parts["halts"] = float(read[4])
        return parts


@contextlib.contextmanager
def decisions_stamped() -> Iterator[dict[str, list[float]]]:
    """Each pump's halting decisions of the kernel (time.monotonic when ``decide`` returned
    a STOP or PAUSE), while installed; and each line grant a stamped status read got."""
    stamps: dict[str, list[float]] = {}
    original = vars(controller_loop)["decide"]
    acquire = priority.LineLock.acquire

    halts_granted = [0]

    async def granted(lock: priority.LineLock, urgency: priority.Urgency | None = None) -> None:
        ahead = lock.waiting + int(lock.locked())
        halts_before = halts_granted[0]
        await acquire(lock, urgency)
        if (urgency or priority.current_urgency()) is priority.Urgency.HALT:
            halts_granted[0] += 1
        if (grants := _GRANTS.get()) is not None:
            grants.append((time.monotonic(), ahead, halts_granted[0] - halts_before))

    def stamped(limits: Any, pump: Any, s: Any, *rest: Any) -> Any:
        decision = original(limits, pump, s, *rest)
        if any(a.kind in (ActionKind.STOP, ActionKind.PAUSE) for a in decision.actions):
            stamps.setdefault(s.data.pump_id, []).append(time.monotonic())
        return decision

    setattr(controller_loop, "decide", stamped)  # noqa: B010 (not exported: white box)
    priority.LineLock.acquire = granted  # type: ignore[method-assign, assignment]
    try:
        yield stamps
    finally:
        priority.LineLock.acquire = acquire  # type: ignore[method-assign]
        setattr(controller_loop, "decide", original)  # noqa: B010


async def _cycle(
    rig: Rig,
    line: Line,
    unit: int,
    fig: Figure,
    watch: Watch,
    n: int,
    decided: dict[str, list[float]] | None = None,
) -> bool:
    """One injection on ``unit``; False when its set-up failed (the injection is given back)."""
    driver = line.driver(unit)
    stamps = Breakdown(driver) if fig.kind == "A" and decided is not None else None
    ctl: Controller | None = None
    task: asyncio.Task[None] | None = None
    fault = {"A": "runaway", "B": "occlusion-downstream", "P": "stall"}[fig.kind]
    try:
        try:
            await driver.connect()
            config = dataclasses.replace(_config(unit), poll_period_s=line.poll_period_s)
            ctl = Controller(driver=driver, writer=rig.writer, clock=rig.clock, config=config)
            await ctl.attach()
            task = asyncio.create_task(ctl.run())
            await _to_infusing(rig, ctl, f"{line.kind}-{fig.kind}-{unit}-{n}")
            settle = RATE_SETTLE_S + 0.2 if fig.kind == "A" else 0.3
            window_s = settle + random.uniform(0, 2 * line.poll_period_s)
            rate = await _poll_rate(ctl, window_s, skip_s=settle / 2)
            if rate is not None:
                fig.out.polls_per_s.append(rate)
        except Exception as exc:  # noted; the injection is given back
            fig.out.setup_failures.append(f"{type(exc).__name__}: {exc}")
            if len(fig.out.setup_failures) > MAX_SETUP_FAILURES:
                raise
            return False
        pid = ctl.config.pump_id
        try:
            if fig.kind == "A":
                t0 = await line.inject(unit, fault, factor="1.5")
                cmd = await watch.first(lambda: watch.halting(unit, t0), "PAUSE/STOP")
                fig.out.samples_ms.append((float(cmd["t_monotonic"]) - t0) * 1000)
                if stamps is not None and decided is not None:
                    intents = await _intents_after(rig, pid, t0)
                    parts = stamps.parts(
                        t0, float(cmd["t_monotonic"]), decided.get(pid, []), intents
                    )
                    if parts is not None:
                        fig.parts.append(parts)
            elif fig.kind == "B":
                t0 = await line.inject(unit, fault)
                t1 = await _alarm_durable(rig, pid, t0)
                fig.out.samples_ms.append((t1 - t0) * 1000)
            else:
                t0 = await line.inject(unit, fault)
                stp = await watch.first(lambda: watch.halting(unit, t0), "STP")
                pushed = watch.push(unit, t0)
                if pushed is not None and pushed["t_monotonic"] < stp["t_monotonic"]:
                    tp = float(pushed["t_monotonic"])
                    fig.out.samples_ms.append((float(stp["t_monotonic"]) - tp) * 1000)
                    fig.round_trips.append(watch.requests_between(unit, tp, stp))
                else:
                    # A request reached the pump before its own tick pushed the alarm: it
                    # answered that request with the alarm instead (no push to time).
                    fig.replied += 1
                t1 = await _alarm_durable(rig, pid, t0)
                fig.alarm.samples_ms.append((t1 - t0) * 1000)
        except TimeoutError as exc:
            fig.out.misses.append(str(exc))
        return True
    finally:
        if task is not None:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
        await driver.close()
        await line.inject(unit, fault, on=False)
        await line.reboot(unit)


async def _poll_rate(ctl: Controller, seconds: float, *, skip_s: float) -> float | None:
    """Wait `seconds`; the polls per second that ended after the first `skip_s` (None: no
    time left to count in). The ends counted over the span's whole length, not between
    the first and last end seen: in a span shorter than two periods only a pair of polls
    closer than a period would give a rate, and the figure would read high. The first
    moments are skipped because the schedule resumes after the start's commands (which
    held the controller past its period) with a poll at once."""
    ends = 0
    last = ctl.last_poll_s
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        if ctl.last_poll_s != last:
            last = ctl.last_poll_s
            if time.monotonic() - started >= skip_s:
                ends += 1
    span_s = time.monotonic() - started - skip_s
    return ends / span_s if span_s > 0 else None


async def _figure(rig: Rig, line: Line, kind: str, injections: int) -> Figure:
    fig = Figure(kind)
    budget = [injections]
    watch = Watch(line)
    await watch.refresh()
    watch.heard.clear()
    watch.pushed.clear()

    async def lane(unit: int, decided: dict[str, list[float]]) -> None:
        n = 0
        while budget[0] > 0:
            budget[0] -= 1
            n += 1
            if not await _cycle(rig, line, unit, fig, watch, n, decided):
                budget[0] += 1

    with decisions_stamped() as decided:
        async with asyncio.TaskGroup() as lanes:
            for unit in range(1, line.pumps + 1):
                lanes.create_task(lane(unit, decided))
    return fig


async def _rounds(
    rig: Rig,
    line: Line,
    kind: str,
    modes: list[tuple[str, bool, bool]],
    injections: int,
    rounds: int,
    figure: Callable[[Rig, Line, str, int], Awaitable[Figure]] | None = None,
) -> list[Figure]:
    """Each mode's figure, measured in `rounds` alternating rounds (the order rotated each
    round), so that a change of the machine's load hits every mode alike. ``figure``
    measures one round of one mode (the storm's lanes unless another scene is named)."""
    figure = figure or _figure
    figs = [Figure(kind) for _ in modes]
    per_round = max(1, math.ceil(injections / rounds))
    for r in range(rounds):
        order = list(range(len(modes)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for i in order:
            _, prio, wake = modes[i]
            priority.PRIORITIZE_HALTS = prio
            line.wake = wake
            waits = HaltWaits()
            with waits.installed():
                part = await figure(rig, line, kind, per_round)
            part.halt_waits.samples_ms += waits.samples_ms
            figs[i].merge(part)
    priority.PRIORITIZE_HALTS = True
    line.wake = True
    return figs


class HaltWaits:
    """How long each request of a halting command waited for the line (from asking for
    it to being granted it), noted around the real `LineLock.acquire` while installed.

    This is the part of a halt that the priority changes; the reaction around it also
    holds the poll's phase, the tick, the intent's commit and the machine's load."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []
        self._original = priority.LineLock.acquire

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = self._original
        samples = self.samples_ms

        async def acquire(lock: priority.LineLock, urgency: priority.Urgency | None = None) -> None:
            asked = time.perf_counter()
            await original(lock, urgency)
            asked_as = urgency if urgency is not None else priority.current_urgency()
            if asked_as is priority.Urgency.HALT:
                samples.append((time.perf_counter() - asked) * 1000)

        priority.LineLock.acquire = acquire  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            priority.LineLock.acquire = original  # type: ignore[method-assign]


async def _round_trip_ms(line: Line, n: int) -> float:
    """Median of one driver's status reads on the idle line (one request each)."""
    driver = line.driver(1)
    await driver.connect()
    try:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await driver.read_status()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)
    finally:
        await driver.close()


def _line_period(line: Line, rtt_ms: float) -> LinePeriod:
    """The period this line can carry (`bench/line_period.py`)."""
    if line.kind == "tcp":
        return tcp_period(line.pumps, rtt_ms)
    if line.kind == "rtu":
        pumps = bench_pumps("rtu", str(line.ready["rtu_path"]), line.pumps, RTU_BAUD)
    else:
        pumps = bench_pumps("newera", str(line.ready["newera_path"]), line.pumps, NEWERA_BAUD)
    return serial_period(pumps, rtt_ms)


# --------------------------------------------------------------------- the run

LABEL = {
    "tcp": f"{MODBUS_PUMPS} Modbus pumps on one TCP line",
    "rtu": f"{MODBUS_PUMPS} Modbus pumps on one RTU line ({RTU_BAUD} baud, pty)",
    "newera": f"{NEWERA_PUMPS} New Era pumps on one RS-232 line ({NEWERA_BAUD} baud, pty)",
}
WHAT = {
    "A": "runaway ×1.5 → halting command at the pump",
    "B": "occlusion → alarm event durable",
    "P": "pushed stall alarm → STP at the pump",
    "S": "stall → alarm event durable",
}


def _rows(
    report: Report,
    kind: str,
    mode: str,
    samples: Samples,
    rtt_ms: float,
    polls: list[float],
    quick: bool,
    period_s: float,
) -> None:
    line_kind, what = kind.split(":")
    goal_ms = period_s * 1000 + 2 * rtt_ms
    n = len(samples.samples_ms) + len(samples.misses)
    missed = f", {len(samples.misses)} missed" if samples.misses else ""
    label = f"{WHAT[what]}, {LABEL[line_kind]}, {mode}, n={n}{missed}{' (quick)' if quick else ''}"
    p50, p99 = (samples.percentile(50), samples.percentile(99)) if n else (math.nan, math.nan)
    base = f"poll period ({period_s * 1000:.0f} ms) + 2 × round trip ({rtt_ms:.1f} ms)"
    report.add(Row("line", f"{label}, p50", p50, "ms", goal_ms, base))
    report.add(
        Row(
            "line",
            f"{label}, p99",
            p99,
            "ms",
            goal_ms,
            base,
            f"p99 ≤ {goal_ms:.0f} ms",
            p99 <= goal_ms,
        )
    )
    achieved = statistics.median(polls) if polls else math.nan
    asked = 1 / period_s
    report.add(
        Row(
            "line",
            f"polls per pump per s achieved (median of cycles), {label}",
            achieved,
            "polls/s",
            asked,
            "asked (1 / poll period)",
        )
    )
    spread = f" ({min(polls):.1f}–{max(polls):.1f})" if polls else ""
    report.note(
        f"line {line_kind} {what} {mode}: max {max(samples.samples_ms, default=math.nan):.1f} ms; "
        f"each pump got {achieved:.1f} polls/s{spread} (median of cycles; {asked:.1f} asked), "
        f"so its own poll period was {1000 / achieved if achieved else math.nan:.0f} ms"
        + (
            f"; {len(samples.setup_failures)} set-ups failed, retried"
            if samples.setup_failures
            else ""
        )
        + (f"; first miss: {samples.misses[0]}" if samples.misses else "")
    )


def _trip_rows(report: Report, mode: str, trips: list[int], quick: bool) -> None:
    """Pushed stall → STP in round trips of the pump (p50 and max), against one."""
    if not trips:
        return
    name = f"pushed stall → STP in round trips, {LABEL['newera']}, {mode}, n={len(trips)}"
    name += " (quick)" if quick else ""
    p50, most = statistics.median(trips), max(trips)
    report.add(Row("line", f"{name}, p50", p50, "round trips", 1, "one", "≤ 1", p50 <= 1))
    report.add(Row("line", f"{name}, max", most, "round trips", 1, "one", "≤ 1", most <= 1))
    counts = ", ".join(f"{trips.count(k)}× {k}" for k in sorted(set(trips)))
    report.note(f"line newera {mode}: pushed stall → STP in round trips: {counts}")


def _wait_rows(report: Report, kind: str, what: str, mode: str, waits: Samples, rtt: float) -> None:
    """A halting request's wait for the line, beside one round trip on it."""
    n = len(waits.samples_ms)
    if not n:
        return
    name = f"a halting request's wait for the line, {LABEL[kind]}, during {what}, {mode}, n={n}"
    for q in (50, 99):
        report.add(
            Row("line", f"{name}, p{q}", waits.percentile(q), "ms", rtt, "one round trip (idle)")
        )


def _segment_rows(
    report: Report,
    figure: str,
    label: str,
    segments: tuple[tuple[str, str, str], ...],
    parts: list[dict[str, float]],
) -> None:
    for name, _, _ in segments:
        values = sorted(p[name] for p in parts if not math.isnan(p[name]))
        if not values:
            continue
        row = f"{figure} breakdown, {label}, n={len(values)}: {name}"
        for q in (50, 99):
            at = values[max(0, math.ceil(q / 100 * len(values)) - 1)]
            report.add(Row("line", f"{row}, p{q}", at, "ms"))


def b_part_rows(
    report: Report, kind: str, mode: str, parts: list[dict[str, float]], uncut: list[str]
) -> None:
    """Figure B cut into its segments (:data:`B_SEGMENTS`), p50 and p99 of each, and the
    slowest reactions cut the same way."""
    if uncut:
        report.note(f"line {kind} B {mode}: {len(uncut)} not cut: {'; '.join(uncut)}")
    if not parts:
        return
    _segment_rows(report, "B", f"{LABEL[kind]}, {mode}", B_SEGMENTS, parts)
    _slowest_note(
        report,
        f"line {kind} B {mode}",
        [name for name, _, _ in B_SEGMENTS],
        parts,
        lambda p: f" (batch of {p['batch']:.0f})",
        digits=1,
    )


def _slowest_note(
    report: Report,
    what: str,
    whole: list[str],
    parts: list[dict[str, float]],
    aside: Callable[[dict[str, float]], str],
    digits: int = 0,
) -> None:
    """Where the tail goes: the five slowest reactions, each cut into its segments."""
    slowest = sorted(parts, key=lambda p: sum(p[n] for n in whole), reverse=True)[:5]
    cuts = "; ".join(
        f"{sum(p[n] for n in whole):.{digits}f} = "
        + " + ".join(f"{p[n]:.{digits}f}" for n in whole)
        + aside(p)
        for p in slowest
    )
    report.note(
        f"{what}: the slowest {len(slowest)} reactions in ms, total = {' + '.join(whole)}: {cuts}"
    )


def _part_rows(report: Report, kind: str, mode: str, parts: list[dict[str, float]]) -> None:
    """Figure A cut into its segments (:data:`SEGMENTS`), p50 and p99 of each."""
    if not parts:
        return
    _segment_rows(report, "A", f"{LABEL[kind]}, {mode}", SEGMENTS, parts)
    _slowest_note(
        report,
        f"line {kind} A {mode}",
        [name for name, _, _ in SEGMENTS[:-1]],
        parts,
        lambda p: (
            f" ({p['ahead']:.0f} ahead of the read, {p['halts']:.0f} halting requests meanwhile)"
        ),
    )
    ahead = sorted(p["ahead"] for p in parts)
    report.note(
        f"line {kind} A {mode}: requests ahead of the read that found the fault (holding or "
        f"waiting for the line when it asked): median {statistics.median(ahead):.0f}, max "
        f"{ahead[-1]:.0f}"
    )


KINDS = ("tcp", "rtu", "newera")


def _storm() -> bool:
    """Whether to run the storm (every pump of the line faulting over and over) beside the
    one-fault-at-a-time figures: yes, unless ``BENCH_LINE_STORM=0``."""
    return os.environ.get("BENCH_LINE_STORM", "1") != "0"


def _setup_note(report: Report, kind: str, what: str, mode: str, fig: Figure) -> None:
    if fig.out.setup_failures:
        report.note(
            f"line {kind} {what} {mode}: {len(fig.out.setup_failures)} restarts failed "
            f"(first: {fig.out.setup_failures[0]})"
        )


def _kinds() -> tuple[str, ...]:
    """The lines to run: all, or those named in ``BENCH_LINE_KINDS`` (comma-separated)."""
    named = os.environ.get("BENCH_LINE_KINDS", "")
    chosen = tuple(k.strip() for k in named.split(",") if k.strip())
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise ValueError(f"BENCH_LINE_KINDS names {unknown}; known: {', '.join(KINDS)}")
    return chosen or KINDS


async def measure(
    report: Report, sizes: Sizes, quick: bool, kinds: tuple[str, ...] = KINDS
) -> None:
    from bench.bench_line_steady import steady_rounds  # it builds on this module's parts

    for kind in kinds:
        load_before = os.getloadavg()
        async with _rig(kind) as (rig, line):
            rtt = await _round_trip_ms(line, sizes.round_trips)
            report.add(Row("line", f"status read round trip, {LABEL[kind]}, idle (p50)", rtt, "ms"))
            carried = _line_period(line, rtt)
            line.poll_period_s = period = carried.poll_period_s
            report.add(Row("line", f"poll period used, {LABEL[kind]}", period * 1000, "ms"))
            report.note(f"line {kind}: {carried.describe()}")
            if kind == "newera":
                modes = [
                    ("priority, wake", True, True),
                    ("priority, no wake", True, False),
                    ("no priority, wake", False, True),
                ]
                figs = await _rounds(rig, line, "P", modes, sizes.newera_injections, sizes.rounds)
                for (mode, _, _), fig in zip(modes, figs, strict=True):
                    polls = fig.out.polls_per_s
                    _rows(report, f"{kind}:P", mode, fig.out, rtt, polls, quick, period)
                    _trip_rows(report, mode, fig.round_trips, quick)
                    report.note(
                        f"line newera {mode}: of {len(fig.alarm.samples_ms)} stalls, "
                        f"{len(fig.out.samples_ms)} were pushed before any request reached the "
                        f"pump, {fig.replied} were told in the reply to a request first (not "
                        "in the push → STP figure)"
                    )
                    _rows(report, f"{kind}:S", mode, fig.alarm, rtt, polls, quick, period)
                    _wait_rows(report, kind, "P", mode, fig.halt_waits, rtt)
                line.wake = True
            else:
                for what in ("A", "B"):
                    for mode, fig in await steady_rounds(
                        rig, line, what, sizes.injections, sizes.rounds
                    ):
                        polls = fig.out.polls_per_s
                        _rows(report, f"{kind}:{what}", mode, fig.out, rtt, polls, quick, period)
                        _wait_rows(report, kind, what, mode, fig.halt_waits, rtt)
                        _part_rows(report, kind, mode, fig.parts)
                        b_part_rows(report, kind, mode, fig.b_parts, fig.b_uncut)
                        _setup_note(report, kind, what, mode, fig)
                    if not _storm():
                        continue
                    pair = [("priority", True, True), ("no priority", False, True)]
                    figs = await _rounds(rig, line, what, pair, sizes.injections, sizes.rounds)
                    for (mode, _, _), fig in zip(pair, figs, strict=True):
                        _rows(
                            report,
                            f"{kind}:{what}",
                            mode,
                            fig.out,
                            rtt,
                            fig.out.polls_per_s,
                            quick,
                            period,
                        )
                        _wait_rows(report, kind, what, mode, fig.halt_waits, rtt)
                        _part_rows(report, kind, mode, fig.parts)
            priority.PRIORITIZE_HALTS = True
        load_after = os.getloadavg()
        report.note(
            f"line {kind}: load average (1/5/15 min) "
            f"{' / '.join(f'{x:.2f}' for x in load_before)} before, "
            f"{' / '.join(f'{x:.2f}' for x in load_after)} after"
        )
    report.note(
        "line: pumpsim in a child process at time scale 1 (bench/simhost.py), stamps from its "
        "CLOCK_MONOTONIC; one Controller per pump at the line's poll period (above); audit on "
        "SQLite (WAL, "
        "synchronous=FULL). 'no priority': the line's lock is plain FIFO "
        "(priority.PRIORITIZE_HALTS=False); 'no wake': the controller does not see the "
        "driver's alarm_pushed and reads the pushed alarm at its next regular poll ('wake': it "
        "ticks on the pushed packet at once). Round trips: the pump's own requests from its "
        "push to its first STP, the STP included. The goal's "
        "round trip is the median status read of one driver on the idle line, same run."
    )


def run(report: Report, quick: bool) -> None:
    with daemon_logs_to_nowhere():
        try:
            asyncio.run(measure(report, QUICK if quick else FULL, quick, _kinds()))
        finally:
            priority.PRIORITIZE_HALTS = True
