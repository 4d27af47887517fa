"""What a New Era syringe pump can do and report, through real processes.

pumpctl → pumpd → the New Era driver → a pseudo-terminal → pumpsim's New Era pump. The
NE-1000 has a volume target of its own (``VOL``: it stops when the volume is dispensed),
a Safe-mode watchdog (``SAF``), no pressure sensor and no battery. The views say so, and
the audit records what the pump could and could not report when it came under
supervision. The infusion to its volume (the pump's own stop, pumpd's STOP behind it, no
fault of the pump's) is walked in tests/e2e/test_newera_session.py, one session for both.
"""

from __future__ import annotations

import json
from typing import Any

from .conftest import Accounts
from .test_newera_session import NewEraStack


def events(s: NewEraStack, event_type: str) -> list[dict[str, Any]]:
    out = s.audit("events", "--type", event_type, "--json")
    assert out.returncode == 0, out.stderr
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


def test_a_new_era_pump_declares_what_it_has_and_the_views_say_so(accounts: Accounts) -> None:
    s = NewEraStack(time_scale=120, roles=accounts.roles, socket_group=accounts.socket_group)
    try:
        s.start_sim()
        s.write_config()
        s.start_daemon()
        s.default_user = accounts.nurse
        (pump,) = json.loads(s.ok("pumps", "--json"))
        caps = pump["capabilities"]
        assert caps["confirmation"] == "state-readback"
        assert caps["pump_vtbi_stop"] is True
        assert caps["watchdog"] == {"min_s": "1", "max_s": "255", "set_by": "pumpd"}
        assert (caps["reports_pressure"], caps["reports_battery"], caps["kvo"]) == (
            False,
            False,
            False,
        )
        assert caps["max_rate_source"] == "pump-refuses"
        assert "pressure: not reported by this pump" in " ".join(s.ok("pumps").split())

        view = s.status("chair-1")
        assert view["not_reported"] == ["pressure_downstream_mmhg", "battery_percent"]
        assert (view["pressure_downstream_mmhg"], view["battery_percent"]) == (None, None)
        shown = " ".join(s.ok("status", "chair-1").split())
        assert "line pressure not reported by this pump" in shown
        assert "battery not reported by this pump" in shown
        assert "0 mmHg" not in shown

        # The audit says what the pump could not report, in words, when it came under
        # supervision (read from the stopped daemon's database).
        assert s.stop_daemon() == 0
        (connected, *_) = events(s, "pump.connected")
        assert connected["payload"]["transport"] == "serial"
        assert connected["payload"]["not_reported"] == [
            "pressure_downstream_mmhg",
            "battery_percent",
        ]
        assert connected["payload"]["detail"] == (
            "line pressure, battery: not reported by this pump"
        )
        assert connected["payload"]["capabilities"]["pump_vtbi_stop"] is True
    except BaseException:
        print(s.daemon_log(20_000))  # shown by pytest on failure
        raise
    finally:
        s.close()
