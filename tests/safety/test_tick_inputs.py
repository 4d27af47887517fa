"""The tick refuses limits and inputs it cannot trust, with InvalidTickInput naming the field,
instead of deciding on garbage."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from test_tick_nominal import inputs, limits, reading

from safety.tick import InvalidTickInput, Outcome, PendingInput, SessionPhase, evaluate


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"vtbi_ul": 0}, r"^vtbi_ul must be > 0"),
        ({"vtbi_ul": -1}, r"^vtbi_ul"),
        ({"vtbi_ul": 100_000.0}, r"^vtbi_ul"),
        ({"vtbi_ul": 10**13}, r"^vtbi_ul"),
        ({"vtbi_overrun_ul": True}, r"^vtbi_overrun_ul"),
        ({"kvo_max_ul": -5}, r"^kvo_max_ul"),
        ({"volume_tolerance_abs_ul": None}, r"^volume_tolerance_abs_ul"),
        ({"comm_timeout_s": 0}, r"^comm_timeout_s must be finite and > 0"),
        ({"comm_timeout_s": float("nan")}, r"^comm_timeout_s"),
        ({"comm_timeout_s": float("inf")}, r"^comm_timeout_s"),
        ({"comm_timeout_s": "5"}, r"^comm_timeout_s must be a number"),
        ({"comm_timeout_s": True}, r"^comm_timeout_s must be a number"),
        ({"comm_timeout_s": 10**400}, r"^comm_timeout_s is too large"),
        ({"rate_settle_s": -0.1}, r"^rate_settle_s must be finite and ≥ 0"),
        ({"pause_remind_every_s": 0}, r"^pause_remind_every_s"),
        ({"pause_stop_after_s": 0, "pause_remind_after_s": 0}, "^pause_stop_after_s must"),
        (
            {"pause_remind_after_s": 1800.01},
            r"^pause_remind_after_s .* is after pause_stop_after_s",
        ),
        ({"max_delivery_s": 0}, r"^max_delivery_s"),
        ({"pause_remind_after_s": -1.0}, r"^pause_remind_after_s must be finite"),
        ({"rate_tolerance_rel": Decimal("1.01")}, r"^rate_tolerance_rel must be ≤ 1"),
        (
            {"volume_tolerance_rel": Decimal("1.01")},
            r"^volume_tolerance_rel must be ≤ 1, got 1.01$",
        ),
        ({"rate_tolerance_abs_ml_h": Decimal("100000.01")}, "^rate_tolerance_abs_ml_h must be ≤"),
        ({"rate_tolerance_rel": 0.05}, r"^rate_tolerance_rel must be a finite Decimal"),
        ({"rate_tolerance_abs_ml_h": Decimal("-0.5")}, r"^rate_tolerance_abs_ml_h"),
        ({"rate_tolerance_abs_ml_h": Decimal("Infinity")}, r"^rate_tolerance_abs_ml_h"),
        ({"volume_tolerance_rel": Decimal("NaN")}, r"^volume_tolerance_rel"),
        ({"vitals": {"required": ["bp"]}}, r"^vitals must be VitalsRules"),
    ],
)
def test_limits_refuse_bad_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidTickInput, match=match):
        limits(**overrides)


def test_limits_accept_edge_values() -> None:
    lim = limits(
        rate_tolerance_rel=Decimal(1),
        rate_tolerance_abs_ml_h=Decimal(0),
        rate_settle_s=0,
        pause_remind_after_s=1800.0,
        vtbi_overrun_ul=0,
    )
    assert lim.pause_remind_after_s == lim.pause_stop_after_s


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"now_s": float("inf")}, r"^now_s must be a finite time"),
        ({"now_s": "2000"}, r"^now_s must be a number of seconds"),
        ({"now_s": 10**400}, r"^now_s is too large"),
        ({"phase": "infusing"}, r"^phase must be a SessionPhase"),
        ({"commanded_rate_ml_h": 150}, r"^commanded_rate_ml_h"),
        ({"commanded_rate_ml_h": Decimal(100_001)}, r"^commanded_rate_ml_h must be ≤"),
        ({"commanded_vtbi_ul": -1}, r"^commanded_vtbi_ul"),
        ({"expected_volume_ul": 1.5}, r"^expected_volume_ul"),
        ({"volume_at_start_ul": None}, r"^volume_at_start_ul"),
        ({"snapshot": {"mode": "infusing"}}, r"^snapshot must be a PumpSnapshot"),
        ({"previous_snapshot": 3}, r"^previous_snapshot must be a PumpSnapshot"),
        ({"rate_commanded_at_s": 2000.5}, r"^rate_commanded_at_s \(2000.5\) is after now_s"),
        ({"last_good_comm_s": 2001.0}, r"^last_good_comm_s .* is after now_s"),
        ({"vitals_taken_s": 2000.01}, r"^vitals_taken_s .* is after now_s"),
        ({"rate_commanded_at_s": None}, r"^rate_commanded_at_s and last_good_comm_s are required"),
        ({"last_good_comm_s": None}, "rate_commanded_at_s and last_good_comm_s are required"),
        ({"delivery_elapsed_s": float("nan")}, r"^delivery_elapsed_s"),
        ({"last_good_comm_s": float("nan")}, r"^last_good_comm_s must be a finite time"),
        (
            {"pending_input": PendingInput.START, "input_pending_since_s": float("-inf")},
            r"^input_pending_since_s must be a finite",
        ),
        ({"vitals": "120/80"}, r"^vitals must be a VitalsReading"),
        ({"vitals_taken_s": None}, "vitals and vitals_taken_s must be given together"),
        ({"vitals": None}, r"^vitals and vitals_taken_s must be given together"),
        ({"paused_since_s": 1900.0}, r"^paused_since_s must be given exactly when"),
        ({"phase": SessionPhase.PAUSED}, "paused_since_s must be given exactly when"),
        ({"phase": SessionPhase.PAUSED, "paused_since_s": 2100.0}, "paused_since_s .* is after"),
    ],
)
def test_inputs_refuse_bad_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidTickInput, match=match):
        inputs(**overrides)


def test_largest_volume_is_accepted() -> None:
    assert limits(vtbi_ul=10**12).vtbi_ul == 10**12


def test_times_equal_to_now_are_accepted() -> None:
    tick = inputs(rate_commanded_at_s=2000.0, last_good_comm_s=2000, vitals_taken_s=2000.0)
    assert evaluate(limits(), tick).outcome is Outcome.CONTINUE


def test_evaluate_refuses_wrong_argument_types() -> None:
    with pytest.raises(InvalidTickInput, match="limits must be SupervisionLimits"):
        evaluate({}, inputs())  # type: ignore[arg-type]
    with pytest.raises(InvalidTickInput, match="inputs must be TickInputs"):
        evaluate(limits(), {"now_s": 1})  # type: ignore[arg-type]


def test_reading_object_is_accepted_with_its_time() -> None:
    assert inputs(vitals=reading(), vitals_taken_s=0.0).vitals_taken_s == 0.0


def test_instants_before_the_clock_origin_are_accepted() -> None:
    """A restored session's times may lie before the monotonic clock's origin."""
    tick = inputs(
        now_s=-5.0, rate_commanded_at_s=-900.0, last_good_comm_s=-5.5, vitals_taken_s=-600.0
    )
    assert evaluate(limits(), tick).outcome is Outcome.CONTINUE
