"""A nurse's step holds the controller while its record becomes durable (at most
``intent_wait_s``), and the poll loop, which heartbeats the pump, waits for it. The pump is
heartbeated through that wait too, so a slow commit never lets the pump's own failsafe
stop it: an infusion stopped by a slow disk during a nurse's vitals entry or a rate change
is an interruption of therapy nobody asked for.

Real time: the New Era simulator's Safe-mode watchdog counts wall seconds in every state,
as the pump's does (the GIP-MB1 rig of this folder runs a stall-free simulated time in
which an idle wait does not pass). Commits are made to take ``DELAY_S``, longer than the
pump's watchdog and shorter than the intent bound, as a disk busy with other pumps'
commits or a database behind a network can.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

from pumpsim.harness import Simulator

from pumpd.clock import SystemClock
from pumpd.controller import Controller
from pumpd.session import State
from safety.plan import Order

from .conftest import (
    NEWERA_WATCHDOG_S,
    NURSE,
    NeweraRig,
    SlowStore,
    normal_vitals,
    session_state,
)

DELAY_S = 1.6
"""Each commit's added wait once the store is slow: over the pump's watchdog
(``NEWERA_WATCHDOG_S``), under the intent bound."""


async def _slowly_and_heartbeated(
    sim: Simulator,
    ctl: Controller,
    slow: SlowStore,
    step: Callable[[], Awaitable[object]],
    then: State,
) -> None:
    """Run the nurse's ``step`` with every commit ``DELAY_S`` slow: it is answered only once
    its record is durable (longer than the pump's watchdog), the watchdog never trips, and
    the session is left in ``then``."""
    slow.delay_s = DELAY_S
    started = asyncio.get_running_loop().time()
    await step()
    took_s = asyncio.get_running_loop().time() - started
    assert took_s > NEWERA_WATCHDOG_S, f"answered in {took_s:.2f} s, before its record was durable"
    assert sim.newera is not None
    assert sim.newera.pumps[1].alarm != "T", "the pump's watchdog tripped during the wait"
    assert session_state(ctl) is then


async def test_a_nurse_step_whose_record_commits_slowly_keeps_the_pump_heartbeated(
    newera_infusing: NeweraRig,
) -> None:
    sim, ctl, slow = newera_infusing
    reading = normal_vitals(SystemClock())
    await _slowly_and_heartbeated(
        sim, ctl, slow, lambda: ctl.vitals(by=NURSE, reading=reading), State.INFUSING
    )


async def test_a_rate_change_whose_intent_commits_slowly_keeps_the_pump_heartbeated(
    newera_infusing: NeweraRig,
) -> None:
    sim, ctl, slow = newera_infusing
    await ctl.adjust(
        by=NURSE, reason="patient too dissociated", order=Order(duration_min=Decimal(60))
    )
    await ctl.journal.drain()
    await _slowly_and_heartbeated(
        sim, ctl, slow, lambda: ctl.confirm_adjust(by=NURSE), State.INFUSING
    )


async def test_a_pause_whose_intent_commits_slowly_keeps_the_paused_pump_heartbeated(
    newera_infusing: NeweraRig,
) -> None:
    """The PAUSE goes out at once, and the controller then waits (bounded) to learn whether
    its intent became durable: the paused pump is heartbeated through that wait, as its
    watchdog runs whether it delivers or not."""
    sim, ctl, slow = newera_infusing
    pause = lambda: ctl.pause(by=NURSE, reason="patient asked for a break")  # noqa: E731
    await _slowly_and_heartbeated(sim, ctl, slow, pause, State.PAUSED)
