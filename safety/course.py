"""Course rules: a session is judged against the patient's earlier sessions, not alone.

Ketamine for depression is given as a series (e.g. six infusions over two to three weeks);
the hazards are sessions too close together and cumulative exposure over a window. Every
earlier session counts — aborted ones too — because drug was given; only the planned-series
position ("infusion 3 of 6") counts completed sessions, since that is what the clinic plans
with.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from safety.verdicts import Severity, Verdict

RULE = "start.course"


class InvalidCourseHistory(ValueError):
    """A prior-session record or a time that cannot be trusted as input."""


class CourseRules(BaseModel):
    """A protocol's course policy: spacing, window limits and the planned series."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_interval_h: Decimal = Field(gt=0, le=24 * 365)
    window_days: int = Field(strict=True, gt=0, le=366)
    max_sessions_in_window: int = Field(strict=True, gt=0, le=1000)
    max_cumulative_dose_mg_per_kg_in_window: Decimal = Field(gt=0, le=1000)
    planned_series: int = Field(strict=True, gt=0, le=1000)
    planned_span_days: int = Field(strict=True, gt=0, le=3660)

    @field_validator("min_interval_h", "max_cumulative_dose_mg_per_kg_in_window", mode="before")
    @classmethod
    def _no_binary_float(cls, value: Any) -> Any:
        if isinstance(value, float | bool):
            raise ValueError(
                f"must be a Decimal or an integer, not {type(value).__name__} {value!r} "
                "(parse TOML with parse_float=Decimal)"
            )
        return value

    @model_validator(mode="after")
    def _series_fits(self) -> Self:
        needed_h = self.min_interval_h * (self.planned_series - 1)
        if needed_h > self.planned_span_days * 24:
            raise ValueError(
                f"planned_span_days ({self.planned_span_days}) cannot hold planned_series "
                f"({self.planned_series}) at min_interval_h ({self.min_interval_h})"
            )
        return self


class Outcome(enum.Enum):
    """How an earlier session ended."""

    COMPLETED = "completed"
    ABORTED = "aborted"


def _check_utc(name: str, value: object) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() != dt.timedelta(0):
        raise InvalidCourseHistory(f"{name} must be an aware UTC datetime, got {value!r}")


def _check_dose(name: str, value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidCourseHistory(f"{name} must be a finite Decimal ≥ 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PriorSession:
    """One earlier session of the same patient, as the audit log records it.

    ``dose_mg`` and ``dose_mg_per_kg`` are what was delivered (for an aborted session, the
    part that ran), not what was ordered.
    """

    started_at: dt.datetime
    dose_mg: Decimal
    dose_mg_per_kg: Decimal
    outcome: Outcome

    def __post_init__(self) -> None:
        _check_utc("started_at", self.started_at)
        _check_dose("dose_mg", self.dose_mg)
        _check_dose("dose_mg_per_kg", self.dose_mg_per_kg)
        if not isinstance(self.outcome, Outcome):
            raise InvalidCourseHistory(f"outcome must be an Outcome, got {self.outcome!r}")


@dataclass(frozen=True, slots=True)
class CourseAssessment:
    """The course verdicts and where this session sits in the planned series."""

    verdicts: tuple[Verdict, ...]
    infusion_number: int
    planned_series: int

    @property
    def position(self) -> str:
        return f"infusion {self.infusion_number} of {self.planned_series}"


def _hours(delta: dt.timedelta) -> Decimal:
    return Decimal(int(delta.total_seconds())) / 3600


def evaluate_course(
    rules: CourseRules,
    prior: Sequence[PriorSession],
    now: dt.datetime,
    planned_dose_mg_per_kg: Decimal,
) -> CourseAssessment:
    """Judge a session about to start at ``now`` against ``prior`` sessions.

    Interval, window count and cumulative dose are hard limits: they protect against
    cumulative exposure and cannot be overridden at the bedside. Going past the planned
    series is soft (a prescriber may extend a course, with a reason).
    """
    _check_utc("now", now)
    _check_dose("planned_dose_mg_per_kg", planned_dose_mg_per_kg)
    verdicts: list[Verdict] = []
    future = [p for p in prior if p.started_at > now]
    if future:
        verdicts.append(
            Verdict(
                "course.history.future",
                Severity.HARD,
                f"Earlier sessions dated after now ({now.isoformat()}): {len(future)}; "
                "check the clocks and the record before starting.",
                RULE,
            )
        )
    past = [p for p in prior if p.started_at <= now]
    if past:
        last = max(p.started_at for p in past)
        since_h = _hours(now - last)
        if since_h < rules.min_interval_h:
            verdicts.append(
                Verdict(
                    "course.interval.too_short",
                    Severity.HARD,
                    f"The last session started {since_h:.1f} h ago; the protocol requires "
                    f"at least {rules.min_interval_h} h between sessions.",
                    RULE,
                )
            )
    window_start = now - dt.timedelta(days=rules.window_days)
    in_window = [p for p in past if p.started_at > window_start]
    if len(in_window) + 1 > rules.max_sessions_in_window:
        verdicts.append(
            Verdict(
                "course.window.too_many_sessions",
                Severity.HARD,
                f"This would be session {len(in_window) + 1} in {rules.window_days} days; "
                f"the protocol allows at most {rules.max_sessions_in_window}.",
                RULE,
            )
        )
    cumulative = sum((p.dose_mg_per_kg for p in in_window), Decimal(0)) + planned_dose_mg_per_kg
    if cumulative > rules.max_cumulative_dose_mg_per_kg_in_window:
        verdicts.append(
            Verdict(
                "course.window.cumulative_dose",
                Severity.HARD,
                f"Cumulative dose over {rules.window_days} days would be {cumulative} mg/kg; "
                f"the protocol allows at most {rules.max_cumulative_dose_mg_per_kg_in_window} "
                "mg/kg.",
                RULE,
            )
        )
    series_start = now - dt.timedelta(days=rules.planned_span_days)
    completed = [p for p in past if p.outcome is Outcome.COMPLETED and p.started_at > series_start]
    number = len(completed) + 1
    if number > rules.planned_series:
        verdicts.append(
            Verdict(
                "course.series.beyond_plan",
                Severity.SOFT,
                f"This would be infusion {number}; the planned series is "
                f"{rules.planned_series} in {rules.planned_span_days} days.",
                RULE,
            )
        )
    else:
        verdicts.append(
            Verdict(
                "course.series.position",
                Severity.NOTE,
                f"Infusion {number} of {rules.planned_series}.",
                RULE,
            )
        )
    return CourseAssessment(tuple(verdicts), number, rules.planned_series)
