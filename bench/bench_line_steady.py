"""One fault at a time on a line of sixteen infusing pumps: the goal's own scene.

`bench_line.py`'s lanes fault all sixteen pumps of a line over and over, each lane starting
its next session while the others' faults are being halted, so every reaction there shares
the line with up to fifteen other set-ups and halts: a storm, measured as such. The goal
"reaction p99 ≤ poll period + 2 round trips" describes a clinic's line: every pump infusing
and polled at its period, and one of them faulting. That is this figure: all sixteen brought
to infusing, then one pump at a time (chosen at random among those infusing) is faulted at a
random phase of the poll, and the reaction is measured while the other fifteen keep infusing
and being polled; the faulted pump is then started again in the background (a nurse
restarting a chair while the next fault is measured on another; at most
`MAX_RESTARTING` at once), so the line also carries a set-up or two, as a clinic's would.

Stamps and figures are `bench_line.py`'s (the simulator's command log for A, the store's
commit for B, `Breakdown` for A's segments), and the modes alternate in rounds as there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field

from bench.bench_controller import RATE_SETTLE_S, Rig, _config, _to_infusing
from bench.bench_line import (
    Breakdown,
    Figure,
    Line,
    Watch,
    _alarm_durable,
    _intents_after,
    _rounds,
    b_parts,
    b_uncut,
    decisions_stamped,
)
from pumpd.controller import Controller
from pumpd.drivers import PumpDriver

MAX_RESTARTING = 2
"""Chairs being set up again while the next fault is measured: a nurse or two starting a
session at another chair, not the whole line at once (that is `bench_line.py`'s storm)."""


STEADY_PERIODS = 5
"""Periods of polling alone before the first fault; a chair's polls per second are counted
over at least this many periods."""


@dataclass
class Chair:
    """One pump of the line with the controller running it."""

    unit: int
    driver: PumpDriver | None = None
    ctl: Controller | None = None
    task: asyncio.Task[None] | None = None
    stamps: Breakdown | None = None
    ready_at: float = math.inf
    polls_at_ready: int = 0
    sessions: int = 0


@dataclass
class Ward:
    rig: Rig
    line: Line
    fig: Figure
    chairs: list[Chair]
    restarts: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, chair: Chair) -> None:
        """A fresh driver and controller on the chair's pump, a session to infusing."""
        chair.sessions += 1
        driver = self.line.driver(chair.unit)
        chair.driver = driver
        chair.stamps = Breakdown(driver)
        await driver.connect()
        config = dataclasses.replace(_config(chair.unit), poll_period_s=self.line.poll_period_s)
        ctl = Controller(driver=driver, writer=self.rig.writer, clock=self.rig.clock, config=config)
        chair.ctl = ctl
        await ctl.attach()
        chair.task = asyncio.create_task(ctl.run())
        sid = f"{self.line.kind}-steady-{self.fig.kind}-{chair.unit}-{chair.sessions}"
        await _to_infusing(self.rig, ctl, sid)
        await asyncio.sleep(RATE_SETTLE_S + 0.2)
        chair.polls_at_ready, chair.ready_at = ctl.polls, time.monotonic()

    async def stop(self, chair: Chair, fault: str) -> None:
        chair.ready_at = math.inf
        task, chair.task = chair.task, None
        if task is not None:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
        if chair.driver is not None:
            await chair.driver.close()
        await self.line.inject(chair.unit, fault, on=False)
        await self.line.reboot(chair.unit)

    async def restart(self, chair: Chair, fault: str) -> None:
        await self.stop(chair, fault)
        try:
            await self.start(chair)
        except Exception as exc:  # noted; the chair stays out of the draw
            self.fig.out.setup_failures.append(f"{type(exc).__name__}: {exc}")

    def restart_later(self, chair: Chair, fault: str) -> None:
        chair.ready_at = math.inf  # out of the draw from now, not from when the task runs
        task = asyncio.create_task(self.restart(chair, fault))
        self.restarts.add(task)
        task.add_done_callback(self.restarts.discard)

    def ready(self) -> list[Chair]:
        now = time.monotonic()
        return [c for c in self.chairs if c.ready_at <= now and c.task is not None]


