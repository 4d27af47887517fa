"""The capability rules: pumpd's own stop at the plan's volume, the watchdog for live use,
and a plan the pump can carry out."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safety.capability import (
    READ_AHEAD_FLOOR,
    InvalidAbilities,
    PumpAbilities,
    VolumeStop,
    live_use,
    next_read_in_s,
    program_fit,
    running_past_volume_is_fault,
    volume_stop_role,
)
from safety.verdicts import Severity

abilities = st.builds(
    PumpAbilities,
    stops_at_vtbi=st.booleans(),
    has_comm_watchdog=st.booleans(),
    has_kvo=st.booleans(),
    can_prime=st.booleans(),
)
periods = st.floats(min_value=0.001, max_value=10.0, allow_nan=False)
rates = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1200), places=2)
remaining = st.integers(min_value=1, max_value=1_000_000)

SYRINGE = PumpAbilities(stops_at_vtbi=False, has_comm_watchdog=True, has_kvo=False, can_prime=True)
NO_WATCHDOG = PumpAbilities(
    stops_at_vtbi=True, has_comm_watchdog=False, has_kvo=True, can_prime=True
)
FULL = PumpAbilities(stops_at_vtbi=True, has_comm_watchdog=True, has_kvo=True, can_prime=True)


# -- the stop at the plan's volume ---------------------------------------------------------


@given(abilities)
def test_pumpds_stop_is_primary_exactly_when_the_pump_has_none(a: PumpAbilities) -> None:
    role = volume_stop_role(a)
    assert (role is VolumeStop.PRIMARY) == (not a.stops_at_vtbi)
    # Running past the volume is the pump's fault only when it should have stopped itself.
    assert running_past_volume_is_fault(a) == a.stops_at_vtbi


@given(periods, remaining, rates)
def test_a_pump_with_its_own_stop_is_read_at_the_poll_period(
    period_s: float, left_ul: int, rate: Decimal
) -> None:
    assert next_read_in_s(FULL, period_s, left_ul, rate) == period_s


@given(periods, remaining, rates)
def test_the_primary_stop_reads_when_the_volume_is_due_never_later(
    period_s: float, left_ul: int, rate: Decimal
) -> None:
    wait_s = next_read_in_s(SYRINGE, period_s, left_ul, rate)
    due_s = float(Decimal(left_ul) * 3600 / (rate * 1000))
    assert period_s / READ_AHEAD_FLOOR <= wait_s <= period_s
    # Never later than the moment the plan's volume is due (to float rounding), unless the
    # floor holds it back: a pump is never read more often than ten times per poll.
    assert wait_s <= max(due_s, period_s / READ_AHEAD_FLOOR) * (1 + 1e-9)
    if due_s >= period_s:
        assert wait_s == period_s


@given(periods, st.integers(max_value=0), rates)
def test_with_nothing_left_or_no_flow_the_poll_period_holds(
    period_s: float, left_ul: int, rate: Decimal
) -> None:
    assert next_read_in_s(SYRINGE, period_s, left_ul, rate) == period_s
    assert next_read_in_s(SYRINGE, period_s, 1000, Decimal(0)) == period_s


def test_a_due_volume_within_the_poll_is_read_when_due() -> None:
    # 36 mL/h is 10 µL/s: 5 µL left are due in 0.5 s, inside a 1 s poll.
    assert next_read_in_s(SYRINGE, 1.0, 5, Decimal(36)) == pytest.approx(0.5)
    assert next_read_in_s(FULL, 1.0, 5, Decimal(36)) == 1.0
    # 0.1 µL/s: due far later than one poll.
    assert next_read_in_s(SYRINGE, 1.0, 5, Decimal("0.36")) == 1.0


@pytest.mark.parametrize("period", [0.0, -1.0, math.inf, math.nan])
def test_a_bad_poll_period_is_a_caller_bug(period: float) -> None:
    with pytest.raises(InvalidAbilities, match="poll_period_s"):
        next_read_in_s(SYRINGE, period, 5, Decimal(1))


@pytest.mark.parametrize("rate", [Decimal("NaN"), Decimal("Infinity"), 1.0])
def test_a_bad_rate_is_a_caller_bug(rate: object) -> None:
    with pytest.raises(InvalidAbilities, match="rate_ml_h"):
        next_read_in_s(SYRINGE, 1.0, 5, rate)  # type: ignore[arg-type]


def test_abilities_are_plain_bools() -> None:
    with pytest.raises(InvalidAbilities, match="has_kvo"):
        PumpAbilities(stops_at_vtbi=True, has_comm_watchdog=True, has_kvo=1, can_prime=True)  # type: ignore[arg-type]


# -- the watchdog for live use -------------------------------------------------------------


@given(abilities, st.booleans(), st.booleans())
def test_live_use_without_a_watchdog_needs_the_sites_acceptance(
    a: PumpAbilities, simulation: bool, accepted: bool
) -> None:
    found = live_use(a, simulation=simulation, no_watchdog_accepted=accepted)
    refused = [v for v in found if v.severity is Severity.HARD]
    assert bool(refused) == (not a.has_comm_watchdog and not simulation and not accepted)
    noted = [v.code for v in found if v.severity is Severity.NOTE]
    assert noted == (
        ["pump.no_watchdog_accepted"]
        if not a.has_comm_watchdog and not simulation and accepted
        else []
    )


def test_the_refusal_names_the_key_that_accepts_the_risk() -> None:
    (verdict,) = live_use(NO_WATCHDOG, simulation=False, no_watchdog_accepted=False)
    assert verdict.code == "pump.no_watchdog"
    assert "accept_no_pump_watchdog = true" in verdict.message
    assert verdict.rule == "pump.watchdog_required"
    assert live_use(NO_WATCHDOG, simulation=True, no_watchdog_accepted=False) == []
    assert live_use(FULL, simulation=False, no_watchdog_accepted=False) == []


# -- a plan the pump can carry out ---------------------------------------------------------


@given(abilities, st.decimals(min_value=0, max_value=50, places=2), st.integers(0, 20_000))
def test_kvo_and_prime_only_on_a_pump_that_has_them(
    a: PumpAbilities, kvo: Decimal, prime_ul: int
) -> None:
    codes = [v.code for v in program_fit(a, kvo, prime_ul)]
    assert ("pump.no_kvo" in codes) == (kvo > 0 and not a.has_kvo)
    assert ("pump.no_priming" in codes) == (prime_ul > 0 and not a.can_prime)
    assert all(v.severity is Severity.HARD for v in program_fit(a, kvo, prime_ul))


def test_the_refusals_say_what_to_do() -> None:
    bare = PumpAbilities(
        stops_at_vtbi=False, has_comm_watchdog=True, has_kvo=False, can_prime=False
    )
    kvo, prime = program_fit(bare, Decimal("2.5"), 3000)
    assert kvo.message.startswith("The protocol keeps the vein open at 2.5 mL/h")
    assert prime.message.startswith("The protocol primes 3000 µL with the pump")
    assert program_fit(bare, Decimal(0), 0) == []
