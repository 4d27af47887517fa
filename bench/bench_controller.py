"""The supervising controller's reaction times and CPU cost.

The simulator runs in a child process (``bench/simhost.py``) at time scale 1, so the
controllers run in real time and the simulator's CPU is not counted as the supervisor's.
Controllers, drivers and the audit writer run here, exactly as in the daemon: one
``Controller`` per pump polling at 10 Hz (``poll_period_s`` 0.1 on the real clock), a shared
group-committing ``AsyncAuditWriter`` on a SQLite store on disk (WAL, synchronous=FULL).

Figures:
- **reaction A** — a runaway (rate ×1.5: only the daemon can catch it, the pump believes
  it runs fine) applied to the pump model, stamped by the simulator → the halting command
  taken by that pump, stamped by the simulator's command log. The kernel answers a rate
  mismatch with PAUSE (``tick.rate.mismatch``), so the command measured is the first PAUSE
  or STOP after the fault.
- **reaction B** — a downstream occlusion (the pump alarms and stops by itself), stamped by
  the simulator → the controller's ``alarm.raised`` event for it committed in the audit
  store, stamped right after the COMMIT returned (a thin wrapper around the real store).
  The controller queues that event when its tick decides, before the STOP's round trip.
- the limit beside them: one poll period plus the bare pymodbus status read round trip
  measured in the same run against the same simulator.
- **CPU** per pump per second of supervision with 1, 16 and 64 infusing pumps on one
  simulator (``time.process_time`` of this process: controllers, drivers, audit writer),
  beside a bare pymodbus loop doing the same wire work per pump (a status read and a
  heartbeat write at 10 Hz).

Both reactions use many pumps in parallel, each going through program → double-check →
vitals → start (line primed by hand) → fault → measurement → a fresh controller on a
rebooted pump. ``rate_settle_s`` is 1 s here (kernel default 10 s) so that a cycle is short;
the settle time ends before the fault is applied and is not part of any reaction.
Nothing here asserts a timing; the figures are printed beside their goal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from pymodbus.client import AsyncModbusTcpClient

from bench.report import Report, Row
from pumpd.audit import Actor, AsyncAuditWriter, AuditStore, EventRecord, NewEvent, migrate
from pumpd.clock import SystemClock
from pumpd.controller import Controller, ControllerConfig
from pumpd.daemon import logs
from pumpd.drivers import ModbusConfig, ModbusPumpDriver
from pumpd.protocols import LoadedProtocol, load_library
from pumpd.session import State
from safety.plan import Order, Patient
from safety.tick import DEFAULT_POLICY
from safety.vitals import VitalsReading

POLL_PERIOD_S = 0.1
GOAL_MARGIN_MS = 10.0
FULL_RATE_SHARE = 0.95  # of the poll rate: below it the pumps are not polled at 10 Hz
RATE_SETTLE_S = 1.0
PROTOCOL = "ketamine-trd-standard"
NURSE = Actor.person("nurse.ada", "nurse")
CHECKER = Actor.person("nurse.grace", "nurse")
PAUSE_CODE = 2
STOP_CODE = 3
HEARTBEAT_REG = 110
STATUS_REGS = 21
REACTION_TIMEOUT_S = 10.0
MAX_SETUP_FAILURES = 20
FAULT_OF = {"A": "runaway", "B": "occlusion-downstream"}
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    injections: int
    lanes: int
    cpu_pumps: tuple[int, ...]
    cpu_window_s: float
    bare_reads: int


FULL = Sizes(injections=200, lanes=16, cpu_pumps=(1, 16, 64), cpu_window_s=10.0, bare_reads=400)
QUICK = Sizes(injections=24, lanes=8, cpu_pumps=(1, 16, 64), cpu_window_s=2.0, bare_reads=100)


# --------------------------------------------------------------------- the child simulator


class SimProcess:
    """pumpsim in a child process; requests and replies as JSON lines (bench/simhost.py)."""

    def __init__(self, proc: asyncio.subprocess.Process, host: str, port: int) -> None:
        self._proc = proc
        self.host = host
        self.port = port
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, pumps: int) -> SimProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.simhost",
            "--pumps",
            str(pumps),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # a reply is one line; a command log can be long
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        ready = json.loads(line or b"{}")
        if not ready.get("ready"):
            proc.kill()
            raise RuntimeError(f"simulator child did not start: {line!r}")
        return cls(proc, ready["host"], int(ready["port"]))

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        async with self._lock:
            self._proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
            await self._proc.stdin.drain()
            reply: dict[str, Any] = json.loads(await self._proc.stdout.readline() or b"{}")
        if not reply.get("ok"):
            raise RuntimeError(f"simulator refused {op} {fields}: {reply.get('error', reply)}")
        return reply

    async def inject(self, unit: int, fault: str, on: bool = True, **params: Any) -> float:
        """Apply a fault; returns the simulator's monotonic stamp taken right after."""
        return float((await self.request("inject", unit=unit, fault=fault, on=on, **params))["t"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.request("quit"), timeout=5)
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=10)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


