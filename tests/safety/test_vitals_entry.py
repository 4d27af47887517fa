"""Plausibility of a typed vitals reading (safety.vitals.check_entry): a figure no cuff,
gauge, monitor or count could give is refused naming the field and the limit; every value
that could be a reading, however dangerous, is accepted so that the kernel can act on it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpd.protocols import load_library
from safety.vitals import (
    ENTRY_RANGES,
    MAX_PULSE_PRESSURE_MMHG,
    MEASURES,
    ImplausibleVitals,
    InvalidVitals,
    VitalsReading,
    check_entry,
)

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def reading(**values: Any) -> VitalsReading:
    return VitalsReading(taken_at=T0, **values)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            {"systolic_mmhg": 300, "diastolic_mmhg": 20},
            "blood pressure 300/20 mmHg has a pulse pressure of 280 mmHg, above 220 mmHg",
        ),
        (
            {"systolic_mmhg": 80, "diastolic_mmhg": 120},
            "systolic pressure (systolic_mmhg) 80 mmHg must exceed the diastolic pressure "
            "(diastolic_mmhg) 120 mmHg",
        ),
        (
            {"systolic_mmhg": 120, "diastolic_mmhg": 120},
            "120 mmHg must exceed the diastolic pressure (diastolic_mmhg) 120 mmHg",
        ),
        (
            {"systolic_mmhg": 12, "diastolic_mmhg": 8},
            "systolic pressure (systolic_mmhg) 12 mmHg is below the plausible minimum of 40 mmHg"
            "; diastolic pressure (diastolic_mmhg) 8 mmHg is below the plausible minimum of "
            "10 mmHg",
        ),
        ({"heart_rate_bpm": 7}, "heart rate (heart_rate_bpm) 7 bpm is below the plausible"),
        ({"spo2_percent": 9}, "SpO2 (spo2_percent) 9 % is below the plausible minimum of 50 %"),
        (
            {"resp_rate_per_min": 90},
            "respiratory rate (resp_rate_per_min) 90 /min is above the plausible maximum of 80",
        ),
        ({"resp_rate_per_min": 1}, "respiratory rate (resp_rate_per_min) 1 /min is below"),
    ],
)
def test_an_implausible_entry_is_refused_naming_field_and_limit(
    values: dict[str, Any], says: str
) -> None:
    with pytest.raises(ImplausibleVitals) as refused:
        check_entry(reading(**values))
    assert says in str(refused.value)
    assert "Nothing was recorded" in str(refused.value)
    assert isinstance(refused.value, InvalidVitals)


def test_the_extremes_that_could_be_readings_are_accepted() -> None:
    for values in (
        {"systolic_mmhg": 300, "diastolic_mmhg": 250 - 170},  # a gauge's top, 220 apart
        {"systolic_mmhg": 41, "diastolic_mmhg": 40},
        {"systolic_mmhg": 40, "diastolic_mmhg": 10},
        {"heart_rate_bpm": 20, "spo2_percent": 50, "resp_rate_per_min": 2},
        {"heart_rate_bpm": 300, "spo2_percent": 100, "resp_rate_per_min": 80},
        {"systolic_mmhg": 180},  # one pressure alone: nothing to compare
        {},
    ):
        check_entry(reading(**values))


MEASURE_VALUES = {m: st.none() | st.integers(0, MEASURES[m][2]) for m in MEASURES}


@given(st.fixed_dictionaries(MEASURE_VALUES))
def test_refused_exactly_when_a_rule_says_so(values: dict[str, int | None]) -> None:
    r = reading(**values)
    given_values = {m: v for m, v in values.items() if v is not None}
    out_of_range = [
        m for m, v in given_values.items() if not ENTRY_RANGES[m][0] <= v <= ENTRY_RANGES[m][1]
    ]
    sys, dia = values["systolic_mmhg"], values["diastolic_mmhg"]
    bad_pair = sys is not None and dia is not None and not 0 < sys - dia <= MAX_PULSE_PRESSURE_MMHG
    if out_of_range or bad_pair:
        with pytest.raises(ImplausibleVitals) as refused:
            check_entry(r)
        for measure in out_of_range:
            assert f"({measure}) {values[measure]} " in str(refused.value)
        assert (
            "mmHg must exceed" in str(refused.value) or "pulse pressure" in str(refused.value)
        ) == bad_pair
    else:
        check_entry(r)


def test_every_shipped_protocol_band_lies_inside_the_entry_ranges() -> None:
    # A band limit beyond what may be entered could never be reached by a reading.
    for entry in load_library().entries.values():
        rules = entry.protocol.vitals
        for band in (rules.refuse_start, rules.pause, rules.stop):
            for measure, _, limit in band.bounds():
                low, high = ENTRY_RANGES[measure]
                assert low < limit < high, (entry.protocol.key, measure, limit)
