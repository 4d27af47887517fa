"""An over-infusion ends the session by itself, through the real pumpd, pumpctl and pumpsim.

chair-1's pump runs away (`pumpsim` fault `runaway`, 100 × the commanded rate): the kernel
stops it for the over-infusion, the pump confirms the stop, and the session is in
observation from that moment without any nurse command; the alarm stays latched until
acknowledged. Nothing can continue the session. A daemon restart rebuilds the same state
from the audit log, and the patient is discharged after the observation time. (Should the
first reading catch the rate before the volume, the kernel pauses for the rate mismatch
instead; the nurse's stop then ends the session the same way.)
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from pumpd.cli.pumpctl import EXIT_REFUSED

from .conftest import Accounts
from .stack import Stack
from .test_continue import events
from .test_signals import start_infusion

OVER = "tick.volume.over_infusion"


def _sessions(stack: Stack) -> list[dict[str, Any]]:
    out = stack.audit("sessions", "--json")
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def test_an_over_infusion_goes_to_observation_by_itself(stack: Stack, accounts: Accounts) -> None:
    start_infusion(stack, accounts, "P-0046")
    stack.sim_request("fault", unit=1, fault="runaway", on=True, factor="100")
    view = stack.wait_state("chair-1", ["ALARM"])
    session_id = view["session_id"]
    codes = [a["code"] for a in view["alarms"]]
    if OVER in codes:
        # The halt is confirmed: observation, with no nurse command, the alarm latched.
        assert stack.sim_status(1)["state"] == "IDLE"
        ended = view["delivery_ended"]
        assert ended is not None, view
        assert ended["rule"] == "continue.ended"
        assert OVER in ended["interrupted_by"]
        assert view["earliest_discharge_at"] is not None
        assert [e["actor_kind"] for e in events(stack, "session.ended")] == ["daemon"]
    else:
        # The rate was seen first: paused, never resumed; the nurse's stop ends it.
        assert "tick.rate.mismatch" in codes, view
        assert view["delivery_ended"] is None
    stack.sim_request("fault", unit=1, fault="runaway", on=False)
    # the over-infusion may still follow the rate's pause (Stack.wait_halted)
    codes = [a["code"] for a in stack.wait_halted("chair-1")["alarms"]]
    stack.ok("ack", "chair-1", "--note", "pump taken out of service")
    if OVER not in codes:
        assert stack.status("chair-1")["session_state"] == "PAUSED"
        refused = stack.pumpctl("resume", "chair-1", "--reason", "looks fine now")
        assert refused.returncode == EXIT_REFUSED, refused.stderr
        assert "continue.not_continuable" in refused.stderr
        stack.ok("stop", "chair-1", "--reason", "pump did not deliver as commanded")
    view = stack.wait_state("chair-1", ["OBSERVATION"])
    assert view["session_id"] == session_id
    ended = view["delivery_ended"]
    assert ended is not None, view
    started_at = ended["observation_started_at"]
    assert stack.sim_status(1)["state"] == "IDLE"

    # Nothing continues it.
    refused = stack.pumpctl("resume", "chair-1", "--reason", "looks fine now")
    assert refused.returncode != 0, refused.stdout
    assert stack.status("chair-1")["session_state"] == "OBSERVATION"
    shown = stack.ok("status", "chair-1")
    assert "delivery ended" in shown, shown
    assert "continue.ended" in shown, shown

    [end] = events(stack, "session.ended")
    assert end["session_id"] == session_id
    assert end["actor_kind"] == "daemon"
    assert end["payload"]["rule"] == "continue.ended"
    assert end["payload"]["interrupted_by"][-1] in (OVER, "nurse.stop")
    assert any(c in ("tick.rate.mismatch", OVER) for c in end["payload"]["interrupted_by"])
    assert len(events(stack, "observation.started")) == 1

    # A restart rebuilds the same state from the audit log: still in observation, since
    # the same moment, and the pump is never started again.
    assert stack.stop_daemon(signal.SIGTERM) == 0, stack.daemon_log()
    stack.start_daemon()
    view = stack.wait_state("chair-1", ["OBSERVATION"])
    assert view["session_id"] == session_id
    assert view["delivery_ended"]["observation_started_at"] == started_at
    assert stack.sim_status(1)["state"] == "IDLE"

    # Discharge after the protocol's observation time, with vitals from the observation.
    time.sleep(30 * 60 / stack.time_scale + 0.5)
    stack.ok("vitals", "chair-1", "--bp", "122/78", "--hr", "72", "--spo2", "98")
    stack.ok("discharge", "chair-1", "--confirm-all")
    assert stack.status("chair-1")["session_state"] == "DISCHARGED"
    [row] = [r for r in _sessions(stack) if r["session_id"] == session_id]
    assert row["outcome"] == "stopped", row