class CommandWatch:
    """Follows the simulator's command log; answers "first halting command after t"."""

    def __init__(self, sim: SimProcess) -> None:
        self._sim = sim
        self._next = 0
        self._lock = asyncio.Lock()
        self.records: list[dict[str, Any]] = []

    async def refresh(self) -> None:
        async with self._lock:
            reply = await self._sim.request("log", since=self._next)
            self._next = int(reply["next"])
            self.records.extend(reply["records"])

    async def halting_after(self, unit: int, t0: float, within_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + within_s
        while True:
            await self.refresh()
            for r in self.records:
                if (
                    r["unit"] == unit
                    and r["t_monotonic"] >= t0
                    and r["command"] in (PAUSE_CODE, STOP_CODE)
                ):
                    return r
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no PAUSE/STOP from unit {unit} within {within_s} s of the fault"
                )
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------- the audit side


class StampingStore:
    """The real :class:`AuditStore`, noting the monotonic time each ``alarm.raised`` committed.

    The store's write methods (``write``, and ``write_stamped`` of the spooling writer)
    return after the transaction's COMMIT (durable on SQLite with synchronous=FULL); the
    stamp is taken right then, in the writer thread. Everything else goes to the store as is.
    """

    WRITES = ("write", "write_stamped")

    def __init__(self, store: AuditStore) -> None:
        self._store = store
        self.alarm_commits: list[tuple[str | None, float, str]] = []
        self.alarm_writes: dict[tuple[str | None, float], tuple[float, int]] = {}
        """(pump, commit stamp) → (when that write began, events in its batch)."""
        self.interlocks: list[tuple[str | None, float, str]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in self.WRITES:
            return method

        def stamped_write(batch: Sequence[Any]) -> list[EventRecord]:
            began = time.monotonic()
            records: list[EventRecord] = method(batch)
            t = time.monotonic()
            for r in records:
                if r.event_type == "alarm.raised":
                    code = str(json.loads(r.payload).get("alarm_code", ""))
                    self.alarm_writes[(r.pump_id, t)] = (began, len(records))
                    self.alarm_commits.append((r.pump_id, t, code))
                elif r.event_type == "interlock.triggered":
                    reasons = ",".join(json.loads(r.payload).get("reason_codes", []))
                    self.interlocks.append((r.pump_id, t, reasons))
            return records

        return stamped_write

    def first_alarm_after(self, pump_id: str, t0: float, prefix: str) -> tuple[float, str] | None:
        for pid, t, code in list(self.alarm_commits):
            if pid == pump_id and t >= t0 and code.startswith(prefix):
                return t, code
        return None


class HandoverStampingWriter(AsyncAuditWriter):
    """The real writer; it notes when each ``alarm.raised`` is handed to it (the tick has
    decided), so reaction B splits into deciding, queueing and writing."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.alarm_handovers: list[tuple[str | None, float]] = []

    def hand_over(self, event: NewEvent, *, until_database: bool) -> asyncio.Future[Any]:
        if event.event_type == "alarm.raised":
            self.alarm_handovers.append((event.pump_id, time.monotonic()))
        return super().hand_over(event, until_database=until_database)

    def handed_over(self, pump_id: str, t0: float) -> float | None:
        return next((t for p, t in list(self.alarm_handovers) if p == pump_id and t >= t0), None)


@dataclass
class Rig:
    sim: SimProcess
    writer: HandoverStampingWriter
    stamps: StampingStore
    protocol: LoadedProtocol
    clock: SystemClock = field(default_factory=SystemClock)
    sim_cpu_s_per_s: float = 0.0
    setup_retries: int = 0
    watch: CommandWatch | None = None


@contextlib.asynccontextmanager
async def _rig(pumps: int) -> Any:
    with tempfile.TemporaryDirectory(prefix="pumpd-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'audit.db'}"
        migrate.upgrade_url(url)
        store = AuditStore.open(url, simulated=True)
        stamps = StampingStore(store)
        writer = HandoverStampingWriter(stamps)
        sim = await SimProcess.start(pumps)
        try:
            yield Rig(sim, writer, stamps, load_library().get(PROTOCOL))
        finally:
            await sim.close()
            await writer.aclose()
            store.close()


# --------------------------------------------------------------------- one supervised pump


@dataclass
class Supervised:
    ctl: Controller
    driver: ModbusPumpDriver
    task: asyncio.Task[None]

    async def halt(self) -> None:
        # pymodbus can absorb a cancellation that lands inside a request; cancel until done.
        while not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=0.5)
        await self.driver.close()


def _config(unit: int) -> ControllerConfig:
    return ControllerConfig(
        pump_id=f"chair-{unit}",
        poll_period_s=POLL_PERIOD_S,
        policy=dataclasses.replace(DEFAULT_POLICY, rate_settle_s=RATE_SETTLE_S),
    )


async def _supervise(rig: Rig, unit: int) -> Supervised:
    driver = ModbusPumpDriver(
        ModbusConfig(transport="tcp", host=rig.sim.host, port=rig.sim.port, unit=unit)
    )
    await driver.connect()
    ctl = Controller(driver=driver, writer=rig.writer, clock=rig.clock, config=_config(unit))
    await ctl.attach()
    task = asyncio.create_task(ctl.run(), name=f"controller-{unit}")
    return Supervised(ctl, driver, task)


async def _to_infusing(rig: Rig, ctl: Controller, session_id: str) -> None:
    """The nurse's path with a line primed by hand: program, double-check, vitals, start."""
    await ctl.program(
        by=NURSE,
        session_id=session_id,
        patient_ref=f"P-{session_id}",
        protocol=rig.protocol,
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.confirm(by=CHECKER, weight="80 kg")
    await ctl.vitals(
        by=NURSE,
        reading=VitalsReading(
            taken_at=rig.clock.now_utc(),
            systolic_mmhg=120,
            diastolic_mmhg=80,
            heart_rate_bpm=72,
            spo2_percent=98,
            resp_rate_per_min=14,
        ),
    )
    await ctl.start(by=NURSE, primed_confirmed=True)
    session = ctl.session
    if session is None or session.state is not State.INFUSING:
        state = None if session is None else session.state
        raise RuntimeError(f"{ctl.config.pump_id}: not infusing after start ({state})")


# --------------------------------------------------------------------- reaction times


async def _interlock_reasons(rig: Rig, pump_id: str, t0: float) -> str:
    """The kernel's reasons for the halt (its ``interlock.triggered`` event after ``t0``)."""
    deadline = time.monotonic() + REACTION_TIMEOUT_S
    while time.monotonic() < deadline:
        for pid, t, reasons in list(rig.stamps.interlocks):
            if pid == pump_id and t >= t0:
                return reasons
        await asyncio.sleep(0.02)
    return "no interlock event"


def _state_of(ctl: Controller) -> str:
    s = ctl.session
    return "none" if s is None else f"{s.data.session_id} {s.state.value}"


@dataclass
class Reactions:
    """Samples of one reaction; a fault with no reaction within the bound is a miss."""

    samples_ms: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    setup_failures: list[str] = field(default_factory=list)
    parts_ms: list[tuple[float, float, float, int, float]] = field(default_factory=list)
    """B only: (total, fault → its write began, the write, events in that batch, fault →
    the alarm handed to the writer)."""

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile over every injection; a miss counts as infinitely late."""
        ranked = sorted(self.samples_ms) + [math.inf] * len(self.misses)
        return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


async def _reaction_of(
    rig: Rig,
    sup: Supervised,
    unit: int,
    kind: str,
    watch: CommandWatch,
    parts: list[tuple[float, float, float, int, float]],
) -> tuple[float, str]:
    """Apply the fault to ``unit``; (milliseconds to the reaction, what reacted)."""
    pid = sup.ctl.config.pump_id
    if kind == "A":
        t0 = await rig.sim.inject(unit, FAULT_OF[kind], factor="1.5")
        cmd = await watch.halting_after(unit, t0, REACTION_TIMEOUT_S)
        why = await _interlock_reasons(rig, pid, t0)
        command = "PAUSE" if cmd["command"] == PAUSE_CODE else "STOP"
        return (float(cmd["t_monotonic"]) - t0) * 1000, f"{command} for {why}"
    t0 = await rig.sim.inject(unit, FAULT_OF[kind])
    deadline = time.monotonic() + REACTION_TIMEOUT_S
    while (found := rig.stamps.first_alarm_after(pid, t0, "tick.pump")) is None:
        if time.monotonic() > deadline:
            seen = [c for p, _, c in rig.stamps.alarm_commits if p == pid]
            raise TimeoutError(
                f"no pump alarm event from {pid} within {REACTION_TIMEOUT_S} s of the fault; "
                f"session {_state_of(sup.ctl)}, its alarm events: {seen}"
            )
        await asyncio.sleep(0.02)
    t1, code = found
    began, batch = rig.stamps.alarm_writes[(pid, t1)]
    handed = rig.writer.handed_over(pid, t0)
    decided_ms = math.nan if handed is None else (handed - t0) * 1000
    parts.append(((t1 - t0) * 1000, (began - t0) * 1000, (t1 - began) * 1000, batch, decided_ms))
    return (t1 - t0) * 1000, code


async def _reaction_lane(
    rig: Rig,
    unit: int,
    kind: str,
    take: Callable[[], bool],
    give_back: Callable[[], None],
    out: Reactions,
    watch: CommandWatch,
) -> None:
    """Cycles on one pump: fresh controller, session started, fault, reaction, clean-up.

    A cycle whose set-up fails (a pump that does not answer in time on a loaded machine)
    gives its injection back and is noted; a fault without a reaction is a miss.
    """
    n = 0
    while take():
        n += 1
        sup: Supervised | None = None
        try:
            try:
                sup = await _supervise(rig, unit)
                await _to_infusing(rig, sup.ctl, f"{kind}-{unit}-{n}")
                # A: after the kernel's settle time; both: at a random phase of the poll.
                settle = RATE_SETTLE_S + 0.2 if kind == "A" else 0.3
                await asyncio.sleep(settle + random.uniform(0, 2 * POLL_PERIOD_S))
            except Exception as exc:  # noted in the report; the injection is given back
                out.setup_failures.append(f"{type(exc).__name__}: {exc}")
                if len(out.setup_failures) > MAX_SETUP_FAILURES:
                    raise
                give_back()
                continue
            try:
                ms, code = await _reaction_of(rig, sup, unit, kind, watch, out.parts_ms)
            except TimeoutError as exc:
                out.misses.append(str(exc))
                continue
            out.samples_ms.append(ms)
            out.codes[code] = out.codes.get(code, 0) + 1
        finally:
            if sup is not None:
                await sup.halt()
            await rig.sim.inject(unit, FAULT_OF[kind], on=False)
            await rig.sim.request("reboot", unit=unit)


async def _reactions(rig: Rig, kind: str, sizes: Sizes) -> Reactions:
    out = Reactions()
    budget = [sizes.injections]

    def take() -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return True

    def give_back() -> None:
        budget[0] += 1

    if rig.watch is None:  # one watch per run: it reads the command log incrementally
        rig.watch = CommandWatch(rig.sim)
    watch = rig.watch
    await watch.refresh()
    async with asyncio.TaskGroup() as lanes:  # one lane failing stops the others
        for unit in range(1, sizes.lanes + 1):
            lanes.create_task(_reaction_lane(rig, unit, kind, take, give_back, out, watch))
    return out


async def _bare_round_trips_ms(rig: Rig, n: int) -> list[float]:
    client = AsyncModbusTcpClient(rig.sim.host, port=rig.sim.port, retries=0)
    await client.connect()
    try:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            reply = await client.read_input_registers(0, count=STATUS_REGS, device_id=1)
            samples.append((time.perf_counter() - started) * 1000)
            if reply.isError():
                raise RuntimeError(f"bare status read failed: {reply}")
        return samples
    finally:
        client.close()


# --------------------------------------------------------------------- CPU


async def _paced(period_s: float, stop_at: float, once: Callable[[], Awaitable[object]]) -> int:
    """Run ``once`` every ``period_s`` (the controller's own schedule) until ``stop_at``."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    n = 0
    while loop.time() < stop_at:
        await once()
        n += 1
        next_at += period_s
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return n


async def _bare_cpu(rig: Rig, pumps: int, window_s: float) -> tuple[float, float]:
    """CPU s per pump per s, and cycles per pump per s, of bare 10 Hz read + heartbeat loops.

    Same topology as the driver's: one connection to the simulator's endpoint and one lock
    for every unit on it (``pumpd/drivers/line.py``), so both sides do the same wire work in
    the same order and only the supervision on top differs.
    """
    client = AsyncModbusTcpClient(rig.sim.host, port=rig.sim.port, retries=0)
    await client.connect()
    lock = asyncio.Lock()
    try:

        def poll_of(unit: int) -> Callable[[], Awaitable[None]]:
            beat = 0

            async def once() -> None:
                nonlocal beat
                beat = beat % 0xFFFF + 1
                async with lock:
                    reply = await client.read_input_registers(0, count=STATUS_REGS, device_id=unit)
                async with lock:
                    await client.write_register(HEARTBEAT_REG, beat, device_id=unit)
                if reply.isError():
                    raise RuntimeError(f"bare status read of unit {unit} failed: {reply}")

            return once

        loop = asyncio.get_running_loop()
        cpu0, wall0 = time.process_time(), time.monotonic()
        stop_at = loop.time() + window_s
        counts = await asyncio.gather(
            *(_paced(POLL_PERIOD_S, stop_at, poll_of(u)) for u in range(1, pumps + 1))
        )
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        return cpu / wall / pumps, sum(counts) / wall / pumps
    finally:
        client.close()


async def _infusing(rig: Rig, unit: int, session_id: str, attempts: int = 3) -> Supervised:
    """A controller on ``unit`` with a started infusion; a set-up that fails (a pump that
    does not answer in time on a loaded machine) is tried again on the rebooted pump."""
    for attempt in range(1, attempts + 1):
        sup: Supervised | None = None
        try:
            sup = await _supervise(rig, unit)
            await _to_infusing(rig, sup.ctl, f"{session_id}.{attempt}")
            return sup
        except Exception:
            rig.setup_retries += 1
            if sup is not None:
                await sup.halt()
            await rig.sim.request("reboot", unit=unit)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


async def _controller_cpu(rig: Rig, pumps: int, window_s: float) -> tuple[float, float, list[str]]:
    """CPU s per pump per s, polls per pump per s, and the pumps whose infusion did not
    stay running through the window, for ``pumps`` infusing controllers."""
    sups: list[Supervised] = []
    try:
        async with asyncio.TaskGroup() as starting:
            tasks = [
                starting.create_task(_infusing(rig, u, f"CPU{pumps}-{u}"))
                for u in range(1, pumps + 1)
            ]
        sups = [t.result() for t in tasks]
        await asyncio.sleep(1.0)  # the starts' audit writes settle
        polls0 = sum(s.ctl.polls for s in sups)
        sim0 = float((await rig.sim.request("cpu"))["cpu_s"])
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window_s)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        rig.sim_cpu_s_per_s = (float((await rig.sim.request("cpu"))["cpu_s"]) - sim0) / wall
        polls = sum(s.ctl.polls for s in sups) - polls0
        stopped = [
            f"{s.ctl.config.pump_id} {_state_of(s.ctl)}"
            for s in sups
            if s.ctl.session is None or s.ctl.session.state is not State.INFUSING
        ]
        return cpu / wall / pumps, polls / wall / pumps, stopped
    finally:
        await asyncio.gather(*(s.halt() for s in sups))
        for u in range(1, pumps + 1):
            await rig.sim.request("reboot", unit=u)


# --------------------------------------------------------------------- the run


def _split_b(rows: list[tuple[float, float, float, int, float]]) -> str:
    """Reaction B's medians: deciding, queueing behind other writes, writing."""
    med = statistics.median
    decided = med(r[4] for r in rows)
    return (
        f"{med(r[0] for r in rows):.1f} ms = {decided:.1f} ms from the fault to the alarm "
        "handed to the writer (poll wait, read, tick) + "
        f"{med(r[1] for r in rows) - decided:.1f} ms queued behind other writes + "
        f"{med(r[2] for r in rows):.1f} ms in its write (batches of "
        f"{med(r[3] for r in rows):.0f} events)"
    )


async def measure(report: Report, sizes: Sizes) -> None:
    """Every figure of this module at ``sizes``, added to ``report``."""
    quick_note = (
        f" (fewer than {FULL.injections}: a quick run)"
        if sizes.injections < FULL.injections
        else ""
    )
    async with _rig(max(sizes.lanes, *sizes.cpu_pumps)) as rig:
        bare = await _bare_round_trips_ms(rig, sizes.bare_reads)
        bare_p50 = statistics.median(bare)
        limit_ms = POLL_PERIOD_S * 1000 + bare_p50
        goal_ms = POLL_PERIOD_S * 1000 + GOAL_MARGIN_MS
        report.add(
            Row("controller", "bare pymodbus status read round trip (p50, idle)", bare_p50, "ms")
        )
        shared = f"{sizes.lanes} pumps on one line"
        for kind, what, lanes in (
            ("A", f"runaway ×1.5 → halting command at the pump, {shared}", sizes.lanes),
            ("B", f"pump occlusion → alarm event durable, {shared}", sizes.lanes),
            ("A", "runaway ×1.5 → halting command at the pump, one pump on its line", 1),
            ("B", "pump occlusion → alarm event durable, one pump on its line", 1),
        ):
            got = await _reactions(rig, kind, dataclasses.replace(sizes, lanes=lanes))
            n = len(got.samples_ms) + len(got.misses)
            p50, p99 = got.percentile(50), got.percentile(99)
            missed = (
                f", {len(got.misses)} without reaction in {REACTION_TIMEOUT_S:.0f} s"
                if got.misses
                else ""
            )
            label = f"reaction {kind}: {what}, n={n}{missed}{quick_note}"
            report.add(
                Row("controller", f"{label}, p50", p50, "ms", limit_ms, "poll period + bare read")
            )
            report.add(
                Row(
                    "controller",
                    f"{label}, p99",
                    p99,
                    "ms",
                    limit_ms,
                    "poll period + bare read",
                    f"p99 ≤ {goal_ms:.0f} ms (poll + {GOAL_MARGIN_MS:.0f} ms)",
                    p99 <= goal_ms,
                )
            )
            which = f"{kind} ({'one pump' if lanes == 1 else shared})"
            report.note(
                f"controller reaction {which}: max {max(got.samples_ms, default=math.nan):.1f} ms"
                " (nearest-rank percentiles, a miss counts as infinitely late); measured event: "
                f"{', '.join(f'{k} ×{v}' for k, v in sorted(got.codes.items()))}"
            )
            if got.parts_ms:
                slow = sorted(got.parts_ms, reverse=True)[: max(1, len(got.parts_ms) // 20)]
                report.note(
                    f"controller reaction {which}, medians of the slowest {len(slow)} (5 %): "
                    f"{_split_b(slow)}; of all samples: {_split_b(got.parts_ms)}"
                )
            for what_failed, items in (
                ("missed", got.misses),
                ("set-up failed, retried", got.setup_failures),
            ):
                if items:
                    first = items[0]
                    report.note(
                        f"controller reaction {which}: {len(items)} {what_failed}, first: {first}"
                    )
        for pumps in sizes.cpu_pumps:
            bare_cpu, bare_rate = await _bare_cpu(rig, pumps, sizes.cpu_window_s)
            ctl_cpu, poll_rate, stopped = await _controller_cpu(rig, pumps, sizes.cpu_window_s)
            if stopped:
                report.note(
                    f"controller CPU, {pumps} pump(s): {len(stopped)} infusion(s) stopped by "
                    f"the controller during the window: {', '.join(stopped[:5])}"
                )
            report.add(
                Row(
                    "controller",
                    f"CPU per infusing pump per s, {pumps} pump(s), "
                    f"{poll_rate:.1f} polls/s each (bare {bare_rate:.1f}/s)",
                    ctl_cpu * 1000,
                    "CPU ms/s",
                    bare_cpu * 1000,
                    "bare read + heartbeat, one line",
                )
            )
            per_poll_ms = ctl_cpu * 1000 / poll_rate
            report.note(
                f"controller CPU, {pumps} pump(s): {per_poll_ms:.2f} CPU ms per poll "
                f"(bare {bare_cpu * 1000 / bare_rate:.2f} ms per read + heartbeat); at 10 Hz "
                f"that is {per_poll_ms * 10 * pumps / 1000:.2f} CPU s/s for {pumps}; the "
                f"simulator child used {rig.sim_cpu_s_per_s:.2f} CPU s/s meanwhile "
                f"(window {sizes.cpu_window_s:.1f} s)"
            )
            if pumps == max(sizes.cpu_pumps):
                at_rate = poll_rate >= FULL_RATE_SHARE / POLL_PERIOD_S
                report.add(
                    Row(
                        "controller",
                        f"CPU s per wall s, {pumps} pumps (whole supervising process), "
                        f"{poll_rate:.1f} polls/s each",
                        ctl_cpu * pumps,
                        "CPU s/s",
                        bare_cpu * pumps,
                        "bare read + heartbeat, one line",
                        f"< 1.0 (one core) at ≥ {FULL_RATE_SHARE / POLL_PERIOD_S:.1f} polls/s",
                        ctl_cpu * pumps < 1.0 and at_rate,
                    )
                )
                projected = per_poll_ms * pumps / 1000 / POLL_PERIOD_S
                report.add(
                    Row(
                        "controller",
                        f"CPU s per wall s, {pumps} pumps, projected to 10 Hz "
                        "(CPU per poll × polls)",
                        projected,
                        "CPU s/s",
                        bare_cpu / bare_rate * pumps / POLL_PERIOD_S,
                        "bare, projected alike",
                        "< 1.0 (one core)",
                        projected < 1.0,
                    )
                )
    if rig.setup_retries:
        report.note(
            f"controller CPU: {rig.setup_retries} session set-up(s) failed and were retried"
        )
    report.note(
        "controller: simulator in a child process at time scale 1 (bench/simhost.py), "
        "stamps from its CLOCK_MONOTONIC; audit on SQLite (WAL, synchronous=FULL) on disk; "
        f"poll period {POLL_PERIOD_S * 1000:.0f} ms; kernel rate_settle_s {RATE_SETTLE_S:.0f} s "
        "(ends before the fault). A: the kernel answers a rate mismatch with PAUSE. "
        "B: the alarm event is queued when the tick decides, ahead of the STOP's intent "
        "(docs/controller.md, Alarm first)."
    )


@contextlib.contextmanager
def daemon_logs_to_nowhere() -> Iterator[None]:
    """The controllers log as in the daemon (JSON lines, pumpd/daemon/logs.py), so the cost
    of their lines is in the figures; the lines go nowhere, the report stays readable."""
    with open(os.devnull, "w") as sink:
        handler = logs.configure("json", stream=sink, simulated=True, journald=False)
        try:
            yield
        finally:
            logs.unconfigure(handler)
            structlog.reset_defaults()


def run(report: Report, quick: bool) -> None:
    with daemon_logs_to_nowhere():
        asyncio.run(measure(report, QUICK if quick else FULL))
