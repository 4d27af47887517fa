"""Reading the library: hashes, versions, immutability and errors that name file and key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pumpd.protocols import (
    ENV_VAR,
    MANIFEST,
    ProtocolFileError,
    UnknownProtocol,
    default_path,
    load_library,
    load_protocol_file,
    schema_json,
)
from safety.plan import compute_plan, parse_order, parse_patient
from safety.start import start_requirements
from safety.syringe import SyringeCapacity, syringe_fit

SHIPPED = Path(__file__).resolve().parents[2] / "protocols"

STANDARD = "ketamine-trd-standard.v1.toml"
SIXTY_ML = SyringeCapacity("bd-plastic-60ml", 60_000)


def test_shipped_library_loads_released_with_content_hashes() -> None:
    lib = load_library(SHIPPED)
    assert lib.ids() == [
        "ketamine-chronic-pain",
        "ketamine-trd-escalation",
        "ketamine-trd-standard",
        "ketamine-trd-syringe",
    ]
    for entry in lib:
        assert entry.released
        assert entry.sha256 == hashlib.sha256(entry.path.read_bytes()).hexdigest()
        assert entry.path.name == f"{entry.protocol.id}.v{entry.protocol.version}.toml"


def test_shipped_standard_plan_for_80kg_is_40mg() -> None:
    entry = load_library(SHIPPED).get("ketamine-trd-standard")
    plan = compute_plan(entry.protocol, parse_patient("80kg"), parse_order())
    assert plan.dose_mg == 40


def test_shipped_syringe_plan_fits_a_60ml_syringe_up_to_the_hard_weight() -> None:
    """At its default dose every weight the protocol allows fits a 60 mL syringe with its
    prime; a heavier order is refused by the protocol or by the syringe-capacity rule."""
    entry = load_library(SHIPPED).get("ketamine-trd-syringe")
    protocol = entry.protocol
    assert protocol.preparation.kind == "fixed_concentration"
    prime_ul = start_requirements(protocol).prime_volume_ul
    heaviest = compute_plan(protocol, parse_patient("116kg"), parse_order())
    assert (heaviest.dose_mg, heaviest.vtbi_ul, prime_ul) == (58, 58_000, 2_000)
    assert syringe_fit(heaviest.vtbi_ul, prime_ul, SIXTY_ML) == []
    plan = compute_plan(protocol, parse_patient("80kg"), parse_order())
    assert (plan.dose_mg, plan.vtbi_ul, plan.rate_ml_h) == (40, 40_000, 60)
    overridden = compute_plan(protocol, parse_patient("100kg"), parse_order(dose="0.7mg/kg"))
    assert [v.code for v in syringe_fit(overridden.vtbi_ul, prime_ul, SIXTY_ML)] == [
        "syringe.vtbi_above_capacity"
    ]


def test_default_path_is_env_then_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_path() == SHIPPED
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert default_path() == tmp_path
    with pytest.raises(ProtocolFileError, match="no protocol files"):
        load_library()


def test_latest_version_by_default_and_a_named_version(library_dir: Path) -> None:
    text = (library_dir / STANDARD).read_text(encoding="utf-8")
    v2 = text.replace("version = 1", "version = 2").replace(
        "default_duration_min = 40", "default_duration_min = 45"
    )
    (library_dir / "ketamine-trd-standard.v2.toml").write_text(v2, encoding="utf-8")
    lib = load_library(library_dir)
    latest = lib.get("ketamine-trd-standard")
    assert latest.protocol.version == 2
    assert not latest.released  # not in the manifest: a draft
    assert lib.get("ketamine-trd-standard", 1).released
    assert [e.protocol.version for e in lib.versions("ketamine-trd-standard")] == [1, 2]
    with pytest.raises(UnknownProtocol, match=r"has no version 3 \(versions: 1, 2\)"):
        lib.get("ketamine-trd-standard", 3)
    with pytest.raises(UnknownProtocol, match="no protocol 'propofol'"):
        lib.get("propofol")


def test_changed_released_file_is_refused(library_dir: Path) -> None:
    path = library_dir / STANDARD
    path.write_text(
        path.read_text(encoding="utf-8").replace("hard_max = 1.0", "hard_max = 0.9"),
        encoding="utf-8",
    )
    with pytest.raises(ProtocolFileError, match="changed after release") as info:
        load_library(library_dir)
    assert info.value.path.endswith(STANDARD)
    assert info.value.key == "(content)"


def test_released_file_that_is_missing_is_refused(library_dir: Path) -> None:
    (library_dir / STANDARD).unlink()
    with pytest.raises(
        ProtocolFileError, match="listed as released but the file is missing"
    ) as info:
        load_library(library_dir)
    assert info.value.key == STANDARD


def test_bad_manifest_line_is_refused(library_dir: Path) -> None:
    (library_dir / MANIFEST).write_text("nonsense\n", encoding="utf-8")
    with pytest.raises(ProtocolFileError, match="line 1: expected"):
        load_library(library_dir)


def test_no_manifest_loads_everything_as_draft(library_dir: Path) -> None:
    (library_dir / MANIFEST).unlink()
    assert not any(e.released for e in load_library(library_dir))


def write_draft(library_dir: Path, name: str, old: str, new: str) -> Path:
    """A damaged copy of the standard protocol under ``name``, not in the manifest."""
    text = (library_dir / STANDARD).read_text(encoding="utf-8")
    assert old in text
    path = library_dir / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


DRAFT = "ketamine-trd-standard.v9.toml"


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ("title = ", "surprise = 1\ntitle = ", "surprise", "unknown key"),
        (
            "bag_volume_ml = 100",
            "bag_volume = 100",
            "preparation.fixed_bag.bag_volume",
            "missing unit: numeric keys carry their unit, e.g. 'bag_volume_ml'",
        ),
        ("kvo_rate_ml_h = 0", "kvo_rate = 0", "kvo_rate", "missing unit"),
        (
            "soft_max = 0.75",
            "soft_max = 1.5",
            "limits.dose_mg_per_kg",
            "soft_max (1.5) is above hard_max (1.0)",
        ),
        (
            "hard_min = 40\nsoft_min = 45",
            "hard_min = 50\nsoft_min = 45",
            "limits.weight_kg",
            "hard_min (50) is above soft_min (45)",
        ),
        (
            "default_mg_per_kg = 0.5",
            "default_mg_per_kg = 0.9",
            "(top level)",
            "dose.default_mg_per_kg (0.9) lies outside",
        ),
        ("[pause]", "[pause]\nextra = 1", "pause.extra", "unknown key"),
        (
            'id = "ketamine-trd-standard"',
            'id = "ketamine-trd-other"',
            "id",
            "does not match the file name",
        ),
        (
            "kvo_rate_ml_h = 0\nobservation_min = 30",
            "kvo_rate_ml_h = -1\nobservation_min = -1",
            "kvo_rate_ml_h",
            "(and 1 more problem)",
        ),
        ("kvo_rate_ml_h = 0", 'kvo_rate_ml_h = "0 mL/h"', "kvo_rate_ml_h", "valid decimal"),
        ("[course]", "[course", "(syntax)", "line"),
    ],
)
def test_bad_files_are_refused_naming_file_and_key(
    library_dir: Path, old: str, new: str, key: str, fragment: str
) -> None:
    path = write_draft(library_dir, DRAFT, "version = 1", "version = 9")
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ProtocolFileError) as info:
        load_library(library_dir)
    assert info.value.path == str(path)
    assert info.value.key == key
    assert fragment in info.value.message
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_version_must_match_file_name(library_dir: Path) -> None:
    path = write_draft(library_dir, DRAFT, "version = 1", "version = 8")
    with pytest.raises(ProtocolFileError, match="8 does not match the file name") as info:
        load_protocol_file(path)
    assert info.value.key == "version"


@pytest.mark.parametrize(
    "name", ["standard.toml", "ketamine-trd-standard.v0.toml", "Ketamine.v1.toml"]
)
def test_file_names_must_be_id_dot_version(library_dir: Path, name: str) -> None:
    write_draft(library_dir, name, "version = 1", "version = 1")
    with pytest.raises(ProtocolFileError, match=r"must be '<id>\.v<version>\.toml'"):
        load_library(library_dir)


def test_binary_float_would_be_refused_but_toml_floats_load_as_decimal(library_dir: Path) -> None:
    entry = load_protocol_file(library_dir / STANDARD)
    assert str(entry.protocol.limits.dose_mg_per_kg.hard_max) == "1.0"


def test_non_utf8_file_is_refused(library_dir: Path) -> None:
    (library_dir / DRAFT).write_bytes(b'id = "\xff"\n')
    with pytest.raises(ProtocolFileError, match="not UTF-8") as info:
        load_library(library_dir)
    assert info.value.key == "(encoding)"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProtocolFileError, match="not a directory"):
        load_library(tmp_path / "nowhere")


def test_committed_schema_is_current() -> None:
    committed = (SHIPPED / "protocol.schema.json").read_text(encoding="utf-8")
    assert committed == schema_json()
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False
    assert "limits" in schema["required"]
