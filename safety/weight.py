"""The dosing weight: which body weight a per-kg dose is multiplied by, and why.

The protocol names the basis explicitly because the choice changes the dose by up to a
third in obese patients. Ideal body weight is Devine's formula (50 kg men / 45.5 kg women
+ 2.3 kg per inch over 5 ft); adjusted body weight is ideal + 0.4 x (actual - ideal). When
the actual weight is below the ideal, both fall back to the actual weight: dosing a light
patient on a heavier notional weight would overdose them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from safety.protocol import WeightBasis
from safety.units import InputError


class MissingPatientData(InputError):
    """The weight basis needs height and sex, and one of them was not given."""


class ImplausibleHeight(InputError):
    """A height outside the range Devine's formula is used for in adults."""


class Sex(enum.Enum):
    """Sex as Devine's formula uses it."""

    MALE = "male"
    FEMALE = "female"


# Devine (1974): men 50 kg, women 45.5 kg, + 2.3 kg per inch above 60 in (152.4 cm).
_DEVINE_BASE_KG = {Sex.MALE: Decimal("50"), Sex.FEMALE: Decimal("45.5")}
_DEVINE_KG_PER_INCH = Decimal("2.3")
_FIVE_FEET_CM = Decimal("152.4")
_CM_PER_INCH = Decimal("2.54")
_ADJUSTMENT_FACTOR = Decimal("0.4")
# Outside this range the formula is not validated (and below ~130 cm it goes towards zero).
HEIGHT_MIN_CM = Decimal("130")
HEIGHT_MAX_CM = Decimal("230")


@dataclass(frozen=True, slots=True)
class DosingWeight:
    """The weight used for dosing, the basis asked for and what was actually applied.

    ``applied`` differs from ``basis`` only when the actual weight is below the ideal one
    (then the actual weight is used); ``ideal_kg`` is None for the actual basis.
    """

    kg: Decimal
    basis: WeightBasis
    applied: WeightBasis
    actual_kg: Decimal
    ideal_kg: Decimal | None


def ideal_body_weight_kg(height_cm: Decimal, sex: Sex) -> Decimal:
    """Devine's ideal body weight, for heights in [HEIGHT_MIN_CM, HEIGHT_MAX_CM]."""
    if not HEIGHT_MIN_CM <= height_cm <= HEIGHT_MAX_CM:
        raise ImplausibleHeight(
            f"height {height_cm} cm is outside {HEIGHT_MIN_CM}-{HEIGHT_MAX_CM} cm, where the "
            "ideal-body-weight formula is used; check the entry or dose on actual weight"
        )
    inches_over = (height_cm - _FIVE_FEET_CM) / _CM_PER_INCH
    return _DEVINE_BASE_KG[sex] + _DEVINE_KG_PER_INCH * inches_over


def dosing_weight(
    basis: WeightBasis, actual_kg: Decimal, height_cm: Decimal | None, sex: Sex | None
) -> DosingWeight:
    """The weight to multiply a per-kg dose by under ``basis``."""
    if basis is WeightBasis.ACTUAL:
        return DosingWeight(actual_kg, basis, WeightBasis.ACTUAL, actual_kg, None)
    if height_cm is None or sex is None:
        missing = " and ".join(
            name for name, v in (("height", height_cm), ("sex", sex)) if v is None
        )
        raise MissingPatientData(
            f"the protocol doses on {basis.value} body weight, which needs {missing}"
        )
    ideal_kg = ideal_body_weight_kg(height_cm, sex)
    if actual_kg <= ideal_kg:
        return DosingWeight(actual_kg, basis, WeightBasis.ACTUAL, actual_kg, ideal_kg)
    if basis is WeightBasis.IDEAL:
        return DosingWeight(ideal_kg, basis, WeightBasis.IDEAL, actual_kg, ideal_kg)
    adjusted_kg = ideal_kg + _ADJUSTMENT_FACTOR * (actual_kg - ideal_kg)
    return DosingWeight(adjusted_kg, basis, WeightBasis.ADJUSTED, actual_kg, ideal_kg)
