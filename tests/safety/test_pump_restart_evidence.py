"""A pump restart judged on the evidence the pump itself gives, never on pumpd's connect.

A GIP-MB1 pump reports its uptime; a DULCO flex keeps a switch-on counter (register 1026)
and no uptime; a New Era pump keeps neither and reports a power-on reset (``A?R``) to the
next request. A restart of pumpd renews none of these, so the kernel judges a restart on
them alone; evidence that was there and is gone is judged as lost state, never as "no
restart".
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, snapshot

from safety.pump import PumpMode, restart_evidence, restart_evidence_of
from safety.tick import SessionPhase

IDLE = {"mode": PumpMode.IDLE, "rate_actual_ml_h": Decimal(0)}
INFUSING = {"mode": PumpMode.INFUSING, "rate_actual_ml_h": Decimal(60)}
COUNTS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize(
    ("before", "after", "evidence"),
    [
        # (uptime, switch-on count, resets seen)
        ((None, 41, 0), (None, 41, 0), None),  # a DULCO read again: the same pump life
        ((None, 41, 0), (None, 42, 0), "switch-on count 41 → 42"),
        ((None, 41, 0), (None, 40, 0), "switch-on count 41 → 40"),  # swapped or wrapped
        ((None, 41, 0), (None, None, 0), "its switch-on count (41 before) can no longer be read"),
        ((None, None, 0), (None, 7, 0), None),  # nothing known before: nothing to compare
        ((None, None, 0), (None, None, 0), None),  # a New Era pump that reported nothing
        ((None, None, 0), (None, None, 1), "it reported a power-on reset"),
        ((None, None, 2), (None, None, 2), None),  # the same reset, already judged
        ((None, None, 2), (None, None, 0), None),  # a new driver's count: no reset reported
        ((100, None, 0), (None, None, 0), "its uptime (100 s before) is no longer reported"),
        ((None, None, 0), (100, None, 0), None),
        ((100, None, 0), (99, None, 0), "uptime 100 s → 99 s"),
        ((100, 41, 0), (99, 42, 1), "uptime 100 s → 99 s"),  # the uptime is named first
    ],
)
def test_each_kind_of_evidence_on_both_sides(
    before: tuple[int | None, int | None, int],
    after: tuple[int | None, int | None, int],
    evidence: str | None,
) -> None:
    got = restart_evidence_of(
        before[0],
        0,
        after[0],
        0,
        switch_on_before=before[1],
        switch_on=after[1],
        resets_before=before[2],
        resets=after[2],
    )
    assert got == evidence
    prev = snapshot(**IDLE, uptime_s=before[0], switch_on_count=before[1], resets_seen=before[2])
    snap = snapshot(**IDLE, uptime_s=after[0], switch_on_count=after[1], resets_seen=after[2])
    assert restart_evidence(prev, snap) == evidence


@given(count=COUNTS, other=COUNTS)
def test_any_change_of_the_switch_on_count_is_a_restart(count: int, other: int) -> None:
    got = restart_evidence_of(None, 0, None, 0, switch_on_before=count, switch_on=other)
    assert (got is not None) is (count != other)


@given(count=COUNTS, resets=st.integers(0, 3))
def test_a_switch_on_count_that_cannot_be_read_is_never_no_restart(count: int, resets: int) -> None:
    got = restart_evidence_of(
        None, 0, None, 0, switch_on_before=count, switch_on=None, resets=resets
    )
    assert got is not None


@given(before=st.integers(0, 100), after=st.integers(0, 100))
def test_a_reported_reset_is_a_restart_exactly_when_the_count_rose(before: int, after: int) -> None:
    got = restart_evidence_of(None, 0, None, 0, resets_before=before, resets=after)
    assert (got is not None) is (after > before)


@given(count=COUNTS, volume_ul=st.integers(0, 10**6), rise_ul=st.integers(0, 10**4))
def test_a_pump_that_kept_its_switch_on_count_is_supervised_on(
    count: int, volume_ul: int, rise_ul: int
) -> None:
    """What a restart of pumpd looks like to the kernel on a DULCO: no uptime on either
    side, the same count, the counter on from where it was."""
    prev = snapshot(**INFUSING, uptime_s=None, switch_on_count=count, volume_infused_ul=volume_ul)
    snap = snapshot(
        **INFUSING, uptime_s=None, switch_on_count=count, volume_infused_ul=volume_ul + rise_ul
    )
    assert restart_evidence(prev, snap) is None


def test_a_switch_on_count_that_changed_while_infusing_stops_and_is_named() -> None:
    prev = snapshot(**INFUSING, uptime_s=None, switch_on_count=41, volume_infused_ul=5_000)
    snap = snapshot(**IDLE, uptime_s=None, switch_on_count=42, volume_infused_ul=5_000)
    decision = decide(phase=SessionPhase.INFUSING, previous_snapshot=prev, snapshot=snap)
    rebooted = [a for a in decision.actions if a.code == "tick.pump.rebooted"]
    assert len(rebooted) == 1
    assert "switch-on count 41 → 42" in rebooted[0].message


def test_a_reset_reported_while_infusing_stops_and_is_named() -> None:
    prev = snapshot(**INFUSING, uptime_s=None, volume_infused_ul=5_000)
    snap = snapshot(**IDLE, uptime_s=None, resets_seen=1, volume_infused_ul=0)
    decision = decide(phase=SessionPhase.INFUSING, previous_snapshot=prev, snapshot=snap)
    rebooted = [a for a in decision.actions if a.code == "tick.pump.rebooted"]
    assert len(rebooted) == 1
    assert "it reported a power-on reset" in rebooted[0].message
