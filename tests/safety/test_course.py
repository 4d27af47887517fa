"""Course rules: the model's refusals, and every boundary of interval, window count,
cumulative dose and series position against a patient's earlier sessions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from safety.course import (
    CourseRules,
    InvalidCourseHistory,
    Outcome,
    PriorSession,
    evaluate_course,
)
from safety.verdicts import Severity

NOW = dt.datetime(2026, 3, 20, 9, 0, tzinfo=dt.UTC)
RULES_DATA: dict[str, Any] = {
    "min_interval_h": Decimal(24),
    "window_days": 28,
    "max_sessions_in_window": 8,
    "max_cumulative_dose_mg_per_kg_in_window": Decimal("6.0"),
    "planned_series": 6,
    "planned_span_days": 21,
}
RULES = CourseRules(**RULES_DATA)
HALF = Decimal("0.5")


def session(
    ago: dt.timedelta,
    dose_mg_per_kg: Decimal = HALF,
    outcome: Outcome = Outcome.COMPLETED,
) -> PriorSession:
    return PriorSession(NOW - ago, dose_mg_per_kg * 80, dose_mg_per_kg, outcome)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def codes(
    prior: list[PriorSession], planned: Decimal = HALF, rules: CourseRules = RULES
) -> list[str]:
    verdicts = evaluate_course(rules, prior, NOW, planned).verdicts
    for verdict in verdicts:
        message = verdict.message
        assert message[0].isupper(), message
        assert message.endswith("."), message
        assert message != message.upper(), message
        assert "XX" not in message, message
        assert verdict.rule == "start.course"
    return [v.code for v in verdicts]


# -- model --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"min_interval_h": 24.0}, "min_interval_h"),
        ({"min_interval_h": Decimal("NaN")}, "min_interval_h"),
        ({"min_interval_h": Decimal(0)}, "min_interval_h"),
        ({"max_cumulative_dose_mg_per_kg_in_window": Decimal("Infinity")}, "max_cumulative"),
        ({"max_cumulative_dose_mg_per_kg_in_window": True}, "max_cumulative"),
        ({"window_days": 0}, "window_days"),
        ({"window_days": "28"}, "window_days"),
        ({"max_sessions_in_window": 0}, "max_sessions_in_window"),
        ({"planned_series": 0}, "planned_series"),
        ({"planned_span_days": 4}, r"planned_span_days \(4\) cannot hold planned_series \(6\)"),
        ({"extra_key": 1}, "extra_key"),
    ],
)
def test_rules_refuse_bad_values_naming_the_key(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        CourseRules(**{**RULES_DATA, **overrides})


def test_rules_accept_a_series_that_exactly_fits_and_integer_decimals() -> None:
    rules = CourseRules(**{**RULES_DATA, "planned_span_days": 5, "min_interval_h": 24})
    assert rules.min_interval_h == Decimal(24)


def test_rules_accept_decimal_strings() -> None:
    rules = CourseRules(**{**RULES_DATA, "min_interval_h": "22.5"})
    assert rules.min_interval_h == Decimal("22.5")


# -- history records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"started_at": dt.datetime(2026, 3, 1)}, "^started_at must"),  # noqa: DTZ001
        ({"dose_mg": Decimal(-1)}, "dose_mg must be"),
        ({"dose_mg": 40}, "dose_mg must be"),
        ({"dose_mg_per_kg": Decimal("NaN")}, "dose_mg_per_kg must be"),
        ({"outcome": "completed"}, "outcome must be"),
    ],
)
def test_prior_session_refuses_bad_records(kwargs: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = {
        "started_at": NOW - days(2),
        "dose_mg": Decimal(40),
        "dose_mg_per_kg": HALF,
        "outcome": Outcome.COMPLETED,
    }
    with pytest.raises(InvalidCourseHistory, match=match):
        PriorSession(**{**base, **kwargs})


def test_evaluation_refuses_naive_now_and_bad_planned_dose() -> None:
    with pytest.raises(InvalidCourseHistory, match=r"^now must"):
        evaluate_course(RULES, [], NOW.replace(tzinfo=None), HALF)
    with pytest.raises(InvalidCourseHistory, match=r"^planned_dose_mg_per_kg must"):
        evaluate_course(RULES, [], NOW, Decimal(-1))


# -- evaluation ---------------------------------------------------------------------------


def test_first_session_is_infusion_1_of_6() -> None:
    result = evaluate_course(RULES, [], NOW, HALF)
    assert result.infusion_number == 1
    assert result.position == "infusion 1 of 6"
    (note,) = result.verdicts
    assert (note.code, note.severity, note.message) == (
        "course.series.position",
        Severity.NOTE,
        "Infusion 1 of 6.",
    )


@pytest.mark.parametrize(
    ("ago", "expected"),
    [
        (dt.timedelta(hours=24), ["course.series.position"]),
        (
            dt.timedelta(hours=24) - dt.timedelta(seconds=1),
            ["course.interval.too_short", "course.series.position"],
        ),
        (dt.timedelta(0), ["course.interval.too_short", "course.series.position"]),
    ],
)
def test_minimum_interval_boundary(ago: dt.timedelta, expected: list[str]) -> None:
    assert codes([session(ago)]) == expected


def test_interval_uses_the_latest_session_and_says_how_long_ago() -> None:
    result = evaluate_course(RULES, [session(days(5)), session(dt.timedelta(hours=20))], NOW, HALF)
    interval = result.verdicts[0]
    assert interval.code == "course.interval.too_short"
    assert interval.severity is Severity.HARD
    assert interval.message == (
        "The last session started 20.0 h ago; the protocol requires at least 24 h between sessions."
    )


def test_aborted_sessions_count_for_the_interval() -> None:
    assert "course.interval.too_short" in codes(
        [session(dt.timedelta(hours=3), outcome=Outcome.ABORTED)]
    )


def test_future_session_is_refused() -> None:
    assert codes([session(-dt.timedelta(hours=1))])[0] == "course.history.future"
    result = evaluate_course(RULES, [session(-dt.timedelta(hours=1))], NOW, HALF)
    assert [v.code for v in result.verdicts] == ["course.history.future", "course.series.position"]
    assert result.verdicts[0].severity is Severity.HARD
    assert result.verdicts[0].message == (
        "Earlier sessions dated after now (2026-03-20T09:00:00+00:00): 1; check the clocks and "
        "the record before starting."
    )
    assert result.infusion_number == 1


def test_window_session_count_boundary() -> None:
    seven = [session(days(1 + 3 * i), Decimal("0.1")) for i in range(7)]  # 1..19 days ago
    assert "course.window.too_many_sessions" not in codes(seven)
    eight = [*seven, session(days(27.9), Decimal("0.1"))]
    found = evaluate_course(RULES, eight, NOW, HALF).verdicts
    too_many = [v for v in found if v.code == "course.window.too_many_sessions"]
    assert len(too_many) == 1
    assert too_many[0].severity is Severity.HARD
    assert too_many[0].rule == "start.course"
    assert (
        too_many[0].message == "This would be session 9 in 28 days; the protocol allows at most 8."
    )


def test_sessions_at_or_before_the_window_start_do_not_count() -> None:
    seven = [session(days(1 + 3 * i), Decimal("0.1")) for i in range(7)]
    assert "course.window.too_many_sessions" not in codes(
        [*seven, session(days(28), Decimal("0.1"))]
    )


@pytest.mark.parametrize(
    ("planned", "expected_refused"),
    [(Decimal("1.0"), False), (Decimal("1.01"), True)],
)
def test_cumulative_dose_boundary(planned: Decimal, expected_refused: bool) -> None:
    prior = [session(days(2 + 2 * i), Decimal(1)) for i in range(5)]  # 5.0 mg/kg in window
    found = codes(prior, planned)
    refused = "course.window.cumulative_dose" in found
    assert refused is expected_refused
    verdicts = evaluate_course(RULES, prior, NOW, planned).verdicts
    assert all(v.severity is Severity.HARD for v in verdicts if v.code.startswith("course.window"))


def test_cumulative_dose_ignores_sessions_outside_the_window_and_counts_aborted() -> None:
    old = session(days(30), Decimal(5))
    aborted = session(days(3), Decimal("5.6"), Outcome.ABORTED)
    assert "course.window.cumulative_dose" not in codes([old])
    result = evaluate_course(RULES, [aborted], NOW, HALF)
    dose = next(v for v in result.verdicts if v.code == "course.window.cumulative_dose")
    assert dose.message == (
        "Cumulative dose over 28 days would be 6.1 mg/kg; the protocol allows at most 6.0 mg/kg."
    )


def test_series_position_counts_completed_sessions_within_the_span() -> None:
    prior = [
        session(days(2)),
        session(days(4)),
        session(days(6), outcome=Outcome.ABORTED),
        session(days(21)),  # exactly at the span start: not part of this series
    ]
    result = evaluate_course(RULES, prior, NOW, HALF)
    assert result.infusion_number == 3
    assert result.position == "infusion 3 of 6"


def test_beyond_the_planned_series_is_soft() -> None:
    six = [session(days(1 + 3 * i), Decimal("0.1")) for i in range(6)]
    result = evaluate_course(RULES, six, NOW, HALF)
    assert result.infusion_number == 7
    beyond = result.verdicts[-1]
    assert (beyond.code, beyond.severity) == ("course.series.beyond_plan", Severity.SOFT)
    assert beyond.message == "This would be infusion 7; the planned series is 6 in 21 days."
    five = six[:5]
    assert evaluate_course(RULES, five, NOW, HALF).verdicts[-1].code == "course.series.position"


def test_a_session_that_delivered_nothing_is_a_valid_record() -> None:
    empty = PriorSession(NOW - days(2), Decimal(0), Decimal(0), Outcome.ABORTED)
    assert codes([empty]) == ["course.series.position"]
