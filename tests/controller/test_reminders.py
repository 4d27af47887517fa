"""Reminders under the controller: what the nurse sees is current, what the record gets is
one ``reminder.issued`` per reminder the kernel issues (docs/controller.md, "One poll")."""

from __future__ import annotations

import json
import re

from .conftest import Rig, halt, running, to_infusing, wait_until

OVERDUE = re.compile(r"Vital signs are (\d+) min old")


def _overdue_min(reminders: tuple[str, ...]) -> int | None:
    for text in reminders:
        if found := OVERDUE.match(text):
            return int(found.group(1))
    return None


async def test_overdue_vitals_reminder_shows_the_current_age_and_is_written_once(
    rig: Rig,
) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)  # vitals recorded just before the start
        await wait_until(
            lambda: _overdue_min(ctl.status().reminders) is not None,
            what="the overdue-vitals reminder (standard protocol: after 10 + 3 min)",
        )
        first = _overdue_min(ctl.status().reminders)
        assert first is not None
        await wait_until(
            lambda: (_overdue_min(ctl.status().reminders) or 0) >= first + 3,
            what="the reminder to show the vitals' age going up",
            seen=lambda: str(ctl.status().reminders),
        )
    finally:
        await halt(task)
    await ctl.journal.drain()
    issued = [
        json.loads(e.payload) for e in rig.events(session="S-1", event_type="reminder.issued")
    ]
    overdue = [p for p in issued if p["reminder_code"] == "tick.vitals.overdue"]
    assert len(overdue) == 1, overdue
    assert _overdue_min((overdue[0]["message"],)) == first
