"""The controller acts on what the pump declares it can do.

The real controller and the real GIP-MB1 simulator over Modbus TCP, with a profile that
has the same registers as the shipped one and declares less: no stop at its own volume,
or no watchdog of its own (as a vendor gateway might). The simulator is then made to
behave as declared (its volume register holds the maximum, so it never stops by itself).
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
from session.kvo import kvo_protocol

from pumpd.drivers import Profile, parse_profile
from pumpd.session import State
from pumpd.session.errors import CommandRefused

from .conftest import (
    NURSE,
    Rig,
    halt,
    program,
    running,
    session_state,
    to_infusing,
    wait_until,
)


def gip_mb1_declaring(**capabilities: Any) -> Profile:
    text = (resources.files("pumpd.drivers.profiles") / "gip-mb1.toml").read_text()
    data = tomllib.loads(text, parse_float=Decimal)
    data["capabilities"].update(capabilities)
    return parse_profile(data)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [120.0])  # a round trip then costs little volume
async def test_pumpds_stop_at_the_plans_volume_is_primary_without_a_pump_side_stop(
    rig: Rig,
) -> None:
    ctl = await rig.controller(profile=gip_mb1_declaring(pump_vtbi_stop=False))
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        session = ctl.session
        assert session is not None
        vtbi_ul = session.plan.vtbi_ul
        # This pump has no volume target of its own: it would go on for ever.
        rig.sim.pump(1).write_holding(102, [0xFFFF, 0xFFFF])
        await wait_until(
            lambda: session_state(ctl) is not State.INFUSING, within_s=90, what="pumpd's stop"
        )
        await wait_until(lambda: rig.sim.status(1)["state"] == "IDLE", what="pump idle")
    finally:
        await halt(task)
    await ctl.journal.drain()
    delivered = int(str(rig.sim.status(1)["volume_infused_ul"]))
    print(f"no pump-side VTBI: pumpd stopped the pump {delivered - vtbi_ul} µL past the plan")
    # The infusion ended as planned, by pumpd's STOP at the plan's volume; a pump without
    # a stop of its own still running there is no fault of the pump's (whether the kernel's
    # volume tolerance held depends on the round trip, which a test does not time).
    assert "pump.vtbi_ignored" not in [a.code for a in session.data.alarms]
    assert session.data.completed_at is not None
    assert delivered >= vtbi_ul
    types = rig.types(session="S-1")
    assert "infusion.completed" in types
    stops = [
        json.loads(e.payload)
        for e in rig.events(session="S-1", event_type="pump.command.requested")
        if json.loads(e.payload)["command"] == "stop"
    ]
    assert stops[0]["reason_codes"] == ["infusion.complete"]  # pumpd's stop came first


async def test_a_pump_without_a_watchdog_is_refused_for_live_use(rig: Rig) -> None:
    ctl = await rig.controller(profile=gip_mb1_declaring(watchdog=False), simulation=False)
    with pytest.raises(CommandRefused) as refused:
        await program(ctl)
    codes = [v.code for v in refused.value.verdicts]
    assert codes == ["pump.no_watchdog"]
    assert "accept_no_pump_watchdog = true" in refused.value.verdicts[0].message
    await ctl.journal.drain()
    assert "session.programmed" not in rig.types()


async def test_an_accepted_missing_watchdog_is_recorded_at_program_and_start(rig: Rig) -> None:
    ctl = await rig.controller(
        profile=gip_mb1_declaring(watchdog=False),
        simulation=False,
        accept_no_pump_watchdog=True,
    )
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await ctl.stop(by=NURSE, reason="test over")
    finally:
        await halt(task)
    await ctl.journal.drain()
    types = rig.types(session="S-1")
    accepted = [i for i, t in enumerate(types) if t == "pump.risk.accepted"]
    assert len(accepted) == 2
    programmed, started = types.index("session.programmed"), types.index("session.started")
    assert programmed < accepted[0] < accepted[1] < started
    (event, *_) = rig.events(event_type="pump.risk.accepted")
    payload = json.loads(event.payload)
    assert payload["reason_code"] == "pump.no_watchdog_accepted"
    assert payload["config_key"] == "accept_no_pump_watchdog"


async def test_the_same_pump_in_simulation_needs_no_acceptance(rig: Rig) -> None:
    ctl = await rig.controller(profile=gip_mb1_declaring(watchdog=False), simulation=True)
    await program(ctl)
    await ctl.journal.drain()
    assert "session.programmed" in rig.types()
    assert "pump.risk.accepted" not in rig.types()


async def test_a_plan_with_kvo_is_refused_on_a_pump_without_kvo(rig: Rig) -> None:
    ctl = await rig.controller(profile=gip_mb1_declaring(kvo=False))
    with pytest.raises(CommandRefused) as refused:
        await program(ctl, loaded=kvo_protocol())
    assert [v.code for v in refused.value.verdicts] == ["pump.no_kvo"]


async def test_a_watchdog_pumpd_arms_is_judged_in_wall_seconds_where_its_stop_is_primary(
    rig: Rig,
) -> None:
    # heartbeat_timeout_s = 10 s (held by the controller as 10 × the time scale of its
    # clock's seconds): at the plan's 150 mL/h a silent pumpd leaves the pump 417 µL past
    # the plan, beyond the kernel's 200 µL. The same pump with its own stop is not judged.
    hb = round(10 * rig.scale)
    primary = await rig.controller(
        profile=gip_mb1_declaring(pump_vtbi_stop=False), heartbeat_timeout_s=hb
    )
    with pytest.raises(CommandRefused) as refused:
        await program(primary)
    (verdict,) = refused.value.verdicts
    assert verdict.code == "pump.watchdog_run_on"
    assert "timeout of 10 s" in verdict.message
    assert "417 µL past the plan" in verdict.message
    backstop = await rig.controller(unit=2, heartbeat_timeout_s=hb)
    await program(backstop)
    assert session_state(backstop) is State.PROGRAMMED
