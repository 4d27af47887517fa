"""The pump loops with forwarding off and on, alternating in one run.

"Nothing about forwarding ever blocks or slows a pump loop or a halt": the forwarder is
an asyncio task of the daemon whose batch work runs in a process of its own
(pumpd/central/worker.py), so what it can still take from the pumps is CPU. This
benchmark runs the pieces of the daemon together, as the daemon builds them: one
``Controller`` per pump at 10 Hz over the Modbus driver (pumpsim in a child process,
``bench/simhost.py``), the group-committing ``AsyncAuditWriter`` on a SQLite log on disk,
and, when forwarding is on, the daemon's own ``ForwardTask`` driving its forwarding
process, as ``Daemon._start_forwarding`` makes it (``[forward] duty_cycle`` at its default,
or ``PUMPD_BENCH_FORWARD_DUTY``).

Three modes, each measured in every round, the order rotated from round to round so that
a drift of the machine's load falls on all of them alike:

- **off** — no forwarder.
- **on** — the forwarder shipping to a fresh central store on the local PostgreSQL from an
  empty mark, so it works through the site's backlog (a busy day waiting after an outage:
  the heaviest the forwarder gets) and then the pumps' new events, batch after batch.
- **unreachable** — ``[forward] url`` points at a closed port: every step fails at once
  and the task backs off and tries again.

In each phase: ``pumps`` infusing controllers for ``window_s`` (polls per pump per s, CPU
per pump per s, the event loop's lateness), then reaction A (a runaway ×1.5 applied to the
pump model → the PAUSE taken by that pump, both stamped by the simulator, as in
``bench_controller``) for ``injections`` faults on ``lanes`` pumps. Each figure of a mode
is the median over its rounds; the run-to-run spread is (max − min) / median of the *off*
rounds; the goal is an on/off ratio no worse than 1 ± that spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import psycopg
from psycopg import sql

from bench import bench_controller as bc
from bench.bench_audit import _pg_base
from bench.bench_forward import _site
from bench.report import Report, Row
from pumpd.audit import AuditStore
from pumpd.central import migrate as central_migrate
from pumpd.central.forwarder import Conflict, ForwardSettings, ForwardStatus
from pumpd.central.task import ForwardTask
from pumpd.db import make_engine
from pumpd.protocols import load_library
from pumpd.session import State

SUITE = "forward/pump loop"
MODES = ("off", "on", "unreachable")
BATCH = 1000  # the [forward] batch_size default
PROBE_PERIOD_S = 0.005


@dataclass(frozen=True)
class Sizes:
    rounds: int
    pumps: int
    window_s: float
    injections: int
    lanes: int
    backlog: int


FULL = Sizes(rounds=5, pumps=16, window_s=5.0, injections=16, lanes=8, backlog=150_000)
QUICK = Sizes(rounds=2, pumps=4, window_s=2.0, injections=4, lanes=2, backlog=5_000)


@dataclass
class Phase:
    """One mode's figures in one round."""

    polls_per_pump_s: float
    cpu_ms_per_pump_s: float
    loop_cpu_ms_per_pump_s: float
    lateness_p99_ms: float
    reaction_p50_ms: float
    reaction_p99_ms: float
    shipped_per_s: float = 0.0
    forwarder_cpu_ms_s: float = 0.0
    """CPU of the forwarding process (not the daemon's) per s of the window."""
    centre_cpu_ms_s: float = 0.0
    """CPU of the centre's PostgreSQL backend serving the forwarder, per s of the window
    (on this machine; in a clinic the centre is another machine)."""
    backlog_left: int = 0
    state: str = ""
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------- the forwarder


@dataclass
class Forwarding:
    task: ForwardTask
    runner: asyncio.Task[None]

    def status(self) -> ForwardStatus:
        return self.task.status()


def _duty_cycle() -> float:
    """The ``[forward] duty_cycle`` under test: the default, or ``PUMPD_BENCH_FORWARD_DUTY``
    (1 measures an unpaced catch-up)."""
    raw = os.environ.get("PUMPD_BENCH_FORWARD_DUTY", "")
    default = next(f.default for f in fields(ForwardSettings) if f.name == "duty_cycle")
    return float(raw) if raw else float(default)  # type: ignore[arg-type]


