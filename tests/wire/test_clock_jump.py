"""A wall-clock jump (NTP step, an administrator's ``date -s``, a VM resumed) changes no
duration.

The controller runs on the simulator with the controller tests' shared stall-free time,
behind :class:`JumpingClock`: its monotonic reading runs on normally while its UTC reading
is set forward and back by hours during the session. Every duration pumpd supervises must
come out the same — the baseline-vitals age at the start, vitals due, the pause reminder
ladder and the pause auto-stop, the comm timeout, the volume accounting, the observation
minimum before discharge — while the UTC stamps the session records (and checkpoints into
the audit log) show the jump.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from controller.conftest import (
    NURSE,
    Rig,
    halt,
    make_rig,
    make_store,
    running,
    session_state,
    wait_until,
)
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.clock import Clock, ScaledClock
from pumpd.controller import Controller
from pumpd.session import CommandRefused, State

from .test_controller_faults import to_primed

SCALE = 600.0
"""One real second is ten simulated minutes."""
MIN = 60.0
SLACK_S = 90.0
"""Simulated seconds a decision may come late on a loaded machine (polls, the durable
intent before a command). A duration taken from a jumped wall clock is off by hours."""


class JumpingClock(ScaledClock):
    """The rig's scaled clock (the controller sizes its sleeps by the scale), whose UTC
    reading :meth:`jump` moves at once by an offset, as a wall-clock step does; its
    monotonic reading runs on untouched."""

    def __init__(self, scale: float, base: Clock) -> None:
        super().__init__(scale, base=base)
        self.offset = dt.timedelta(0)

    def now_utc(self) -> dt.datetime:
        return super().now_utc() + self.offset

    def jump(self, hours: float) -> None:
        self.offset += dt.timedelta(hours=hours)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db_path = tmp_path / "audit.db"
    store = make_store(db_path)
    writer = AsyncAuditWriter(store)
    async with Simulator(pumps=1, tcp=True, time_scale=SCALE) as sim:
        made = make_rig(sim, store, writer, db_path)
        made.clock = JumpingClock(SCALE, base=made.base_clock)
        yield made
        for driver in made.drivers:
            await driver.close()
    await writer.aclose()
    store.close()


def expected_at_reading(ctl: Controller) -> int:
    """The expected volume at the moment the pump's counter was last read, as the kernel
    compares them: ``expected_ul()`` is now, and on a loaded machine the last reading can
    be a poll or more older than now."""
    account = ctl.observation.ledger.account
    assert account is not None
    return account.expected_ul(ctl.observation.read_at_s)


def jumping(rig: Rig) -> JumpingClock:
    assert isinstance(rig.clock, JumpingClock)
    return rig.clock


async def sim_sleep(rig: Rig, sim_s: float) -> None:
    """Wait until ``sim_s`` simulated seconds have passed on the controller's clock."""
    until = rig.clock.monotonic() + sim_s
    await wait_until(lambda: rig.clock.monotonic() >= until, within_s=60, what=f"{sim_s} sim s")


def alarm_codes(ctl: Controller) -> set[str]:
    s = ctl.session
    return {n.code for n in ctl.notices} | ({a.code for a in s.data.alarms} if s else set())


class ReminderWatch:
    """When (controller monotonic seconds) each reminder message first showed."""

    def __init__(self, rig: Rig, ctl: Controller) -> None:
        self.seen: dict[str, float] = {}
        self._task = asyncio.create_task(self._watch(rig, ctl))

    async def _watch(self, rig: Rig, ctl: Controller) -> None:
        while True:
            now = rig.clock.monotonic()
            for message in ctl.status().reminders:
                self.seen.setdefault(message, now)
            await asyncio.sleep(0.002)

    def first(self, starts: str) -> tuple[str, float] | None:
        found = sorted((t, m) for m, t in self.seen.items() if m.startswith(starts))
        return None if not found else (found[0][1], found[0][0])

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# ---------------------------------------------------------------------- before the start


@pytest.mark.parametrize("jump_h", [3.0, -3.0], ids=["forward-3h", "back-3h"])
async def test_a_jump_before_the_start_does_not_age_or_rejuvenate_the_baseline(
    rig: Rig, jump_h: float
) -> None:
    """Fresh baseline vitals stay fresh across the jump: forward they would look three
    hours old (stale, start refused), back they would look taken in the future."""
    ctl = await rig.controller(intent_wait_s=2.0)
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        jumping(rig).jump(jump_h)
        await ctl.start(by=NURSE)
        assert session_state(ctl) is State.INFUSING
        s = ctl.session
        assert s is not None
        assert not [v for v in s.data.start_verdicts if v.code.startswith("start.vitals")]
        assert s.data.started_at is not None
        taken = s.data.last_vitals
        assert taken is not None
        # The session's own UTC stamps show the jump; its monotonic ones do not.
        utc_gap_s = (s.data.started_at.utc - taken.at.utc).total_seconds()
        mono_gap_s = s.data.started_at.mono_s - taken.at.mono_s
        assert abs(utc_gap_s - mono_gap_s - jump_h * 3600) < 1.0
    finally:
        await halt(task)


async def test_baseline_vitals_that_are_really_stale_stay_stale_after_a_jump_back(
    rig: Rig,
) -> None:
    """The rule still bites: 31 monotonic minutes are stale even though the wall clock
    was set back an hour (by UTC alone the vitals would be 29 minutes in the future)."""
    ctl = await rig.controller(intent_wait_s=2.0)
    task = await running(ctl)
    try:
        await to_primed(rig, ctl)
        await sim_sleep(rig, 31 * MIN)
        jumping(rig).jump(-1.0)
        with pytest.raises(CommandRefused) as refused:
            await ctl.start(by=NURSE)
        codes = {v.code for v in refused.value.verdicts}
        assert "start.vitals.stale" in codes, codes
        assert "start.vitals.from_future" not in codes
        assert session_state(ctl) is State.PRIMED
    finally:
        await halt(task)