async def steady_figure(rig: Rig, line: Line, kind: str, injections: int) -> Figure:
    """``injections`` reactions of figure ``kind`` ("A" or "B"), one fault at a time."""
    fig = Figure(kind)
    fault = {"A": "runaway", "B": "occlusion-downstream"}[kind]
    ward = Ward(rig, line, fig, [Chair(u) for u in range(1, line.pumps + 1)])
    watch = Watch(line)
    with decisions_stamped() as decided:
        try:
            await asyncio.gather(*(ward.start(c) for c in ward.chairs))
            await asyncio.sleep(STEADY_PERIODS * line.poll_period_s)  # the line polled, only
            await watch.refresh()
            watch.heard.clear()
            done = 0
            while done < injections:
                if len(ward.restarts) >= MAX_RESTARTING:
                    await asyncio.wait(ward.restarts, return_when=asyncio.FIRST_COMPLETED)
                    continue
                chairs = ward.ready()
                if not chairs:
                    await asyncio.sleep(0.05)
                    continue
                chair = random.choice(chairs)
                await asyncio.sleep(random.uniform(0, line.poll_period_s))
                await _react(ward, watch, chair, fault, decided)
                done += 1
                ward.restart_later(chair, fault)
        finally:
            for task in list(ward.restarts):
                task.cancel()
            await asyncio.gather(*ward.restarts, return_exceptions=True)
            for chair in ward.chairs:
                await ward.stop(chair, fault)
    return fig


async def _react(
    ward: Ward, watch: Watch, chair: Chair, fault: str, decided: dict[str, list[float]]
) -> None:
    fig, line, rig = ward.fig, ward.line, ward.rig
    ctl = chair.ctl
    assert ctl is not None
    span = time.monotonic() - chair.ready_at
    if span >= STEADY_PERIODS * ward.line.poll_period_s:
        fig.out.polls_per_s.append((ctl.polls - chair.polls_at_ready) / span)
    pid = ctl.config.pump_id
    try:
        t0 = await line.inject(chair.unit, fault, factor="1.5") if fig.kind == "A" else 0.0
        if fig.kind == "A":
            cmd = await watch.first(lambda: watch.halting(chair.unit, t0), "PAUSE/STOP")
            fig.out.samples_ms.append((float(cmd["t_monotonic"]) - t0) * 1000)
            if chair.stamps is not None:
                intents = await _intents_after(rig, pid, t0)
                parts = chair.stamps.parts(
                    t0, float(cmd["t_monotonic"]), decided.get(pid, []), intents
                )
                if parts is not None:
                    fig.parts.append(parts)
        else:
            t0 = await line.inject(chair.unit, fault)
            t1 = await _alarm_durable(rig, pid, t0)
            fig.out.samples_ms.append((t1 - t0) * 1000)
            if chair.stamps is not None:
                write = rig.stamps.alarm_writes.get((pid, t1))
                handed = rig.writer.handed_over(pid, t0)
                cut = b_parts(chair.stamps.reads, t0, handed, write, t1)
                if cut is not None:
                    fig.b_parts.append(cut)
                else:
                    fig.b_uncut.append(b_uncut(chair.stamps.reads, t0, handed, write, t1))
    except TimeoutError as exc:
        fig.out.misses.append(str(exc))


async def steady_rounds(
    rig: Rig, line: Line, kind: str, injections: int, rounds: int
) -> list[tuple[str, Figure]]:
    """The figure with and without the line's priority, in alternating rounds."""
    modes = [
        ("one fault at a time, priority", True, True),
        ("one fault at a time, no priority", False, True),
    ]
    figs = await _rounds(rig, line, kind, modes, injections, rounds, steady_figure)
    return [(name, fig) for (name, _, _), fig in zip(modes, figs, strict=True)]