async def _start_forwarding(site_url: str, url: str, mark: Path, site: str) -> Forwarding:
    """The daemon's forwarder, built as ``Daemon._start_forwarding`` builds it."""
    settings = ForwardSettings(
        url=url,
        site=site,
        batch_size=BATCH,
        mark_file=mark,
        connect_timeout_s=3.0,
        duty_cycle=_duty_cycle(),
    )

    async def on_conflict(conflict: Conflict) -> None:
        raise RuntimeError(f"forwarding conflict in a benchmark: {conflict}")

    async def on_lag(status: ForwardStatus) -> None:
        return None

    task = ForwardTask(settings, site_url, on_conflict=on_conflict, on_lag=on_lag)
    runner = asyncio.create_task(task.run(), name="forward")
    return Forwarding(task, runner)


async def _stop_forwarding(fwd: Forwarding) -> None:
    """Stop as the daemon does (the forwarding process is killed), then wait for it to
    end, so that the next phase does not pay for this one."""
    fwd.runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fwd.runner
    fwd.task.close()
    await fwd.task.wait_closed()


async def _first_step(fwd: Forwarding) -> None:
    """Until the forwarding process has started and answered a step: the phase measures
    forwarding under way, not the process's start (about a second of imports)."""
    deadline = time.monotonic() + 60
    while fwd.status().state == "starting":
        if time.monotonic() > deadline:
            raise RuntimeError("the forwarding process did not answer a step within 60 s")
        await asyncio.sleep(0.05)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far; 0 if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _forwarder_cpu_s(fwd: Forwarding | None) -> float:
    child = None if fwd is None else fwd.task.child
    return 0.0 if child is None else _cpu_s(child.pid)


def _centre_backends_cpu_s(centre_url: str | None) -> dict[int, float]:
    """CPU seconds so far of each local PostgreSQL backend serving a forwarder on the
    centre ``centre_url``, by pid."""
    if centre_url is None:
        return {}
    with psycopg.connect(centre_url, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pumpd-forward' "
            "AND datname = current_database()"
        ).fetchall()
    return {int(pid): _cpu_s(int(pid)) for (pid,) in pids}


def _closed_port() -> int:
    """A port on which nothing listens: a connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------- the pump side


async def _lateness(stop: asyncio.Event, out: list[float]) -> None:
    """How late the event loop wakes a 5 ms sleeper: the wait any pump loop's tick sees."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + PROBE_PERIOD_S
        await asyncio.sleep(PROBE_PERIOD_S)
        out.append((loop.time() - due) * 1000)


def _percentile(samples: list[float], q: float) -> float:
    ranked = sorted(samples)
    if not ranked:
        return math.nan
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


async def _pump_window(rig: bc.Rig, sizes: Sizes, tag: str) -> tuple[float, float, float, float]:
    """(polls per pump per s, process CPU ms per pump per s, event-loop thread CPU ms per
    pump per s, loop lateness p99 ms) for ``sizes.pumps`` infusing controllers."""
    sups: list[bc.Supervised] = []
    try:
        async with asyncio.TaskGroup() as starting:
            tasks = [
                starting.create_task(bc._infusing(rig, u, f"{tag}-{u}"))
                for u in range(1, sizes.pumps + 1)
            ]
        sups = [t.result() for t in tasks]
        await asyncio.sleep(1.0)  # the starts' audit writes settle
        stop, late = asyncio.Event(), list[float]()
        probe = asyncio.create_task(_lateness(stop, late))
        polls0 = sum(s.ctl.polls for s in sups)
        cpu0, loop_cpu0, wall0 = time.process_time(), time.thread_time(), time.monotonic()
        await asyncio.sleep(sizes.window_s)
        cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop_cpu0
        wall = time.monotonic() - wall0
        polls = sum(s.ctl.polls for s in sups) - polls0
        stop.set()
        await probe
        stopped = [
            f"{s.ctl.config.pump_id} {bc._state_of(s.ctl)}"
            for s in sups
            if s.ctl.session is None or s.ctl.session.state is not State.INFUSING
        ]
        if stopped:
            raise RuntimeError(f"infusion(s) stopped during the window ({tag}): {stopped[:4]}")
        n = sizes.pumps
        return (
            polls / wall / n,
            cpu / wall / n * 1000,
            loop_cpu / wall / n * 1000,
            _percentile(late, 99),
        )
    finally:
        await asyncio.gather(*(s.halt() for s in sups))
        for u in range(1, sizes.pumps + 1):
            await rig.sim.request("reboot", unit=u)


# --------------------------------------------------------------------- the run


@contextlib.asynccontextmanager
async def _rig(tmp: Path, sizes: Sizes) -> AsyncIterator[tuple[bc.Rig, str]]:
    """bench_controller's rig on a site log that already holds ``sizes.backlog`` events."""
    path = tmp / "site.db"
    _site(path, sizes.backlog)
    url = f"sqlite:///{path}"
    store = AuditStore.open(url, simulated=True)
    stamps = bc.StampingStore(store)
    writer = bc.HandoverStampingWriter(stamps)
    sim = await bc.SimProcess.start(max(sizes.pumps, sizes.lanes))
    try:
        yield bc.Rig(sim, writer, stamps, load_library().get(bc.PROTOCOL)), url
    finally:
        await sim.close()
        await writer.aclose()
        store.close()


