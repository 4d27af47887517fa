"""An occlusion during an infusion, seen and handled through pumpctl.

The simulator's control channel kinks chair-1's line. pumpd stops the pump and raises a
high-priority alarm, which `pumpctl alarms` and `status` show. `ack` is refused (3) while
the pump is still in alarm. The nurse clears the line and presses the pump's alarm key;
then `ack` succeeds, the session is STOPPED (never infusing again by itself), and
`observe` starts the observation.
"""

from __future__ import annotations

import json

from pumpd.demo import press_alarm_key

from .conftest import Accounts
from .stack import Stack
from .test_signals import start_infusion


def test_occlusion_alarm_then_acknowledgement(stack: Stack, accounts: Accounts) -> None:
    start_infusion(stack, accounts, "P-ALARM")
    stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=True)
    view = stack.wait_state("chair-1", ["ALARM"])
    assert stack.sim_status(1)["state"] == "ALARM"
    assert any(a["priority"].lower() == "high" for a in view["alarms"]), view["alarms"]

    listed = json.loads(stack.ok("alarms", "--json"))
    occlusions = [a for a in listed if a["pump_id"] == "chair-1" and "occlusion" in a["code"]]
    assert occlusions, listed
    assert "occlusion" in stack.ok("status", "chair-1").lower()

    blocked = stack.pumpctl("ack", "chair-1")
    assert blocked.returncode == 3, blocked.stderr
    assert "ack.pump_in_alarm" in blocked.stderr
    assert stack.status("chair-1")["session_state"] == "ALARM"

    stack.sim_request("fault", unit=1, fault="occlusion-downstream", on=False)
    host, port = stack.sim_tcp.rsplit(":", 1)
    press_alarm_key(host, int(port), 1)
    acked = stack.ok("ack", "chair-1", "--note", "kinked line straightened")
    # pumpctl shows what it acknowledges, in the nurse's words, before it does.
    assert "[high] Downstream occlusion on chair-1" in acked, acked
    view = stack.status("chair-1")
    assert view["session_state"] == "STOPPED", view
    assert view["alarms"] == []
    assert stack.sim_status(1)["state"] == "IDLE"
    stack.ok("observe", "chair-1")
    assert stack.status("chair-1")["session_state"] == "OBSERVATION"
