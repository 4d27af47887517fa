"""What the control socket shows for one pump (``Controller.status()``)."""

from __future__ import annotations

from dataclasses import dataclass

from .alarms import AlarmView


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """What the control socket shows for one pump."""

    pump_id: str
    reachable: bool
    pump_state: str | None
    session_id: str | None
    session_state: str | None
    delivered_ul: int
    expected_ul: int
    vtbi_ul: int | None
    rate_ml_h: str | None
    alarms: tuple[AlarmView, ...]
    reminders: tuple[str, ...]
    audit_backlog: int
