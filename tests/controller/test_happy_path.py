"""Each shipped protocol, start to discharge, supervised over real Modbus at a high time
scale: the delivered volume ends within the register resolution (1 µL) of the plan."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pumpd.session import State
from safety.plan import Order

from .conftest import NURSE, Rig, halt, protocol, running, session_state, to_infusing, wait_until

# (protocol, order, time scale): each infusion takes a few real seconds.
CASES = [
    ("ketamine-trd-standard", Order(duration_min=Decimal(40)), 800.0),
    ("ketamine-trd-escalation", Order(duration_min=Decimal(40)), 800.0),
    ("ketamine-chronic-pain", Order(), 2400.0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "order", "scale"), CASES, ids=[c[0] for c in CASES])
async def test_protocol_runs_to_discharge(rig: Rig, name: str, order: Order, scale: float) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl, name, order)
        session = ctl.session
        assert session is not None
        vtbi_ul = session.plan.vtbi_ul
        await wait_until(
            lambda: session_state(ctl) is State.OBSERVATION,
            within_s=30,
            what="completion",
            seen=lambda: (
                f"{session_state(ctl)}, sim {rig.sim.status(1)}, "
                f"alarms {[a.code for a in session.data.alarms]}, "
                f"notices {[n.code for n in ctl.notices]}, polls {ctl.polls}, "
                f"expected {ctl.expected_ul()} delivered {ctl.delivered_ul()}"
            ),
        )
        status = rig.sim.status(1)
        delivered_ul = int(status["volume_infused_ul"])  # type: ignore[call-overload]
        assert abs(delivered_ul - vtbi_ul) <= 1, (delivered_ul, vtbi_ul)
        assert status["state"] == "IDLE"
        assert ctl.delivered_ul() == delivered_ul
        assert not session.data.alarms
        checklist = protocol(name).protocol.discharge_checklist
        minimum_s = float(protocol(name).protocol.observation_min * 60)
        started = session.data.observation_started_at
        assert started is not None
        await wait_until(
            lambda: rig.clock.monotonic() - started.mono_s > minimum_s + 1,
            within_s=30,
            what="observation time",
        )
        await ctl.vitals(by=NURSE, reading=rig.vitals())
        await ctl.discharge(by=NURSE, checklist_confirmed=list(checklist))
        assert session_state(ctl) is State.DISCHARGED
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types(session="S-1")
    for expected in (
        "session.programmed",
        "double_check.completed",
        "session.started",
        "infusion.completed",
        "observation.started",
        "patient.discharged",
    ):
        assert expected in types
    assert rig.chain_ok()
