"""tick.volume beside the pump's own alarm: a pump that stopped itself (occlusion, air,
its alarm mode) is stopped by ``tick.pump_alarm`` with the cause named; the volume rule
claims no under-infusion then (the deficit is the pump's stop), but over-infusion is judged
whatever the pump says."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, snapshot

from safety.actions import ActionKind, Priority
from safety.pump import PumpAlarm, PumpMode
from safety.tick import Outcome, SessionPhase, TickDecision

STOPPED_ITSELF = [
    {"mode": PumpMode.ALARM, "alarms": PumpAlarm.OCCLUSION_DOWNSTREAM},
    {"mode": PumpMode.ALARM, "alarms": PumpAlarm.AIR_IN_LINE},
    {"mode": PumpMode.ALARM, "alarms": PumpAlarm.NONE},  # its alarm mode, no known flag
    {"mode": PumpMode.IDLE, "alarms": PumpAlarm.DOOR_OPEN},  # a flag without the mode
]


EARLIER = snapshot(volume_infused_ul=40_000, uptime_s=9_999)
"""The reading before, below every volume used here (no counter going backwards)."""


def _decide(volume_ul: int, **snap: object) -> TickDecision:
    """The tick with 50,000 µL expected (band: 5 %, 2,500 µL) and the pump at ``volume_ul``."""
    return decide(
        previous_snapshot=EARLIER,
        snapshot=snapshot(rate_actual_ml_h=Decimal(0), volume_infused_ul=volume_ul, **snap),
    )


def _codes(**snap: object) -> set[str]:
    """4,000 µL short of the expected 50,000: under-infusion by any measure."""
    return set(_decide(46_000, **snap).codes)


@pytest.mark.parametrize("snap", STOPPED_ITSELF)
def test_a_pump_that_stopped_itself_is_stopped_for_its_alarm_not_as_under_infusion(
    snap: dict[str, object],
) -> None:
    codes = _codes(**snap)
    assert "tick.volume.under_infusion" not in codes
    assert any(c.startswith("tick.pump.alarm") for c in codes), codes


def test_a_pump_short_without_an_alarm_is_under_infusion() -> None:
    """The same deficit from a pump that claims to infuse: paused, check the line."""
    decision = decide(previous_snapshot=EARLIER, snapshot=snapshot(volume_infused_ul=46_000))
    assert "tick.volume.under_infusion" in decision.codes
    [action] = [a for a in decision.actions if a.code == "tick.volume.under_infusion"]
    assert (action.kind, action.priority) == (ActionKind.PAUSE, Priority.MEDIUM)


@pytest.mark.parametrize("snap", STOPPED_ITSELF)
def test_over_infusion_is_judged_even_when_the_pump_reports_an_alarm(
    snap: dict[str, object],
) -> None:
    decision = _decide(53_000, **snap)  # 3,000 µL over
    assert "tick.volume.over_infusion" in decision.codes
    assert decision.outcome is Outcome.STOP


@given(
    short_ul=st.integers(min_value=2_501, max_value=10_000),
    snap=st.sampled_from(STOPPED_ITSELF),
)
def test_the_decision_is_the_pump_alarms_stop_whatever_the_deficit(
    short_ul: int, snap: dict[str, object]
) -> None:
    """The deficit changes nothing: the outcome is the pump alarm's STOP, high priority,
    and no volume rule is among its reasons."""
    decision = decide(
        snapshot=snapshot(rate_actual_ml_h=Decimal(0), volume_infused_ul=50_000 - short_ul, **snap)
    )
    assert decision.outcome is Outcome.STOP
    assert decision.priority is Priority.HIGH
    assert not [c for c in decision.codes if c.startswith("tick.volume.")], decision.codes


def test_a_paused_session_is_not_paused_again_for_its_deficit() -> None:
    """Once the infusion is paused (by this rule or a nurse) its deficit is not demanded
    again: a second PAUSE on a paused session is a stop with a new alarm, a repeating alarm
    while the nurse checks the line. Over-infusion still stops a paused session."""
    paused = {"phase": SessionPhase.PAUSED, "paused_since_s": 0.0, "previous_snapshot": EARLIER}
    short = decide(
        snapshot=snapshot(
            mode=PumpMode.PAUSED, rate_actual_ml_h=Decimal(0), volume_infused_ul=46_000
        ),
        **paused,
    )
    assert "tick.volume.under_infusion" not in short.codes
    over = decide(
        snapshot=snapshot(
            mode=PumpMode.PAUSED, rate_actual_ml_h=Decimal(0), volume_infused_ul=53_000
        ),
        **paused,
    )
    assert "tick.volume.over_infusion" in over.codes
