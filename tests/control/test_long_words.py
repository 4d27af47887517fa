"""A nurse's words over 500 characters: a STOP or PAUSE goes ahead with them cut to fit the
record (a visible marker and the original length), because a halt is never turned away for
how much was typed with it; every other method refuses them with a sentence naming the
parameter, before anything reaches the session, and the refusal is on record. (Below the
socket, the catalogue's models cut over-long text themselves: tests/audit/test_bounded_text.py,
tests/controller/test_long_reason.py.)"""

from __future__ import annotations

import json

import pytest

from .conftest import PROGRAM, Rig, wait_until
from .test_clinical import PIN_N042, _ctl_state, _staff

LONG = "the patient is restless " * 210  # 5,040 characters


async def test_a_5000_character_note_is_refused_with_a_clear_error(rig: Rig) -> None:
    rig.use_roles("nurse")
    c = await rig.client()
    refused = await c.err("session.end", pump="chair-1", reason="x" * 5000)
    assert refused["code"] == -32602
    assert refused["data"]["param"] == "reason"
    assert "500 characters" in refused["message"]
    served = [
        json.loads(e.payload) for e in await rig.flushed_events(event_type="control.request.served")
    ]
    end = next(p for p in served if p["method"] == "session.end")
    assert end["outcome_code"] == "invalid_params"
    assert end["message"] == refused["message"]


@pytest.mark.timeout(300)
async def test_a_pause_and_a_stop_with_5000_characters_of_reason_are_carried_out(
    rig: Rig,
) -> None:
    await _staff(rig)
    c = await rig.client()
    await c.ok("session.program", **PROGRAM)
    witness = {"staff_id": "N042", "pin": PIN_N042}
    await c.ok("session.confirm", pump="chair-1", weight="80kg", witness=witness)
    await c.ok("session.prime", pump="chair-1", line_disconnected=True)
    await wait_until(lambda: _ctl_state(rig) == "PRIMED", what="priming to finish")
    await c.ok("session.vitals", pump="chair-1", bp="132/84", hr=78, spo2=97, rr=14)
    await c.ok("session.start", pump="chair-1")
    await c.ok("session.pause", pump="chair-1", reason=LONG)
    await wait_until(lambda: _ctl_state(rig) == "PAUSED", what="the pause")
    await c.ok("session.stop", pump="chair-1", reason=LONG)
    await wait_until(lambda: _ctl_state(rig) == "STOPPED", what="the stop")
    marker = f"… [cut: {len(LONG)} characters]"
    for kind in ("session.paused", "session.stopped"):
        (event,) = await rig.flushed_events(event_type=kind)
        reason = json.loads(event.payload)["reason"]
        assert reason.endswith(marker), kind
        assert len(reason) == 500, kind
        assert reason.startswith("the patient is restless"), kind
