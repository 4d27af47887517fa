"""The double-check's weight re-entry: the second nurse types the weight again, in kg or lb.

The dose is computed from the programmed weight; the re-entry must be that weight, to
within 0.05 kg after conversion (docs/session.md, "Weight re-entry"). A change of unit is
legitimate, a real disagreement (0.1 kg and up, a kg/lb mix-up) is refused, and the refusal
shows the figures in the unit typed and in kg.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpd.session import CommandRefused, Session, State
from safety.guards import WEIGHT_TOLERANCE_KG, weight_reentry

from .conftest import CHECKER, Bedside

LB = Decimal("0.45359237")


def programmed(weight_kg: str) -> tuple[Bedside, Session]:
    b = Bedside()
    return b, b.open(Decimal(weight_kg))


@pytest.mark.parametrize(
    ("weight_kg", "typed"),
    [
        ("82", "180.78 lb"),  # 82.0004 kg: the same weight in pounds
        ("82", "180.8lb"),  # 82.0098 kg
        ("82", "82.00 kg"),
        ("82", "82.05 kg"),  # at the tolerance
        ("81.65", "180 lb"),  # 81.6466 kg
    ],
)
def test_the_same_weight_in_either_unit_is_accepted(weight_kg: str, typed: str) -> None:
    b, s = programmed(weight_kg)
    s.confirm(by=CHECKER, weight=typed, at=b.at())
    assert s.state is State.VERIFIED


@pytest.mark.parametrize(
    ("weight_kg", "typed", "sentence"),
    [
        (
            "82",
            "181 lb",
            "The checked weight of 181 lb (82.1 kg) differs from the programmed 82 kg "
            "(180.78 lb) by 0.1 kg, more than the 0.05 kg allowed",
        ),
        (
            "80",
            "80.1 kg",
            "The checked weight of 80.1 kg differs from the programmed 80 kg by 0.1 kg, "
            "more than the 0.05 kg allowed",
        ),
        (
            "80",
            "176 lb",
            "The checked weight of 176 lb (79.83 kg) differs from the programmed 80 kg "
            "(176.37 lb) by 0.17 kg",
        ),
        (
            "80",
            "80.050001 kg",  # the difference is shown to the place that exceeds the limit
            "differs from the programmed 80 kg by 0.050001 kg, more than the 0.05 kg allowed",
        ),
        (
            "80",
            "80 lb",  # the kg figure typed as pounds: a 2.2-fold error
            "The checked weight of 80 lb (36.29 kg) differs from the programmed 80 kg (176.37 lb)",
        ),
    ],
)
def test_a_different_weight_is_refused_with_both_figures(
    weight_kg: str, typed: str, sentence: str
) -> None:
    b, s = programmed(weight_kg)
    before = s.snapshot()
    with pytest.raises(CommandRefused) as refused:
        s.confirm(by=CHECKER, weight=typed, at=b.at())
    assert refused.value.codes == ("double_check.weight_mismatch",)
    assert sentence in refused.value.verdicts[0].message
    assert s.snapshot() == before
    assert s.state is State.PROGRAMMED


def test_two_weights_that_round_alike_are_never_shown_alike() -> None:
    # 82.0004 kg programmed from pounds; 82.06 kg typed: shown to the places that differ.
    recorded = Decimal("180.78") * LB
    [verdict] = weight_reentry(recorded, "82.06 kg")
    assert "82.06 kg differs from the programmed 82 kg by 0.06 kg" in verdict.message


WEIGHTS_KG = st.decimals(min_value=40, max_value=150, places=2)


@given(WEIGHTS_KG)
def test_the_weight_converted_to_pounds_to_two_places_is_always_accepted(kg: Decimal) -> None:
    in_lb = (kg / LB).quantize(Decimal("0.01"))
    assert weight_reentry(kg, f"{in_lb} lb") == []
    assert weight_reentry(kg, f"{kg} kg") == []


@given(WEIGHTS_KG, st.sampled_from([Decimal("0.1"), Decimal("-0.1"), Decimal(1), Decimal(-10)]))
def test_a_weight_off_by_a_tenth_or_more_is_always_refused(kg: Decimal, off: Decimal) -> None:
    assert weight_reentry(kg, f"{kg + off} kg")[0].code == "double_check.weight_mismatch"
    assert weight_reentry(kg, f"{kg} lb")[0].code == "double_check.weight_mismatch"


@given(WEIGHTS_KG, st.decimals(min_value=0, max_value=999, places=2))
def test_accepted_exactly_within_the_tolerance(kg: Decimal, typed: Decimal) -> None:
    found = weight_reentry(kg, f"{typed} kg")
    assert (found == []) == (abs(typed - kg) <= WEIGHT_TOLERANCE_KG)
