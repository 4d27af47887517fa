"""The syringe-capacity rule: a syringe pump can give only what its syringe holds.

A bag protocol asks for 100 mL and more; a syringe holds 60 mL at most. An order whose
volume does not fit would run the syringe empty mid-infusion: the pump stalls or stops,
the patient gets part of the dose, and the record claims the rest. So the order is refused
before anything is written to the pump, in a sentence naming the volume, the capacity and
the syringe.

The prime counts too. A syringe pump has one reservoir, the syringe it holds: its prime
(New Era ``PUR``) pushes fluid out of that syringe, whatever the protocol primes with, so
the syringe must hold the priming volume *and* the volume to be infused. A line primed by
hand from another syringe is counted all the same: the rule may refuse an order that would
just have fitted, never pass one that does not.

The capacity is the syringe's nominal one (a 60 mL syringe: 60 000 µL), from the syringe
table or from the pump's configuration. The caller passes ``None`` for a pump that has no
syringe (a volumetric pump fed from a bag): the rule then has nothing to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from safety.units import fmt
from safety.verdicts import Severity, Verdict

RULE = "order.syringe_capacity"
CODE = "syringe.vtbi_above_capacity"


class InvalidSyringe(ValueError):
    """A syringe description the rule cannot judge with (no name, no capacity)."""


@dataclass(frozen=True, slots=True)
class SyringeCapacity:
    """The syringe loaded in a pump: what the nurse knows it by, and what it holds."""

    name: str
    """The syringe table's name (``bd-plastic-60ml``) or the configured description."""
    capacity_ul: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidSyringe(f"a syringe needs a name, got {self.name!r}")
        cap = self.capacity_ul
        if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
            raise InvalidSyringe(f"capacity_ul must be a positive integer of µL, got {cap!r}")


def _ml(volume_ul: int) -> str:
    return fmt(Decimal(volume_ul) / 1000, 3)


def syringe_fit(vtbi_ul: int, prime_ul: int, syringe: SyringeCapacity | None) -> list[Verdict]:
    """``[]`` when the syringe holds the prime and the volume to be infused; else the
    hard verdict of rule ``order.syringe_capacity`` with the figures in mL.

    ``vtbi_ul`` is the volume the pump is asked to infuse (an adjustment's new total),
    ``prime_ul`` the protocol's priming volume. Negative volumes are not an order and are
    refused as such rather than allowed to shrink the sum.
    """
    if syringe is None:
        return []
    for name, value in (("vtbi_ul", vtbi_ul), ("prime_ul", prime_ul)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidSyringe(f"{name} must be a non-negative integer of µL, got {value!r}")
    needed_ul = vtbi_ul + prime_ul
    if needed_ul <= syringe.capacity_ul:
        return []
    return [
        Verdict(
            CODE,
            Severity.HARD,
            f"The volume to be infused of {_ml(vtbi_ul)} mL and the {_ml(prime_ul)} mL prime "
            f"need {_ml(needed_ul)} mL, more than the {_ml(syringe.capacity_ul)} mL the "
            f"{syringe.name} syringe holds; use a syringe protocol whose dose fits, or a "
            "pump with a bigger reservoir.",
            RULE,
            _ml(needed_ul),
            _ml(syringe.capacity_ul),
            "mL",
        )
    ]
