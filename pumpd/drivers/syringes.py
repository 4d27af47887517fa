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
