"""A session's snapshot is bounded: it does not grow with the readings, acknowledgements,
notes and adjustments a long session collects (every checkpoint carries it whole).

The session keeps the latest of each and how many there were; the history is the audit
log's. These tests drive sessions through their public commands only, and also read a
snapshot of the older format that kept every record (a daemon upgraded mid-session).
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

from pumpd.session import PumpCommand, RestoreError, Session, State
from pumpd.session.machine import SNAPSHOT_FORMAT
from safety.actions import Priority
from safety.plan import Order
from safety.pump import PumpMode

from .conftest import CHECKER, PROGRAMMER, Bedside, drive
from .test_properties import assert_round_trip

SNAPSHOT_MAX_BYTES = 4_096
"""What a session in any state needs to decide and to be recovered, as JSON: about 3 KB
(the plan alone is about 1 KB); the bound leaves room, not growth."""

LONG = 2_000


def size(session: Session) -> int:
    return len(json.dumps(session.snapshot(), separators=(",", ":")))


def flap(bedside: Bedside, session: Session) -> None:
    """One flapping alarm: latched while the pump is idle, acknowledged, latched again."""
    session.alarm(
        code="tick.vitals.pause.spo2_percent.below_min",
        priority=Priority.MEDIUM,
        message="SpO2 91 % is below the minimum of 92 % of the pause band; see the patient.",
        source="vitals",
        at=bedside.at(0.1),
    )
    session.acknowledge(by=CHECKER, pump_mode=PumpMode.IDLE, at=bedside.at(0.1), note="seen")


def test_a_long_session_has_a_snapshot_as_small_as_a_short_one() -> None:
    b, s = drive(State.STOPPED)
    flap(b, s)
    s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at(0.1))
    s.note(by=PROGRAMMER, text="patient calm", at=b.at(0.1))
    short = size(s)
    for _ in range(LONG):
        flap(b, s)
        s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at(0.1))
        s.note(by=PROGRAMMER, text="patient calm", at=b.at(0.1))
    long = size(s)
    assert long <= SNAPSHOT_MAX_BYTES, long
    # Only the counts' digits may differ: 2 to 2002 and the like, and the times' digits
    # (a monotonic time prints up to 17 significant digits).
    assert long - short <= 60, (short, long)
    assert s.state is State.STOPPED
    assert s.data.alarms_acknowledged == LONG + 1
    assert s.data.vitals_recorded == 1 + LONG + 1  # the baseline before the start, then these
    assert s.data.notes_recorded == LONG + 1
    assert_round_trip(s)


def test_the_latest_records_are_kept_exactly() -> None:
    b, s = drive(State.PAUSED)
    first = b.vitals()
    s.record_vitals(by=PROGRAMMER, reading=first, at=b.at())
    latest = dataclasses.replace(b.vitals(), heart_rate_bpm=88)
    s.record_vitals(by=CHECKER, reading=latest, at=b.at())
    assert s.data.last_vitals is not None
    assert s.data.last_vitals.reading() == latest
    assert s.data.last_vitals.recorded_by == CHECKER
    s.alarm(code="a.one", priority=Priority.LOW, message="one", source="daemon", at=b.at())
    s.alarm(code="a.two", priority=Priority.HIGH, message="two", source="kernel", at=b.at())
    s.acknowledge(by=CHECKER, pump_mode=PumpMode.PAUSED, at=b.at(), note="both seen")
    # One acknowledgement covers both latched alarms: both are kept, with its note.
    assert [a.alarm.code for a in s.data.last_acknowledged] == ["a.one", "a.two"]
    assert {a.note for a in s.data.last_acknowledged} == {"both seen"}
    s.alarm(code="a.three", priority=Priority.LOW, message="three", source="daemon", at=b.at())
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.PAUSED, at=b.at())
    assert [a.alarm.code for a in s.data.last_acknowledged] == ["a.three"]
    assert s.data.alarms_acknowledged == 3
    s.adjust(
        by=PROGRAMMER,
        reason="dissociated",
        order=Order(duration_min=Decimal(50)),
        delivered_ul=1000,
        at=b.at(),
    )
    s.confirm_adjust(by=PROGRAMMER, at=b.at())
    assert s.data.adjustments_confirmed == 1
    assert s.data.last_adjustment is not None
    assert s.data.last_adjustment.reason == "dissociated"
    assert_round_trip(s)


# -- the older format ------------------------------------------------------------------


def _as_format_1(snapshot: dict[str, Any], history: dict[str, list[Any]]) -> dict[str, Any]:
    """``snapshot`` as format 1 wrote it: every record in a list, no latest-and-count."""
    data = dict(snapshot["data"])
    for field in (
        "last_vitals",
        "vitals_recorded",
        "last_note",
        "notes_recorded",
        "last_adjustment",
        "adjustments_confirmed",
        "last_acknowledged",
        "alarms_acknowledged",
    ):
        del data[field]
    data.update(history)
    return {**snapshot, "format": 1, "data": data}


def test_a_format_1_snapshot_is_restored_with_its_latest_records_and_counts() -> None:
    b, s = drive(State.PAUSED)
    history: dict[str, list[Any]] = {
        "vitals": [s.data.model_dump(mode="json")["last_vitals"]],
        "notes": [],
        "adjustments": [],
        "acknowledged_alarms": [],
    }
    for text in ("calm", "talking"):
        s.note(by=PROGRAMMER, text=text, at=b.at())
        history["notes"].append(s.data.model_dump(mode="json")["last_note"])
        s.record_vitals(by=PROGRAMMER, reading=b.vitals(), at=b.at())
        history["vitals"].append(s.data.model_dump(mode="json")["last_vitals"])
    for codes in (["x.one"], ["x.two", "x.three"]):
        for code in codes:
            s.alarm(code=code, priority=Priority.LOW, message=code, source="daemon", at=b.at())
        s.acknowledge(by=CHECKER, pump_mode=PumpMode.PAUSED, at=b.at())
        history["acknowledged_alarms"] += s.data.model_dump(mode="json")["last_acknowledged"]
    s.adjust(
        by=PROGRAMMER,
        reason="slower",
        order=Order(duration_min=Decimal(50)),
        delivered_ul=1000,
        at=b.at(),
    )
    s.confirm_adjust(by=PROGRAMMER, at=b.at())
    history["adjustments"].append(s.data.model_dump(mode="json")["last_adjustment"])
    current = s.snapshot()
    assert current["format"] == SNAPSHOT_FORMAT == 2
    old = json.loads(json.dumps(_as_format_1(current, history)))
    restored = Session.restore(old, s.protocol)
    assert restored.state is State.PAUSED
    assert restored.data == s.data
    assert restored.snapshot() == current
    assert restored.data.vitals_recorded == 3
    assert restored.data.alarms_acknowledged == 3
    assert [a.alarm.code for a in restored.data.last_acknowledged] == ["x.two", "x.three"]


@pytest.mark.parametrize(
    "damage",
    [
        {"vitals": {"not": "a list"}},
        {"acknowledged_alarms": ["not an object"]},
    ],
)
def test_a_damaged_format_1_snapshot_is_refused(damage: dict[str, Any]) -> None:
    _, s = drive(State.PAUSED)
    empty = {"vitals": [], "notes": [], "adjustments": [], "acknowledged_alarms": []}
    old = _as_format_1(s.snapshot(), {**empty, **damage})
    with pytest.raises(RestoreError, match="format-1 field"):
        Session.restore(old, s.protocol)


@pytest.mark.parametrize("fmt", [0, 3, True, "2", None])
def test_an_unknown_snapshot_format_is_refused(fmt: object) -> None:
    _, s = drive(State.PAUSED)
    with pytest.raises(RestoreError, match="format 1 or 2"):
        Session.restore({**s.snapshot(), "format": fmt}, s.protocol)


def test_a_command_the_pump_keeps_refusing_in_alarm_latches_its_alarm_once() -> None:
    b, s = drive(State.ALARM)
    for _ in range(3):
        s.stop(by="pumpd", reason="kernel stop", at=b.at())
        step = s.command_failed(command=PumpCommand.STOP, detail="exception 4", at=b.at())
    codes = [a.code for a in s.data.alarms]
    assert codes.count("command.stop.failed") == 1
    assert step.audit_events == ("pump.command.failed",)  # each refusal is still recorded
    assert s.state is State.ALARM
