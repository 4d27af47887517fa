"""The treatment-protocol model: what a clinic allows, as data a reviewer can read.

A protocol file is clinic policy. The model refuses a file that is ambiguous or
self-contradictory rather than guess: unknown keys (often a typo that would silently drop a
limit), numbers without a unit in their key, binary floats, soft limits outside hard limits,
a minimum above a maximum, defaults outside the limits. Every numeric key carries its unit in
its name (``bag_volume_ml``); the model is frozen because a released protocol is immutable.
"""

from __future__ import annotations

import enum
import itertools
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from safety.course import CourseRules
from safety.vitals import VitalsRules

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _reject_float(value: Any) -> Any:
    if isinstance(value, float | bool):
        raise ValueError(
            f"must be a Decimal or an integer, not {type(value).__name__} {value!r} "
            "(parse TOML with parse_float=Decimal)"
        )
    return value


def _finite_non_negative(value: Decimal) -> Decimal:
    if not value.is_finite() or value < 0:
        raise ValueError(f"must be a finite number >= 0, got {value}")
    return value


# Every protocol number: exact (no binary float), finite, not negative.
Num = Annotated[Decimal, BeforeValidator(_reject_float), AfterValidator(_finite_non_negative)]


class _DecimalModel(BaseModel):
    model_config = _FROZEN


class WeightBasis(enum.Enum):
    """Which body weight the dose per kg is multiplied by."""

    ACTUAL = "actual"
    IDEAL = "ideal"  # Devine
    ADJUSTED = "adjusted"  # ideal + 0.4 x (actual - ideal)

    @property
    def needs_height_and_sex(self) -> bool:
        return self is not WeightBasis.ACTUAL


class Band(_DecimalModel):
    """Hard and soft limits on one quantity; inclusive, a None bound is not checked.

    ``hard_max`` is required: every quantity that can hurt has a ceiling.
    """

    hard_min: Num | None = None
    soft_min: Num | None = None
    soft_max: Num | None = None
    hard_max: Num

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        order = [
            ("hard_min", self.hard_min),
            ("soft_min", self.soft_min),
            ("soft_max", self.soft_max),
            ("hard_max", self.hard_max),
        ]
        present = [(k, v) for k, v in order if v is not None]
        for (low_key, low), (high_key, high) in itertools.pairwise(present):
            if low > high:
                raise ValueError(
                    f"{low_key} ({low}) is above {high_key} ({high}): limits must satisfy "
                    "hard_min <= soft_min <= soft_max <= hard_max"
                )
        return self

    def contains_hard(self, value: Decimal) -> bool:
        return (self.hard_min is None or value >= self.hard_min) and value <= self.hard_max

    def contains_soft(self, value: Decimal) -> bool:
        return (self.soft_min is None or value >= self.soft_min) and (
            self.soft_max is None or value <= self.soft_max
        )


class TotalDose(_DecimalModel):
    """A total dose per kg given over a duration (ketamine for depression: 0.5 mg/kg/40 min)."""

    mode: Literal["total_per_kg"]
    default_mg_per_kg: Num = Field(gt=0)
    default_duration_min: Num = Field(gt=0)


class ContinuousDose(_DecimalModel):
    """A dose rate per kg per hour held for a duration (chronic pain, several hours)."""

    mode: Literal["rate_per_kg_h"]
    default_mg_per_kg_h: Num = Field(gt=0)
    default_duration_min: Num = Field(gt=0)


class FixedBag(_DecimalModel):
    """The dose is diluted to a fixed volume; the concentration follows from the dose."""

    kind: Literal["fixed_bag"]
    bag_volume_ml: Num = Field(gt=0)


class FixedConcentration(_DecimalModel):
    """A stock solution of fixed strength; the volume follows from the dose."""

    kind: Literal["fixed_concentration"]
    concentration_mg_per_ml: Num = Field(gt=0)


class Limits(BaseModel):
    """Per-quantity bands. ``dose_rate_mg_per_kg_h`` is required in continuous mode."""

    model_config = _FROZEN

    dose_mg_per_kg: Band
    total_dose_mg: Band
    rate_ml_h: Band
    duration_min: Band
    weight_kg: Band
    dose_rate_mg_per_kg_h: Band | None = None


