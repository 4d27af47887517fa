"""An infusion stopped by an alarm stays stopped: the kernel judges the latched alarm like
STOPPED, not like a pause. A pause's ladder (reminders, then "paused too long, ended")
and the volume rule ("under-infusion, the infusion is paused") about an infusion that was
stopped would add alarms the nurse must acknowledge one by one, each saying something
false about the infusion; and the full suite once raised such an under-infusion alarm
between the pump stopping itself and pumpd's STOP (docs/session.md, phases)."""

from __future__ import annotations

import asyncio
import json

from pumpsim.harness import Fault

from pumpd.session import State
from safety.tick import SessionPhase

from .conftest import Rig, halt, running, session_state, to_infusing, wait_until


async def test_an_alarm_on_a_stopped_infusion_adds_no_pause_or_volume_alarms(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 300, what="some delivery")
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the occlusion alarm")
        session = ctl.session
        assert session is not None
        await wait_until(lambda: session.data.stopped_at is not None, what="the stop confirmed")
        assert session.phase() is SessionPhase.OBSERVATION
        # Past the protocol's whole pause ladder: 15 simulated minutes are 1.5 s here.
        limits = ctl.limits
        assert limits is not None
        await asyncio.sleep(1.5 * limits.pause_stop_after_s / rig.scale)
        latched = [a.code for a in session.data.alarms]
        assert latched == ["tick.pump.alarm.occlusion_downstream"], latched
        assert session_state(ctl) is State.ALARM
    finally:
        await halt(task)
    await ctl.journal.drain()
    raised = [
        json.loads(e.payload)["alarm_code"]
        for e in rig.events(session="S-1")
        if e.event_type == "alarm.raised"
    ]
    assert not [c for c in raised if c.startswith(("tick.pause.", "tick.volume."))], raised
