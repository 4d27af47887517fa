"""Tests written for mutants that survived `make mutation` and were real gaps.

Each test names the mutant it kills; docs/safety/verification.md classifies every survivor.
Verdicts and decisions are the kernel's own (``check_pump``, ``evaluate``), not hand-made.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from test_tick_nominal import decide, snapshot

from safety.actions import ActionKind, Priority
from safety.pump import PumpAlarm, PumpMode, PumpSnapshot, PumpWarning
from safety.start import check_pump
from safety.verdicts import Severity, needs_override, refused

PRIME_UL = 15_000


def _idle(**overrides: Any) -> PumpSnapshot:
    base = snapshot(mode=PumpMode.IDLE, rate_actual_ml_h=Decimal(0), volume_infused_ul=0)
    return dataclasses.replace(base, **overrides)


def test_a_refused_start_with_a_soft_finding_needs_no_override() -> None:
    """Kills safety.verdicts.x_needs_override__mutmut_3 (``and`` → ``or``).

    A pump that is infusing (hard) and low on battery (soft): the start is refused, and an
    override cannot make it acceptable, so no override may be asked for.
    """
    verdicts = check_pump(
        _idle(
            mode=PumpMode.INFUSING,
            rate_actual_ml_h=Decimal(150),
            warnings=PumpWarning.LOW_BATTERY,
        ),
        PRIME_UL,
        True,
    )
    severities = {v.severity for v in verdicts}
    assert severities == {Severity.HARD, Severity.SOFT}
    assert refused(verdicts)
    assert not needs_override(verdicts)


def test_a_clean_start_needs_no_override() -> None:
    """Kills the same mutant from the other side: no finding at all needs no override."""
    verdicts = check_pump(_idle(), PRIME_UL, True)
    assert verdicts == []
    assert not needs_override(verdicts)


def test_a_soft_finding_alone_needs_an_override() -> None:
    verdicts = check_pump(_idle(warnings=PumpWarning.LOW_BATTERY), PRIME_UL, True)
    assert [v.severity for v in verdicts] == [Severity.SOFT]
    assert needs_override(verdicts)


def test_within_one_kind_the_most_urgent_action_comes_first() -> None:
    """Kills safety.tick.x_evaluate__mutmut_13 (priority sorted ascending within a kind).

    An occlusion (STOP, high) at the moment the VTBI is reached with the pump still
    infusing (STOP, low): both stop, and the controller takes the first action's code and
    sentence as the stop's reason and the interlock record's detail, so the occlusion
    must come first, not the normal end.
    """
    decision = decide(
        snapshot=snapshot(alarms=PumpAlarm.OCCLUSION_DOWNSTREAM, volume_infused_ul=100_000),
        expected_volume_ul=100_000,
    )
    stops = [a for a in decision.actions if a.kind is ActionKind.STOP]
    assert {a.code for a in stops} >= {"tick.pump.alarm.occlusion_downstream", "tick.vtbi.reached"}
    assert {a.priority for a in stops} >= {Priority.HIGH, Priority.LOW}
    assert decision.actions[0].code == "tick.pump.alarm.occlusion_downstream"
    ranks = [a.priority.rank for a in stops]
    assert ranks == sorted(ranks, reverse=True)
