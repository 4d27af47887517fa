"""An acknowledged exceedance of the plan's volume reminds; it does not stop and alarm again.

A pump whose stop came after the plan's volume by more than the allowance (a pump-side
stop that is pumpd's, late on a loaded machine; a pump that ran on) is stopped with a high
alarm. Once a nurse has acknowledged that alarm on a stopped pump, the same volume on the
same stopped pump must not raise it again at every reading: the session could never leave
its alarm and never be finished. It reminds instead (the overdose stays on the screen and
the first alarm, with its figures, in the audit). Any growth of the volume beyond the
acknowledged figure, or a pump that delivers, is judged afresh: stop and alarm.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import inputs, limits, snapshot

from safety.actions import ActionKind, Priority
from safety.pump import PumpMode
from safety.tick import (
    VTBI_ACK_COUNTER_NOISE_UL,
    InvalidTickInput,
    SessionPhase,
    TickDecision,
    evaluate,
)

VTBI_UL = 100_000
ALLOWANCE_UL = VTBI_UL + 200  # the nominal limits: kvo_max_ul 0, vtbi_overrun_ul 200
NOT_DELIVERING = (PumpMode.IDLE, PumpMode.PAUSED, PumpMode.ALARM)
DELIVERING = tuple(m for m in PumpMode if m.delivers)
QUIET_PHASES = (SessionPhase.OBSERVATION, SessionPhase.PAUSED, SessionPhase.ENDED)


def decide_at(
    delivered_ul: int,
    acked_ul: int | None,
    *,
    mode: PumpMode = PumpMode.IDLE,
    phase: SessionPhase = SessionPhase.OBSERVATION,
    rate: str = "0",
) -> TickDecision:
    where: dict[str, Any] = {"phase": phase}
    if phase is SessionPhase.PAUSED:
        where["paused_since_s"] = 1990.0
    snap = snapshot(mode=mode, rate_actual_ml_h=Decimal(rate), volume_infused_ul=delivered_ul)
    tick = inputs(
        snapshot=snap,
        previous_snapshot=snap,
        expected_volume_ul=min(delivered_ul, VTBI_UL),
        vtbi_exceeded_acknowledged_ul=acked_ul,
        **where,
    )
    return evaluate(limits(), tick)


def vtbi_actions(decision: TickDecision) -> dict[str, tuple[ActionKind, Priority]]:
    return {a.code: (a.kind, a.priority) for a in decision.actions if a.rule == "tick.vtbi"}


EXCEEDED = {"tick.vtbi.exceeded": (ActionKind.STOP, Priority.HIGH)}
REMINDED = {"tick.vtbi.exceeded_acknowledged": (ActionKind.REMIND, Priority.LOW)}


def test_a_stopped_acknowledged_exceedance_reminds_with_its_figures() -> None:
    assert vtbi_actions(decide_at(100_600, None)) == EXCEEDED
    decision = decide_at(100_600, 100_600)
    assert vtbi_actions(decision) == REMINDED
    (said,) = [a.message for a in decision.actions if a.rule == "tick.vtbi"]
    assert said == (
        "100600 µL delivered, 600 µL over the VTBI of 100000 µL (more than the 100200 µL "
        "allowed); acknowledged, the pump is stopped: watch the patient."
    )
    # Within the counter's noise it is the same stopped pump; one µL more is delivery.
    noise = VTBI_ACK_COUNTER_NOISE_UL
    assert vtbi_actions(decide_at(100_600 + noise, 100_600)) == REMINDED
    assert vtbi_actions(decide_at(100_601 + noise, 100_600)) == EXCEEDED


def test_a_pump_that_delivers_again_is_stopped_again() -> None:
    for mode in DELIVERING:
        decision = decide_at(100_600, 100_600, mode=mode, rate="150")
        assert vtbi_actions(decision) == EXCEEDED, mode
    # Flow reported while idle is delivery too.
    assert vtbi_actions(decide_at(100_600, 100_600, rate="0.5")) == EXCEEDED
    # A session that means to deliver again is judged afresh (the pump is not yet moving).
    assert vtbi_actions(decide_at(100_600, 100_600, phase=SessionPhase.INFUSING)) == EXCEEDED


def test_the_acknowledged_volume_is_validated() -> None:
    for bad in (-1, 1.5, True, "100600", 10**13):
        with pytest.raises(InvalidTickInput, match="vtbi_exceeded_acknowledged_ul"):
            inputs(vtbi_exceeded_acknowledged_ul=bad)
    assert inputs(vtbi_exceeded_acknowledged_ul=0).vtbi_exceeded_acknowledged_ul == 0


@given(
    delivered=st.integers(min_value=ALLOWANCE_UL + 1, max_value=VTBI_UL * 3),
    below=st.integers(min_value=0, max_value=VTBI_ACK_COUNTER_NOISE_UL),
    mode=st.sampled_from(NOT_DELIVERING),
    phase=st.sampled_from(QUIET_PHASES),
)
def test_a_stopped_acknowledged_exceedance_is_quiet(
    delivered: int, below: int, mode: PumpMode, phase: SessionPhase
) -> None:
    """Acknowledged at ``delivered − below`` (a figure at most the noise below): no STOP
    from the VTBI rule, a reminder that names it."""
    decision = decide_at(delivered, delivered - below, mode=mode, phase=phase)
    assert vtbi_actions(decision) == REMINDED


@given(
    acked=st.integers(min_value=ALLOWANCE_UL + 1, max_value=VTBI_UL * 3),
    grown=st.integers(min_value=VTBI_ACK_COUNTER_NOISE_UL + 1, max_value=VTBI_UL),
    mode=st.sampled_from(NOT_DELIVERING),
    phase=st.sampled_from(QUIET_PHASES),
)
def test_any_growth_beyond_the_acknowledged_volume_raises_again(
    acked: int, grown: int, mode: PumpMode, phase: SessionPhase
) -> None:
    assert vtbi_actions(decide_at(acked + grown, acked, mode=mode, phase=phase)) == EXCEEDED


@given(
    delivered=st.integers(min_value=ALLOWANCE_UL + 1, max_value=VTBI_UL * 3),
    acked=st.integers(min_value=0, max_value=VTBI_UL * 3),
    mode=st.sampled_from(DELIVERING),
)
def test_a_delivering_pump_over_the_allowance_always_raises(
    delivered: int, acked: int, mode: PumpMode
) -> None:
    decision = decide_at(delivered, acked, mode=mode, phase=SessionPhase.INFUSING, rate="150")
    assert vtbi_actions(decision) == EXCEEDED


@given(
    delivered=st.integers(min_value=ALLOWANCE_UL + 1, max_value=VTBI_UL * 3),
    mode=st.sampled_from(tuple(PumpMode)),
    phase=st.sampled_from(QUIET_PHASES),
)
def test_the_first_exceedance_always_raises(
    delivered: int, mode: PumpMode, phase: SessionPhase
) -> None:
    decision = decide_at(delivered, None, mode=mode, phase=phase)
    assert EXCEEDED.items() <= vtbi_actions(decision).items()
    assert decision.outcome.value == "stop"


@given(
    delivered=st.integers(min_value=0, max_value=ALLOWANCE_UL),
    acked=st.one_of(st.none(), st.integers(min_value=0, max_value=VTBI_UL * 3)),
)
def test_within_the_allowance_nothing_is_said(delivered: int, acked: int | None) -> None:
    assert vtbi_actions(decide_at(delivered, acked)) == {}


def test_at_the_allowance_itself_nothing_is_said_even_when_acknowledged() -> None:
    assert vtbi_actions(decide_at(ALLOWANCE_UL, ALLOWANCE_UL)) == {}
    assert vtbi_actions(decide_at(ALLOWANCE_UL, None)) == {}
