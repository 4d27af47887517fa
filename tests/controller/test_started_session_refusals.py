"""Two controller refusals no other test reached, over the simulator:

- a pump whose session has started cannot be programmed again (``SessionActive``; GIP
  2.1.2: no change of weight mid-infusion; hazards.md H20);
- figures that contradict each other are the kernel's ``InvalidTickInput``, which the
  controller obeys as a STOP with a high alarm (``controller.bookkeeping``). Reached here
  the way it can happen: the wall clock was stepped back while pumpd was down and a
  paused session is rebuilt, so the start of its pause, carried across the restart
  through UTC, lies after the new process's now.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest

from pumpd.clock import Clock, ScaledClock, stamp
from pumpd.controller import SessionActive
from pumpd.recovery import last_checkpoint, rebuild
from pumpd.session import State
from safety.plan import Order, Patient

from .conftest import (
    NURSE,
    PUMP_ID,
    Rig,
    halt,
    library,
    protocol,
    running,
    session_state,
    to_infusing,
    wait_until,
)


async def test_a_started_session_cannot_be_programmed_again(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        before = session.snapshot()
        setpoint = rig.sim.status(1)["rate_setpoint_centi_ml_h"]
        for state in ("INFUSING", "PAUSED"):
            with pytest.raises(SessionActive) as refused:
                await ctl.program(
                    by=NURSE,
                    session_id="S-2",
                    patient_ref="P-0118",
                    protocol=protocol("ketamine-trd-standard"),
                    patient=Patient(weight_kg=Decimal(95)),  # a new weight mid-infusion
                    order=Order(),
                )
            assert "has session S-1 in " + state in str(refused.value)
            assert ctl.session is session
            if state == "INFUSING":
                assert session.snapshot() == before
                await ctl.pause(by=NURSE)
                assert session_state(ctl) is State.PAUSED
        assert rig.sim.status(1)["rate_setpoint_centi_ml_h"] == setpoint
        assert rig.sim.status(1)["state"] == "PAUSED"
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert rig.types(event_type="session.programmed") == ["session.programmed"]
    assert "S-2" not in {e.session_id for e in rig.events()}


class SteppedBackUtc:
    """The host's clocks after the wall clock was set back by ``by`` while pumpd was down:
    monotonic time goes on, UTC is ``by`` behind."""

    def __init__(self, base: Clock, by: dt.timedelta) -> None:
        self._base, self._by = base, by

    def monotonic(self) -> float:
        return self._base.monotonic()

    def now_utc(self) -> dt.datetime:
        return self._base.now_utc() - self._by


async def test_inconsistent_bookkeeping_is_a_stop_with_a_high_alarm(rig: Rig) -> None:
    first = await rig.controller()
    task = await running(first)
    try:
        await to_infusing(rig, first)
        await wait_until(lambda: first.delivered_ul() > 1_000, what="some delivery")
        await first.pause(by=NURSE)
        assert session_state(first) is State.PAUSED
    finally:
        await halt(task)  # pumpd dies; the pump stays PAUSED
    await first.journal.drain()
    checkpoint = last_checkpoint(rig.store.engine, PUMP_ID)
    assert checkpoint is not None
    assert checkpoint.state == "PAUSED"
    assert rig.sim.status(1)["state"] == "PAUSED"
    # The new process: the same monotonic time base as the simulator, UTC an hour back.
    clock = ScaledClock(rig.scale, base=SteppedBackUtc(rig.base_clock, dt.timedelta(hours=1)))
    again = dataclasses.replace(rig, clock=clock)
    ctl = await again.controller()
    session = rebuild(checkpoint, library(), stamp(clock))
    assert session.state is State.PAUSED
    paused_since = session.paused_since_s()
    assert paused_since is not None
    assert paused_since > clock.monotonic()
    await ctl.recover(session, checkpoint.accounting)
    task = await running(ctl)
    try:
        await wait_until(
            lambda: session_state(ctl) is State.ALARM or task.done(),
            what="the bookkeeping stop",
            seen=lambda: f"{session_state(ctl)}, pump {rig.sim.status(1)['state']}",
        )
        if task.done():
            raise AssertionError(f"the controller died instead: {task.exception()!r}")
        alarm = next(a for a in session.data.alarms if a.code == "controller.bookkeeping")
        assert alarm.priority.value == "high"
        await wait_until(lambda: rig.sim.status(1)["state"] == "IDLE", what="the pump stopped")
        assert session.data.stopped_at is not None
        assert not task.done(), "the controller goes on supervising"
    finally:
        await halt(task)
    await ctl.journal.drain()
    interlocks = [json.loads(e.payload) for e in rig.events(event_type="interlock.triggered")]
    assert any(
        i["action"] == "stop" and "controller.bookkeeping" in i["reason_codes"] for i in interlocks
    ), interlocks
    assert rig.chain_ok()
