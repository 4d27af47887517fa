"""A closed set of units with exact conversion factors, for quantities a nurse types.

A general units library was rejected (pint parses "unit" as micronit and costs ~0.4 s to
start). Here every unit the clinic may type is listed with its dimension and an exact
Decimal factor to one canonical unit per dimension; anything else is refused. A bare number
is refused too: "80" could be kg or lb, a 2.2-fold error, and that is the hazard this module
exists to stop.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal


class InputError(ValueError):
    """Input that cannot be turned into a plan; nothing was computed or changed.

    This is the one documented input error of the dose calculator: every refusal of bad
    input (unit, number, missing patient data) is a subclass.
    """


class MissingUnit(InputError):
    """A number without a unit."""


class UnknownUnit(InputError):
    """A unit outside the closed set."""


class WrongDimension(InputError):
    """A known unit of the wrong kind, e.g. "40 mL" where a duration was asked for."""


class BadNumber(InputError):
    """Text that is not a plain, finite, non-negative decimal number."""


class Dimension(enum.Enum):
    """What a quantity measures; the value is the canonical unit every factor leads to."""

    BODY_WEIGHT = "kg"
    LENGTH = "cm"
    DURATION = "min"
    DOSE_PER_KG = "mg/kg"
    DOSE_RATE_PER_KG = "mg/kg/h"
    MASS = "mg"
    VOLUME = "mL"
    FLOW_RATE = "mL/h"


@dataclass(frozen=True, slots=True)
class Unit:
    symbol: str
    dimension: Dimension
    factor: Decimal  # multiply a value in this unit by factor to get the canonical unit


def _unit(symbol: str, dimension: Dimension, factor: str) -> Unit:
    return Unit(symbol, dimension, Decimal(factor))


# The international avoirdupois pound is defined as exactly 0.45359237 kg; an inch as 2.54 cm.
UNITS: dict[str, Unit] = {
    u.symbol: u
    for u in (
        _unit("kg", Dimension.BODY_WEIGHT, "1"),
        _unit("lb", Dimension.BODY_WEIGHT, "0.45359237"),
        _unit("cm", Dimension.LENGTH, "1"),
        _unit("m", Dimension.LENGTH, "100"),
        _unit("in", Dimension.LENGTH, "2.54"),
        _unit("min", Dimension.DURATION, "1"),
        _unit("h", Dimension.DURATION, "60"),
        _unit("mg/kg", Dimension.DOSE_PER_KG, "1"),
        _unit("µg/kg", Dimension.DOSE_PER_KG, "0.001"),
        _unit("mcg/kg", Dimension.DOSE_PER_KG, "0.001"),
        _unit("mg/kg/h", Dimension.DOSE_RATE_PER_KG, "1"),
        _unit("mg/kg/min", Dimension.DOSE_RATE_PER_KG, "60"),
        _unit("µg/kg/min", Dimension.DOSE_RATE_PER_KG, "0.06"),
        _unit("mcg/kg/min", Dimension.DOSE_RATE_PER_KG, "0.06"),
        _unit("mg", Dimension.MASS, "1"),
        _unit("g", Dimension.MASS, "1000"),
        _unit("mL", Dimension.VOLUME, "1"),
        _unit("ml", Dimension.VOLUME, "1"),
        _unit("mL/h", Dimension.FLOW_RATE, "1"),
        _unit("ml/h", Dimension.FLOW_RATE, "1"),
    )
}

# Greek mu (U+03BC) and micro sign (U+00B5) look identical; accept both, store one.
_MU = "\u03bc"
_MICRO = "\u00b5"
_MAX_TEXT = 40
# ASCII digits only (\d and str.isdigit() accept Arabic-Indic and other digits); at most 9
# integer and 6 fraction digits, which keeps every product inside Decimal's 28 digits.
_DECIMAL_COMMA = re.compile(r",[0-9]", re.ASCII)
_QUANTITY = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?|\.[0-9]{1,6})(?![0-9.])\s*(.*)", re.ASCII)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed quantity: the value in the canonical unit, and what was typed."""

    value: Decimal
    dimension: Dimension
    text: str

    @property
    def unit(self) -> str:
        return self.dimension.value


def parse_quantity(text: str, dimension: Dimension) -> Quantity:
    """Parse ``"80kg"``, ``"176 lb"``, ``"0.5 mg/kg"`` into the canonical unit of ``dimension``.

    Refuses (with a specific :class:`InputError`): non-text, over-long text, a sign, an
    exponent, NaN/Infinity, non-ASCII digits, a missing unit, an unknown unit, and a unit
    of another dimension.
    """
    if not isinstance(text, str):
        raise BadNumber(f"expected text such as '80kg', got {type(text).__name__}")
    stripped = text.strip()
    if len(stripped) > _MAX_TEXT:
        raise BadNumber(f"{stripped[:_MAX_TEXT]!r}… is longer than {_MAX_TEXT} characters")
    match = _QUANTITY.fullmatch(stripped)
    if match is None:
        raise BadNumber(
            f"{stripped!r} is not a plain non-negative number followed by a unit "
            f"(e.g. '80kg'; no sign, exponent, comma or NaN; at most 9 digits before "
            "and 6 after the point)"
        )
    number, symbol = match.group(1), match.group(2).replace(_MU, _MICRO)
    if _DECIMAL_COMMA.match(symbol):
        raise BadNumber(
            f"{stripped!r} has a decimal comma: write the number with a point, "
            f"e.g. {stripped.replace(',', '.', 1)!r}"
        )
    if not symbol:
        raise MissingUnit(
            f"{stripped!r} has no unit: write it with one of {', '.join(symbols(dimension))}"
        )
    unit = UNITS.get(symbol)
    if unit is None:
        raise UnknownUnit(
            f"unit {symbol!r} in {stripped!r} is not accepted: use one of "
            f"{', '.join(symbols(dimension))}"
        )
    if unit.dimension is not dimension:
        raise WrongDimension(
            f"{stripped!r} is a {unit.dimension.name.lower().replace('_', ' ')}, "
            f"expected a {dimension.name.lower().replace('_', ' ')} "
            f"({', '.join(symbols(dimension))})"
        )
    return Quantity(value=Decimal(number) * unit.factor, dimension=dimension, text=stripped)


def symbols(dimension: Dimension) -> tuple[str, ...]:
    """The accepted spellings for ``dimension``, for error messages and --help."""
    return tuple(s for s, u in UNITS.items() if u.dimension is dimension)


def fmt(value: Decimal, places: int = 2) -> str:
    """A Decimal for a nurse: fixed places, no exponent, trailing zeros trimmed."""
    text = f"{value.quantize(Decimal(1).scaleb(-places)):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