async def _phase(
    rig: bc.Rig,
    site_url: str,
    mode: str,
    centre_url: str | None,
    mark: Path,
    sizes: Sizes,
    tag: str,
) -> Phase:
    fwd: Forwarding | None = None
    if mode != "off":
        assert centre_url is not None
        fwd = await _start_forwarding(site_url, centre_url, mark, f"bench-{uuid.uuid4().hex[:6]}")
    try:
        if fwd is not None:
            await _first_step(fwd)
        shipped0 = 0 if fwd is None else fwd.status().shipped
        child_cpu0 = _forwarder_cpu_s(fwd)
        backends0 = _centre_backends_cpu_s(centre_url if mode == "on" else None)
        t0 = time.monotonic()
        polls, cpu, loop_cpu, late = await _pump_window(rig, sizes, tag)
        shipped_window = 0 if fwd is None else fwd.status().shipped - shipped0
        child_cpu = _forwarder_cpu_s(fwd) - child_cpu0
        backends = _centre_backends_cpu_s(centre_url if mode == "on" else None)
        centre_cpu = sum(cpu - backends0.get(pid, 0.0) for pid, cpu in backends.items())
        window = time.monotonic() - t0
        got = await bc._reactions(
            rig,
            "A",
            bc.Sizes(
                injections=sizes.injections,
                lanes=sizes.lanes,
                cpu_pumps=(),
                cpu_window_s=0,
                bare_reads=0,
            ),
        )
        phase = Phase(
            polls,
            cpu,
            loop_cpu,
            late,
            got.percentile(50),
            got.percentile(99),
            shipped_per_s=shipped_window / window,
            forwarder_cpu_ms_s=child_cpu / window * 1000,
            centre_cpu_ms_s=centre_cpu / window * 1000,
        )
        if got.misses:
            phase.notes.append(f"{len(got.misses)} fault(s) without a halt, first: {got.misses[0]}")
        if fwd is not None:
            st = fwd.status()
            phase.backlog_left, phase.state = st.lag_events, st.state
            if mode == "on" and st.shipped == 0:
                raise RuntimeError(f"forwarding on, yet nothing shipped: {st}")
            if mode == "unreachable" and st.state != "unreachable":
                raise RuntimeError(f"the closed port was not unreachable: {st}")
        return phase
    finally:
        if fwd is not None:
            await _stop_forwarding(fwd)


def _spread(values: list[float]) -> float:
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else math.nan


async def measure(report: Report, sizes: Sizes, base: str, tmp: Path) -> None:
    """Every figure of this module at ``sizes``; central stores made on ``base``."""
    info = psycopg.conninfo.conninfo_to_dict(base)
    host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
    user = info.get("user", "postgres")
    made: list[str] = []

    def centre() -> str:
        name = f"pumpd_bench_fl_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        url = f"postgresql://{user}@{host}:{port}/{name}"
        engine = make_engine(url)
        try:
            central_migrate.upgrade(engine)
        finally:
            engine.dispose()
        return url

    phases: dict[str, list[Phase]] = {m: [] for m in MODES}
    try:
        async with _rig(tmp, sizes) as (rig, site_url):
            for r in range(sizes.rounds):
                order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
                for mode in order:
                    url = {
                        "off": None,
                        "on": centre() if mode == "on" else None,
                        "unreachable": f"postgresql://{user}@127.0.0.1:{_closed_port()}/none",
                    }[mode]
                    started = time.monotonic()
                    phase = await _phase(
                        rig, site_url, mode, url, tmp / f"mark-{r}-{mode}", sizes, f"{mode}{r}"
                    )
                    phases[mode].append(phase)
                    print(
                        f"   round {r + 1} {mode}: {phase.polls_per_pump_s:.2f} polls/s, "
                        f"{phase.cpu_ms_per_pump_s:.1f} CPU ms/s (loop "
                        f"{phase.loop_cpu_ms_per_pump_s:.1f}), late p99 "
                        f"{phase.lateness_p99_ms:.1f} ms, A p50/p99 {phase.reaction_p50_ms:.0f}/"
                        f"{phase.reaction_p99_ms:.0f} ms, shipped {phase.shipped_per_s:,.0f}/s "
                        f"(forwarding process {phase.forwarder_cpu_ms_s:.0f}, centre backend "
                        f"{phase.centre_cpu_ms_s:.0f} CPU ms/s) "
                        f"({time.monotonic() - started:.0f} s)",
                        flush=True,
                    )
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in made:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    _rows(report, sizes, phases)


