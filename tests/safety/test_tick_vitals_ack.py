"""An acknowledged out-of-band reading reminds, it does not alarm again.

While nothing is delivered (paused, observation) a reading outside the pause or stop band
is an alarm. Once a nurse has acknowledged the alarm of that very reading, the same
reading at the next tick must not raise the alarm again: the acknowledgement would be
undone at once, and a paused infusion's pause clock runs while the nurse is made to
acknowledge again and again. It reminds instead, until a new reading is recorded (judged
afresh). While delivering, nothing changes: the bands pause and stop.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, inputs, reading, snapshot

from safety.actions import ActionKind
from safety.pump import PumpMode
from safety.tick import InvalidTickInput, SessionPhase, TickInputs

IDLE = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0))
PAUSED = snapshot(mode=PumpMode.PAUSED, rate_actual_ml_h=Decimal(0))
WHERE = {
    "observation": {"phase": SessionPhase.OBSERVATION, "snapshot": IDLE},
    "paused": {
        "phase": SessionPhase.PAUSED,
        "paused_since_s": 1990.0,
        "snapshot": PAUSED,
        "previous_snapshot": PAUSED,
    },
}


def kinds(acknowledged: bool, where: str, **values: int) -> dict[str, ActionKind]:
    decision = decide(vitals=reading(**values), vitals_acknowledged=acknowledged, **WHERE[where])
    return {a.code: a.kind for a in decision.actions if a.code.startswith("tick.vitals.")}


@pytest.mark.parametrize("where", list(WHERE))
def test_an_acknowledged_reading_reminds_instead_of_alarming_again(where: str) -> None:
    assert kinds(False, where, heart_rate_bpm=125) == {
        "tick.vitals.pause.heart_rate_bpm.above_max": ActionKind.ALARM
    }
    assert kinds(True, where, heart_rate_bpm=125) == {
        "tick.vitals.pause.heart_rate_bpm.above_max": ActionKind.REMIND
    }
    assert kinds(True, where, spo2_percent=85) == {
        "tick.vitals.stop.spo2_percent.below_min": ActionKind.REMIND
    }


def test_while_delivering_the_bands_still_pause_and_stop() -> None:
    decision = decide(vitals=reading(heart_rate_bpm=125), vitals_acknowledged=True)
    assert ActionKind.PAUSE in {a.kind for a in decision.actions}
    decision = decide(vitals=reading(spo2_percent=85), vitals_acknowledged=True)
    assert ActionKind.STOP in {a.kind for a in decision.actions}


def test_acknowledged_needs_a_reading_and_is_a_bool() -> None:
    with pytest.raises(InvalidTickInput):
        inputs(vitals=None, vitals_taken_s=None, vitals_acknowledged=True)
    with pytest.raises(InvalidTickInput):
        inputs(vitals_acknowledged=1)
    assert isinstance(inputs(vitals_acknowledged=True), TickInputs)


@given(hr=st.integers(min_value=20, max_value=250), acknowledged=st.booleans())
def test_an_acknowledged_reading_never_raises_an_alarm_while_idle(
    hr: int, acknowledged: bool
) -> None:
    found = kinds(acknowledged, "observation", heart_rate_bpm=hr)
    if acknowledged:
        assert ActionKind.ALARM not in found.values()
    out_of_band = hr < 45 or hr > 120
    assert bool(found) == out_of_band
