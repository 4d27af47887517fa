"""tick.counters after a pump restart, and the delivered volume carried across it.

The controller keeps what the session had delivered before the restart in
``delivered_before_ul`` and re-anchors ``volume_at_start_ul`` on the new counter
(docs/safety/supervision-rules.md, tick.counters). A restart is an event between two
snapshots: it is demanded at that tick only and named once. A counter below the start is a
standing condition, the kernel's backstop for bookkeeping that was not re-anchored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, inputs, limits, snapshot
from test_tick_rules import assert_well_formed

from safety.actions import ActionKind, Priority
from safety.pump import PumpMode
from safety.tick import InvalidTickInput, Outcome, SessionPhase, evaluate

IDLE = {"mode": PumpMode.IDLE, "rate_actual_ml_h": Decimal(0)}
BEFORE = snapshot(**IDLE, volume_infused_ul=99_503, uptime_s=10_000)


def observing(**overrides: Any) -> dict[str, Any]:
    """A session in observation after 99,503 µL; the pump idle."""
    values: dict[str, Any] = {
        "phase": SessionPhase.OBSERVATION,
        "commanded_rate_ml_h": Decimal(0),
        "expected_volume_ul": 99_503,
        "previous_snapshot": BEFORE,
        "snapshot": snapshot(**IDLE, volume_infused_ul=99_503, uptime_s=10_001),
    }
    values.update(overrides)
    return values


REBOOTED = snapshot(**IDLE, volume_infused_ul=0, uptime_s=3)


@pytest.mark.parametrize(
    ("overrides", "codes"),
    [
        # the tick at which the restart is seen, bookkeeping re-anchored: named once
        ({"snapshot": REBOOTED, "delivered_before_ul": 99_503}, {"tick.pump.rebooted"}),
        # ... and not re-anchored: the standing backstop fires as well
        (
            {"snapshot": REBOOTED, "volume_at_start_ul": 1},
            {"tick.pump.rebooted", "tick.pump.counter_below_start"},
        ),
        # uptime one second lower is a restart; equal is not
        (
            {"snapshot": snapshot(**IDLE, volume_infused_ul=99_503, uptime_s=9_999)},
            {"tick.pump.rebooted"},
        ),
        ({"snapshot": snapshot(**IDLE, volume_infused_ul=99_503, uptime_s=10_000)}, set()),
        # the counter one µL lower without a restart is its own fault
        (
            {"snapshot": snapshot(**IDLE, volume_infused_ul=99_502, uptime_s=10_001)},
            {"tick.pump.counter_backwards"},
        ),
        # the ticks after the restart: nothing more is demanded once re-anchored ...
        (
            {
                "previous_snapshot": REBOOTED,
                "snapshot": snapshot(**IDLE, volume_infused_ul=0, uptime_s=4),
                "delivered_before_ul": 99_503,
            },
            set(),
        ),
        # ... while a start left on the old counter is demanded at every tick
        (
            {
                "previous_snapshot": REBOOTED,
                "snapshot": snapshot(**IDLE, volume_infused_ul=0, uptime_s=4),
                "volume_at_start_ul": 1,
            },
            {"tick.pump.counter_below_start"},
        ),
        # the re-anchored start, both sides: counter at the start, and one below it
        (
            {
                "previous_snapshot": snapshot(**IDLE, volume_infused_ul=40, uptime_s=4),
                "snapshot": snapshot(**IDLE, volume_infused_ul=40, uptime_s=5),
                "volume_at_start_ul": 40,
                "delivered_before_ul": 99_503,
            },
            set(),
        ),
        (
            {
                "previous_snapshot": snapshot(**IDLE, volume_infused_ul=39, uptime_s=4),
                "snapshot": snapshot(**IDLE, volume_infused_ul=39, uptime_s=5),
                "volume_at_start_ul": 40,
                "delivered_before_ul": 99_503,
            },
            {"tick.pump.counter_below_start"},
        ),
    ],
)
def test_counters_around_a_restart(overrides: dict[str, Any], codes: set[str]) -> None:
    decision = decide(**observing(**overrides))
    assert set(decision.codes) == codes
    assert decision.outcome is (Outcome.STOP if codes else Outcome.CONTINUE)
    for action in decision.actions:
        assert_well_formed(action)


def test_the_restart_names_the_volume_kept() -> None:
    decision = decide(**observing(snapshot=REBOOTED, delivered_before_ul=99_503))
    (action,) = decision.actions
    assert action.kind is ActionKind.STOP
    assert action.priority is Priority.HIGH
    assert "uptime 10000 s → 3 s" in action.message
    assert "volume counter was lost; 99503 µL had been delivered" in action.message


@pytest.mark.parametrize(
    ("previous_uptime_s", "codes", "outcome"),
    [
        # infusing, the pump found idle at uptime 3 s: restarted (previous 4 s) is one stop;
        # not restarted (previous 3 s) is the pump not delivering
        (4, {"tick.pump.rebooted"}, Outcome.STOP),
        (3, {"tick.pump.not_delivering"}, Outcome.ALARM),
    ],
)
def test_a_restarted_pump_is_idle_because_it_restarted(
    previous_uptime_s: int, codes: set[str], outcome: Outcome
) -> None:
    decision = decide(
        previous_snapshot=snapshot(volume_infused_ul=0, uptime_s=previous_uptime_s),
        snapshot=REBOOTED,
        delivered_before_ul=50_000,
    )
    assert set(decision.codes) == codes
    assert decision.outcome is outcome


@pytest.mark.parametrize(
    ("delivered_before_ul", "codes"),
    [
        # observation allows VTBI + overrun (kvo_max 0): 100,200 µL, counted across the restart
        (60_200, set()),
        (60_201, {"tick.vtbi.exceeded"}),
    ],
)
def test_vtbi_counts_the_volume_before_the_restart(
    delivered_before_ul: int, codes: set[str]
) -> None:
    after = snapshot(**IDLE, volume_infused_ul=40_100, uptime_s=500)
    decision = decide(
        **observing(
            previous_snapshot=after,
            snapshot=after,
            volume_at_start_ul=100,
            delivered_before_ul=delivered_before_ul,
            expected_volume_ul=100_000,
        )
    )
    assert set(decision.codes) == codes


@pytest.mark.parametrize(
    ("counter_ul", "codes"),
    [
        # expected 50,000 µL, band max(5 % × 50,000, 500) = 2,500 µL
        (22_500, set()),
        (22_501, {"tick.volume.over_infusion"}),
        (17_500, set()),
        (17_499, {"tick.volume.under_infusion"}),
    ],
)
def test_volume_rule_counts_the_volume_before_the_restart(counter_ul: int, codes: set[str]) -> None:
    decision = decide(
        snapshot=snapshot(volume_infused_ul=counter_ul, uptime_s=900),
        previous_snapshot=snapshot(volume_infused_ul=counter_ul, uptime_s=899),
        volume_at_start_ul=0,
        delivered_before_ul=30_000,
        expected_volume_ul=50_000,
    )
    assert set(decision.codes) == codes


@pytest.mark.parametrize("bad", [-1, None, True, 1.5, 10**12 + 1])
def test_delivered_before_must_be_microlitres(bad: object) -> None:
    with pytest.raises(InvalidTickInput, match=r"^delivered_before_ul"):
        inputs(delivered_before_ul=bad)


PHASES = [SessionPhase.INFUSING, SessionPhase.KVO, SessionPhase.OBSERVATION]


@given(
    phase=st.sampled_from(PHASES),
    before=st.integers(0, 150_000),
    anchor=st.integers(0, 5_000),
    since=st.integers(0, 150_000),
    expected=st.integers(0, 250_000),
)
def test_a_re_anchored_counter_is_judged_like_one_that_never_restarted(
    phase: SessionPhase, before: int, anchor: int, since: int, expected: int
) -> None:
    """delivered = before + counter − start: the same decision as a pump whose counter
    simply reads that total, whatever the split."""
    mode = {
        SessionPhase.INFUSING: PumpMode.INFUSING,
        SessionPhase.KVO: PumpMode.KVO,
        SessionPhase.OBSERVATION: PumpMode.IDLE,
    }[phase]
    rate = Decimal(0) if mode is PumpMode.IDLE else Decimal("150.00")

    def tick(counter: int, start: int, kept: int) -> tuple[Any, ...]:
        snap = snapshot(mode=mode, rate_actual_ml_h=rate, volume_infused_ul=counter)
        return evaluate(
            limits(kvo_max_ul=1_000),
            inputs(
                phase=phase,
                commanded_rate_ml_h=rate,
                snapshot=snap,
                previous_snapshot=None,
                volume_at_start_ul=start,
                delivered_before_ul=kept,
                expected_volume_ul=expected,
            ),
        ).actions

    assert tick(anchor + since, anchor, before) == tick(before + since, 0, 0)
