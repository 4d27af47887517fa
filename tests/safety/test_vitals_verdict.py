"""The kernel's answer to an entered reading (safety.vitals.entry_verdicts): within range,
or which value is outside which band and what happens now, for each stage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tick_nominal import VITALS_RULES, reading

from safety.verdicts import Severity
from safety.vitals import EntryStage, entry_verdicts

S = EntryStage


def codes(stage: EntryStage, **values: int | None) -> list[str]:
    return [v.code for v in entry_verdicts(VITALS_RULES, reading(**values), stage)]


@pytest.mark.parametrize("stage", list(EntryStage))
def test_a_normal_reading_is_within_range(stage: EntryStage) -> None:
    [v] = entry_verdicts(VITALS_RULES, reading(), stage)
    assert (v.code, v.severity, v.message) == (
        "vitals.within_range",
        Severity.NOTE,
        "Within the protocol's bands.",
    )


def test_before_the_start_the_start_band_refuses_the_start() -> None:
    [v] = entry_verdicts(VITALS_RULES, reading(heart_rate_bpm=115), S.BEFORE_START)
    assert v.code == "vitals.start_refused.heart_rate_bpm.above_max"
    assert v.severity is Severity.HARD
    assert v.message == (
        "Heart rate 115 bpm is above the maximum of 110 bpm of the start band: the start is "
        "refused."
    )


def test_while_delivering_the_pause_band_pauses_and_the_stop_band_stops() -> None:
    [pause] = entry_verdicts(VITALS_RULES, reading(heart_rate_bpm=125), S.DELIVERING)
    assert pause.code == "vitals.pause.heart_rate_bpm.above_max"
    assert pause.severity is Severity.SOFT
    assert pause.message.endswith("of the pause band: the infusion is paused.")
    [stop] = entry_verdicts(VITALS_RULES, reading(heart_rate_bpm=150), S.DELIVERING)
    assert stop.code == "vitals.stop.heart_rate_bpm.above_max"  # not also the pause band
    assert stop.severity is Severity.HARD
    assert stop.message.endswith("of the stop band: the infusion is stopped.")


def test_when_nothing_is_delivered_the_nurse_is_told_to_see_the_patient() -> None:
    found = entry_verdicts(
        VITALS_RULES, reading(heart_rate_bpm=150, spo2_percent=91), S.NOT_DELIVERING
    )
    assert [v.code for v in found] == [
        "vitals.stop.heart_rate_bpm.above_max",
        "vitals.pause.spo2_percent.below_min",
    ]
    assert "see the patient now" in found[0].message


def test_a_reading_that_lacks_a_required_vital_says_so() -> None:
    assert codes(S.DELIVERING, spo2_percent=None) == ["vitals.incomplete"]


@given(hr=st.integers(min_value=20, max_value=250), stage=st.sampled_from(list(EntryStage)))
def test_within_range_exactly_when_no_band_is_breached(hr: int, stage: EntryStage) -> None:
    found = codes(stage, heart_rate_bpm=hr)
    band = VITALS_RULES.refuse_start if stage is S.BEFORE_START else VITALS_RULES.pause
    low, high = band.heart_rate_bpm_min or 0, band.heart_rate_bpm_max or 999
    assert (found == ["vitals.within_range"]) == (low <= hr <= high)
