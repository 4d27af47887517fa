"""Units: every accepted spelling converts exactly; everything else is a specific InputError."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.units import (
    UNITS,
    BadNumber,
    Dimension,
    InputError,
    MissingUnit,
    UnknownUnit,
    WrongDimension,
    fmt,
    parse_quantity,
    symbols,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "dimension", "value"),
    [
        ("80kg", Dimension.BODY_WEIGHT, D("80")),
        ("80 kg", Dimension.BODY_WEIGHT, D("80")),
        ("  80.5 kg ", Dimension.BODY_WEIGHT, D("80.5")),
        ("176lb", Dimension.BODY_WEIGHT, D("79.83225712")),  # 176 x 0.45359237, exact
        ("1 lb", Dimension.BODY_WEIGHT, D("0.45359237")),
        ("180cm", Dimension.LENGTH, D("180")),
        ("1.8 m", Dimension.LENGTH, D("180.0")),
        ("70in", Dimension.LENGTH, D("177.80")),
        ("40min", Dimension.DURATION, D("40")),
        ("1.5h", Dimension.DURATION, D("90.0")),
        ("0.5mg/kg", Dimension.DOSE_PER_KG, D("0.5")),
        ("500µg/kg", Dimension.DOSE_PER_KG, D("0.500")),
        ("500\u03bcg/kg", Dimension.DOSE_PER_KG, D("0.500")),  # Greek mu, same meaning
        ("500mcg/kg", Dimension.DOSE_PER_KG, D("0.500")),
        ("0.35mg/kg/h", Dimension.DOSE_RATE_PER_KG, D("0.35")),
        ("0.01mg/kg/min", Dimension.DOSE_RATE_PER_KG, D("0.60")),
        ("5µg/kg/min", Dimension.DOSE_RATE_PER_KG, D("0.30")),
        ("5mcg/kg/min", Dimension.DOSE_RATE_PER_KG, D("0.30")),
        ("40mg", Dimension.MASS, D("40")),
        ("0.04g", Dimension.MASS, D("40.00")),
        ("100mL", Dimension.VOLUME, D("100")),
        ("100ml", Dimension.VOLUME, D("100")),
        ("150mL/h", Dimension.FLOW_RATE, D("150")),
        ("150ml/h", Dimension.FLOW_RATE, D("150")),
        (".5kg", Dimension.BODY_WEIGHT, D("0.5")),
        ("0kg", Dimension.BODY_WEIGHT, D("0")),
        ("999999999.999999kg", Dimension.BODY_WEIGHT, D("999999999.999999")),
    ],
)
def test_accepted_quantities_convert_exactly(
    text: str, dimension: Dimension, value: Decimal
) -> None:
    q = parse_quantity(text, dimension)
    assert q.value == value
    assert isinstance(q.value, Decimal)
    assert q.unit == dimension.value
    assert q.text == text.strip()


@pytest.mark.parametrize(
    ("text", "dimension", "error", "fragment"),
    [
        ("80", Dimension.BODY_WEIGHT, MissingUnit, "has no unit: write it with one of kg, lb"),
        ("80 ", Dimension.BODY_WEIGHT, MissingUnit, "has no unit"),
        ("80 stone", Dimension.BODY_WEIGHT, UnknownUnit, "'stone'"),
        ("80KG", Dimension.BODY_WEIGHT, UnknownUnit, "use one of kg, lb"),
        ("80 kgs", Dimension.BODY_WEIGHT, UnknownUnit, "'kgs'"),
        ("1e3kg", Dimension.BODY_WEIGHT, UnknownUnit, "'e3kg'"),
        ("40 min", Dimension.BODY_WEIGHT, WrongDimension, "is a duration, expected a body weight"),
        ("40 mL", Dimension.DURATION, WrongDimension, "is a volume, expected a duration"),
        ("0.5mg/kg/h", Dimension.DOSE_PER_KG, WrongDimension, "dose rate per kg"),
        ("NaN kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain non-negative number"),
        ("Infinity kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
        ("inf kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
        ("-80kg", Dimension.BODY_WEIGHT, BadNumber, "no sign"),
        ("+80kg", Dimension.BODY_WEIGHT, BadNumber, "no sign"),
        ("80,5kg", Dimension.BODY_WEIGHT, BadNumber, "has a decimal comma"),
        ("80,kg", Dimension.BODY_WEIGHT, UnknownUnit, "',kg'"),
        ("1.2.3kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
        ("\u0668\u0660kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),  # Arabic-Indic 80
        ("\uff18\uff10kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),  # full-width 80
        ("kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
        ("", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
        ("1234567890kg", Dimension.BODY_WEIGHT, BadNumber, "at most 9 digits"),
        ("1.1234567kg", Dimension.BODY_WEIGHT, BadNumber, "6 after the point"),
        ("8" * 41 + "kg", Dimension.BODY_WEIGHT, BadNumber, "longer than 40"),
        ("80.kg", Dimension.BODY_WEIGHT, BadNumber, "not a plain"),
    ],
)
def test_refused_quantities_name_the_problem(
    text: str, dimension: Dimension, error: type[InputError], fragment: str
) -> None:
    with pytest.raises(error, match=None) as info:
        parse_quantity(text, dimension)
    assert fragment in str(info.value)
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [80, Decimal(80), 80.0, None, b"80kg"])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(BadNumber, match="expected text"):
        parse_quantity(value, Dimension.BODY_WEIGHT)  # type: ignore[arg-type]


def test_every_dimension_has_its_canonical_unit_with_factor_one() -> None:
    for dimension in Dimension:
        assert dimension.value in symbols(dimension)
        assert UNITS[dimension.value].factor == 1


def test_pound_and_inch_are_the_exact_international_definitions() -> None:
    assert UNITS["lb"].factor == Decimal("0.45359237")
    assert UNITS["in"].factor == Decimal("2.54")


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (D("40"), 2, "40"),
        (D("40.50"), 2, "40.5"),
        (D("0.125"), 2, "0.12"),  # banker's rounding for display only
        (D("139.534883"), 4, "139.5349"),
        (D("-0.0004"), 4, "-0.0004"),
        (D("1E+2"), 2, "100"),
        (D("0"), 3, "0"),
        (D("40.4"), 0, "40"),
    ],
)
def test_fmt_is_fixed_point_without_trailing_zeros(value: Decimal, places: int, text: str) -> None:
    assert fmt(value, places) == text


@given(st.text(max_size=60), st.sampled_from(list(Dimension)))
def test_no_text_raises_anything_but_input_error(text: str, dimension: Dimension) -> None:
    try:
        q = parse_quantity(text, dimension)
    except InputError:
        return
    assert q.value.is_finite()
    assert q.value >= 0
    assert q.dimension is dimension


@given(
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from(sorted(UNITS)),
)
def test_round_trip_of_number_and_unit(number: Decimal, symbol: str) -> None:
    unit = UNITS[symbol]
    q = parse_quantity(f"{number:f}{symbol}", unit.dimension)
    assert q.value == number * unit.factor


def test_forty_characters_are_accepted_and_41_are_not() -> None:
    forty = "80" + " " * 36 + "kg"
    assert len(forty) == 40
    assert parse_quantity(forty, Dimension.BODY_WEIGHT).value == 80
    with pytest.raises(BadNumber, match="longer than 40"):
        parse_quantity("80" + " " * 37 + "kg", Dimension.BODY_WEIGHT)


def test_a_decimal_comma_is_named_with_the_point_form() -> None:
    with pytest.raises(BadNumber) as info:
        parse_quantity("82,5 kg", Dimension.BODY_WEIGHT)
    assert str(info.value) == (
        "'82,5 kg' has a decimal comma: write the number with a point, e.g. '82.5 kg'"
    )


@pytest.mark.parametrize(
    ("text", "dimension", "message"),
    [
        ("80", Dimension.BODY_WEIGHT, "'80' has no unit: write it with one of kg, lb"),
        ("40 mL", Dimension.DURATION, "'40 mL' is a volume, expected a duration (min, h)"),
        ("80 st", Dimension.BODY_WEIGHT, "unit 'st' in '80 st' is not accepted: use one of kg, lb"),
        (
            "-1kg",
            Dimension.BODY_WEIGHT,
            "'-1kg' is not a plain non-negative number followed by a unit (e.g. '80kg'; no sign, "
            "exponent, comma or NaN; at most 9 digits before and 6 after the point)",
        ),
    ],
)
def test_whole_sentences(text: str, dimension: Dimension, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_quantity(text, dimension)
    assert str(info.value) == message


def test_non_text_names_its_type() -> None:
    with pytest.raises(BadNumber, match="expected text such as '80kg', got int"):
        parse_quantity(80, Dimension.BODY_WEIGHT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"), [(D("100"), "100"), (D("0.10"), "0.1"), (D("10.005"), "10")]
)
def test_fmt_trims_only_fraction_zeros(value: Decimal, text: str) -> None:
    assert fmt(value) == text
