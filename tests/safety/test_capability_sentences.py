"""The capability rules' exact words and the read brought forward at small rates.

A nurse or an auditor reads these sentences as the reason a pump was refused or a risk was
accepted: each is held to the letter, with its code, severity and rule.
"""

from __future__ import annotations

from decimal import Decimal

from safety.capability import PumpAbilities, live_use, next_read_in_s, program_fit
from safety.verdicts import Severity

NOTHING = PumpAbilities(
    stops_at_vtbi=False, has_comm_watchdog=False, has_kvo=False, can_prime=False
)


def test_an_accepted_missing_watchdog_is_a_note_in_these_words() -> None:
    [v] = live_use(NOTHING, simulation=False, no_watchdog_accepted=True)
    assert (v.code, v.severity, v.rule) == (
        "pump.no_watchdog_accepted",
        Severity.NOTE,
        "pump.watchdog_required",
    )
    assert v.message == (
        "This pump has no watchdog of its own: if pumpd or its link fails it goes on "
        "delivering; the site accepted this risk in its configuration."
    )


def test_a_missing_watchdog_is_refused_in_these_words() -> None:
    [v] = live_use(NOTHING, simulation=False, no_watchdog_accepted=False)
    assert (v.code, v.severity, v.rule) == (
        "pump.no_watchdog",
        Severity.HARD,
        "pump.watchdog_required",
    )
    assert v.message == (
        "This pump has no watchdog of its own: if pumpd or its link fails it goes on "
        "delivering, so it is not used for a patient unless the site accepts that risk "
        "(accept_no_pump_watchdog = true for this pump)."
    )


def test_kvo_and_prime_refusals_in_these_words() -> None:
    kvo, prime = program_fit(NOTHING, Decimal("5"), 15000)
    assert (kvo.code, kvo.severity, kvo.rule) == (
        "pump.no_kvo",
        Severity.HARD,
        "pump.capability_fit",
    )
    assert kvo.message == (
        "The protocol keeps the vein open at 5 mL/h after the volume, and this pump has no "
        "keep-vein-open rate; use a pump that has one."
    )
    assert (prime.code, prime.severity, prime.rule) == (
        "pump.no_priming",
        Severity.HARD,
        "pump.capability_fit",
    )
    assert prime.message == (
        "The protocol primes 15000 µL with the pump, and this pump cannot prime; use a pump "
        "that can."
    )


def test_a_small_rate_still_brings_the_read_forward_when_pumpd_stops_the_pump() -> None:
    # 1 mL/h is 0.2778 µL/s: 1 µL left is due in 3.6 s, before a 10 s poll.
    assert next_read_in_s(NOTHING, 10.0, 1, Decimal(1)) == 3.6
    assert next_read_in_s(NOTHING, 10.0, 1, Decimal("0.5")) == 7.2
