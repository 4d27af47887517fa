"""A pump restart seen by its forgotten command number as well as by its uptime.

A rebooted GIP-MB1 pump reports ``last_cmd_seq`` 0, a number no controller sends (1..65535).
So a pump that had taken a command and now shows 0 restarted, even when it is read so late
that its new uptime has passed the old one (before, the kernel and the controller saw only
a falling uptime, and a pump restarted while priming completed the prime with 0 mL).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import decide, snapshot

from safety.pump import (
    InvalidPumpSnapshot,
    PumpMode,
    restart_evidence,
    restart_evidence_of,
)
from safety.tick import SessionPhase

IDLE = {"mode": PumpMode.IDLE, "rate_actual_ml_h": Decimal(0)}


@pytest.mark.parametrize(
    ("before", "after", "evidence"),
    [
        ((100, 7), (99, 7), "uptime 100 s → 99 s"),  # uptime fell by one second
        ((100, 7), (100, 7), None),  # same uptime, same command: nothing happened
        ((100, 7), (5_000, 0), "it no longer knows its last command, number 7"),  # read late
        ((100, 0), (5_000, 0), None),  # no command taken yet: 0 proves nothing
        ((100, 7), (5_000, 8), None),  # a newer command: the pump is the same
        ((100, 65_535), (101, 1), None),  # the sequence wrapped, it never goes through 0
        ((100, 7), (3, 0), "uptime 100 s → 3 s"),  # both: uptime named first
    ],
)
def test_restart_evidence_on_both_sides_of_each_sign(
    before: tuple[int, int], after: tuple[int, int], evidence: str | None
) -> None:
    assert restart_evidence_of(*before, *after) == evidence
    prev = snapshot(**IDLE, uptime_s=before[0], last_cmd_seq=before[1])
    snap = snapshot(**IDLE, uptime_s=after[0], last_cmd_seq=after[1])
    assert restart_evidence(prev, snap) == evidence


@pytest.mark.parametrize("bad", [-1, 65_536, True, 1.0, "7"])
def test_a_command_number_off_the_wire_is_refused(bad: object) -> None:
    with pytest.raises(InvalidPumpSnapshot, match=r"last_cmd_seq must be an integer in 0\.\.65535"):
        snapshot(**IDLE, last_cmd_seq=bad)


def test_a_restart_read_late_while_priming_is_named_and_stops() -> None:
    prev = snapshot(mode=PumpMode.PRIMING, uptime_s=60, last_cmd_seq=3)
    late = snapshot(**IDLE, uptime_s=180, last_cmd_seq=0, volume_primed_ul=0)
    decision = decide(phase=SessionPhase.PRIMING, previous_snapshot=prev, snapshot=late)
    rebooted = [a for a in decision.actions if a.code == "tick.pump.rebooted"]
    assert len(rebooted) == 1
    assert "(it no longer knows its last command, number 3)" in rebooted[0].message


@given(
    uptime_before=st.integers(0, 2**32 - 1),
    uptime_after=st.integers(0, 2**32 - 1),
    seq_before=st.integers(1, 65_535),
)
def test_a_forgotten_command_is_a_restart_whatever_the_uptime(
    uptime_before: int, uptime_after: int, seq_before: int
) -> None:
    assert restart_evidence_of(uptime_before, seq_before, uptime_after, 0) is not None


@given(
    uptime_before=st.integers(0, 2**32 - 1),
    rise=st.integers(0, 2**16),
    seq_before=st.integers(0, 65_535),
    seq_after=st.integers(1, 65_535),
)
def test_a_pump_that_remembers_a_command_and_counts_on_did_not_restart(
    uptime_before: int, rise: int, seq_before: int, seq_after: int
) -> None:
    assert restart_evidence_of(uptime_before, seq_before, uptime_before + rise, seq_after) is None
