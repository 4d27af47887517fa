"""Keep-vein-open under the real controller and simulator: at the VTBI the pump goes on at
the prescribed KVO rate, the session is KVO and pumpd lets it run, supervised, until the
nurse starts the observation or the KVO allowance (KVO rate × observation time) is used;
then pumpd stops the pump and the observation starts. The protocol is the shipped standard
one with a KVO rate (tests/session/kvo.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from session.kvo import KVO_RATE_ML_H, kvo_protocol

from pumpd.controller import Controller
from pumpd.session import State
from safety.tick import supervision_limits

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until

STOP = 3


def _seen(rig: Rig, ctl: Controller, session_id: str) -> str:
    tail = [(e.event_type, e.payload[:160]) for e in rig.events(session=session_id)][-8:]
    return f"{session_state(ctl)}, {ctl.delivered_ul()} µL, {ctl.status().alarms}, {tail}"


async def _to_kvo(rig: Rig, ctl: Controller, session_id: str) -> None:
    await to_infusing(rig, ctl, session_id=session_id, loaded=kvo_protocol())
    await wait_until(
        lambda: session_state(ctl) is State.KVO,
        within_s=60,
        what="the VTBI and KVO",
        seen=lambda: _seen(rig, ctl, session_id),
    )


@pytest.mark.slow
async def test_kvo_runs_at_its_rate_until_its_allowance_then_observation(rig: Rig) -> None:
    auto = await rig.controller(unit=1, pump_id="chair-1")
    nurse = await rig.controller(unit=2, pump_id="chair-2")
    tasks = [await running(auto), await running(nurse)]
    try:
        await asyncio.gather(_to_kvo(rig, auto, "S-1"), _to_kvo(rig, nurse, "S-2"))
        for unit in (1, 2):
            model = rig.sim.peek(unit).snapshot()
            assert model["state"] == "KVO"
            assert model["rate_actual_centi_ml_h"] == int(KVO_RATE_ML_H * 100)
        assert auto.status().rate_ml_h == format(KVO_RATE_ML_H, "f")
        # chair-2: the nurse ends KVO; chair-1: KVO runs out its allowance.
        await nurse.observe(by=NURSE)
        assert session_state(nurse) is State.OBSERVATION
        assert rig.sim.peek(2).snapshot()["state"] == "IDLE"
        await wait_until(
            lambda: session_state(auto) is State.OBSERVATION,
            within_s=60,
            what="the end of KVO",
            seen=lambda: _seen(rig, auto, "S-1"),
        )
        assert rig.sim.peek(1).snapshot()["state"] == "IDLE"
    finally:
        for task in tasks:
            await halt(task)
    for ctl in (auto, nurse):
        await ctl.journal.drain()
        session = ctl.session
        assert session is not None
        assert not session.data.alarms, session.data.alarms
        assert not ctl.notices, ctl.notices
    session = auto.session
    assert session is not None
    limits = supervision_limits(session.protocol.protocol, session.plan)
    assert limits.kvo_max_ul == 2_500  # 5 mL/h for the 30 min of observation
    true_1 = int(str(rig.sim.peek(1).snapshot()["true_infused_ul"]))
    true_2 = int(str(rig.sim.peek(2).snapshot()["true_infused_ul"]))
    kvo_1, kvo_2 = true_1 - session.plan.vtbi_ul, true_2 - session.plan.vtbi_ul
    print(f"KVO: allowance used {kvo_1} µL; ended by the nurse after {kvo_2} µL")
    # ended within a few polls of the allowance, by the counter or by the clock (5 mL/h is
    # 1.4 µL per simulated second)
    assert abs(kvo_1 - limits.kvo_max_ul) <= 50
    assert 0 < kvo_2 < limits.kvo_max_ul
    for sid, reason in (("S-1", "tick.vtbi.kvo_complete"), ("S-2", "nurse.observe")):
        types = rig.types(session=sid)
        done = types.index("infusion.completed")
        assert types.index("observation.started") > done
        stops = [
            json.loads(e.payload)
            for e in rig.events(session=sid, event_type="pump.command.requested")
            if json.loads(e.payload)["command"] == "stop"
        ]
        assert [p["reason_codes"] for p in stops] == [[reason]]
    assert rig.chain_ok()
