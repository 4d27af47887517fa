"""Alarm first (docs/controller.md, "Alarm first"): when the kernel demands a halt, the
nurse's ``alarm.raised`` is queued the moment the tick decides, ahead of the STOP's intent
and of the command, so it does not wait for the pump's round trip. The STOP itself keeps
write-ahead (intent, then command), goes out once even to a pump that stopped itself in
ALARM, and is not repeated on the later ticks that demand it again."""

from __future__ import annotations

import json

from pumpsim import registers as reg
from pumpsim.harness import Fault

from pumpd.audit import EventRecord
from pumpd.session import State

from .conftest import Rig, halt, running, session_state, to_infusing, wait_until

STOP = int(reg.Command.STOP)
CODE = "tick.pump.alarm.occlusion_downstream"


def _payload(event: EventRecord) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(event.payload)
    return loaded


async def test_pump_alarm_is_written_before_the_stop_which_goes_out_once(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 300, what="some delivery")
        commands_before = len(rig.sim.command_log(1))
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the occlusion alarm")
        polls = ctl.polls
        # Many more ticks with the pump in ALARM: each demands the STOP again.
        await wait_until(lambda: ctl.polls > polls + 30, what="more ticks")
        assert CODE in {a.code for a in ctl.status().alarms}
    finally:
        await halt(task)
    await ctl.journal.drain()
    events = rig.events(session="S-1")
    raised = [
        e for e in events if e.event_type == "alarm.raised" and _payload(e)["alarm_code"] == CODE
    ]
    assert len(raised) == 1
    message = str(_payload(raised[0])["message"])
    assert message.startswith("Downstream occlusion on chair-2: infusion stopped at"), message
    assert _payload(raised[0])["priority"] == "high"
    after = [e for e in events if e.seq > raised[0].seq]
    interlocks = [e for e in events if e.event_type == "interlock.triggered"]
    intents = [
        e
        for e in events
        if e.event_type == "pump.command.requested" and _payload(e)["command"] == "stop"
    ]
    results = [e for e in events if e.event_type == "pump.command.confirmed"]
    # Alarm first, then the write-ahead STOP: interlock and intent before its result.
    assert len(interlocks) == 1
    assert interlocks[0] in after
    assert len(intents) == 1
    assert intents[0] in after
    assert intents[0].seq < results[-1].seq
    assert results[-1].correlation_id == intents[0].correlation_id
    # The latched alarm is the announced one: its acknowledgement would link to this event.
    s = ctl.session
    assert s is not None
    assert [a.message for a in s.data.alarms if a.code == CODE] == [message]
    # The pump in ALARM took exactly one STOP, however many ticks demanded it.
    stops = [r for r in rig.sim.command_log(1)[commands_before:] if r.command == STOP]
    assert len(stops) == 1
    assert rig.chain_ok()
