"""A DULCO flex that stops answering just before its volume falls due (hazard H74).

The pump has no volume limit of its own: pumpd's stop at the plan's volume is the one that
ends the infusion. The full soak (docs/soak.md, seed 642880) cut its link just before the
volume fell due; the one STOP of the outage went into the cut link, the next would have
come with ``tick.comm.lost`` after ``comm_timeout_s``, and the pump ran on to its own Modbus
timeout. Now the kernel's ``tick.comm.volume_due`` stops with a high alarm the moment
pumpd's own count says the volume is due, and that STOP goes again at every tick until the
pump answers; the pump that answers again is stopped by it, not by its own timeout.

The real controller, the register-map driver with the prominent-dulcoflex profile,
pumpsim's DULCO pump on a real pseudo-terminal and its own `no-answer` fault. The kernel's
communication timeout is the daemon's 5 s; the pump's Modbus timeout 4 s, the longest the
run-on refusal allows at this plan's 150 mL/h (167 µL of the 200 µL allowance).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from safety.tick import DEFAULT_POLICY

from .conftest import Rig, halt, running, session_state, to_infusing_primed_by_hand, wait_until
from .test_dulco_overrun_ack import (
    PROTOCOL,
    SCALE,
    UNIT,
    dulco_controller,
    dulco_rig_with,
    pump,
    raised,
)

PUMP_TIMEOUT_S = 4
CUT_BEFORE_DUE_S = 0.2
"""Controller seconds (unscaled) between the link going silent and the volume falling due."""
REACTION_S = 0.5
"""Controller seconds (unscaled) after the volume fell due by which the alarm must be
raised: a few polls and read timeouts, a tenth of the kernel's 5 s communication timeout."""
RESTORE_BY_S = 3.0
"""Wall seconds after the cut by which the link answers again at the latest: inside the
pump's own 4 s (wall) Modbus timeout, so the pump still runs when it answers."""
CODE = "tick.comm.volume_due"


@pytest.fixture
async def dulco4(tmp_path: Path) -> AsyncIterator[Rig]:
    async with dulco_rig_with(tmp_path, PUMP_TIMEOUT_S) as made:
        yield made


def _stops(rig: Rig, kind: str) -> list[dict[str, object]]:
    return [
        p
        for e in rig.events(session="S-1")
        if e.event_type == kind
        for p in [json.loads(e.payload)]
        if p.get("command") == "stop"
    ]


async def test_a_silent_pump_whose_volume_falls_due_is_alarmed_and_stopped_at_once(
    dulco4: Rig,
) -> None:
    rig = dulco4
    comm_timeout_s = DEFAULT_POLICY.comm_timeout_s * SCALE  # as the daemon scales it
    # One write per STOP, confirmed within 0.2 s, and a 0.25 s reply timeout (a loaded
    # machine answers the connect in time): the STOPs of several ticks fall inside the
    # silence (three attempts of 0.3 s would make one STOP last most of it).
    ctl, _driver = await dulco_controller(
        rig,
        timeout_s=0.25,
        pump_timeout_s=PUMP_TIMEOUT_S,
        policy=dataclasses.replace(DEFAULT_POLICY, comm_timeout_s=comm_timeout_s),
        stop_attempts=1,
        command_timeout_s=0.2,
    )
    task = await running(ctl)
    try:
        await to_infusing_primed_by_hand(ctl, rig.clock, PROTOCOL)
        session = ctl.session
        assert session is not None
        vtbi_ul = session.plan.vtbi_ul
        account = ctl.observation.ledger.account
        assert account is not None
        # When pumpd's own count reaches the plan's volume.
        rate_ul_s = account.rate_ml_h * Decimal(1000) / Decimal(3600)
        due_s = account.rate_since_s + float((vtbi_ul - account.closed_ul) / rate_ul_s)
        await wait_until(
            lambda: rig.clock.monotonic() >= due_s - CUT_BEFORE_DUE_S * SCALE,
            within_s=30,
            what="the last moments before the volume is due",
        )
        assert rig.sim.dulco is not None
        rig.sim.dulco.inject(UNIT, "no-answer")
        cut_s, cut_wall_s = rig.clock.monotonic(), time.monotonic()
        await wait_until(
            lambda: any(a.code == CODE for a in session.data.alarms),
            within_s=RESTORE_BY_S - 0.5,
            what="the volume-due alarm",
            seen=lambda: f"{session_state(ctl)}, {[a.code for a in session.data.alarms]}",
        )
        alarm = next(a for a in session.data.alarms if a.code == CODE)
        late_s = (alarm.at.mono_s - due_s) / SCALE
        assert 0 <= late_s <= REACTION_S, late_s
        assert alarm.at.mono_s < cut_s + comm_timeout_s  # not the communication timeout
        assert alarm.priority.value == "high"
        assert pump(rig).motor_running  # it runs on: only a STOP that arrives ends it
        # STOPs go into the cut link tick after tick; the link comes back after a few.
        while time.monotonic() < cut_wall_s + RESTORE_BY_S:
            if len(_stops(rig, "pump.command.uncertain")) >= 3:
                break
            await asyncio.sleep(0.05)
        rig.sim.dulco.inject(UNIT, "no-answer", on=False)
        await wait_until(
            lambda: not pump(rig).motor_running, what="the pump stopped once it answers"
        )
        assert not pump(rig).stopped_by_timeout  # pumpd's STOP, not the pump's own timeout
        await wait_until(
            lambda: bool(_stops(rig, "pump.command.confirmed")), what="the STOP confirmed"
        )
        # Delivery past the plan unsupervised: not known exactly what was given, so the
        # session ends at the confirmed stop (continue.ended names the cause, below).
        await wait_until(
            lambda: session.data.observation_started_at is not None,
            what="the session ended at the confirmed stop",
            seen=lambda: f"{session_state(ctl)}",
        )
    finally:
        await halt(task)
    await ctl.journal.drain()
    # A STOP went into the cut link at every tick after the volume fell due, not once per
    # outage: each went unanswered until one reached the pump.
    sent = _stops(rig, "pump.command.requested")
    unanswered = _stops(rig, "pump.command.uncertain")
    assert len(unanswered) >= 2, (sent, unanswered)
    assert all(s["reason_codes"] == [CODE] for s in sent[: len(unanswered)]), sent
    ended = [json.loads(e.payload) for e in rig.events(session="S-1", event_type="session.ended")]
    assert ended, rig.types(session="S-1")
    assert CODE in json.dumps(ended[0]), ended  # the cause named
    codes = [c for c, _ in raised(rig)]
    assert CODE in codes, codes
    assert "tick.comm.lost" not in codes, codes
    message = next(m for c, m in raised(rig) if c == CODE)
    assert message.startswith("Pump not answering when its volume fell due on chair-2"), message
    assert "pumpd cannot confirm it stopped" in message, message
    assert "stop it at the pump now" in message, message
    assert rig.chain_ok()