class Priming(_DecimalModel):
    """How the line is filled before connection.

    With ``primed_with_drug`` the line holds drug solution when connected, so the first
    ``volume_ml`` the patient receives is drug and the plan asks for that much extra in the
    container; otherwise the line holds carrier and the same volume of drug stays in the line
    at the end unless it is flushed.
    """

    volume_ml: Num = Field(ge=0)
    rate_ml_h: Num = Field(gt=0)
    primed_with_drug: bool


class Pause(_DecimalModel):
    """How long an infusion may stay paused: a reminder ladder, then a forced stop."""

    reminder_after_min: Num = Field(gt=0)
    reminder_interval_min: Num = Field(gt=0)
    stop_after_min: Num = Field(gt=0)

    @model_validator(mode="after")
    def _reminder_before_stop(self) -> Self:
        if self.reminder_after_min > self.stop_after_min:
            raise ValueError(
                f"reminder_after_min ({self.reminder_after_min}) is above stop_after_min "
                f"({self.stop_after_min}): the nurse must be reminded before the stop"
            )
        return self


class Protocol(BaseModel):
    """One released version of a treatment protocol."""

    model_config = _FROZEN

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)
    version: int = Field(strict=True, ge=1)
    title: str = Field(min_length=1)
    drug: str = Field(min_length=1)
    indication: str = Field(min_length=1)
    weight_basis: WeightBasis
    dose: Annotated[TotalDose | ContinuousDose, Field(discriminator="mode")]
    preparation: Annotated[FixedBag | FixedConcentration, Field(discriminator="kind")]
    limits: Limits
    priming: Priming
    kvo_rate_ml_h: Num = Field(ge=0)
    pause: Pause
    vitals: VitalsRules
    observation_min: int = Field(strict=True, ge=0)
    discharge_checklist: tuple[str, ...] = Field(min_length=1)
    discharge_vitals_max_age_min: int = Field(default=15, strict=True, gt=0, le=24 * 60)
    """How old the vital signs recorded during the observation may be at discharge."""
    double_check_required: bool
    soft_override_second_person: bool
    soft_override_reason_only: tuple[
        Annotated[str, Field(pattern=r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$", max_length=120)], ...
    ] = ()
    """Soft verdict codes for which the overriding nurse's reason is enough (no second
    person), e.g. ``start.pump.battery_low``; every other soft code follows
    ``soft_override_second_person``."""
    course: CourseRules

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        limits = self.limits
        duration = self.dose.default_duration_min
        _default_within("dose.default_duration_min", duration, limits.duration_min)
        if isinstance(self.dose, TotalDose):
            _default_within(
                "dose.default_mg_per_kg", self.dose.default_mg_per_kg, limits.dose_mg_per_kg
            )
        else:
            if limits.dose_rate_mg_per_kg_h is None:
                raise ValueError(
                    "limits.dose_rate_mg_per_kg_h is required when dose.mode is rate_per_kg_h"
                )
            _default_within(
                "dose.default_mg_per_kg_h",
                self.dose.default_mg_per_kg_h,
                limits.dose_rate_mg_per_kg_h,
            )
        if isinstance(self.preparation, FixedBag):
            rate = self.preparation.bag_volume_ml * 60 / duration
            if not limits.rate_ml_h.contains_hard(rate):
                raise ValueError(
                    f"preparation.bag_volume_ml ({self.preparation.bag_volume_ml} mL) over "
                    f"dose.default_duration_min ({duration} min) runs at {rate:.2f} mL/h, "
                    f"outside the hard limits of limits.rate_ml_h"
                )
        if self.kvo_rate_ml_h > limits.rate_ml_h.hard_max:
            raise ValueError(
                f"kvo_rate_ml_h ({self.kvo_rate_ml_h}) is above limits.rate_ml_h.hard_max "
                f"({limits.rate_ml_h.hard_max})"
            )
        return self

    @property
    def key(self) -> str:
        """``id@version``, the name a session records next to the content hash."""
        return f"{self.id}@{self.version}"


def _default_within(key: str, value: Decimal, band: Band) -> None:
    if not (band.contains_hard(value) and band.contains_soft(value)):
        raise ValueError(
            f"{key} ({value}) lies outside its soft or hard limits: a default must be "
            "acceptable without an override"
        )
