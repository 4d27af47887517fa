"""The protocol model refuses ambiguous or contradictory protocols and names the key."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import pumpd
from safety.protocol import (
    Band,
    ContinuousDose,
    FixedBag,
    FixedConcentration,
    Protocol,
    TotalDose,
    WeightBasis,
)

D = Decimal
# Next to the installed pumpd package (not this file): mutmut runs these tests from a copy.
ROOT = Path(pumpd.__file__).resolve().parent.parent / "protocols"
DELETE = object()


def raw(name: str = "ketamine-trd-standard.v1.toml") -> dict[str, Any]:
    return tomllib.loads((ROOT / name).read_text(encoding="utf-8"), parse_float=Decimal)


def mutate(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


def test_standard_protocol_holds_the_specified_figures() -> None:
    p = Protocol.model_validate(raw())
    assert p.key == "ketamine-trd-standard@1"
    assert isinstance(p.dose, TotalDose)
    assert (p.dose.default_mg_per_kg, p.dose.default_duration_min) == (D("0.5"), D("40"))
    assert isinstance(p.preparation, FixedBag)
    assert p.preparation.bag_volume_ml == D("100")
    band = p.limits.dose_mg_per_kg
    assert (band.soft_min, band.soft_max, band.hard_max) == (D("0.5"), D("0.75"), D("1.0"))
    assert p.double_check_required
    assert p.observation_min >= 30
    assert p.course.min_interval_h >= 24
    assert p.weight_basis is WeightBasis.ACTUAL


def test_chronic_pain_protocol_is_continuous_at_fixed_concentration() -> None:
    p = Protocol.model_validate(raw("ketamine-chronic-pain.v1.toml"))
    assert isinstance(p.dose, ContinuousDose)
    assert isinstance(p.preparation, FixedConcentration)
    assert p.limits.dose_rate_mg_per_kg_h is not None
    assert p.dose.default_duration_min >= 180


def test_model_is_frozen() -> None:
    p = Protocol.model_validate(raw())
    with pytest.raises(ValidationError, match="frozen"):
        p.version = 2


@pytest.mark.parametrize(
    ("path", "value", "loc", "fragment"),
    [
        # unknown keys, including a key that lost its unit suffix
        ("surprise", 1, "surprise", "Extra inputs"),
        ("preparation.bag_volume", D(100), "preparation.fixed_bag.bag_volume", "Extra inputs"),
        ("limits.dose_mg_per_kg.hard_maximum", D(1), "limits.dose_mg_per_kg.hard_maximum", "Extra"),
        # missing keys
        ("kvo_rate_ml_h", DELETE, "kvo_rate_ml_h", "Field required"),
        ("limits.rate_ml_h.hard_max", DELETE, "limits.rate_ml_h.hard_max", "Field required"),
        ("vitals", DELETE, "vitals", "Field required"),
        ("course", DELETE, "course", "Field required"),
        # numbers must be exact, finite and not negative
        ("kvo_rate_ml_h", 0.5, "kvo_rate_ml_h", "not float 0.5"),
        ("kvo_rate_ml_h", True, "kvo_rate_ml_h", "not bool"),
        ("kvo_rate_ml_h", D("NaN"), "kvo_rate_ml_h", "finite"),
        ("kvo_rate_ml_h", D("Infinity"), "kvo_rate_ml_h", "finite"),
        ("kvo_rate_ml_h", D("-1"), "kvo_rate_ml_h", "greater than or equal to 0"),
        ("priming.volume_ml", D("-1"), "priming.volume_ml", "greater than or equal to 0"),
        ("limits.total_dose_mg.hard_min", D("-1"), "limits.total_dose_mg.hard_min", ">= 0"),
        ("limits.total_dose_mg.soft_max", D("Infinity"), "limits.total_dose_mg.soft_max", "finite"),
        ("priming.rate_ml_h", D("0"), "priming.rate_ml_h", "greater than 0"),
        ("dose.default_mg_per_kg", D("0"), "dose.total_per_kg.default_mg_per_kg", "greater than 0"),
        ("preparation.bag_volume_ml", D("0"), "preparation.fixed_bag.bag_volume_ml", "greater"),
        # bands: min above max, soft outside hard
        (
            "limits.dose_mg_per_kg.soft_max",
            D("1.5"),
            "limits.dose_mg_per_kg",
            "soft_max (1.5) is above hard_max",
        ),
        (
            "limits.dose_mg_per_kg.soft_min",
            D("0.05"),
            "limits.dose_mg_per_kg",
            "hard_min (0.1) is above soft_min",
        ),
        (
            "limits.dose_mg_per_kg.soft_min",
            D("0.8"),
            "limits.dose_mg_per_kg",
            "soft_min (0.8) is above soft_max",
        ),
        (
            "limits.weight_kg.hard_min",
            D("200"),
            "limits.weight_kg",
            "hard_min (200) is above soft_min",
        ),
        # defaults must be acceptable without an override
        (
            "dose.default_mg_per_kg",
            D("0.8"),
            "(top level)",
            "dose.default_mg_per_kg (0.8) lies outside",
        ),
        ("dose.default_duration_min", D("35"), "(top level)", "dose.default_duration_min (35)"),
        # fixed bag over the default duration must run within the hard rate limits
        ("preparation.bag_volume_ml", D("500"), "(top level)", "runs at 750.00 mL/h"),
        ("kvo_rate_ml_h", D("250"), "(top level)", "kvo_rate_ml_h (250) is above"),
        (
            "pause.reminder_after_min",
            D("20"),
            "pause",
            "reminder_after_min (20) is above stop_after_min",
        ),
        ("dose.mode", "bolus", "dose", "does not match any of the expected tags"),
        ("preparation.kind", "syringe", "preparation", "does not match"),
        ("weight_basis", "lean", "weight_basis", "Input should be"),
        ("id", "Ketamine TRD", "id", "String should match pattern"),
        ("version", D(1), "version", "valid integer"),
        ("discharge_checklist", [], "discharge_checklist", "at least 1 item"),
    ],
)
def test_bad_protocols_are_refused_with_the_key(
    path: str, value: object, loc: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Protocol.model_validate(mutate(raw(), path, value))
    errors = info.value.errors()
    locs = [".".join(str(p) for p in e["loc"]) or "(top level)" for e in errors]
    assert loc in locs, locs
    assert any(fragment in e["msg"] for e in errors), [e["msg"] for e in errors]


def test_continuous_mode_needs_a_dose_rate_band() -> None:
    data = mutate(raw("ketamine-chronic-pain.v1.toml"), "limits.dose_rate_mg_per_kg_h", DELETE)
    with pytest.raises(ValidationError, match="dose_rate_mg_per_kg_h is required"):
        Protocol.model_validate(data)


def test_continuous_default_rate_must_be_inside_its_band() -> None:
    data = mutate(raw("ketamine-chronic-pain.v1.toml"), "dose.default_mg_per_kg_h", D("0.4"))
    with pytest.raises(ValidationError, match=r"dose.default_mg_per_kg_h \(0.4\) lies outside"):
        Protocol.model_validate(data)


@pytest.mark.parametrize(
    ("band", "value", "hard", "soft"),
    [
        ({"hard_max": D(10)}, D(10), True, True),
        ({"hard_max": D(10)}, D("10.01"), False, True),
        ({"hard_min": D(1), "hard_max": D(10)}, D(1), True, True),
        ({"hard_min": D(1), "hard_max": D(10)}, D("0.99"), False, True),
        ({"soft_min": D(2), "soft_max": D(8), "hard_max": D(10)}, D(2), True, True),
        ({"soft_min": D(2), "soft_max": D(8), "hard_max": D(10)}, D("1.99"), True, False),
        ({"soft_min": D(2), "soft_max": D(8), "hard_max": D(10)}, D(8), True, True),
        ({"soft_min": D(2), "soft_max": D(8), "hard_max": D(10)}, D("8.01"), True, False),
    ],
)
def test_band_bounds_are_inclusive(
    band: dict[str, Decimal], value: Decimal, hard: bool, soft: bool
) -> None:
    b = Band.model_validate(band)
    assert b.contains_hard(value) is hard
    assert b.contains_soft(value) is soft


def test_equal_soft_and_hard_bounds_are_allowed() -> None:
    b = Band(hard_min=D(1), soft_min=D(1), soft_max=D(1), hard_max=D(1))
    assert b.contains_soft(D(1))
    assert b.contains_hard(D(1))
