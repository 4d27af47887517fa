"""A DULCO flex that loses power mid-infusion keeps its volume counter: it is not counted twice.

The pump's switch-on count changes (its restart evidence) but its volume counter survives
the power loss. Counting on from 0 after the restart, as for a pump whose counter restarts,
counted the kept volume a second time: the restart alarm said about twice what had been
delivered (1244 µL of 724 in a run before this change). The real controller, the register-map driver
with the prominent-dulcoflex profile, pumpsim's DULCO pump on a real pseudo-terminal and
its own power-loss fault.
"""

from __future__ import annotations

import asyncio
import re

from .conftest import Rig, halt, running, session_state, to_infusing_primed_by_hand, wait_until
from .test_dulco_overrun_ack import PROTOCOL, dulco_controller, pump, raised
from .test_dulco_overrun_ack import dulco_rig as dulco_rig  # the fixture

FALSE_ALARMS = {"tick.vtbi.exceeded", "tick.volume.over_infusion", "tick.pump.counter_backwards"}
RESOLUTION_UL = 2
"""The driver's volume in whole µL from the pump's litres; and a reading's rounding."""


async def test_a_power_loss_keeps_the_kept_counter_counted_once(dulco_rig: Rig) -> None:
    rig = dulco_rig
    ctl, _driver = await dulco_controller(rig)
    task = await running(ctl)
    try:
        await to_infusing_primed_by_hand(ctl, rig.clock, PROTOCOL)
        await wait_until(lambda: ctl.delivered_ul() > 500, what="some delivery")
        assert rig.sim.dulco is not None
        # It comes up stopped (its keypad's power-up "off"): whatever it shows after the
        # restart was delivered before it, and nothing more is due.
        rig.sim.dulco.inject(20, "power-up", value=0)
        rig.sim.dulco.inject(20, "power-loss")
        await wait_until(
            lambda: session_state(ctl) is not None and not pump(rig).motor_running,
            what="the pump stopped",
        )
        true_ul = float(pump(rig).deletable_l) * 1_000_000  # kept over the power loss
        await wait_until(lambda: bool(raised(rig)), what="the restart alarm")
        polls = ctl.polls
        await wait_until(lambda: ctl.polls > polls + 20, what="twenty more readings")
        await asyncio.sleep(0)
        delivered = ctl.delivered_ul()
        assert abs(true_ul - delivered) <= RESOLUTION_UL, (delivered, true_ul)
    finally:
        await halt(task)
    await ctl.journal.drain()
    alarms = raised(rig)
    codes = [c for c, _ in alarms]
    assert "tick.pump.rebooted" in codes, alarms
    assert not FALSE_ALARMS & set(codes), alarms
    message = next(m for c, m in alarms if c == "tick.pump.rebooted")
    figure = re.search(r"(\d+) µL had been delivered", message)
    assert figure is not None, message
    assert abs(true_ul - int(figure[1])) <= RESOLUTION_UL, (message, true_ul)
