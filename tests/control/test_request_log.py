"""The daemon's log tells what was asked at the socket, with the pump (journald's view).

The audit log is the record; the journal is where an operator looks first. A request
that can change something is one info line naming the method, the acting person and the
pump (the daemon's log processor adds the pump's session); a refused one is a warning with
the reason; reads (a ``watch`` asks every second) stay at debug.
"""

from __future__ import annotations

import os
import pwd

from structlog.testing import capture_logs

from .conftest import PROGRAM, Rig


async def test_changes_are_logged_with_their_pump_reads_only_at_debug(rig: Rig) -> None:
    rig.use_roles("nurse")
    c = await rig.client()
    with capture_logs() as logs:
        await c.ok("status", pump="chair-1")
        await c.ok("session.program", **PROGRAM)
        await c.err("session.start", pump="chair-1")
    lines = [e for e in logs if e.get("event", "").startswith("control request")]
    by_method = {e["method"]: e for e in lines}
    assert by_method["status"]["log_level"] == "debug"
    programmed = by_method["session.program"]
    assert programmed["log_level"] == "info"
    assert programmed["pump"] == "chair-1"
    assert programmed["outcome"] == "ok"
    assert programmed["by"] == pwd.getpwuid(os.getuid()).pw_name
    refused = by_method["session.start"]
    assert refused["log_level"] == "warning"
    assert refused["outcome"] == "invalid_state"
    assert refused["reason"].startswith("start is not possible while the session is PROGRAMMED")
