"""A chain of limits in which each rule can only tighten, and records why (after AndroidAPS).

Several rules bound the same quantity (the protocol's hard limit, the pump's range, a
clinic cap, a vitals-driven reduction). Taking them in any order must give the same,
most restrictive answer, and a reviewer must be able to see which rules were consulted
and which one decided. A rule cannot loosen a bound by construction: :meth:`tighten`
keeps the stricter of the current and the offered value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from decimal import Decimal


class ConstraintError(ValueError):
    """A rule offered a value that cannot be a bound (NaN or infinite)."""


class Direction(enum.Enum):
    """Whether the chain bounds a quantity from above (a ceiling) or below (a floor)."""

    CEILING = "max"
    FLOOR = "min"


@dataclass(frozen=True, slots=True)
class Step:
    """One rule's contribution: the bound it offered and whether that tightened the chain."""

    rule: str
    reason: str
    offered: Decimal
    tightened: bool


@dataclass(frozen=True, slots=True)
class Constraint:
    """A bound on one named quantity; ``value`` None means no rule has bounded it yet."""

    quantity: str
    unit: str
    direction: Direction
    value: Decimal | None = None
    steps: tuple[Step, ...] = ()

    def tighten(self, offered: Decimal, *, rule: str, reason: str) -> Constraint:
        """The chain after ``rule`` offers ``offered``; never looser than before."""
        if not isinstance(offered, Decimal) or not offered.is_finite():
            raise ConstraintError(
                f"rule {rule!r} offered {offered!r} for {self.quantity}: a bound must be a "
                "finite Decimal"
            )
        if self.value is None:
            stricter = True
        elif self.direction is Direction.CEILING:
            stricter = offered < self.value
        else:
            stricter = offered > self.value
        step = Step(rule=rule, reason=reason, offered=offered, tightened=stricter)
        return replace(self, value=offered if stricter else self.value, steps=(*self.steps, step))

    @property
    def deciding(self) -> tuple[Step, ...]:
        """Every rule whose offer equals the final bound (ties all count as deciding)."""
        return tuple(s for s in self.steps if s.offered == self.value)

    def allows(self, amount: Decimal) -> bool:
        """True when ``amount`` is within the bound (inclusive); an unbounded chain allows all."""
        if self.value is None:
            return True
        if self.direction is Direction.CEILING:
            return amount <= self.value
        return amount >= self.value

    def clamp(self, amount: Decimal) -> Decimal:
        """``amount`` moved inside the bound, for rules that reduce rather than refuse."""
        if self.value is None or self.allows(amount):
            return amount
        return self.value

    def explain(self) -> str:
        """One line for the nurse and the audit log: the bound and every rule consulted."""
        if self.value is None:
            return f"{self.quantity}: no limit set"
        word = "at most" if self.direction is Direction.CEILING else "at least"
        parts = [
            f"{s.rule} {s.offered} {self.unit}{' (deciding)' if s.offered == self.value else ''}"
            for s in self.steps
        ]
        return f"{self.quantity} {word} {self.value} {self.unit}: " + "; ".join(parts)


def ceiling(quantity: str, unit: str) -> Constraint:
    """An empty upper-bound chain for ``quantity``."""
    return Constraint(quantity=quantity, unit=unit, direction=Direction.CEILING)


def floor(quantity: str, unit: str) -> Constraint:
    """An empty lower-bound chain for ``quantity``."""
    return Constraint(quantity=quantity, unit=unit, direction=Direction.FLOOR)
