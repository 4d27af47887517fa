"""What a pump can do and report, as the control socket shows it.

A reading the pump cannot give is never a zero or an "ok": its value is null and its name
is in ``not_reported``, so every view can say "not reported by this pump" instead of a
figure (docs/control-socket.md). A reading the pump does give but could not be read just
now (the link is down) is null and absent from ``not_reported``.
"""

from __future__ import annotations

from typing import Any

from pumpd.controller import Controller
from pumpd.drivers import NOT_REPORTED

__all__ = ["NOT_REPORTED", "capability_fields"]


def capability_fields(ctl: Controller) -> dict[str, Any]:
    caps = ctl.capabilities
    status = ctl.last_status
    fresh = status is not None and ctl.status().reachable
    missing = [
        name
        for name, reported in (
            ("pressure_downstream_mmhg", caps.reports_pressure),
            ("battery_percent", caps.reports_battery),
        )
        if not reported
    ]
    return {
        "capabilities": caps.as_dict(),
        "pressure_downstream_mmhg": status.pressure_downstream_mmhg
        if fresh and status is not None and caps.reports_pressure
        else None,
        "battery_percent": status.battery_percent
        if fresh and status is not None and caps.reports_battery
        else None,
        "not_reported": missing,
    }
