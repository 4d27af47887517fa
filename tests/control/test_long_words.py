"""The socket refuses a nurse's words over 500 characters with a sentence naming the
parameter, before anything reaches the session; the refusal is on record. (Below the
socket, the catalogue's models cut over-long text themselves: tests/audit/test_bounded_text.py,
tests/controller/test_long_reason.py.)"""

from __future__ import annotations

import json

from .conftest import Rig


async def test_a_5000_character_stop_reason_is_refused_with_a_clear_error(rig: Rig) -> None:
    rig.use_roles("nurse")
    c = await rig.client()
    refused = await c.err("session.stop", pump="chair-1", reason="x" * 5000)
    assert refused["code"] == -32602
    assert refused["data"]["param"] == "reason"
    assert "500 characters" in refused["message"]
    served = [
        json.loads(e.payload) for e in await rig.flushed_events(event_type="control.request.served")
    ]
    stop = next(p for p in served if p["method"] == "session.stop")
    assert stop["outcome_code"] == "invalid_params"
    assert stop["message"] == refused["message"]
