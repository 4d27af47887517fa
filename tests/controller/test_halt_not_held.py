"""A halt is not held for its intent's commit: the STOP or PAUSE goes to the pump at once,
its intent queued ahead of it, and the log still reads intent → command result, in order.

The audit store here is the real one on disk, its writes made slow (each commit waits
``DELAY_S`` in the writer's thread, as a database behind a network or behind the other
pumps' group commits does)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from pumpsim.harness import Fault

from pumpd.session import State

from .conftest import (
    Rig,
    SlowStore,
    halt,
    running,
    session_state,
    to_infusing,
    wait_until,
)
from .test_faults import PAUSE, STOP, intents_precede_commands

DELAY_S = 1.0
"""How much longer each commit takes once the store is made slow (real seconds)."""


def _monotonic(occurred_at: str) -> float:
    """An event's UTC time of making, on this machine's monotonic clock."""
    utc = dt.datetime.strptime(occurred_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return utc.timestamp() - (time.time() - time.monotonic())


async def test_a_halt_reaches_the_pump_long_before_its_slow_intent_commits(
    slow: tuple[Rig, SlowStore],
) -> None:
    rig, store = slow
    # The bound is long enough that a commit of DELAY_S is no audit failure: the halt must
    # not wait for it all the same.
    ctl = await rig.controller(intent_wait_s=5 * DELAY_S)
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 2_000, what="some delivery")
        await ctl.journal.drain()
        store.delay_s = DELAY_S
        injected_at = time.monotonic()
        rig.sim.inject(1, Fault.RUNAWAY, on=True, factor="1.5")

        def halts() -> list[Any]:
            return [
                r
                for r in rig.sim.command_log(1)
                if r.command in (PAUSE, STOP) and r.t_monotonic >= injected_at
            ]

        await wait_until(lambda: bool(halts()), within_s=10, what="the halt at the pump")
        await wait_until(
            lambda: session_state(ctl) is State.ALARM, within_s=10, what="the runaway alarm"
        )
    finally:
        await halt(task)
    await ctl.journal.drain()
    at_pump = halts()[0]
    name = "pause" if at_pump.command == PAUSE else "stop"
    events = rig.events(session="S-1")
    intent = next(
        e
        for e in events
        if e.event_type == "pump.command.requested"
        and f'"command":"{name}"' in e.payload
        and _monotonic(e.occurred_at) >= injected_at - 0.05
    )
    committed_at = next(t for _, corr, t in store.commits if corr == intent.correlation_id)
    made_at = _monotonic(intent.occurred_at)
    assert at_pump.t_monotonic < committed_at, "the halt waited for its intent's commit"
    assert at_pump.t_monotonic - made_at < DELAY_S / 2, (
        f"the {name} reached the pump {at_pump.t_monotonic - made_at:.2f} s after its intent "
        f"was made, with commits taking {DELAY_S} s"
    )
    # The record reads as before: the interlock and the intent, then the pump's answer.
    same = [e for e in events if e.correlation_id == intent.correlation_id]
    assert [e.event_type for e in same][:2] == [
        "pump.command.requested",
        "pump.command.confirmed",
    ]
    interlock = [e for e in events if e.event_type == "interlock.triggered" and e.seq < intent.seq]
    assert interlock, "the kernel's interlock is written ahead of the halt's intent"
    assert _monotonic(interlock[-1].occurred_at) >= injected_at - 0.05
    assert interlock[-1].seq < intent.seq < same[1].seq
    assert not any(n.code == "audit.write_failed" for n in ctl.notices), (
        "a commit within intent_wait_s is no audit failure"
    )
    intents_precede_commands(rig)
    assert rig.chain_ok()
