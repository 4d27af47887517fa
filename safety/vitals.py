"""Vital-sign rules: which readings a protocol needs, how fresh, and the three threshold bands.

A protocol states three bands. ``refuse_start`` is the narrowest: a patient outside it is
not started. ``pause`` is wider: a reading outside it pauses a running infusion. ``stop`` is
the widest: a reading outside it stops the infusion. The bands must nest (start inside
pause inside stop), otherwise a patient could be started straight into a pause, or a stop
could fire before the pause that should have warned; the models refuse such files with the
offending key named.

Bounds are inclusive: a reading equal to a limit is within it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safety.verdicts import Severity, Verdict

VitalKind = Literal["bp", "hr", "spo2", "rr"]

# measure -> (the vital it belongs to, unit for messages, plausible upper bound, label)
MEASURES: dict[str, tuple[VitalKind, str, int, str]] = {
    "systolic_mmhg": ("bp", "mmHg", 300, "systolic pressure"),
    "diastolic_mmhg": ("bp", "mmHg", 250, "diastolic pressure"),
    "heart_rate_bpm": ("hr", "bpm", 300, "heart rate"),
    "spo2_percent": ("spo2", "%", 100, "SpO2"),
    "resp_rate_per_min": ("rr", "/min", 100, "respiratory rate"),
}

_Bound = Annotated[int | None, Field(default=None, strict=True, ge=0, le=300)]
_Spo2 = Annotated[int | None, Field(default=None, strict=True, ge=0, le=100)]


class InvalidVitals(ValueError):
    """A vitals reading that cannot be trusted as input (wrong type, implausible, naive time)."""


class VitalsThreshold(BaseModel):
    """One band of acceptable readings; a None bound is not checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    systolic_mmhg_min: _Bound = None
    systolic_mmhg_max: _Bound = None
    diastolic_mmhg_min: _Bound = None
    diastolic_mmhg_max: _Bound = None
    heart_rate_bpm_min: _Bound = None
    heart_rate_bpm_max: _Bound = None
    spo2_percent_min: _Spo2 = None
    resp_rate_per_min_min: _Bound = None
    resp_rate_per_min_max: _Bound = None

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Self:
        for measure in MEASURES:
            low = getattr(self, f"{measure}_min", None)
            high = getattr(self, f"{measure}_max", None)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{measure}_min ({low}) is above {measure}_max ({high})")
        return self

    def bounds(self) -> Iterable[tuple[str, str, int]]:
        """(measure, "min"|"max", limit) for every bound that is set."""
        for measure in MEASURES:
            for side in ("min", "max"):
                limit = getattr(self, f"{measure}_{side}", None)
                if limit is not None:
                    yield measure, side, limit


def _wider_or_equal(side: str, outer: int, inner: int) -> bool:
    return outer <= inner if side == "min" else outer >= inner


class VitalsRules(BaseModel):
    """A protocol's vital-sign policy: what is measured, how often, and the three bands."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: tuple[VitalKind, ...] = Field(min_length=1)
    baseline_max_age_min: int = Field(strict=True, gt=0, le=24 * 60)
    interval_min: int = Field(strict=True, gt=0, le=24 * 60)
    overdue_grace_min: int = Field(strict=True, ge=0, le=24 * 60)
    refuse_start: VitalsThreshold
    pause: VitalsThreshold
    stop: VitalsThreshold

    @model_validator(mode="after")
    def _bands_nest(self) -> Self:
        if len(set(self.required)) != len(self.required):
            raise ValueError(f"required lists a vital twice: {list(self.required)}")
        bands = {"refuse_start": self.refuse_start, "pause": self.pause, "stop": self.stop}
        for band_name, band in bands.items():
            for measure, side, _ in band.bounds():
                kind = MEASURES[measure][0]
                if kind not in self.required:
                    raise ValueError(
                        f"{band_name}.{measure}_{side} checks {kind!r}, which is not in required"
                    )
        # pause ⊇ refuse_start and stop ⊇ pause, key by key.
        for outer_name, inner_name in (("pause", "refuse_start"), ("stop", "pause")):
            outer, inner = bands[outer_name], bands[inner_name]
            for measure, side, outer_limit in outer.bounds():
                key = f"{measure}_{side}"
                inner_limit = getattr(inner, key)
                if inner_limit is None:
                    raise ValueError(
                        f"{outer_name}.{key} is set but {inner_name}.{key} is not: the "
                        f"{inner_name} band must check everything the {outer_name} band checks"
                    )
                if not _wider_or_equal(side, outer_limit, inner_limit):
                    raise ValueError(
                        f"{outer_name}.{key} ({outer_limit}) is inside {inner_name}.{key} "
                        f"({inner_limit}): the {outer_name} band must be at least as wide"
                    )
        return self


def _check_int(name: str, value: object, upper: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidVitals(f"{name} must be an integer or None, got {value!r}")
    if not 0 <= value <= upper:
        raise InvalidVitals(f"{name} = {value} is outside the plausible range 0..{upper}")


@dataclass(frozen=True, slots=True)
class VitalsReading:
    """One set of vital signs as entered or read from a monitor; None = not measured.

    ``taken_at`` is an aware UTC datetime so that it can be audited and compared with a
    start time; the tick works on the controller's monotonic clock instead and receives
    the reading's age separately.
    """

    taken_at: dt.datetime
    systolic_mmhg: int | None = None
    diastolic_mmhg: int | None = None
    heart_rate_bpm: int | None = None
    spo2_percent: int | None = None
    resp_rate_per_min: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.taken_at, dt.datetime):
            raise InvalidVitals(f"taken_at must be a datetime, got {self.taken_at!r}")
        if self.taken_at.utcoffset() != dt.timedelta(0):
            raise InvalidVitals(f"taken_at must be an aware UTC datetime, got {self.taken_at!r}")
        for measure, (_, _, upper, _) in MEASURES.items():
            _check_int(measure, getattr(self, measure), upper)

    def has(self, kind: VitalKind) -> bool:
        """True when every measure of ``kind`` is present (bp needs both pressures)."""
        return all(getattr(self, m) is not None for m, meta in MEASURES.items() if meta[0] == kind)


ENTRY_RANGES: dict[str, tuple[int, int]] = {
    "systolic_mmhg": (40, 300),
    "diastolic_mmhg": (10, 250),
    "heart_rate_bpm": (20, 300),
    "spo2_percent": (50, 100),
    "resp_rate_per_min": (2, 80),
}
"""The lowest and highest value a typed reading may have (inclusive), per measure.

