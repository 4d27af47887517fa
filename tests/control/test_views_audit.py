"""Reads are audited per connection, not per request; a live view is one open/close pair.
Changes and refusals stay one record each, a refused pause with the refusal as its message.
The status view carries the countdown times (pause auto-stop, vitals due, earliest
discharge) as UTC, from the daemon's clock, with its ``as_of`` and the clinic's zone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any

import pytest

from .conftest import PROGRAM, Rig, wait_until
from .test_clinical import PIN_N042, _ctl_state, _staff


def _payloads(events: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in events]


def _utc(text: str) -> dt.datetime:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_live_view_is_one_open_close_pair_not_one_record_per_refresh(rig: Rig) -> None:
    rig.use_roles("nurse")
    watch = await rig.client()
    for _ in range(25):
        await watch.ok("status")
    await watch.ok("alarms.list")
    await watch.ok("status", pump="chair-1")
    opened = await rig.flushed_events(event_type="control.view.opened")
    assert len(opened) == 1, "the second read makes the connection a live view, on record"
    await watch.close()

    # A command that reads two things once each (pumpctl checklist) is not a live view.
    once = await rig.client()
    await once.ok("whoami")
    await once.ok("status", pump="chair-2")
    await once.close()

    async def closed_twice() -> bool:
        return len(await rig.flushed_events(event_type="control.view.closed")) == 2

    for _ in range(100):
        if await closed_twice():
            break
        await asyncio.sleep(0.05)
    closed = _payloads(await rig.flushed_events(event_type="control.view.closed"))
    assert len(closed) == 2, closed
    view, single = closed
    assert view["reads"] == {"status": 26, "alarms.list": 1}
    assert view["all_pumps"] is True
    assert view["pumps"] == ["chair-1"]
    assert view["end_code"] == "client_closed"
    assert _utc(view["opened_at"]) <= _utc(view["closed_at"])
    assert single["reads"] == {"status": 1, "whoami": 1}
    assert single["pumps"] == ["chair-2"]
    assert single["all_pumps"] is False
    # The pair, the one-shot read, and nothing per refresh.
    assert len(await rig.flushed_events(event_type="control.view.opened")) == 1
    served = _payloads(await rig.flushed_events(event_type="control.request.served"))
    assert [p["method"] for p in served if p["method"] in ("status", "alarms.list")] == []


async def test_a_failed_read_and_a_refused_pause_are_recorded_as_what_they_are(rig: Rig) -> None:
    rig.use_roles("nurse")
    c = await rig.client()
    assert (await c.err("status", pump="chair-9"))["code"] == -32012
    refused = await c.err("session.pause", pump="chair-1", reason="patient asked for a break")
    assert refused["code"] == -32013
    served = _payloads(await rig.flushed_events(event_type="control.request.served"))
    by_method = {p["method"]: p for p in served}
    assert by_method["status"]["outcome_code"] == "no_such_pump"
    pause = by_method["session.pause"]
    assert pause["outcome_code"] == "no_session"
    # The record says why it was refused; the nurse's words are kept beside it.
    assert pause["message"] == refused["message"]
    assert pause["note"] == "patient asked for a break"


@pytest.mark.timeout(300)
async def test_status_carries_the_countdown_times(rig: Rig) -> None:
    await _staff(rig)
    c = await rig.client()
    view = (await c.ok("status", pump="chair-1"))[0]
    assert view["timezone"] == rig.ctx.timezone
    assert (await c.ok("whoami"))["timezone"] == rig.ctx.timezone
    for name in ("pause_auto_stop_at", "vitals_due_at", "earliest_discharge_at"):
        assert view[name] is None, name

    await c.ok("session.program", **PROGRAM)
    witness = {"staff_id": "N042", "pin": PIN_N042}
    await c.ok("session.confirm", pump="chair-1", weight="80kg", witness=witness)
    await c.ok("session.prime", pump="chair-1", line_disconnected=True)
    await wait_until(lambda: _ctl_state(rig) == "PRIMED", what="priming to finish")
    await c.ok("session.vitals", pump="chair-1", bp="132/84", hr=78, spo2=97, rr=14)
    await c.ok("session.start", pump="chair-1")
    await c.ok("session.pause", pump="chair-1", reason="a short break")
    await wait_until(lambda: _ctl_state(rig) == "PAUSED", what="the pause")

    view = (await c.ok("status", pump="chair-1"))[0]
    as_of = _utc(view["as_of"])
    ctl = rig.supervisor.controllers["chair-1"]
    limits = ctl.limits
    assert limits is not None
    stop_in_s = (_utc(view["pause_auto_stop_at"]) - as_of).total_seconds()
    # Simulated seconds run 600x: a few real milliseconds between reads are seconds here.
    assert limits.pause_stop_after_s - 120 <= stop_in_s <= limits.pause_stop_after_s
    due_in_s = (_utc(view["vitals_due_at"]) - as_of).total_seconds()
    assert abs(due_in_s - view["vitals_due_in_s"]) <= 2
    assert view["earliest_discharge_at"] is None

    await c.ok("session.stop", pump="chair-1", reason="patient asked to stop")
    await wait_until(lambda: _ctl_state(rig) == "STOPPED", what="the stop")
    await c.ok("session.observe", pump="chair-1")
    view = (await c.ok("status", pump="chair-1"))[0]
    assert view["pause_auto_stop_at"] is None, "no pause in progress after the stop"
    earliest = _utc(view["earliest_discharge_at"])
    checklist = await c.ok("session.checklist", pump="chair-1")
    exact = dt.datetime.fromisoformat(checklist["earliest_discharge_at"])
    assert dt.timedelta(0) <= earliest - exact < dt.timedelta(seconds=1), "rounded up, never down"


@pytest.mark.parametrize(
    "ref", ["Jane Doe", "-0042", "P" * 65, "P/0042"], ids=["name", "dash", "long", "slash"]
)
async def test_a_bad_patient_reference_gets_a_sentence_not_a_regular_expression(
    rig: Rig, ref: str
) -> None:
    rig.use_roles("nurse")
    c = await rig.client()
    bad = await c.err("session.plan", **{**PROGRAM, "patient_ref": ref})
    assert bad["code"] == -32602
    assert bad["data"]["param"] == "patient_ref"
    message = bad["message"]
    assert message.startswith(f"patient_ref: {ref[:60]!r}"[:40]), message
    assert "is not a patient reference" in message
    assert "P-0042" in message, "an example of what is meant"
    for regex_part in ("^", "$", "[A-Za-z", "{0,63}", "pattern"):
        assert regex_part not in message, message
    bp = await c.err("session.vitals", pump="chair-1", bp="132-84")
    assert "is not a blood pressure" in bp["message"]
    assert "[0-9]" not in bp["message"]


async def test_a_staff_lock_is_told_in_the_clinics_time_zone(rig: Rig) -> None:
    await _staff(rig)
    rig.ctx.timezone = "America/Chicago"
    c = await rig.client()
    for _ in range(3):  # the rig locks after 3 wrong PINs
        await c.err("staff.login", staff_id="N042", pin="wrong-pin")
    locked = await c.err("staff.login", staff_id="N042", pin=PIN_N042)
    assert locked["data"]["reason"] == "locked"
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d C[SD]T; ", locked["message"]), locked
    assert "UTC" not in locked["message"]
