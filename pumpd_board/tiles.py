"""One chair's tile: the daemon's ``PumpView`` (docs/control-socket.md) turned into what the
board shows, in the clinic's local time. Nothing here decides anything clinical: it picks,
formats and orders what the daemon said.

The wire view is validated as it is read (:class:`PumpView`): fields the daemon adds later
are ignored, a field the board needs in the wrong shape is an error of that poll (the
board then shows the link as broken rather than a half-read tile).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from pydantic import BaseModel, ConfigDict

PRIORITY_RANK = {"low": 1, "medium": 2, "high": 3}
MARKER = {"high": "!!!", "medium": "!!", "low": "!"}
"""Text markers, so that colour is never the only cue (IEC 60601-1-8 style)."""
FLOWING = frozenset({"INFUSING", "ADJUSTING"})
MASK = "•"


class AlarmView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str
    priority: str
    message: str
    source: str | None = None


class DeliveryEndedView(BaseModel):
    """Why a session ended by itself (the kernel's rule and the alarms that caused it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule: str
    interrupted_by: list[str] = []


class PumpView(BaseModel):
    """The fields of the daemon's ``status`` the board reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pump_id: str
    reachable: bool
    pump_state: str | None = None
    session_id: str | None = None
    session_state: str | None = None
    patient_ref: str | None = None
    protocol_id: str | None = None
    protocol_version: int | None = None
    drug: str | None = None
    delivered_ul: int = 0
    vtbi_ul: int | None = None
    rate_ml_h: str | None = None
    dose_rate_mg_h: str | None = None
    dose_rate_mg_kg_h: str | None = None
    remaining_s: int | None = None
    alarms: list[AlarmView] = []
    reminders: list[str] = []
    vitals_due_in_s: int | None = None
    vitals_due_at: str | None = None
    pause_auto_stop_at: str | None = None
    earliest_discharge_at: str | None = None
    delivery_ended: DeliveryEndedView | None = None
    audit_backlog: int = 0
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class Countdown:
    """Seconds left at the poll (negative: overdue), and the local clock time it ends."""

    remaining_s: int
    local_time: str


@dataclass(frozen=True, slots=True)
class Tile:
    pump_id: str
    state: str
    pump_state: str | None
    reachable: bool
    patient: str | None
    protocol: str | None
    delivered_ml: str
    vtbi_ml: str | None
    progress_ul: int
    progress_max_ul: int | None
    percent: int | None
    rate_ml_h: str | None
    dose_rate_mg_kg_h: str | None
    dose_rate_mg_h: str | None
    remaining_s: int | None
    alarms: tuple[AlarmView, ...]
    priority: Literal["high", "medium", "low"] | None
    reminders: tuple[str, ...]
    vitals_due: Countdown | None
    pause_auto_stop: Countdown | None
    earliest_discharge: Countdown | None
    audit_backlog: int
    simulated: bool
    ended_by: str | None = None
    """The alarms that ended delivery by themselves (observation follows), or None."""

    @property
    def marker(self) -> str:
        return MARKER[self.priority] if self.priority else ""

    @property
    def dom_id(self) -> str:
        return f"chair-{self.pump_id}"


def mask_patient_ref(ref: str) -> str:
    """All but the last two characters hidden (the last one of a short reference): enough
    for a nurse who knows who sits where, too little for a passer-by."""
    keep = 2 if len(ref) > 4 else 1
    return MASK * (len(ref) - keep) + ref[-keep:]


def _ml(ul: int) -> str:
    return format((Decimal(ul) / 1000).quantize(Decimal("0.1")), "f")


def _decimal(text: str | None, places: str) -> str | None:
    if text is None:
        return None
    try:
        return format(Decimal(text).quantize(Decimal(places)), "f")
    except InvalidOperation:
        return None


def _parse_utc(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _countdown(
    when: dt.datetime | None, now: dt.datetime, zone: zoneinfo.ZoneInfo
) -> Countdown | None:
    if when is None:
        return None
    local = when.astimezone(zone)
    return Countdown(
        remaining_s=int((when - now).total_seconds()), local_time=local.strftime("%H:%M %Z")
    )


def build_tile(
    view: PumpView,
    *,
    now: dt.datetime,
    zone: zoneinfo.ZoneInfo,
    mask: bool,
    discharge_at: str | None = None,
) -> Tile:
    """``now`` is the UTC time of the poll; ``discharge_at`` the daemon's earliest discharge
    from ``session.checklist`` when the status itself does not carry it."""
    patient = view.patient_ref
    if patient is not None and mask:
        patient = mask_patient_ref(patient)
    protocol = None
    if view.protocol_id is not None:
        protocol = view.protocol_id
        if view.protocol_version is not None:
            protocol += f" v{view.protocol_version}"
    alarms = tuple(sorted(view.alarms, key=lambda a: -PRIORITY_RANK.get(a.priority.lower(), 0)))
    top = alarms[0].priority.lower() if alarms else None
    priority: Literal["high", "medium", "low"] | None = None
    if top == "high":
        priority = "high"
    elif top == "medium":
        priority = "medium"
    elif top is not None:
        priority = "low"
    # The relative figure first: it is on the daemon's own clock, which a simulation runs
    # faster than the wall clock; in real use both say the same.
    vitals_when = _parse_utc(view.vitals_due_at)
    if view.vitals_due_in_s is not None:
        vitals_when = now + dt.timedelta(seconds=view.vitals_due_in_s)
    percent = None
    if view.vtbi_ul:
        percent = max(0, min(100, round(100 * view.delivered_ul / view.vtbi_ul)))
    state = view.session_state or ("IDLE" if view.reachable else "UNKNOWN")
    return Tile(
        pump_id=view.pump_id,
        state=state,
        pump_state=view.pump_state,
        reachable=view.reachable,
        patient=patient,
        protocol=protocol,
        delivered_ml=_ml(view.delivered_ul),
        vtbi_ml=None if view.vtbi_ul is None else _ml(view.vtbi_ul),
        progress_ul=max(0, view.delivered_ul),
        progress_max_ul=view.vtbi_ul if view.vtbi_ul else None,
        percent=percent,
        rate_ml_h=_decimal(view.rate_ml_h, "0.1"),
        dose_rate_mg_kg_h=_decimal(view.dose_rate_mg_kg_h, "0.01"),
        dose_rate_mg_h=_decimal(view.dose_rate_mg_h, "0.1"),
        remaining_s=view.remaining_s if view.session_state in FLOWING else None,
        alarms=alarms,
        priority=priority,
        reminders=tuple(view.reminders),
        vitals_due=_countdown(vitals_when, now, zone),
        pause_auto_stop=_countdown(_parse_utc(view.pause_auto_stop_at), now, zone),
        earliest_discharge=_countdown(
            _parse_utc(view.earliest_discharge_at or discharge_at), now, zone
        ),
        audit_backlog=view.audit_backlog,
        simulated=view.simulated,
        ended_by=None
        if view.delivery_ended is None
        else ", ".join(view.delivery_ended.interrupted_by) or view.delivery_ended.rule,
    )


def duration(seconds: int) -> str:
    """The board's one duration format: ``m:ss`` under an hour, else ``h:mm:ss``; the same
    as the page's script renders while it counts down."""
    s = abs(int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