A refused entry records nothing, so supervision goes on with the previous reading: a limit
that refused a real reading would hide it, and the dangerous readings are the extreme ones.
So these are not clinical limits but the edges of what can be read off a cuff, a gauge, a
monitor or a count on an awake patient; beyond them a figure is a typing error (9 for 98,
1200 for 120). They lie far outside every protocol's stop band (a protocol band beyond them
is refused, see ``VitalsRules``), so a real but dangerous value is always recorded and acted
on. docs/session.md, "Vital signs", gives the figures' reasons."""

MAX_PULSE_PRESSURE_MMHG = 220
"""Systolic minus diastolic beyond this cannot come from one beat (300/20 is 280): the two
figures do not belong together."""


class ImplausibleVitals(InvalidVitals):
    """A typed reading that cannot be a measurement: refused, nothing recorded."""


def check_entry(reading: VitalsReading) -> None:
    """Refuse, with one sentence naming each field and its limit, a reading no instrument
    could have given: a value outside :data:`ENTRY_RANGES`, a systolic pressure that does
    not exceed the diastolic one, or a pulse pressure above :data:`MAX_PULSE_PRESSURE_MMHG`.
    """
    problems: list[str] = []
    for measure, (low, high) in ENTRY_RANGES.items():
        value: int | None = getattr(reading, measure)
        _, unit, _, label = MEASURES[measure]
        if value is not None and not low <= value <= high:
            side, limit = ("below", low) if value < low else ("above", high)
            problems.append(
                f"{label} ({measure}) {value} {unit} is {side} the plausible "
                f"{'minimum' if side == 'below' else 'maximum'} of {limit} {unit}"
            )
    sys, dia = reading.systolic_mmhg, reading.diastolic_mmhg
    if sys is not None and dia is not None:
        if sys <= dia:
            problems.append(
                f"systolic pressure (systolic_mmhg) {sys} mmHg must exceed the diastolic "
                f"pressure (diastolic_mmhg) {dia} mmHg"
            )
        elif sys - dia > MAX_PULSE_PRESSURE_MMHG:
            problems.append(
                f"blood pressure {sys}/{dia} mmHg has a pulse pressure of {sys - dia} mmHg, "
                f"above {MAX_PULSE_PRESSURE_MMHG} mmHg"
            )
    if problems:
        raise ImplausibleVitals(
            "not a plausible reading, probably a typing error: "
            + "; ".join(problems)
            + ". Nothing was recorded; enter the reading again."
        )


@dataclass(frozen=True, slots=True)
class Breach:
    """One reading outside one bound of a band."""

    measure: str
    side: Literal["min", "max"]
    value: int
    limit: int

    @property
    def code_suffix(self) -> str:
        """``systolic_mmhg.below_min``: the stable tail of a machine code."""
        return f"{self.measure}.{'below_min' if self.side == 'min' else 'above_max'}"

    def describe(self) -> str:
        _, unit, _, label = MEASURES[self.measure]
        word = "below the minimum" if self.side == "min" else "above the maximum"
        return f"{label} {self.value} {unit} is {word} of {self.limit} {unit}"


def breaches(band: VitalsThreshold, reading: VitalsReading) -> tuple[Breach, ...]:
    """Every bound of ``band`` that ``reading`` is outside; unmeasured values are not breaches."""
    found: list[Breach] = []
    for measure, side, limit in band.bounds():
        value: int | None = getattr(reading, measure)
        if value is None:
            continue
        if (side == "min" and value < limit) or (side == "max" and value > limit):
            found.append(Breach(measure, "min" if side == "min" else "max", value, limit))
    return tuple(found)


