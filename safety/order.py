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
                fmt(item.high),
                fmt(band.hard_max),
                u,
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
                fmt(item.high),
                fmt(band.soft_max),
                u,
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
                fmt(item.low),
                fmt(band.hard_min),
                u,
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
                fmt(item.low),
                fmt(band.soft_min),
                u,
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
    """What an override must cover before a plan with soft verdicts may start.

    ``second_person`` is True when at least one code needs a second person's approval;
    ``reason_only`` lists the codes for which the protocol accepts the overriding nurse's
    reason alone (a low battery at the start is the usual one).
    """

    codes: tuple[str, ...]
    second_person: bool
    reason_only: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return bool(self.codes)

    def as_dict(self) -> dict[str, object]:
        return {
            "required": self.required,
            "codes": list(self.codes),
            "second_person": self.second_person,
            "reason_only": list(self.reason_only),
        }


def override_requirement(protocol: Protocol, verdicts: Sequence[Verdict]) -> OverrideRequirement:
    """The soft codes an override must name; none when the order is refused or clean.

    A second person is needed when the protocol says so for soft overrides and at least
    one of the codes is not among the protocol's ``soft_override_reason_only`` codes.
    """
    if refused(verdicts):
        return OverrideRequirement(codes=(), second_person=False)
    codes = tuple(v.code for v in verdicts if v.severity is Severity.SOFT)
    allowed = set(protocol.soft_override_reason_only)
    reason_only = tuple(c for c in codes if c in allowed)
    needs_second = any(c not in allowed for c in codes)
    return OverrideRequirement(
        codes=codes,
        second_person=needs_second and protocol.soft_override_second_person,
        reason_only=reason_only,
    )


MIN_REASON_CHARS = 10
RULE_OVERRIDE = "order.override"


@dataclass(frozen=True, slots=True)
class Override:
    """A nurse's override of soft verdicts: who, why, and which codes it answers.

    ``second_by`` is the second person who approved it, None until someone has.
    """

    by: str
    reason: str
    codes: frozenset[str]
    second_by: str | None = None


def check_override_reason(
    requirement: OverrideRequirement, override: Override | None
) -> tuple[Verdict, ...]:
    """The overriding nurse's part: who, why (in words), and every soft code covered.

    Enough for an order to be programmed with its override *pending approval*; the start
    (or the adjustment reaching the pump) still needs :func:`check_override` in full.
    """
    if not requirement.required:
        return ()
    if override is None:
        return (
            Verdict(
                "override.missing",
                Severity.HARD,
                f"This order is outside the usual limits ({', '.join(requirement.codes)}); "
                "an override with a reason is needed before it can start.",
                RULE_OVERRIDE,
            ),
        )
    found: list[Verdict] = []
    if not override.by.strip():
        found.append(
            Verdict(
                "override.identity_missing",
                Severity.HARD,
                "The override does not say who made it.",
                RULE_OVERRIDE,
            )
        )
    if len(override.reason.strip()) < MIN_REASON_CHARS:
        found.append(
            Verdict(
                "override.reason_missing",
                Severity.HARD,
                f"The override reason must say why, in at least {MIN_REASON_CHARS} characters.",
                RULE_OVERRIDE,
            )
        )
    uncovered = [c for c in requirement.codes if c not in override.codes]
    if uncovered:
        found.append(
            Verdict(
                "override.not_covering",
                Severity.HARD,
                f"The override does not cover {', '.join(uncovered)}.",
                RULE_OVERRIDE,
            )
        )
    return tuple(found)


def check_approval(requirement: OverrideRequirement, override: Override) -> tuple[Verdict, ...]:
    """The second person's part: someone, and someone other than the overriding nurse.

    () when the protocol needs no second person for these codes.
    """
    if not requirement.second_person:
        return ()
    second = (override.second_by or "").strip()
    if not second:
        return (
            Verdict(
                "override.second_person_missing",
                Severity.HARD,
                "This protocol needs a second person to confirm the override.",
                RULE_OVERRIDE,
            ),
        )
    if second.casefold() == override.by.strip().casefold():
        return (
            Verdict(
                "override.second_person_same",
                Severity.HARD,
                "The second person confirming the override must be someone else.",
                RULE_OVERRIDE,
            ),
        )
    return ()


def check_override(
    requirement: OverrideRequirement, override: Override | None
) -> tuple[Verdict, ...]:
    """Hard verdicts for every way ``override`` falls short; () when it is enough.

    An override cannot lift a hard verdict: those never reach a requirement.
    """
    found = check_override_reason(requirement, override)
    if override is None:
        return found
    return found + check_approval(requirement, override)


def approval_pending(requirement: OverrideRequirement, override: Override | None) -> bool:
    """True when the nurse's part is complete and only a second person's approval is missing."""
    return (
        override is not None
        and not check_override_reason(requirement, override)
        and requirement.second_person
        and not (override.second_by or "").strip()
    )


def approval_missing(pending: Sequence[Verdict]) -> Verdict:
    """The refusal of a step that would act on soft verdicts nobody has approved yet.

    Names every pending verdict with its value and limit, so the second nurse knows what
    the approval is for.
    """
    listed = "; ".join(f"{v.code} ({_figures(v)})" for v in pending)
    return Verdict(
        "override.approval_missing",
        Severity.HARD,
        f"The override of {listed} needs a second person's approval first.",
        RULE_OVERRIDE,
    )


def _figures(verdict: Verdict) -> str:
    if verdict.value is None or verdict.limit is None:
        return verdict.message.rstrip(".")
    return f"{verdict.value} {verdict.unit}, limit {verdict.limit} {verdict.unit}"