FIGURES: tuple[tuple[str, str, str, bool], ...] = (
    ("polls_per_pump_s", "polls per pump per s", "polls/s", True),
    (
        "cpu_ms_per_pump_s",
        "CPU per pump per s, whole process (the daemon's; its forwarding process not included)",
        "CPU ms/s",
        False,
    ),
    (
        "loop_cpu_ms_per_pump_s",
        "CPU per pump per s, event-loop thread (the pump loops)",
        "CPU ms/s",
        False,
    ),
    ("lateness_p99_ms", "event-loop lateness of a 5 ms sleep, p99", "ms", False),
    ("reaction_p50_ms", "reaction A (runaway → PAUSE at the pump), p50", "ms", False),
    ("reaction_p99_ms", "reaction A (runaway → PAUSE at the pump), p99", "ms", False),
)
"""(Phase field, what it is, unit, higher is better)."""

INFORMATIVE = {"cpu_ms_per_pump_s"}
"""Reported without a goal: the forwarder's own work is CPU of the same process."""


def _rows(report: Report, sizes: Sizes, phases: dict[str, list[Phase]]) -> None:
    quick = " (a quick run)" if sizes.rounds < FULL.rounds else ""
    where = {
        "on": "forwarding on, shipping to the local PostgreSQL",
        "unreachable": "forwarding on, centre unreachable (closed port)",
    }
    for attr, what, unit, higher in FIGURES:
        off = [getattr(p, attr) for p in phases["off"]]
        base = statistics.median(off)
        spread = _spread(off) if len(off) > 1 else math.nan
        for mode in ("on", "unreachable"):
            value = statistics.median(getattr(p, attr) for p in phases[mode])
            pumps = sizes.lanes if attr.startswith("reaction") else sizes.pumps
            name = f"{what}, {pumps} pumps, {where[mode]}{quick}"
            if attr in INFORMATIVE:
                goal, met = "", None
            elif math.isnan(spread):
                goal, met = "no worse than off beyond the run-to-run spread (≥ 2 rounds)", None
            elif higher:
                bound = 1 - spread
                goal = f"ratio ≥ {bound:.2f}"
                goal += f" (no worse than off beyond the run-to-run spread {spread:.0%})"
                met = value / base >= bound if base else None
            else:
                bound = 1 + spread
                goal = f"ratio ≤ {bound:.2f}"
                goal += f" (no worse than off beyond the run-to-run spread {spread:.0%})"
                met = value / base <= bound if base else None
            report.add(Row(SUITE, name, value, unit, base, "forwarding off", goal, met))
    on = phases["on"]
    report.note(
        f"{SUITE}: {sizes.rounds} round(s) of off / on / unreachable, order rotated each round; "
        f"each figure is the median over rounds, the spread (max − min) / median of the off "
        f"rounds; per phase {sizes.pumps} infusing pumps for {sizes.window_s:.0f} s, then "
        f"{sizes.injections} runaway faults on {sizes.lanes} pumps; site log on SQLite with a "
        f"backlog of {sizes.backlog:,} events, batch {BATCH}, duty_cycle {_duty_cycle():g}"
    )
    report.note(
        f"{SUITE}: while on, the forwarder shipped "
        + ", ".join(f"{p.shipped_per_s:,.0f}" for p in on)
        + " events/s while the pumps infused (per round), its process using "
        + ", ".join(f"{p.forwarder_cpu_ms_s:,.0f}" for p in on)
        + " CPU ms/s (not the daemon's) and the centre's backend "
        + ", ".join(f"{p.centre_cpu_ms_s:,.0f}" for p in on)
        + " CPU ms/s (on the same 2 cores here), "
        + ", ".join(f"{p.backlog_left:,}" for p in on)
        + " events still waiting at the end of the phase; unreachable: state "
        + ", ".join(p.state for p in phases["unreachable"])
    )
    for mode, items in phases.items():
        for p in items:
            for n in p.notes:
                report.note(f"{SUITE}, {mode}: {n}")


def run(report: Report, quick: bool) -> None:
    base = _pg_base()
    if base is None:
        report.note(f"{SUITE}: skipped, no reachable PUMPD_TEST_PG_URL / PUMPD_BENCH_PG_URL")
        return
    tmp = Path(tempfile.mkdtemp(prefix="pumpd-bench-fwdloop-"))
    with bc.daemon_logs_to_nowhere():
        try:
            asyncio.run(measure(report, QUICK if quick else FULL, base, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
