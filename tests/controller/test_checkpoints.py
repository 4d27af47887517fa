"""Checkpoints stay small and few however long a session runs.

A checkpoint (``session.checkpointed``) carries the session's whole snapshot. If the
snapshot grew with every reading and every acknowledgement, each checkpoint of a long
session would be larger than the last and the audit log would grow with the square of the
session's length (a soak run once wrote 14 GB this way). Here a real controller on the
simulator goes through the flapping-alarm loop a clinic can produce (vitals outside the
pause band after the stop: the alarm is latched again as soon as it is acknowledged) and
through many readings, and its checkpoints are measured in the audit log.
"""

from __future__ import annotations

import dataclasses

from pumpsim.harness import Fault

from pumpd.controller import Controller
from pumpd.session import State

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until

CYCLES = 30
READINGS = 60
CHECKPOINT_MAX_BYTES = 12_000
"""A checkpoint holds one session's figures, the plan and the last of each record; what
the session keeps must not depend on how many readings or acknowledgements came before."""


def _checkpoint_sizes(rig: Rig) -> list[int]:
    return [len(e.payload) for e in rig.events(event_type="session.checkpointed", session="S-1")]


async def test_checkpoints_do_not_grow_with_acknowledgements_and_readings(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await ctl.stop(by=NURSE, reason="patient asked to stop")
        await wait_until(lambda: session_state(ctl) is State.STOPPED, what="the stop")
        # Each low reading outside the pause band raises its alarm once: an acknowledged
        # reading only reminds, so every cycle is a new reading and its acknowledgement.
        for _ in range(CYCLES):
            low = dataclasses.replace(rig.vitals(), spo2_percent=91)
            await ctl.vitals(by=NURSE, reading=low)
            await wait_until(lambda: session_state(ctl) is State.ALARM, what="the vitals alarm")
            await ctl.acknowledge(by=NURSE, note="patient seen")
        await ctl.vitals(by=NURSE, reading=dataclasses.replace(rig.vitals(), spo2_percent=91))
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the vitals alarm")
        await ctl.acknowledge(by=NURSE, note="patient seen")
        for _ in range(READINGS):
            await ctl.vitals(by=NURSE, reading=rig.vitals())
    finally:
        await halt(task)
    await ctl.journal.drain()
    sizes = _checkpoint_sizes(rig)
    early = sizes[len(sizes) // 4]
    print(
        f"checkpoints: {len(sizes)}, bytes first/quarter/last/max: "
        f"{sizes[0]}/{early}/{sizes[-1]}/{max(sizes)}, total {sum(sizes)}"
    )
    session = ctl.session
    assert session is not None
    assert session.data.alarms_acknowledged == CYCLES + 1
    # the baseline, the low ones, the rest
    assert session.data.vitals_recorded == 1 + CYCLES + 1 + READINGS
    acked = rig.events(event_type="alarm.acknowledged", session="S-1")
    assert len(acked) == CYCLES + 1, "the log still has every acknowledgement"
    recorded = rig.events(event_type="vitals.recorded", session="S-1")
    assert len(recorded) == 1 + CYCLES + 1 + READINGS
    assert max(sizes) <= CHECKPOINT_MAX_BYTES, sizes
    # Not growing: the last checkpoint is no larger than one from early in the session
    # (beyond the few bytes a count's extra digit or a longer text may add).
    assert sizes[-1] <= early + 200, (early, sizes[-1])


async def test_a_stop_the_pump_ignores_is_retried_without_a_checkpoint_each_time(
    rig: Rig,
) -> None:
    # No periodic checkpoint in this test: every one written is a change of the session.
    ctl = await rig.controller(checkpoint_every_s=1e9)
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        rig.sim.inject(1, Fault.IGNORE_COMMANDS, on=True)
        high = dataclasses.replace(rig.vitals(), systolic_mmhg=200)  # beyond the stop band
        await ctl.vitals(by=NURSE, reading=high)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the vitals alarm")
        await wait_until(lambda: _attempts(rig) >= 2, what="a second stop attempt")
        await ctl.journal.drain()
        written, latched = len(_checkpoint_sizes(rig)), _latched(ctl)
        await wait_until(lambda: _attempts(rig) >= 5, what="three more stop attempts")
    finally:
        await halt(task)
    await ctl.journal.drain()
    # The pump still delivers, so pumpd keeps stopping it, and the log has every attempt.
    # The session is the same after each one (the doubt is the one that began first), so
    # an attempt writes no checkpoint: the only ones written since are for the kernel's
    # alarms that latched as the pump went on (the pause grew too long, and the like).
    now_latched = _latched(ctl)
    assert now_latched[: len(latched)] == latched
    assert len(_checkpoint_sizes(rig)) - written == len(now_latched) - len(latched)
    assert len(now_latched) == len(set(now_latched)), "an alarm is latched once"


def _attempts(rig: Rig) -> int:
    return sum(
        1
        for e in rig.events(event_type="pump.command.uncertain", session="S-1")
        if '"command":"stop"' in e.payload
    )


def _latched(ctl: Controller) -> list[str]:
    s = ctl.session
    assert s is not None
    return [a.code for a in s.data.alarms]
