"""A nurse's 5,000-character stop reason through the real controller: the pump stops, and
the intent and ``session.stopped`` are written with the reason cut by the catalogue's
model (``… [cut: 5000 characters]``), not refused and not cut by the controller. (The
control socket refuses words over 500 characters before they reach the controller:
``tests/control/test_long_words.py``.)"""

from __future__ import annotations

import json

from pumpd.audit import TEXT_MAX_CHARS
from pumpd.session import State

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until

LONG = "Patient asked to stop. " + "x" * 4977


async def test_a_5000_character_stop_reason_stops_and_is_recorded_cut(rig: Rig) -> None:
    assert len(LONG) == 5000
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await ctl.stop(by=NURSE, reason=LONG)
        await wait_until(lambda: session_state(ctl) is State.STOPPED, what="the stop")
        await wait_until(lambda: rig.sim.status(1)["state"] == "IDLE", what="the pump stopped")
    finally:
        await halt(task)
    await ctl.journal.drain()
    (stopped,) = rig.events(event_type="session.stopped")
    requested = [
        json.loads(e.payload)
        for e in rig.events(event_type="pump.command.requested")
        if json.loads(e.payload)["command"] == "stop"
    ]
    for reason in [json.loads(stopped.payload)["reason"], *(r["reason"] for r in requested)]:
        assert reason.startswith("Patient asked to stop. xxx")
        assert reason.endswith("… [cut: 5000 characters]")
        assert len(reason) == TEXT_MAX_CHARS
    assert requested, "the stop's intent is on record"
