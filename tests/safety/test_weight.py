"""Dosing weight: Devine's ideal weight, adjusted weight, and the fall-back to actual."""

from __future__ import annotations

from decimal import Decimal

import pytest

from safety.protocol import WeightBasis
from safety.units import InputError
from safety.weight import (
    HEIGHT_MAX_CM,
    HEIGHT_MIN_CM,
    ImplausibleHeight,
    MissingPatientData,
    Sex,
    dosing_weight,
    ideal_body_weight_kg,
)

D = Decimal
# 5 ft 10 in = 177.8 cm: Devine gives 50 + 2.3 x 10 = 73 kg for men, 45.5 + 23 = 68.5 for women.
H_5FT10 = D("177.8")
H_5FT = D("152.4")


@pytest.mark.parametrize(
    ("height_cm", "sex", "ideal_kg"),
    [
        (H_5FT10, Sex.MALE, D("73")),
        (H_5FT10, Sex.FEMALE, D("68.5")),
        (H_5FT, Sex.MALE, D("50")),
        (H_5FT, Sex.FEMALE, D("45.5")),
        (D("162.56"), Sex.FEMALE, D("54.7")),  # 5 ft 4 in
        (D("147.32"), Sex.MALE, D("45.4")),  # 4 ft 10 in: the line continues below 5 ft
    ],
)
def test_devine_ideal_body_weight(height_cm: Decimal, sex: Sex, ideal_kg: Decimal) -> None:
    assert ideal_body_weight_kg(height_cm, sex) == ideal_kg


@pytest.mark.parametrize(
    ("height_cm", "ok"),
    [
        (HEIGHT_MIN_CM, True),
        (HEIGHT_MIN_CM - D("0.01"), False),
        (HEIGHT_MAX_CM, True),
        (HEIGHT_MAX_CM + D("0.01"), False),
    ],
)
def test_height_range_boundaries(height_cm: Decimal, ok: bool) -> None:
    if ok:
        assert ideal_body_weight_kg(height_cm, Sex.MALE) > 0
    else:
        with pytest.raises(ImplausibleHeight, match="outside 130-230 cm"):
            ideal_body_weight_kg(height_cm, Sex.MALE)


def test_actual_basis_ignores_height_and_sex() -> None:
    dw = dosing_weight(WeightBasis.ACTUAL, D("120"), None, None)
    assert (dw.kg, dw.basis, dw.applied, dw.actual_kg, dw.ideal_kg) == (
        D("120"),
        WeightBasis.ACTUAL,
        WeightBasis.ACTUAL,
        D("120"),
        None,
    )


@pytest.mark.parametrize(
    ("basis", "actual_kg", "kg", "applied"),
    [
        (WeightBasis.IDEAL, D("120"), D("73"), WeightBasis.IDEAL),
        (WeightBasis.ADJUSTED, D("120"), D("91.8"), WeightBasis.ADJUSTED),  # 73 + 0.4 x 47
        (WeightBasis.IDEAL, D("73.01"), D("73"), WeightBasis.IDEAL),
        (WeightBasis.ADJUSTED, D("73.01"), D("73.004"), WeightBasis.ADJUSTED),
        # at or below ideal the actual weight is used: never dose on a heavier notional weight
        (WeightBasis.IDEAL, D("73"), D("73"), WeightBasis.ACTUAL),
        (WeightBasis.IDEAL, D("60"), D("60"), WeightBasis.ACTUAL),
        (WeightBasis.ADJUSTED, D("60"), D("60"), WeightBasis.ACTUAL),
    ],
)
def test_ideal_and_adjusted_bases(
    basis: WeightBasis, actual_kg: Decimal, kg: Decimal, applied: WeightBasis
) -> None:
    dw = dosing_weight(basis, actual_kg, H_5FT10, Sex.MALE)
    assert dw.kg == kg
    assert dw.applied is applied
    assert dw.basis is basis
    assert dw.ideal_kg == D("73")
    assert dw.kg <= dw.actual_kg


@pytest.mark.parametrize("basis", [WeightBasis.IDEAL, WeightBasis.ADJUSTED])
@pytest.mark.parametrize(
    ("height", "sex", "missing"),
    [
        (None, Sex.MALE, "needs height"),
        (H_5FT10, None, "needs sex"),
        (None, None, "height and sex"),
    ],
)
def test_bases_that_need_height_and_sex_refuse_without_them(
    basis: WeightBasis, height: Decimal | None, sex: Sex | None, missing: str
) -> None:
    assert basis.needs_height_and_sex
    with pytest.raises(MissingPatientData, match=missing) as info:
        dosing_weight(basis, D("80"), height, sex)
    assert isinstance(info.value, InputError)
    assert basis.value in str(info.value)


def test_actual_basis_needs_neither() -> None:
    assert not WeightBasis.ACTUAL.needs_height_and_sex
