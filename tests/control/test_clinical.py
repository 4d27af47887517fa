"""Every clinical method over the socket, on the real supervisor and simulator: the
nurse's whole path, the double-check rules, refusals that change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from .conftest import PROGRAM, Client, Rig, wait_until

PIN_N042 = "4711-ada"
PIN_N043 = "2024-grace"


async def _staff(rig: Rig) -> None:
    """Register two nurses; the test process then holds nurse and admin."""
    rig.use_roles("nurse", "admin")
    admin = await rig.client()
    await admin.ok("staff.add", staff_id="N042", name="Ada Lovelace", role="nurse", pin=PIN_N042)
    await admin.ok("staff.add", staff_id="N043", name="Grace Hopper", role="nurse", pin=PIN_N043)


def _view(views: list[dict[str, Any]], pump: str) -> dict[str, Any]:
    return next(v for v in views if v["pump_id"] == pump)


async def _state(c: Client, pump: str = "chair-1") -> str | None:
    views = await c.ok("status", pump=pump)
    return views[0]["session_state"]  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_nurses_path_program_to_discharge(rig: Rig) -> None:
    await _staff(rig)
    c = await rig.client()

    preview = await c.ok("session.plan", **PROGRAM)
    assert preview["refused"] is False
    assert preview["plan"]["weight_kg"] == "80"
    assert await _state(c) is None  # the preview changed nothing

    programmed = await c.ok("session.program", **PROGRAM)
    assert programmed["state"] == "PROGRAMMED"
    assert programmed["plan"] == preview["plan"]
    session_id = programmed["session_id"]

    # The same account cannot double-check its own order, even as "another" OS name.
    refused = await c.err("session.confirm", pump="chair-1", weight="80kg")
    assert refused["code"] == -32010
    assert refused["data"]["verdicts"][0]["code"] == "double_check.same_account"
    assert await _state(c) == "PROGRAMMED"

    wrong = await c.err(
        "session.confirm",
        pump="chair-1",
        weight="80kg",
        witness={"staff_id": "N042", "pin": "nope-123"},
    )
    assert wrong["code"] == -32002
    assert await _state(c) == "PROGRAMMED"

    # The witness re-enters the weight independently: a different weight is refused.
    mismatch = await c.err(
        "session.confirm",
        pump="chair-1",
        weight="81kg",
        witness={"staff_id": "N042", "pin": PIN_N042},
    )
    assert mismatch["code"] == -32010
    assert await _state(c) == "PROGRAMMED"

    confirmed = await c.ok(
        "session.confirm",
        pump="chair-1",
        weight="80 kg",
        witness={"staff_id": "N042", "pin": PIN_N042},
    )
    assert confirmed == {"state": "VERIFIED", "checker": "staff:N042"}

    not_off = await c.err("session.prime", pump="chair-1", line_disconnected=False)
    assert not_off["code"] == -32010
    await c.ok("session.prime", pump="chair-1", line_disconnected=True)
    await wait_until(lambda: _ctl_state(rig) == "PRIMED", what="priming to finish")

    await c.ok("session.vitals", pump="chair-1", bp="132/84", hr=78, spo2=97, rr=14)
    started = await c.ok("session.start", pump="chair-1")
    assert started["state"] == "INFUSING"

    view = (await c.ok("status", pump="chair-1"))[0]
    assert view["session_id"] == session_id
    assert view["patient_ref"] == "P-0117"
    assert view["drug"] == "ketamine"
    assert view["dose_rate_mg_h"] is not None
    assert view["remaining_s"] is not None
    assert view["remaining_s"] >= 0
    assert view["vitals_due_in_s"] is not None

    assert (await c.ok("session.pause", pump="chair-1", reason="patient asked"))["state"] in (
        "PAUSED",
        "PAUSE_REQUESTED",
    )
    await wait_until(lambda: _ctl_state(rig) == "PAUSED", what="pause confirmed")
    await c.ok("session.note", pump="chair-1", text="ondansetron 4 mg given")
    await c.ok("session.resume", pump="chair-1")
    await wait_until(lambda: _ctl_state(rig) == "INFUSING", what="resumed")
    await wait_until(
        lambda: _ctl_state(rig) == "OBSERVATION",
        within_s=150,
        what="infusion complete",
        seen=lambda: rig.supervisor.controllers["chair-1"].status(),
    )

    done = (await c.ok("status", pump="chair-1"))[0]
    assert abs(done["delivered_ul"] - done["vtbi_ul"]) <= 1
    assert abs(Decimal(done["delivered_mg"]) - Decimal(done["prescribed_mg"])) <= Decimal("0.01")

    # A completed infusion goes on to observation by itself; observe is for a stopped one.
    assert (await c.err("session.observe", pump="chair-1"))["code"] == -32011
    checklist = await c.ok("session.checklist", pump="chair-1")
    ids = [i["id"] for i in checklist["items"]]
    assert checklist["earliest_discharge_at"] is not None
    early = await c.err("session.discharge", pump="chair-1", confirmed=ids)
    assert early["code"] == -32010  # the observation time is not over
    await wait_until(
        lambda: _observed_enough(rig),
        within_s=90,
        what="the protocol's observation time",
        seen=lambda: rig.supervisor.controllers["chair-1"].status(),
    )
    await c.ok("session.vitals", pump="chair-1", bp="124/80", hr=74, spo2=98)
    assert (await c.ok("session.discharge", pump="chair-1", confirmed=ids))["state"] == "DISCHARGED"

    served = await rig.flushed_events(event_type="control.request.served")
    methods = [json.loads(e.payload)["method"] for e in served]
    for m in ("session.program", "session.confirm", "session.start", "session.discharge"):
        assert m in methods
    confirm_ok = [
        json.loads(e.payload)
        for e in served
        if json.loads(e.payload)["method"] == "session.confirm"
        and json.loads(e.payload)["outcome_code"] == "ok"
    ]
    assert confirm_ok[0]["message"] == "witness staff:N042"
    double = await rig.flushed_events(event_type="double_check.completed", session=session_id)
    assert len(double) == 1
    # The nurse's words for the pause are in the session's own record, not only the request's.
    paused = await rig.flushed_events(event_type="session.paused", session=session_id)
    assert [json.loads(e.payload).get("reason") for e in paused] == ["patient asked"]
    refused_pins = await rig.flushed_events(event_type="staff.pin.refused")
    assert [json.loads(e.payload)["staff_id"] for e in refused_pins] == ["N042"]


def _ctl_state(rig: Rig, pump: str = "chair-1") -> str | None:
    s = rig.supervisor.controllers[pump].session
    return None if s is None else s.state.value


def _observed_enough(rig: Rig) -> bool:
    s = rig.supervisor.controllers["chair-1"].session
    assert s is not None
    assert s.data.observation_started_at is not None
    waited_s = rig.clock.monotonic() - s.data.observation_started_at.mono_s
    return waited_s > s.protocol.protocol.observation_min * 60 + 1


async def test_staff_login_then_another_account_identity_confirms(rig: Rig) -> None:
    """A staff login at the shared account programs; a second staff login at the same
    account (PIN-verified, another person) may confirm; the same staff member may not."""
    await _staff(rig)
    c = await rig.client()
    login = await c.ok("staff.login", staff_id="N042", pin=PIN_N042)
    assert login["role"] == "nurse"
    c.token = login["token"]
    assert (await c.ok("whoami"))["acting"] == "staff:N042"
    await c.ok("session.program", **PROGRAM)
    same = await c.err("session.confirm", pump="chair-1", weight="80kg")
    assert same["code"] == -32010  # the session's own rule: same person
    assert _ctl_state(rig) == "PROGRAMMED"

    other = await rig.client()
    other.token = (await other.ok("staff.login", staff_id="N043", pin=PIN_N043))["token"]
    ok = await other.ok("session.confirm", pump="chair-1", weight="80kg")
    assert ok["checker"] == "staff:N043"
    served = await rig.flushed_events(event_type="control.request.served")
    actors = {(e.actor_name, json.loads(e.payload)["method"]) for e in served}
    assert ("staff:N042", "session.program") in actors
    assert ("staff:N043", "session.confirm") in actors


async def test_refusals_map_to_codes_and_change_nothing(rig: Rig) -> None:
    c = await rig.client()
    assert (await c.err("session.start", pump="chair-1"))["code"] == -32013
    assert (await c.err("session.start", pump="chair-9"))["code"] == -32012
    bad_weight = await c.err("session.program", **{**PROGRAM, "weight": "80"})
    assert bad_weight["code"] == -32602
    assert bad_weight["data"]["param"] == "weight"
    too_much = await c.err("session.program", **{**PROGRAM, "dose": "5mg/kg"})
    assert too_much["code"] == -32010
    assert too_much["data"]["verdicts"]
    unknown = await c.err("session.program", **{**PROGRAM, "protocol": "nope"})
    assert unknown["code"] == -32602
    assert _ctl_state(rig) is None
    await c.ok("session.program", **PROGRAM)
    wrong_state = await c.err("session.start", pump="chair-1")
    assert wrong_state["code"] == -32011
    assert "possible now" in wrong_state["message"]
    assert _ctl_state(rig) == "PROGRAMMED"
    aborted = await c.ok("session.abort", pump="chair-1", reason="patient left")
    assert aborted["state"] == "ABORTED"


async def test_read_only_views(rig: Rig) -> None:
    c = await rig.client()
    pumps = await c.ok("pumps.list")
    assert [(p["pump_id"], p["transport"], p["unit"]) for p in pumps] == [
        ("chair-1", "modbus-tcp", 1),
        ("chair-2", "modbus-tcp", 2),
    ]
    # Reachable is the live outcome of the last read: one reply made late by a stall of
    # this shared machine (0.2 s timeout) honestly shows as unreachable until the next.
    deadline = time.monotonic() + 10.0
    while not all(p["reachable"] for p in pumps):
        assert time.monotonic() < deadline, f"pumps never both reachable: {pumps}"
        await asyncio.sleep(0.05)
        pumps = await c.ok("pumps.list")
    protocols = await c.ok("protocols.list")
    assert {p["protocol_id"] for p in protocols} >= {"ketamine-trd-standard"}
    assert all(len(p["sha256"]) == 64 for p in protocols)
    assert await c.ok("alarms.list") == []
