"""The kernel's pump snapshot refuses what the wire could never have said."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from test_tick_nominal import snapshot

from safety.actions import ActionKind, Priority
from safety.pump import InvalidPumpSnapshot, PumpAlarm, PumpMode, PumpWarning, flag_names


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"mode": "infusing"}, "mode must be a PumpMode"),
        ({"alarms": 0}, "alarms must be PumpAlarm"),
        ({"alarms": PumpWarning.LOW_BATTERY}, "alarms must be PumpAlarm"),
        ({"warnings": PumpAlarm.DOOR_OPEN}, "warnings must be PumpWarning"),
        ({"rate_actual_ml_h": 150.0}, "rate_actual_ml_h"),
        ({"rate_actual_ml_h": Decimal("NaN")}, "rate_actual_ml_h"),
        ({"rate_actual_ml_h": Decimal("-0.01")}, "rate_actual_ml_h"),
        ({"volume_infused_ul": -1}, "^volume_infused_ul must"),
        ({"volume_infused_ul": 1.0}, "^volume_infused_ul must"),
        ({"volume_primed_ul": True}, "^volume_primed_ul must"),
        ({"uptime_s": -1}, "^uptime_s must"),
        ({"uptime_s": 1.5}, "^uptime_s must"),
        ({"switch_on_count": -1}, "^switch_on_count must"),
        ({"switch_on_count": True}, "^switch_on_count must"),
        ({"resets_seen": None}, "^resets_seen must"),
        ({"resets_seen": -1}, "^resets_seen must"),
    ],
)
def test_snapshot_refuses_impossible_fields(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidPumpSnapshot, match=match):
        snapshot(**overrides)


def test_snapshot_accepts_the_largest_plausible_values() -> None:
    snap = snapshot(
        rate_actual_ml_h=Decimal(100_000),
        volume_infused_ul=2**64 - 1,
        volume_primed_ul=2**64 - 1,
        uptime_s=2**64 - 1,
    )
    assert snap.uptime_s == 2**64 - 1
    with pytest.raises(InvalidPumpSnapshot, match=r"^uptime_s must"):
        snapshot(uptime_s=2**64)
    with pytest.raises(InvalidPumpSnapshot, match=r"^rate_actual_ml_h must"):
        snapshot(rate_actual_ml_h=Decimal("100000.01"))


def test_snapshot_accepts_zeroes() -> None:
    snap = snapshot(
        rate_actual_ml_h=Decimal(0), volume_infused_ul=0, volume_primed_ul=0, uptime_s=0
    )
    assert not snap.in_alarm


def test_alarm_is_a_flag_or_the_alarm_mode() -> None:
    assert snapshot(alarms=PumpAlarm.AIR_IN_LINE).in_alarm
    assert snapshot(mode=PumpMode.ALARM).in_alarm
    assert not snapshot(warnings=PumpWarning.LOW_BATTERY).in_alarm


@pytest.mark.parametrize(
    ("mode", "delivers"),
    [
        (PumpMode.IDLE, False),
        (PumpMode.PRIMING, True),
        (PumpMode.INFUSING, True),
        (PumpMode.PAUSED, False),
        (PumpMode.KVO, True),
        (PumpMode.ALARM, False),
    ],
)
def test_delivering_modes(mode: PumpMode, delivers: bool) -> None:
    assert mode.delivers is delivers


def test_flag_names_in_declaration_order() -> None:
    assert flag_names(PumpAlarm.BATTERY_DEPLETED | PumpAlarm.OCCLUSION_UPSTREAM) == (
        "occlusion_upstream",
        "battery_depleted",
    )
    assert flag_names(PumpAlarm.NONE) == ()
    assert flag_names(PumpWarning.VTBI_COMPLETE) == ("vtbi_complete",)


def test_action_kinds_and_priorities_are_ordered() -> None:
    kinds = [ActionKind.REMIND, ActionKind.ALARM, ActionKind.PAUSE, ActionKind.STOP]
    assert [k.rank for k in kinds] == [1, 2, 3, 4]
    assert [p.rank for p in (Priority.LOW, Priority.MEDIUM, Priority.HIGH)] == [1, 2, 3]
