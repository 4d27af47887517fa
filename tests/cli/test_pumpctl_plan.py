"""pumpctl plan / protocols: output, JSON, exit codes, through CliRunner and a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpd.cli.pumpctl import EXIT_BAD_INPUT, EXIT_LIBRARY, EXIT_OK, EXIT_REFUSED, main
from pumpd.protocols import ENV_VAR

ROOT = Path(__file__).resolve().parents[2]
PUMPCTL = Path(sys.executable).parent / "pumpctl"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv(ENV_VAR, raising=False)
    return CliRunner()


def plan_json(runner: CliRunner, *args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(main, ["plan", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_standard_80kg_json(runner: CliRunner) -> None:
    code, data = plan_json(runner, "--protocol", "ketamine-trd-standard", "--weight", "80kg")
    assert code == EXIT_OK
    assert data["dose_mg"] == "40"
    assert data["volume_ml"] == "100"
    assert data["rate_ml_h"] == "150"
    assert data["dose_rate_mg_kg_h"] == "0.75"
    assert data["vtbi_ul"] == 100000
    assert data["duration_min"] == "40"
    assert data["protocol"] == "ketamine-trd-standard@1"
    assert len(str(data["protocol_sha256"])) == 64
    assert isinstance(data["verdicts"], list)
    assert [v["code"] for v in data["verdicts"]] == ["double_check.required"]


def test_dose_duration_and_pounds(runner: CliRunner) -> None:
    code, data = plan_json(
        runner,
        "--protocol",
        "ketamine-trd-escalation",
        "--weight",
        "176.37lb",
        "--dose",
        "1mg/kg",
        "--duration",
        "1h",
    )
    assert code == EXIT_OK
    assert data["dose_mg"] == "80"  # 176.37 lb = 79.9998... kg
    assert data["rate_ml_h"] == "100"


def test_soft_verdict_exits_0_and_names_the_override(runner: CliRunner) -> None:
    code, data = plan_json(
        runner, "--protocol", "ketamine-trd-standard", "--weight", "80kg", "--dose", "0.8mg/kg"
    )
    assert code == EXIT_OK
    assert data["override"] == {
        "required": True,
        "codes": ["dose_per_kg.above_soft_max"],
        "second_person": True,
        "reason_only": [],
    }


def test_hard_verdict_exits_3(runner: CliRunner) -> None:
    code, data = plan_json(
        runner, "--protocol", "ketamine-trd-standard", "--weight", "80kg", "--dose", "1.2mg/kg"
    )
    assert code == EXIT_REFUSED
    assert data["refused"] is True
    hard = [v for v in data["verdicts"] if v["severity"] == "hard"]  # type: ignore[attr-defined]
    assert hard[0]["code"] == "dose_per_kg.above_hard_max"
    assert "1.2 mg/kg" in hard[0]["message"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--weight", "80"], "has no unit"),
        (["--weight", "80 stone"], "not accepted"),
        (["--weight", "NaN kg"], "not a plain"),
        (["--weight", "0kg"], "greater than zero"),
        (["--weight", "80kg", "--dose", "0.5"], "has no unit"),
        (["--weight", "80kg", "--dose", "40mg"], "dose per kg"),
        (["--weight", "80kg", "--dose", "0.3mg/kg/h"], "total dose per kg"),
        (["--weight", "80kg", "--duration", "40"], "has no unit"),
        (["--weight", "80kg", "--sex", "x"], "male or female"),
    ],
)
def test_bad_input_exits_2_with_a_sentence(
    runner: CliRunner, args: list[str], fragment: str
) -> None:
    result = runner.invoke(main, ["plan", "--protocol", "ketamine-trd-standard", *args])
    assert result.exit_code == EXIT_BAD_INPUT
    assert fragment in result.stderr
    assert result.stdout == ""


def test_unknown_protocol_and_version_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "--protocol", "propofol", "--weight", "80kg"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "no protocol 'propofol'" in result.stderr
    result = runner.invoke(
        main, ["plan", "--protocol", "ketamine-trd-standard", "--version", "7", "--weight", "80kg"]
    )
    assert result.exit_code == EXIT_BAD_INPUT
    assert "has no version 7" in result.stderr


def test_missing_weight_is_a_usage_error_exit_2(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "--protocol", "ketamine-trd-standard"])
    assert result.exit_code == 2
    assert "--weight" in result.stderr


def test_table_output_shows_flow_and_dose_rate_side_by_side(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        ["plan", "--protocol", "ketamine-chronic-pain", "--weight", "80kg"],
        terminal_width=140,
    )
    assert result.exit_code == EXIT_OK
    out = result.stdout
    assert "28 mL/h | 0.35 mg/kg/h" in out
    assert "112 mg" in out
    assert "priming.carrier_dead_space" in out
    assert "ACCEPTABLE" in out


def test_table_output_refused_and_override(runner: CliRunner) -> None:
    refused = runner.invoke(
        main,
        ["plan", "--protocol", "ketamine-trd-standard", "--weight", "160kg"],
        terminal_width=140,
    )
    assert refused.exit_code == EXIT_REFUSED
    assert "REFUSED" in refused.stdout
    soft = runner.invoke(
        main,
        ["plan", "--protocol", "ketamine-trd-standard", "--weight", "80kg", "--duration", "45min"],
        terminal_width=140,
    )
    assert soft.exit_code == EXIT_OK
    assert "NEEDS OVERRIDE" not in soft.stdout  # 45 min is inside the soft band
    soft = runner.invoke(
        main,
        ["plan", "--protocol", "ketamine-trd-standard", "--weight", "80kg", "--duration", "65min"],
        terminal_width=140,
    )
    assert "NEEDS OVERRIDE: a reason and a second person" in soft.stdout
    assert "expected duration at pump rate" in soft.stdout


def test_ideal_weight_protocol_through_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    text = (ROOT / "protocols" / "ketamine-trd-standard.v1.toml").read_text(encoding="utf-8")
    (lib / "ketamine-trd-standard.v1.toml").write_text(
        text.replace('weight_basis = "actual"', 'weight_basis = "adjusted"'), encoding="utf-8"
    )
    base = [
        "plan",
        "--library",
        str(lib),
        "--protocol",
        "ketamine-trd-standard",
        "--weight",
        "120kg",
    ]
    missing = runner.invoke(main, base)
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "needs height and sex" in missing.stderr
    result = runner.invoke(main, [*base, "--height", "70in", "--sex", "male", "--json"])
    data = json.loads(result.stdout)
    assert data["dosing_weight_kg"] == "91.8"
    assert data["weight_basis"] == "adjusted"
    table = runner.invoke(main, [*base, "--height", "70in", "--sex", "male"], terminal_width=140)
    assert "91.8 kg (adjusted)" in table.stdout
    low = runner.invoke(
        main,
        [
            "plan",
            "--library",
            str(lib),
            "--protocol",
            "ketamine-trd-standard",
            "--weight",
            "60kg",
            "--height",
            "70in",
            "--sex",
            "male",
        ],
        terminal_width=140,
    )
    assert "(adjusted -> actual)" in low.stdout
    listing = runner.invoke(main, ["protocols", "--library", str(lib)], terminal_width=160)
    assert "DRAFT" in listing.stdout


def test_broken_library_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "x.v1.toml").write_text("id = [", encoding="utf-8")
    result = runner.invoke(
        main, ["plan", "--library", str(tmp_path), "--protocol", "x", "--weight", "80kg"]
    )
    assert result.exit_code == EXIT_LIBRARY
    assert "(syntax)" in result.stderr


def test_help_documents_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "--help"])
    assert result.exit_code == 0
    for line in ("0  the plan is acceptable", "2  bad input", "3  refused: a hard limit"):
        assert line in result.stdout


def test_protocols_list_show_and_schema(runner: CliRunner) -> None:
    listing = runner.invoke(main, ["protocols"], terminal_width=200)
    assert listing.exit_code == 0
    for pid in ("ketamine-trd-standard", "ketamine-trd-escalation", "ketamine-chronic-pain"):
        assert pid in listing.stdout
    show = runner.invoke(main, ["protocols", "show", "ketamine-trd-standard"], terminal_width=200)
    assert show.exit_code == 0
    assert "soft 0.5–0.75 mg/kg; hard 0.1–1 mg/kg" in show.stdout
    assert "dose diluted to 100 mL" in show.stdout
    pain = runner.invoke(main, ["protocols", "show", "ketamine-chronic-pain"], terminal_width=200)
    assert "0.35 mg/kg/h over 240 min" in pain.stdout
    assert "1 mg/mL" in pain.stdout
    as_json = runner.invoke(main, ["protocols", "show", "ketamine-trd-standard", "--json"])
    data = json.loads(as_json.stdout)
    assert data["id"] == "ketamine-trd-standard"
    assert data["released"] is True
    assert data["limits"]["dose_mg_per_kg"]["hard_max"] == "1.0"
    missing = runner.invoke(main, ["protocols", "show", "nope"])
    assert missing.exit_code == EXIT_BAD_INPUT
    schema = runner.invoke(main, ["protocols", "schema"])
    assert json.loads(schema.stdout)["title"] == "Protocol"


def test_protocols_list_as_json_has_every_protocol_and_its_full_hash(runner: CliRunner) -> None:
    from pumpd.protocols import load_library

    result = runner.invoke(main, ["protocols", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    library = load_library()
    assert [(p["protocol_id"], p["version"], p["sha256"]) for p in listed] == [
        (e.protocol.id, e.protocol.version, e.sha256) for e in library
    ]
    assert {p["status"] for p in listed} <= {"released", "unreleased"}


def test_real_pumpctl_process_without_a_daemon(tmp_path: Path) -> None:
    exe = shutil.which("pumpctl", path=str(PUMPCTL.parent)) or str(PUMPCTL)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    done = subprocess.run(
        [
            exe,
            "plan",
            "--protocol",
            "ketamine-trd-standard",
            "--weight",
            "80kg",
            "--dose",
            "0.5mg/kg",
            "--duration",
            "40min",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["dose_mg"], data["rate_ml_h"], data["vtbi_ul"]) == ("40", "150", 100000)
    bare = subprocess.run(
        [exe, "plan", "--protocol", "ketamine-trd-standard", "--weight", "80"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert bare.returncode == 2
    assert "has no unit" in bare.stderr
