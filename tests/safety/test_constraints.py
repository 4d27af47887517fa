"""The constraint chain: order-independent, never loosens, records every rule consulted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.constraints import ConstraintError, Direction, ceiling, floor

D = Decimal
offers = st.lists(
    st.decimals(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False, places=2),
    min_size=1,
    max_size=8,
)


def test_ceiling_keeps_the_smallest_offer_and_names_the_deciding_rule() -> None:
    c = ceiling("rate", "mL/h")
    c = c.tighten(D(200), rule="protocol.hard_max", reason="protocol")
    c = c.tighten(D(150), rule="pump.max", reason="pump range")
    c = c.tighten(D(175), rule="clinic.cap", reason="clinic cap")
    assert c.value == D(150)
    assert [s.rule for s in c.steps] == ["protocol.hard_max", "pump.max", "clinic.cap"]
    assert [s.tightened for s in c.steps] == [True, True, False]
    assert [s.rule for s in c.deciding] == ["pump.max"]
    assert c.explain() == (
        "rate at most 150 mL/h: protocol.hard_max 200 mL/h; pump.max 150 mL/h (deciding); "
        "clinic.cap 175 mL/h"
    )


def test_floor_keeps_the_largest_offer() -> None:
    f = floor("duration", "min").tighten(D(30), rule="a", reason="x")
    f = f.tighten(D(40), rule="b", reason="y").tighten(D(35), rule="c", reason="z")
    assert f.value == D(40)
    assert f.direction is Direction.FLOOR
    assert f.allows(D(40))
    assert not f.allows(D("39.99"))
    assert f.clamp(D(10)) == D(40)
    assert f.clamp(D(50)) == D(50)
    assert f.explain().startswith("duration at least 40 min: ")


def test_unbounded_chain_allows_everything_and_says_so() -> None:
    c = ceiling("rate", "mL/h")
    assert c.value is None
    assert c.allows(D(10**9))
    assert c.clamp(D(10**9)) == D(10**9)
    assert c.deciding == ()
    assert c.explain() == "rate: no limit set"


def test_ceiling_boundaries_are_inclusive() -> None:
    c = ceiling("rate", "mL/h").tighten(D(150), rule="r", reason="x")
    assert c.allows(D(150))
    assert not c.allows(D("150.01"))
    assert c.clamp(D(151)) == D(150)


def test_ties_are_all_deciding() -> None:
    c = ceiling("rate", "mL/h").tighten(D(100), rule="a", reason="x")
    c = c.tighten(D(100), rule="b", reason="y")
    assert [s.rule for s in c.deciding] == ["a", "b"]
    assert [s.tightened for s in c.steps] == [True, False]


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity"), D("-Infinity"), 1.5, "10"])
def test_non_finite_or_non_decimal_offer_is_refused_and_changes_nothing(bad: object) -> None:
    c = ceiling("rate", "mL/h").tighten(D(100), rule="a", reason="x")
    with pytest.raises(ConstraintError, match="finite Decimal"):
        c.tighten(bad, rule="bad", reason="y")  # type: ignore[arg-type]
    assert c.value == D(100)
    assert len(c.steps) == 1


@given(offers, offers)
def test_ceiling_never_loosens_and_is_order_independent(a: list[Decimal], b: list[Decimal]) -> None:
    c = ceiling("q", "u")
    previous: Decimal | None = None
    for i, v in enumerate(a + b):
        c = c.tighten(v, rule=f"r{i}", reason="")
        assert c.value is not None
        assert previous is None or c.value <= previous
        previous = c.value
    assert c.value == min(a + b)
    rev = ceiling("q", "u")
    for i, v in enumerate(reversed(a + b)):
        rev = rev.tighten(v, rule=f"r{i}", reason="")
    assert rev.value == c.value


@given(offers)
def test_floor_never_loosens(a: list[Decimal]) -> None:
    f = floor("q", "u")
    for i, v in enumerate(a):
        before = f.value
        f = f.tighten(v, rule=f"r{i}", reason="")
        assert f.value is not None
        assert before is None or f.value >= before
    assert f.value == max(a)


def test_floor_tie_does_not_count_as_tightening_and_reasons_are_kept() -> None:
    f = floor("duration", "min").tighten(D(30), rule="a", reason="protocol hard minimum")
    f = f.tighten(D(30), rule="b", reason="clinic floor")
    assert [s.tightened for s in f.steps] == [True, False]
    assert [s.reason for s in f.steps] == ["protocol hard minimum", "clinic floor"]


def test_error_names_rule_and_quantity() -> None:
    with pytest.raises(ConstraintError) as info:
        ceiling("rate", "mL/h").tighten(D("NaN"), rule="pump.max", reason="")
    assert str(info.value) == (
        "rule 'pump.max' offered Decimal('NaN') for rate: a bound must be a finite Decimal"
    )