# ---------------------------------------------------------------------- during a session


async def test_jumps_during_a_session_change_no_supervised_duration(rig: Rig) -> None:
    clock = jumping(rig)
    ctl = await rig.controller(intent_wait_s=2.0)
    task = await running(ctl)
    watch = ReminderWatch(rig, ctl)
    try:
        await to_primed(rig, ctl)
        await ctl.start(by=NURSE)
        s = ctl.session
        assert s is not None
        assert s.data.last_vitals is not None
        vitals_at = s.data.last_vitals.at

        # Infusing: the wall clock jumps forward 3 h, later back 6 h.
        await sim_sleep(rig, 4 * MIN)
        clock.jump(3.0)
        await sim_sleep(rig, 2 * MIN)
        clock.jump(-6.0)
        # Vitals come due 10 monotonic minutes after they were taken, not at the jumps.
        await wait_until(
            lambda: watch.first("Vital signs are due") is not None,
            within_s=30,
            what="vitals due",
            seen=lambda: f"{session_state(ctl)} {alarm_codes(ctl)} {watch.seen} {ctl.status()}",
        )
        due = watch.first("Vital signs are due")
        assert due is not None
        assert 10 * MIN <= due[1] - vitals_at.mono_s <= 10 * MIN + SLACK_S
        assert session_state(ctl) is State.INFUSING
        assert not alarm_codes(ctl), alarm_codes(ctl)  # no comm loss, no volume alarm
        assert abs(ctl.delivered_ul() - expected_at_reading(ctl)) <= 500

        # A pause: reminders on the ladder (3 min, then every 2) and the auto-stop at 15,
        # monotonic minutes, across a jump forward of 2 h inside the pause.
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        await ctl.pause(by=NURSE)
        assert s.data.paused_at is not None
        paused_at = ctl.session.data.paused_at  # type: ignore[union-attr]
        assert paused_at is not None
        await sim_sleep(rig, 1 * MIN)
        clock.jump(2.0)
        await wait_until(
            lambda: ctl.session is not None and ctl.session.data.stopped_at is not None,
            within_s=60,
            what="the pause auto-stop",
            seen=lambda: f"{session_state(ctl)} {alarm_codes(ctl)}",
        )
        first = watch.first("Paused for")
        assert first is not None
        assert 3 * MIN <= first[1] - paused_at.mono_s <= 3 * MIN + SLACK_S
        assert "(reminder 1)" in first[0]
        assert re.match(r"Paused for 3\.[0-4] min", first[0]), first
        ended = ctl.session.data  # type: ignore[union-attr]
        assert ended.stop_reason_code == "tick.pause.too_long", ended.stop_reason
        assert re.match(r"Paused for 15\.[0-4] min", str(ended.stop_reason)), ended.stop_reason
        stopped = ended.stopped_at
        assert stopped is not None
        assert 15 * MIN <= stopped.mono_s - paused_at.mono_s <= 15 * MIN + SLACK_S
        # The recorded UTC stamps carry the 2 h jump; the monotonic ones do not.
        utc_gap = (stopped.utc - paused_at.utc).total_seconds()
        assert abs(utc_gap - (stopped.mono_s - paused_at.mono_s) - 2 * 3600) < 1.0
        codes = alarm_codes(ctl)
        assert not {c for c in codes if c.startswith(("tick.comm", "tick.volume"))}, codes
        assert abs(ctl.delivered_ul() - expected_at_reading(ctl)) <= 500

        assert codes <= {"tick.pause.too_long"}, codes
        if session_state(ctl) is State.ALARM:
            await ctl.acknowledge(by=NURSE, note="ended by the pause limit, patient seen")
        # Observation: 30 monotonic minutes before discharge, whatever the wall clock says.
        await ctl.observe(by=NURSE)
        assert session_state(ctl) is State.OBSERVATION
        observed_from = ctl.session.data.observation_started_at  # type: ignore[union-attr]
        assert observed_from is not None
        clock.jump(5.0)
        checklist = ctl.session.protocol.protocol.discharge_checklist  # type: ignore[union-attr]
        with pytest.raises(CommandRefused) as early:
            await ctl.discharge(by=NURSE, checklist_confirmed=checklist)
        assert "discharge.observation_too_short" in {v.code for v in early.value.verdicts}
        await sim_sleep(rig, 30 * MIN - (rig.clock.monotonic() - observed_from.mono_s) + 1)
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        await ctl.discharge(by=NURSE, checklist_confirmed=checklist)
        assert session_state(ctl) is State.DISCHARGED
    finally:
        await watch.stop()
        await halt(task)
    await ctl.journal.drain()
    # The audit log's checkpoints carry the session's UTC stamps, jumps included.
    checkpoints = [
        json.loads(e.payload)["snapshot"]["data"]
        for e in rig.events(event_type="session.checkpointed")
    ]
    final = checkpoints[-1]
    observed_utc = dt.datetime.fromisoformat(final["observation_started_at"]["utc"])
    discharged_utc = dt.datetime.fromisoformat(final["discharged_at"]["utc"])
    mono = float(final["discharged_at"]["mono_s"]) - float(
        final["observation_started_at"]["mono_s"]
    )
    assert abs((discharged_utc - observed_utc).total_seconds() - mono - 5 * 3600) < 1.0
    assert rig.chain_ok()
