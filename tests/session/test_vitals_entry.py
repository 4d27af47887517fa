"""A typed reading no instrument could give is refused by the session (safety.vitals.
check_entry): the nurse reads which field and which limit, and nothing is recorded."""

from __future__ import annotations

import dataclasses

import pytest

from pumpd.session import InvalidCommandInput, State

from .conftest import PROGRAMMER, drive


@pytest.mark.parametrize("state", [State.VERIFIED, State.INFUSING, State.OBSERVATION])
def test_an_implausible_reading_is_refused_and_nothing_recorded(state: State) -> None:
    b, s = drive(state)
    before = s.snapshot()
    typo = dataclasses.replace(b.vitals(), systolic_mmhg=300, diastolic_mmhg=20)
    with pytest.raises(InvalidCommandInput) as refused:
        s.record_vitals(by=PROGRAMMER, reading=typo, at=b.at())
    assert str(refused.value).startswith("vitals: not a plausible reading")
    assert "pulse pressure of 280 mmHg, above 220 mmHg" in str(refused.value)
    assert s.snapshot() == before
    assert s.state is state


def test_a_dangerous_but_possible_reading_is_recorded() -> None:
    b, s = drive(State.INFUSING)
    low = dataclasses.replace(b.vitals(), spo2_percent=70, heart_rate_bpm=35)
    s.record_vitals(by=PROGRAMMER, reading=low, at=b.at())
    assert s.data.last_vitals is not None
    assert s.data.last_vitals.reading() == low
