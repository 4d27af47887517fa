"""Syringes a New Era pump may be configured with: inside diameter and nominal capacity.

The diameter is what the pump turns into volume (``DIA``), so a wrong one is a wrong dose
by the square of the error: a configuration names a syringe from this table or gives
``syringe_diameter_mm`` itself, and the driver reads the value back from the pump.
Diameters are the B-D plastic syringe rows of the NE-1000 manual's syringe table
(Pub. #1200-01); a clinic using another make gives its diameter from that make's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from safety.syringe import SyringeCapacity


@dataclass(frozen=True, slots=True)
class Syringe:
    name: str
    inside_diameter_mm: Decimal
    capacity_ul: int


SYRINGES: dict[str, Syringe] = {
    s.name: s
    for s in (
        Syringe("bd-plastic-1ml", Decimal("4.699"), 1_000),
        Syringe("bd-plastic-3ml", Decimal("8.585"), 3_000),
        Syringe("bd-plastic-5ml", Decimal("11.99"), 5_000),
        Syringe("bd-plastic-10ml", Decimal("14.43"), 10_000),
        Syringe("bd-plastic-20ml", Decimal("19.05"), 20_000),
        Syringe("bd-plastic-30ml", Decimal("21.59"), 30_000),
        Syringe("bd-plastic-60ml", Decimal("26.59"), 60_000),
    )
}


def syringe(name: str) -> Syringe:
    """The table's entry, or KeyError naming the known syringes."""
    try:
        return SYRINGES[name]
    except KeyError:
        raise KeyError(
            f"unknown syringe {name!r}; the table has {', '.join(sorted(SYRINGES))}"
        ) from None


class SyringeCapacityError(ValueError):
    """The configured capacity is missing, doubled or not whole µL; ``key`` names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def configured_capacity_ul(
    name: str | None, diameter_mm: object | None, capacity_ml: object | None
) -> int | None:
    """The syringe's nominal capacity in µL, from the table or ``syringe_capacity_ml``.

    A table syringe has its capacity in the table, and a second figure beside it could only
    disagree: refused. A bare diameter says nothing about how much the syringe holds, and
    without that no order can be checked against it: the capacity is then required. None
    when neither syringe nor diameter is given (that is its own configuration error).
    """
    key = "syringe_capacity_ml"
    if name is not None:
        if capacity_ml is not None:
            raise SyringeCapacityError(
                key, f"the syringe table gives the capacity of {name!r}; leave {key} out"
            )
        entry = SYRINGES.get(name)
        return None if entry is None else entry.capacity_ul
    if diameter_mm is None:
        return None
    if capacity_ml is None:
        raise SyringeCapacityError(
            key,
            "a syringe given by syringe_diameter_mm needs its nominal capacity "
            f"({key}, e.g. 60 for a 60 mL syringe): orders are checked against it",
        )
    capacity_ul = Decimal(str(capacity_ml)) * 1000
    if capacity_ul != capacity_ul.to_integral_value():
        raise SyringeCapacityError(key, f"{capacity_ml} mL is finer than 1 µL (3 decimals)")
    return int(capacity_ul)


def loaded_syringe(
    name: str | None, diameter_mm: Decimal | None, capacity_ul: int | None
) -> SyringeCapacity | None:
    """What the kernel's syringe-capacity rule needs of a configured pump; None for a pump
    without a syringe. A syringe given by its diameter is named by it (``26.59 mm``)."""
    if capacity_ul is None:
        return None
    label = name if name is not None else f"{diameter_mm} mm"
    return SyringeCapacity(label, capacity_ul)
