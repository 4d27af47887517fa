"""Order checks: every figure of a computed plan against the protocol's hard and soft limits.

Each check returns verdicts a nurse can act on: hard (refused, no override), soft (needs an
override reason, and a second person where the protocol says so), notes. Rounding to the
wire resolution moves figures slightly, so minimum limits are checked against the lowest
figure the pump will produce and maximum limits against the highest; an order cannot slip
past a limit through rounding. The override a soft verdict needs is returned as data
(:class:`OverrideRequirement`) and checked by :func:`check_override`, so the session that
starts the infusion can enforce it without re-deriving the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from safety.protocol import Band, Protocol
from safety.units import fmt
from safety.verdicts import Severity, Verdict, refused


@dataclass(frozen=True, slots=True)
class Checked:
    """One quantity to check: the lowest and highest figure it can take after rounding."""

    quantity: str  # machine name used in codes: "dose_per_kg"
    label: str  # nurse name: "dose"
    unit: str
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class OrderFigures:
    """What an order check needs of a plan (kept separate so plan.py can import this)."""

    weight_kg: Decimal  # the patient's actual weight (the weight limit is on the patient)
    dose_per_kg: Checked
    dose_rate: Checked
    total_dose: Checked
    rate: Checked
    duration: Checked
    rate_wire_ml_h: Decimal
    vtbi_ul: int


def _band(item: Checked, band: Band, rule: str) -> list[Verdict]:
    """Hard and soft verdicts of one quantity; a hard violation hides the soft one."""
    u = item.unit
    found: list[Verdict] = []
    if item.high > band.hard_max:
        found.append(
            Verdict(
                f"{item.quantity}.above_hard_max",
                Severity.HARD,
                f"The {item.label} of {fmt(item.high)} {u} is above the hard limit of "
                f"{fmt(band.hard_max)} {u}; it cannot be given.",
                rule,
            )
        )
    elif band.soft_max is not None and item.high > band.soft_max:
        found.append(
            Verdict(
                f"{item.quantity}.above_soft_max",
                Severity.SOFT,
                f"The {item.label} of {fmt(item.high)} {u} is above the usual maximum of "
                f"{fmt(band.soft_max)} {u}; it needs an override with a reason.",
                rule,
            )
        )
    if band.hard_min is not None and item.low < band.hard_min:
        found.append(
            Verdict(
                f"{item.quantity}.below_hard_min",
                Severity.HARD,
                f"The {item.label} of {fmt(item.low)} {u} is below the hard limit of "
                f"{fmt(band.hard_min)} {u}; it cannot be given.",
                rule,
            )
        )
    elif band.soft_min is not None and item.low < band.soft_min:
        found.append(
            Verdict(
                f"{item.quantity}.below_soft_min",
                Severity.SOFT,
                f"The {item.label} of {fmt(item.low)} {u} is below the usual minimum of "
                f"{fmt(band.soft_min)} {u}; it needs an override with a reason.",
                rule,
            )
        )
    return found


def check_order(protocol: Protocol, figures: OrderFigures) -> tuple[Verdict, ...]:
    """Every limit verdict of an order under ``protocol``; an empty tuple is a clean order."""
    limits = protocol.limits
    weight = Checked("weight", "patient weight", "kg", figures.weight_kg, figures.weight_kg)
    verdicts = _band(weight, limits.weight_kg, "order.weight_kg")
    verdicts += _band(figures.dose_per_kg, limits.dose_mg_per_kg, "order.dose_mg_per_kg")
    if limits.dose_rate_mg_per_kg_h is not None:
        verdicts += _band(
            figures.dose_rate, limits.dose_rate_mg_per_kg_h, "order.dose_rate_mg_per_kg_h"
        )
    verdicts += _band(figures.total_dose, limits.total_dose_mg, "order.total_dose_mg")
    verdicts += _band(figures.rate, limits.rate_ml_h, "order.rate_ml_h")
    verdicts += _band(figures.duration, limits.duration_min, "order.duration_min")
    if figures.rate_wire_ml_h <= 0 or figures.vtbi_ul <= 0:
        verdicts.append(
            Verdict(
                "wire.below_resolution",
                Severity.HARD,
                f"The order rounds to {fmt(figures.rate_wire_ml_h)} mL/h and "
                f"{figures.vtbi_ul} µL, below what the pump can deliver (0.01 mL/h, 1 µL).",
                "order.wire_resolution",
            )
        )
    return tuple(verdicts)


@dataclass(frozen=True, slots=True)
class OverrideRequirement:
    """What an override must cover before a plan with soft verdicts may start."""

    codes: tuple[str, ...]
    second_person: bool

    @property
    def required(self) -> bool:
        return bool(self.codes)

    def as_dict(self) -> dict[str, object]:
        return {
            "required": self.required,
            "codes": list(self.codes),
            "second_person": self.second_person,
        }


def override_requirement(protocol: Protocol, verdicts: Sequence[Verdict]) -> OverrideRequirement:
    """The soft codes an override must name; none when the order is refused or clean."""
    if refused(verdicts):
        return OverrideRequirement(codes=(), second_person=False)
    codes = tuple(v.code for v in verdicts if v.severity is Severity.SOFT)
    return OverrideRequirement(
        codes=codes, second_person=bool(codes) and protocol.soft_override_second_person
    )


MIN_REASON_CHARS = 10


@dataclass(frozen=True, slots=True)
class Override:
    """A nurse's override of soft verdicts: who, why, and which codes it answers."""

    by: str
    reason: str
    codes: frozenset[str]
    second_by: str | None = None


def check_override(
    requirement: OverrideRequirement, override: Override | None
) -> tuple[Verdict, ...]:
    """Hard verdicts for every way ``override`` falls short; () when it is enough.

    An override cannot lift a hard verdict: those never reach a requirement.
    """
    rule = "order.override"
    if not requirement.required:
        return ()
    if override is None:
        return (
            Verdict(
                "override.missing",
                Severity.HARD,
                f"This order is outside the usual limits ({', '.join(requirement.codes)}); "
                "an override with a reason is needed before it can start.",
                rule,
            ),
        )
    found: list[Verdict] = []
    if not override.by.strip():
        found.append(
            Verdict(
                "override.identity_missing",
                Severity.HARD,
                "The override does not say who made it.",
                rule,
            )
        )
    if len(override.reason.strip()) < MIN_REASON_CHARS:
        found.append(
            Verdict(
                "override.reason_missing",
                Severity.HARD,
                f"The override reason must say why, in at least {MIN_REASON_CHARS} characters.",
                rule,
            )
        )
    uncovered = [c for c in requirement.codes if c not in override.codes]
    if uncovered:
        found.append(
            Verdict(
                "override.not_covering",
                Severity.HARD,
                f"The override does not cover {', '.join(uncovered)}.",
                rule,
            )
        )
    if requirement.second_person:
        second = (override.second_by or "").strip()
        if not second:
            found.append(
                Verdict(
                    "override.second_person_missing",
                    Severity.HARD,
                    "This protocol needs a second person to confirm the override.",
                    rule,
                )
            )
        elif second.casefold() == override.by.strip().casefold():
            found.append(
                Verdict(
                    "override.second_person_same",
                    Severity.HARD,
                    "The second person confirming the override must be someone else.",
                    rule,
                )
            )
    return tuple(found)