def missing_kinds(rules: VitalsRules, reading: VitalsReading) -> tuple[VitalKind, ...]:
    """The required vitals that ``reading`` does not contain."""
    return tuple(kind for kind in rules.required if not reading.has(kind))


def check_baseline(
    rules: VitalsRules, reading: VitalsReading | None, now: dt.datetime
) -> list[Verdict]:
    """Start rule: baseline vitals present, complete, fresh and inside ``refuse_start``.

    Every failure is hard: a start on missing or stale vitals is a start without knowing
    the patient's state. A reading from the future means a clock is wrong, which is refused
    rather than trusted.
    """
    rule = "start.vitals.baseline"
    if now.utcoffset() != dt.timedelta(0):
        raise InvalidVitals(f"now must be an aware UTC datetime, got {now!r}")
    if reading is None:
        return [
            Verdict(
                "start.vitals.missing",
                Severity.HARD,
                "No baseline vital signs were recorded; record them before starting.",
                rule,
            )
        ]
    verdicts: list[Verdict] = []
    missing = missing_kinds(rules, reading)
    if missing:
        verdicts.append(
            Verdict(
                "start.vitals.incomplete",
                Severity.HARD,
                f"Baseline vital signs lack {', '.join(missing)}; the protocol requires "
                f"{', '.join(rules.required)}.",
                rule,
            )
        )
    age = now - reading.taken_at
    max_age = dt.timedelta(minutes=rules.baseline_max_age_min)
    if age < dt.timedelta(0):
        verdicts.append(
            Verdict(
                "start.vitals.from_future",
                Severity.HARD,
                f"Baseline vital signs are dated {reading.taken_at.isoformat()}, after now "
                f"({now.isoformat()}); check the clocks and record them again.",
                rule,
            )
        )
    elif age > max_age:
        verdicts.append(
            Verdict(
                "start.vitals.stale",
                Severity.HARD,
                f"Baseline vital signs are {int(age.total_seconds() // 60)} min old; the "
                f"protocol accepts at most {rules.baseline_max_age_min} min.",
                rule,
            )
        )
    for breach in breaches(rules.refuse_start, reading):
        verdicts.append(
            Verdict(
                f"start.vitals.{breach.code_suffix}",
                Severity.HARD,
                f"Baseline {breach.describe()} allowed to start.",
                rule,
            )
        )
    return verdicts


class EntryStage(enum.Enum):
    """Where the session is when a reading is entered: what a value outside a band does."""

    BEFORE_START = "before_start"
    DELIVERING = "delivering"
    NOT_DELIVERING = "not_delivering"


def entry_verdicts(
    rules: VitalsRules, reading: VitalsReading, stage: EntryStage
) -> tuple[Verdict, ...]:
    """The kernel's answer to a nurse's reading: within range, or which value is outside
    which band and what happens now. The same bands as the start rule and the tick; this
    only says it at once, in the nurse's terms, instead of leaving her to guess.

    Before the start the start band decides (the start is refused); while delivering the
    stop band stops and the pause band pauses; otherwise (paused, stopped, observed) a value
    outside the pause band means seeing the patient, and no discharge."""
    rule = "vitals.verdict"
    found: list[Verdict] = []
    if stage is EntryStage.BEFORE_START:
        for b in breaches(rules.refuse_start, reading):
            found.append(
                Verdict(
                    f"vitals.start_refused.{b.code_suffix}",
                    Severity.HARD,
                    _first_upper(f"{b.describe()} of the start band: the start is refused."),
                    rule,
                )
            )
    else:
        effects = {
            EntryStage.DELIVERING: ("the infusion is stopped", "the infusion is paused"),
            EntryStage.NOT_DELIVERING: (
                "see the patient now; the infusion cannot go on and no discharge",
                "see the patient; the infusion cannot go on and no discharge",
            ),
        }[stage]
        stopped = breaches(rules.stop, reading)
        for b in stopped:
            found.append(
                Verdict(
                    f"vitals.stop.{b.code_suffix}",
                    Severity.HARD,
                    _first_upper(f"{b.describe()} of the stop band: {effects[0]}."),
                    rule,
                )
            )
        seen = {b.measure for b in stopped}
        for b in breaches(rules.pause, reading):
            if b.measure in seen:
                continue
            found.append(
                Verdict(
                    f"vitals.pause.{b.code_suffix}",
                    Severity.SOFT,
                    _first_upper(f"{b.describe()} of the pause band: {effects[1]}."),
                    rule,
                )
            )
    missing = missing_kinds(rules, reading)
    if missing:
        found.append(
            Verdict(
                "vitals.incomplete",
                Severity.NOTE,
                f"Not measured: {', '.join(missing)} (the protocol requires "
                f"{', '.join(rules.required)}).",
                rule,
            )
        )
    if not found:
        found.append(
            Verdict("vitals.within_range", Severity.NOTE, "Within the protocol's bands.", rule)
        )
    return tuple(found)


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]
