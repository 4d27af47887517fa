"""The syringe-capacity rule: the prime and the volume to be infused must fit the syringe."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.syringe import CODE, RULE, InvalidSyringe, SyringeCapacity, syringe_fit
from safety.verdicts import Severity

SIXTY = SyringeCapacity("bd-plastic-60ml", 60_000)

volumes = st.integers(min_value=0, max_value=500_000)
capacities = st.integers(min_value=1, max_value=500_000)


def test_an_order_that_fits_exactly_passes() -> None:
    assert syringe_fit(58_000, 2_000, SIXTY) == []


def test_one_microlitre_too_many_is_refused_naming_volume_capacity_and_syringe() -> None:
    (verdict,) = syringe_fit(58_001, 2_000, SIXTY)
    assert verdict.code == CODE == "syringe.vtbi_above_capacity"
    assert verdict.rule == RULE == "order.syringe_capacity"
    assert verdict.severity is Severity.HARD
    assert verdict.message == (
        "The volume to be infused of 58.001 mL and the 2 mL prime need 60.001 mL, more than "
        "the 60 mL the bd-plastic-60ml syringe holds; use a syringe protocol whose dose "
        "fits, or a pump with a bigger reservoir."
    )
    assert (verdict.value, verdict.limit, verdict.unit) == ("60.001", "60", "mL")


def test_the_prime_counts_even_when_the_volume_alone_fits() -> None:
    assert syringe_fit(60_000, 0, SIXTY) == []
    assert [v.code for v in syringe_fit(60_000, 1, SIXTY)] == [CODE]


def test_a_pump_without_a_syringe_has_nothing_to_check() -> None:
    assert syringe_fit(10_000_000, 15_000, None) == []


@pytest.mark.parametrize(
    ("vtbi_ul", "prime_ul", "fragment"),
    [
        (-1, 0, "vtbi_ul must be a non-negative integer"),
        (0, -1, "prime_ul must be a non-negative integer"),
        (True, 0, "vtbi_ul"),
        (1.5, 0, "vtbi_ul"),
        (0, "2", "prime_ul"),
    ],
)
def test_volumes_that_are_not_an_order_are_refused(
    vtbi_ul: object, prime_ul: object, fragment: str
) -> None:
    with pytest.raises(InvalidSyringe, match=fragment):
        syringe_fit(vtbi_ul, prime_ul, SIXTY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "capacity", "fragment"),
    [
        ("", 60_000, "needs a name"),
        ("  ", 60_000, "needs a name"),
        (None, 60_000, "needs a name"),
        ("x", 0, "positive integer"),
        ("x", -5, "positive integer"),
        ("x", True, "positive integer"),
        ("x", 60.0, "positive integer"),
    ],
)
def test_a_syringe_needs_a_name_and_a_capacity(
    name: object, capacity: object, fragment: str
) -> None:
    with pytest.raises(InvalidSyringe, match=fragment):
        SyringeCapacity(name, capacity)  # type: ignore[arg-type]


@given(vtbi_ul=volumes, prime_ul=volumes, capacity_ul=capacities)
def test_refused_exactly_when_prime_and_volume_exceed_the_capacity(
    vtbi_ul: int, prime_ul: int, capacity_ul: int
) -> None:
    found = syringe_fit(vtbi_ul, prime_ul, SyringeCapacity("s", capacity_ul))
    if vtbi_ul + prime_ul > capacity_ul:
        (verdict,) = found
        assert verdict.severity is Severity.HARD
        assert verdict.rule == RULE
        assert " s syringe holds" in verdict.message
    else:
        assert found == []


@given(vtbi_ul=volumes, prime_ul=volumes, capacity_ul=capacities, more_ul=volumes)
def test_a_bigger_order_or_a_smaller_syringe_never_turns_a_refusal_into_a_pass(
    vtbi_ul: int, prime_ul: int, capacity_ul: int, more_ul: int
) -> None:
    syringe = SyringeCapacity("s", capacity_ul)
    if syringe_fit(vtbi_ul, prime_ul, syringe):
        assert syringe_fit(vtbi_ul + more_ul, prime_ul, syringe)
        assert syringe_fit(vtbi_ul, prime_ul + more_ul, syringe)
        smaller = SyringeCapacity("s", max(1, capacity_ul - more_ul))
        assert syringe_fit(vtbi_ul, prime_ul, smaller)


@given(vtbi_ul=volumes, prime_ul=volumes, capacity_ul=capacities)
def test_the_figures_are_the_sum_and_the_capacity_in_millilitres(
    vtbi_ul: int, prime_ul: int, capacity_ul: int
) -> None:
    for verdict in syringe_fit(vtbi_ul, prime_ul, SyringeCapacity("s", capacity_ul)):
        assert verdict.unit == "mL"
        assert verdict.value is not None
        assert verdict.limit is not None
        assert Decimal(verdict.value) * 1000 == vtbi_ul + prime_ul
        assert Decimal(verdict.limit) * 1000 == capacity_ul
        assert f"need {verdict.value} mL" in verdict.message
        assert f"the {verdict.limit} mL the s syringe" in verdict.message
