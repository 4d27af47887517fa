"""Vital-sign models and the baseline start rule: refusal of contradictory bands with the key
named, refusal of untrustworthy readings, and every boundary of the baseline check."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError
from test_tick_nominal import T0, VITALS_RULES, reading

from safety.verdicts import Severity
from safety.vitals import (
    Breach,
    InvalidVitals,
    VitalsReading,
    VitalsRules,
    VitalsThreshold,
    breaches,
    check_baseline,
    missing_kinds,
)


def rules_with(**overrides: Any) -> dict[str, Any]:
    data = VITALS_RULES.model_dump()
    data.update(overrides)
    return data


# -- models -------------------------------------------------------------------------------


def test_shipped_example_rules_are_valid_and_frozen() -> None:
    assert VITALS_RULES.refuse_start.systolic_mmhg_min == 90
    with pytest.raises(ValidationError):
        VITALS_RULES.interval_min = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("band", "key"),
    [
        ({"systolic_mmhg_min": 120, "systolic_mmhg_max": 119}, "systolic_mmhg_min (120)"),
        ({"heart_rate_bpm_min": 61, "heart_rate_bpm_max": 60}, "heart_rate_bpm_min (61)"),
        ({"resp_rate_per_min_min": 30, "resp_rate_per_min_max": 8}, "resp_rate_per_min_min"),
    ],
)
def test_threshold_min_above_max_names_the_key(band: dict[str, int], key: str) -> None:
    with pytest.raises(ValidationError, match=key.replace("(", r"\(").replace(")", r"\)")):
        VitalsThreshold(**band)


def test_threshold_min_equal_max_is_allowed() -> None:
    band = VitalsThreshold(systolic_mmhg_min=120, systolic_mmhg_max=120)
    assert list(band.bounds()) == [("systolic_mmhg", "min", 120), ("systolic_mmhg", "max", 120)]


@pytest.mark.parametrize(
    "bad",
    [
        {"systolic_mmhg_min": "90"},
        {"systolic_mmhg_min": 90.0},
        {"systolic_mmhg_min": True},
        {"systolic_mmhg_min": -1},
        {"systolic_mmhg_max": 301},
        {"spo2_percent_min": 101},
        {"spo2_percent_max": 100},
        {"systolic_mmhg": 90},
    ],
)
def test_threshold_refuses_wrong_types_ranges_and_unknown_keys(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VitalsThreshold(**bad)


def test_rules_refuse_pause_band_inside_start_band_naming_the_key() -> None:
    data = rules_with(pause={**VITALS_RULES.pause.model_dump(), "systolic_mmhg_min": 91})
    with pytest.raises(ValidationError, match=r"pause\.systolic_mmhg_min \(91\) is inside"):
        VitalsRules(**data)


def test_rules_refuse_stop_band_inside_pause_band_naming_the_key() -> None:
    data = rules_with(stop={**VITALS_RULES.stop.model_dump(), "heart_rate_bpm_max": 119})
    with pytest.raises(ValidationError, match=r"stop\.heart_rate_bpm_max \(119\) is inside"):
        VitalsRules(**data)


def test_rules_accept_equal_bands() -> None:
    band = VITALS_RULES.refuse_start
    rules = VitalsRules(**rules_with(pause=band, stop=band))
    assert rules.stop == rules.refuse_start


def test_rules_refuse_a_bound_the_inner_band_does_not_check() -> None:
    data = rules_with(
        refuse_start={**VITALS_RULES.refuse_start.model_dump(), "spo2_percent_min": None}
    )
    with pytest.raises(ValidationError, match=r"pause\.spo2_percent_min is set but refuse_start"):
        VitalsRules(**data)


def test_rules_refuse_a_threshold_on_a_vital_that_is_not_required() -> None:
    data = rules_with(required=("bp", "hr"))
    with pytest.raises(ValidationError, match=r"refuse_start\.spo2_percent_min checks 'spo2'"):
        VitalsRules(**data)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"required": ()}, "required"),
        ({"required": ("bp", "bp", "hr", "spo2")}, "twice"),
        ({"required": ("bp", "temp")}, "required"),
        ({"interval_min": 0}, "interval_min"),
        ({"baseline_max_age_min": 0}, "baseline_max_age_min"),
        ({"overdue_grace_min": -1}, "overdue_grace_min"),
        ({"interval_min": 15.0}, "interval_min"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_rules_refuse_bad_policy_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        VitalsRules(**rules_with(**overrides))


# -- readings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"taken_at": dt.datetime(2026, 3, 2, 9, 0)}, "aware UTC"),  # noqa: DTZ001
        ({"taken_at": T0.astimezone(dt.timezone(dt.timedelta(hours=1)))}, "aware UTC"),
        ({"taken_at": 1_700_000_000}, "must be a datetime"),
        ({"systolic_mmhg": True}, "systolic_mmhg must be an integer"),
        ({"heart_rate_bpm": 72.0}, "heart_rate_bpm must be an integer"),
        ({"spo2_percent": 101}, "spo2_percent = 101 is outside"),
        ({"spo2_percent": -1}, "spo2_percent = -1 is outside"),
        ({"diastolic_mmhg": 251}, "diastolic_mmhg = 251"),
    ],
)
def test_reading_refuses_untrustworthy_values(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidVitals, match=match):
        reading(**overrides)


def test_reading_accepts_plausible_extremes() -> None:
    r = reading(spo2_percent=100, systolic_mmhg=300, diastolic_mmhg=0, resp_rate_per_min=None)
    assert r.spo2_percent == 100


def test_blood_pressure_needs_both_pressures() -> None:
    assert reading().has("bp")
    assert not reading(diastolic_mmhg=None).has("bp")
    assert not reading(systolic_mmhg=None).has("bp")
    assert missing_kinds(VITALS_RULES, reading(diastolic_mmhg=None, heart_rate_bpm=None)) == (
        "bp",
        "hr",
    )


def test_breaches_are_inclusive_at_both_ends_and_skip_unmeasured() -> None:
    band = VitalsThreshold(heart_rate_bpm_min=50, heart_rate_bpm_max=110)
    assert breaches(band, reading(heart_rate_bpm=50)) == ()
    assert breaches(band, reading(heart_rate_bpm=110)) == ()
    assert breaches(band, reading(heart_rate_bpm=49)) == (Breach("heart_rate_bpm", "min", 49, 50),)
    assert breaches(band, reading(heart_rate_bpm=111)) == (
        Breach("heart_rate_bpm", "max", 111, 110),
    )
    assert breaches(band, reading(heart_rate_bpm=None)) == ()


def test_breach_describes_value_limit_and_unit() -> None:
    assert (
        Breach("spo2_percent", "min", 91, 94).describe() == "SpO2 91 % is below the minimum of 94 %"
    )
    assert Breach("systolic_mmhg", "max", 181, 180).describe() == (
        "systolic pressure 181 mmHg is above the maximum of 180 mmHg"
    )
    assert Breach("resp_rate_per_min", "max", 31, 30).code_suffix == "resp_rate_per_min.above_max"


# -- baseline start rule ------------------------------------------------------------------

NOW = T0 + dt.timedelta(minutes=10)


def codes(reading_: VitalsReading | None, now: dt.datetime = NOW) -> list[str]:
    verdicts = check_baseline(VITALS_RULES, reading_, now)
    for verdict in verdicts:
        message = verdict.message
        assert message[0].isupper(), message
        assert message.endswith("."), message
        assert message != message.upper(), message
        assert "XX" not in message, message
        assert verdict.rule == "start.vitals.baseline"
        assert verdict.severity is Severity.HARD
    return [v.code for v in verdicts]


def test_fresh_complete_normal_baseline_passes() -> None:
    assert codes(reading()) == []


def test_missing_baseline_is_hard() -> None:
    (verdict,) = check_baseline(VITALS_RULES, None, NOW)
    assert verdict.code == "start.vitals.missing"
    assert verdict.severity is Severity.HARD
    assert verdict.rule == "start.vitals.baseline"


def test_incomplete_baseline_is_hard_and_names_the_missing_vital() -> None:
    (verdict,) = check_baseline(VITALS_RULES, reading(spo2_percent=None, heart_rate_bpm=None), NOW)
    assert verdict.message == (
        "Baseline vital signs lack hr, spo2; the protocol requires bp, hr, spo2."
    )
    assert verdict.code == "start.vitals.incomplete"
    assert verdict.severity is Severity.HARD
    assert "lack hr, spo2" in verdict.message


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (dt.timedelta(0), []),
        (dt.timedelta(minutes=30), []),
        (dt.timedelta(minutes=30, seconds=1), ["start.vitals.stale"]),
        (dt.timedelta(seconds=-1), ["start.vitals.from_future"]),
    ],
)
def test_baseline_freshness_boundary(age: dt.timedelta, expected: list[str]) -> None:
    assert codes(reading(taken_at=NOW - age)) == expected


def test_stale_message_gives_age_and_limit() -> None:
    (verdict,) = check_baseline(VITALS_RULES, reading(taken_at=NOW - dt.timedelta(minutes=45)), NOW)
    assert (
        verdict.message
        == "Baseline vital signs are 45 min old; the protocol accepts at most 30 min."
    )
    assert verdict.severity is Severity.HARD


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"systolic_mmhg": 90}, []),
        ({"systolic_mmhg": 89}, ["start.vitals.systolic_mmhg.below_min"]),
        ({"systolic_mmhg": 160}, []),
        ({"systolic_mmhg": 161}, ["start.vitals.systolic_mmhg.above_max"]),
        ({"spo2_percent": 94}, []),
        ({"spo2_percent": 93}, ["start.vitals.spo2_percent.below_min"]),
        (
            {"heart_rate_bpm": 111, "diastolic_mmhg": 101},
            ["start.vitals.diastolic_mmhg.above_max", "start.vitals.heart_rate_bpm.above_max"],
        ),
    ],
)
def test_baseline_refuse_start_band(overrides: dict[str, Any], expected: list[str]) -> None:
    verdicts = check_baseline(VITALS_RULES, reading(**overrides), NOW)
    assert [v.code for v in verdicts] == expected
    assert all(v.severity is Severity.HARD for v in verdicts)


def test_baseline_out_of_band_message() -> None:
    (verdict,) = check_baseline(VITALS_RULES, reading(systolic_mmhg=85), NOW)
    assert verdict.message == (
        "Baseline systolic pressure 85 mmHg is below the minimum of 90 mmHg allowed to start."
    )


def test_all_baseline_findings_are_reported_together() -> None:
    stale_low = reading(taken_at=NOW - dt.timedelta(hours=2), systolic_mmhg=70, spo2_percent=None)
    assert codes(stale_low) == [
        "start.vitals.incomplete",
        "start.vitals.stale",
        "start.vitals.systolic_mmhg.below_min",
    ]


def test_baseline_refuses_a_naive_now() -> None:
    with pytest.raises(InvalidVitals, match="now must be an aware UTC"):
        check_baseline(VITALS_RULES, reading(), dt.datetime(2026, 3, 2, 9, 10))  # noqa: DTZ001


def test_an_unmeasured_value_does_not_hide_later_breaches() -> None:
    band = VitalsThreshold(systolic_mmhg_min=90, heart_rate_bpm_max=110, spo2_percent_min=94)
    found = breaches(band, reading(systolic_mmhg=None, diastolic_mmhg=None, heart_rate_bpm=150))
    assert found == (Breach("heart_rate_bpm", "max", 150, 110),)
