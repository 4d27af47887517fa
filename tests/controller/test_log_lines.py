"""The controller's journald lines (pumpd/controller/logline.py): an alarm raised and
acknowledged with its priority and sentence, the session's state changes, the pump
commands sent and confirmed, the interlock; and nothing while a steady infusion is
polled."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from pumpsim.harness import Fault
from structlog.testing import capture_logs

from pumpd.session import State

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until
from .test_acknowledge import press_alarm_key

OURS = {
    "alarm raised",
    "alarm acknowledged",
    "session state changed",
    "pump command requested",
    "pump command sent",
    "pump command confirmed",
    "pump command uncertain",
    "pump command failed",
    "interlock triggered",
}
CODE = "tick.pump.alarm.occlusion_downstream"
STOP_CODE = 3


def _ours(lines: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in lines if line["event"] in OURS]


async def test_alarms_state_changes_and_commands_are_logged_not_polls(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        with capture_logs() as starting:
            await to_infusing(rig, ctl)
        with capture_logs() as steady:
            polls = ctl.polls
            await wait_until(lambda: ctl.polls > polls + 30, what="30 polls of a steady infusion")
        with capture_logs() as alarmed:
            rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
            await wait_until(lambda: session_state(ctl) is State.ALARM, what="the alarm")
            rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=False)
            press_alarm_key(rig)
            await ctl.acknowledge(by=NURSE, note="line unkinked at the pump")
    finally:
        await halt(task)

    assert _ours(steady) == []
    moves = [
        (x["from_state"], x["to_state"]) for x in starting if x["event"] == "session state changed"
    ]
    assert ("START_REQUESTED", "INFUSING") in moves, moves
    started = [x for x in starting if x["event"] == "pump command sent"]
    assert [x["command"] for x in started] == ["prime", "start"]
    assert all(x["pump"] == "chair-2" and x["session"] == "S-1" for x in _ours(starting))

    lines = _ours(alarmed)
    [raised] = [x for x in lines if x["event"] == "alarm raised"]
    assert raised["alarm_code"] == CODE
    assert raised["priority"] == "high"
    assert raised["log_level"] == "error"
    assert str(raised["message"]).startswith("Downstream occlusion on chair-2")
    [interlock] = [x for x in lines if x["event"] == "interlock triggered"]
    assert interlock["action"] == "stop"
    assert CODE in interlock["reason_codes"]
    sent = [x for x in lines if x["event"] == "pump command sent"]
    confirmed = [x for x in lines if x["event"] == "pump command confirmed"]
    assert [x["command"] for x in sent] == ["stop"]
    assert [x["correlation_id"] for x in confirmed] == [sent[0]["correlation_id"]]
    # Alarm first in the log as in the record.
    assert lines.index(raised) < lines.index(sent[0])
    [acked] = [x for x in lines if x["event"] == "alarm acknowledged"]
    assert acked["alarm_code"] == CODE
    assert acked["by"] == NURSE.name
    assert acked["note"] == "line unkinked at the pump"
    moves = [
        (x["from_state"], x["to_state"]) for x in lines if x["event"] == "session state changed"
    ]
    assert moves[-1] == ("ALARM", "STOPPED"), moves
    assert all(x["pump"] == "chair-2" and x["session"] == "S-1" for x in lines)


async def test_a_pump_that_stops_answering_is_one_line_not_one_per_failed_poll(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await wait_until(lambda: ctl.polls > 3, what="a few polls")
        with capture_logs() as silent:
            rig.sim.inject(1, Fault.DROP_LINK, on=True)
            polls = ctl.polls
            await wait_until(lambda: ctl.polls > polls + 10, what="ten polls of a silent pump")
            rig.sim.inject(1, Fault.DROP_LINK, on=False)
    finally:
        await halt(task)
    lines = [x for x in silent if x["event"] == "pump unreachable"]
    assert len(lines) == 1, silent
    (line,) = lines
    assert line["pump"] == ctl.config.pump_id
    assert line["log_level"] == "warning"
    assert line["error_code"] == "read_failed", line
    assert line["detail"], line


def _stamped(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["t_monotonic"] = time.monotonic()
    return event_dict


async def test_a_halts_lines_are_written_after_the_halt_reached_the_pump(rig: Rig) -> None:
    """Rendering the alarm's, the interlock's and the command's lines is not on the way from
    the kernel's decision to the pump: they are written once the STOP has gone out (and
    been confirmed), in the order they were made."""
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        with capture_logs(processors=[_stamped]) as alarmed:
            rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
            await wait_until(lambda: session_state(ctl) is State.ALARM, what="the alarm")
    finally:
        await halt(task)
    [stop] = [r for r in rig.sim.command_log(1) if r.command == STOP_CODE]
    lines = _ours(alarmed)
    names = [x["event"] for x in lines]
    assert names.index("alarm raised") < names.index("interlock triggered")
    assert names.index("interlock triggered") < names.index("pump command sent")
    early = [(x["event"], round((stop.t_monotonic - x["t_monotonic"]) * 1000, 2)) for x in lines]
    assert all(x["t_monotonic"] > stop.t_monotonic for x in lines), (
        f"lines written before the STOP reached the pump (ms before it): {early}"
    )
