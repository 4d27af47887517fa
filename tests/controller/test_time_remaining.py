"""GIP 1.5.x: the time remaining pumpd shows is accurate to ±3 min, also after a rate
change (it is recomputed), over the simulator.

The figure is the status view's ``remaining_s`` (pumpd/control/views.py, what
``pumpctl status`` shows), built from a real controller and a real ControlContext. The
truth is measured, not computed: the moment the simulated pump actually finishes the
programmed volume, read from the simulator's own clock, minus the moment each figure was
shown. Both are simulated seconds on the one time base the simulator and the controller
share (tests/controller/simtime.py)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from fractions import Fraction

import pytest

from pumpd.control import ControlContext
from pumpd.control.views import pump_view
from pumpd.controller import Controller
from pumpd.session import State
from safety.plan import Order

from .conftest import (
    NURSE,
    PUMP_ID,
    Rig,
    halt,
    library,
    running,
    session_state,
    to_infusing,
    wait_until,
)

TOLERANCE_S = 3 * 60  # GIP 1.5.x: ±3 min


def context(rig: Rig, ctl: Controller) -> ControlContext:
    return ControlContext(
        controllers=lambda: {PUMP_ID: ctl},
        pumps={},
        library=library(),
        roles={},
        writer=rig.writer,
        engine=rig.store.engine,
        clock=rig.clock,
        simulated=True,
    )


def shown(rig: Rig, ctx: ControlContext, ctl: Controller) -> tuple[int, Fraction]:
    """The time remaining shown now, and now on the simulator's clock."""
    view = pump_view(ctx, PUMP_ID, ctl)
    at = Fraction(str(rig.sim.status(1)["sim_time_s"]))
    remaining = view["remaining_s"]
    assert isinstance(remaining, int), view
    return remaining, at


async def fresh_reading(ctl: Controller) -> None:
    """Wait for two more polls, so the view's figures come from a reading after now."""
    polls = ctl.polls
    await wait_until(lambda: ctl.polls >= polls + 2, what="two polls")


async def delivered_over(ctl: Controller, ul: Fraction) -> None:
    await wait_until(lambda: ctl.delivered_ul() > ul, what=f"{float(ul):.0f} µL delivered")


async def test_time_remaining_is_within_three_minutes_also_after_a_rate_change(
    rig: Rig,
) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        ctx = context(rig, ctl)
        vtbi = session.plan.vtbi_ul
        await wait_until(lambda: ctl.delivered_ul() > vtbi // 4, what="a quarter of the dose")
        old_rate = session.plan.rate_ml_h
        await ctl.adjust(
            by=NURSE, reason="patient too dissociated", order=Order(duration_min=Decimal(60))
        )
        await ctl.confirm_adjust(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        assert session.plan.rate_ml_h < old_rate
        readings: list[tuple[int, Fraction]] = []
        for share in (Fraction(1, 3), Fraction(1, 2), Fraction(4, 5)):  # then later on
            await delivered_over(ctl, vtbi * share)
            await fresh_reading(ctl)
            readings.append(shown(rig, ctx, ctl))
        # The truth: when the pump itself finishes the volume (its own clock).
        before_end = readings[-1][1]
        deadline = time.monotonic() + 60
        while True:
            status = rig.sim.status(1)
            now = Fraction(str(status["sim_time_s"]))
            if status["state"] != "INFUSING":
                after_end = now
                break
            before_end = now
            if time.monotonic() > deadline:
                raise AssertionError(f"the infusion did not end: {status}")
            await asyncio.sleep(0.002)
        await wait_until(lambda: session_state(ctl) is State.OBSERVATION, what="completion")
        assert not session.data.alarms
    finally:
        await halt(task)
    assert int(str(rig.sim.status(1)["volume_infused_ul"])) >= vtbi - 1
    for remaining, at in readings:
        # The pump ended between before_end and after_end (a few simulated seconds apart).
        earliest, latest = before_end - at, after_end - at
        assert earliest - TOLERANCE_S <= remaining <= latest + TOLERANCE_S, (
            f"shown {remaining} s remaining; the pump took {float(earliest):.0f}-"
            f"{float(latest):.0f} s more"
        )


@pytest.fixture
def scale() -> float:
    """Twice the rig's usual speed: the slowed infusion takes about 3 s of real time."""
    return 1200.0
