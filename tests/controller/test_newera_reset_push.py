"""A New Era pump that loses power mid-read is counted once, not twice.

A New Era pump in Safe mode pushes its power-on reset (``A?R``) the moment it comes back.
When that happens after the pump answered a status read's ``DIS`` (the volume from before
the restart) and before the read's ``RAT``, the status the read makes holds the volume of
the pump before its restart: it must not also claim the restart. If it did, the
controller would take that old volume for the new counter's first value and count it a
second time: the restart alarm would say nearly twice the volume had been delivered, the
kernel would raise a false over-infusion and volume-limit alarm at once, and the next
real read (the counter at 0) a false "counter went backwards".

The real New Era simulator on a pseudo-terminal, in real time; the power loss is the
simulator's own fault, injected just after the pump answered a ``DIS`` while it infused,
so the push lands inside the read every time.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter, EventFilter, iter_events
from pumpd.clock import SystemClock
from pumpd.controller import Controller, ControllerConfig
from pumpd.session import State

from .conftest import (
    halt,
    make_store,
    newera_driver,
    session_state,
    to_infusing_primed_by_hand,
    wait_until,
)

INFUSE_S = 4.0
RESOLUTION_UL = 1
"""The counter's resolution below 1 mL (``DIS`` keeps 3 decimals of a mL)."""
FALSE_ALARMS = {"tick.vtbi.exceeded", "tick.volume.over_infusion", "tick.pump.counter_backwards"}


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=1, newera_link=str(tmp_path / "ne"), time_scale=1.0
    ) as sim:
        yield sim


def _reset_after_next_infusing_dis(sim: Simulator) -> list[Fraction]:
    """Arm the simulator: right after the pump next answers a ``DIS`` while infusing, it
    loses power (its ``A?R`` push follows that reply). Returns where the pump's true
    delivered volume is written at that moment."""
    line = sim.newera
    assert line is not None
    pump = line.pumps[1]
    original = pump.handle
    truth: list[Fraction] = []

    def handle(text: str, sim_s: Fraction, wall_s: float) -> str:
        reply = original(text, sim_s, wall_s)
        if not truth and text.strip().upper().startswith("DIS") and pump.state == "I":
            truth.append(pump.infused_ul)
            # After this reply is queued: the push goes out behind it.
            asyncio.get_running_loop().call_soon(line.inject, 1, "power-loss")
        return reply

    pump.handle = handle  # type: ignore[method-assign]
    return truth


async def test_a_reset_pushed_between_dis_and_rat_counts_the_volume_once(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.newera is not None
    assert sim.newera_path is not None
    store = make_store(tmp_path / "audit.db")
    writer = AsyncAuditWriter(store)
    clock = SystemClock()
    driver = await newera_driver(sim, heartbeat_timeout_s=3)
    ctl = Controller(
        driver=driver,
        writer=writer,
        clock=clock,
        config=ControllerConfig(
            pump_id="chair-10",
            poll_period_s=0.1,
            heartbeat_timeout_s=3,
            command_timeout_s=0.5,
            intent_wait_s=2.0,
        ),
    )
    task: asyncio.Task[None] | None = None
    try:
        await ctl.attach()
        task = asyncio.create_task(ctl.run())
        await to_infusing_primed_by_hand(ctl, clock)
        await asyncio.sleep(INFUSE_S)
        truth = _reset_after_next_infusing_dis(sim)
        await wait_until(lambda: bool(truth), what="the power loss")
        await wait_until(
            lambda: session_state(ctl) is State.ALARM,
            what="the restart alarm",
            seen=lambda: f"{session_state(ctl)}, {ctl.last_status!r}",
        )
        polls = ctl.polls
        await wait_until(lambda: ctl.polls >= polls + 20, what="20 polls after the alarm")
        true_ul = truth[0]
        assert true_ul > 0
        assert sim.newera.pumps[1].infused_ul == 0  # the simulator's counter restarted
        session = ctl.session
        assert session is not None
        codes = [a.code for a in session.data.alarms]
        assert "tick.pump.rebooted" in codes, codes
        assert not FALSE_ALARMS & set(codes), codes
        delivered = ctl.delivered_ul()
        assert 0 <= true_ul - delivered <= RESOLUTION_UL, (delivered, float(true_ul))
        assert ctl.status().delivered_ul == delivered
    finally:
        if task is not None:
            await halt(task)
        await ctl.journal.drain()
        await driver.close()
        await writer.aclose()

    with store.engine.connect() as conn:
        raised = [
            json.loads(e.payload) for e in iter_events(conn, EventFilter(event_type="alarm.raised"))
        ]
    store.close()
    codes = [r["alarm_code"] for r in raised]
    assert not FALSE_ALARMS & set(codes), codes
    rebooted = [r for r in raised if r["alarm_code"] == "tick.pump.rebooted"]
    assert len(rebooted) == 1, rebooted
    figure = re.search(r"(\d+) µL had been delivered", rebooted[0]["message"])
    assert figure is not None, rebooted[0]["message"]
    assert 0 <= true_ul - int(figure[1]) <= RESOLUTION_UL, (rebooted[0]["message"], float(true_ul))
