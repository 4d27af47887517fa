"""A pump-pushed alarm is acted on within one round trip, not at the next poll.

A New Era pump in Safe mode sends an alarm packet unasked the moment it stalls. The
controller here polls every 200 s (just inside the pump's longest watchdog, 255 s), so
its next regular poll is beyond this test's own time limit (120 s):
whatever it does after the stall, it does because the push woke it. The packet itself is
the reading: the kernel decides on it, and the STP is the first request the pump hears
after its push (the simulator's own logs of what it pushed and heard give the order), with
no status read before it. The nurse's alarm is in the audit log, and the STOP confirmed.
Real time (scale 1), the real New Era simulator on a pseudo-terminal, a real SQLite store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
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

LONG_POLL_S = 200.0
CODE = "tick.pump.alarm.occlusion_downstream"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=2, newera_link=str(tmp_path / "ne"), time_scale=1.0
    ) as sim:
        yield sim


async def test_a_pushed_stall_is_stopped_with_the_stp_as_the_first_request_after_the_push(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.newera is not None
    assert sim.newera_path is not None
    store = make_store(tmp_path / "audit.db")
    writer = AsyncAuditWriter(store)
    clock = SystemClock()
    # No watchdog alarm while the controller sleeps.
    driver = await newera_driver(sim, heartbeat_timeout_s=255, timeout_s=0.5)
    ctl = Controller(
        driver=driver,
        writer=writer,
        clock=clock,
        config=ControllerConfig(
            pump_id="chair-3", poll_period_s=LONG_POLL_S, heartbeat_timeout_s=255
        ),
    )
    task: asyncio.Task[None] | None = None
    try:
        await ctl.attach()
        task = asyncio.create_task(ctl.run())
        await wait_until(lambda: ctl.polls == 1, what="the first poll")
        await to_infusing_primed_by_hand(ctl, clock)
        polls = ctl.polls
        mark = len(sim.newera.request_log)
        assert ctl.polls == 1  # the next regular poll is 200 s away

        pushes = len(sim.newera.push_log)
        sim.newera.inject(1, "stall")
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the stall alarm")
        await wait_until(lambda: len(driver.alarm_packets) > 0, what="the pushed packet")
        line = sim.newera
        await wait_until(
            lambda: any(r.text == "STP" for r in list(line.request_log)[mark:]),
            what="the STP",
        )
        await wait_until(
            lambda: ctl.session is not None and ctl.session.data.stopped_at is not None,
            what="the confirmed stop",
        )
        heard = [(r.t_monotonic, r.text) for r in list(sim.newera.request_log)[mark:]]
        pushed = [(r.t_monotonic, r.text) for r in list(sim.newera.push_log)[pushes:]]
    finally:
        if task is not None:
            await halt(task)
        await driver.close()
        await writer.aclose()

    # Every poll after the stall came from an alarm packet, not from the clock: the push,
    # and the pump's alarm reply to the next request (each packet wakes one poll).
    assert 1 <= ctl.polls - polls <= len(driver.alarm_packets)
    assert [text for _, text in pushed] == ["A?S"]
    pushed_at = pushed[0][0]
    texts = [text for _, text in heard]
    first_stp = texts.index("STP")
    # Within one round trip: between the push and the STP at the pump, at most the one
    # request that may have been in flight; here none was, and no read went first.
    between = [text for t, text in heard[:first_stp] if t > pushed_at]
    assert between == [], between
    assert heard[first_stp][0] > pushed_at
    with store.engine.connect() as conn:
        raised = [
            json.loads(e.payload)["alarm_code"]
            for e in iter_events(conn, EventFilter(event_type="alarm.raised"))
        ]
        confirmed = [
            json.loads(e.payload)["command"]
            for e in iter_events(conn, EventFilter(event_type="pump.command.confirmed"))
        ]
    store.close()
    assert "stop" in confirmed
    assert CODE in raised
    assert "command.stop.failed" not in raised  # STP on the stalled pump is a stop, not a refusal
