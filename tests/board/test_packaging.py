"""The board's unit and account, checked by the real systemd tools when they are installed
(skipped loudly when not), and its files in the package."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
BOARD = shutil.which("pumpd-board") or str(ROOT / ".venv/bin/pumpd-board")
UNIT = PACKAGING / "systemd/pumpd-board.service"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here: the board's unit was NOT verified")
    return path


def unit_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "pumpd-board.service"
    copy.write_text(UNIT.read_text().replace("/opt/pumpd/bin/pumpd-board", BOARD))
    return copy


def test_the_unit_verifies_and_its_exposure_is_ok(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    unit = UNIT.read_text()
    assert "ExecStart=/opt/pumpd/bin/pumpd-board --config /etc/pumpd/pumpd.toml" in unit
    lines = set(unit.splitlines())
    for wanted in (
        "User=pumpd-board",
        "SupplementaryGroups=pumpd pumpd-audit",
        "IPAddressDeny=any",
    ):
        assert wanted in lines, wanted
    groups = " ".join(x for x in lines if x.startswith(("Group=", "SupplementaryGroups=")))
    assert "pumpd-nurse" not in groups
    assert "pumpd-admin" not in groups
    copy = unit_copy(tmp_path)
    verify = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
    )
    assert security.returncode == 0, security.stdout[-2000:]
    assert "Overall exposure level for pumpd-board.service: 1." in security.stdout


def test_the_board_account_may_connect_and_read_only(tmp_path: Path) -> None:
    sysusers = need("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    subprocess.run(
        [sysusers, f"--root={tmp_path}", str(PACKAGING / "sysusers.d/pumpd.conf")],
        check=True,
        capture_output=True,
    )
    members = {
        g: set(filter(None, m.split(",")))
        for g, _, _, m in (
            line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()
        )
    }
    assert "pumpd-board" in members["pumpd"]
    assert "pumpd-board" in members["pumpd-audit"]
    assert "pumpd-board" not in members["pumpd-nurse"] | members["pumpd-admin"]
    assert "pumpd-board:" in (tmp_path / "etc/passwd").read_text()


def test_the_page_s_files_ship_in_the_package() -> None:
    files = resources.files("pumpd_board")
    for name in ("static/board.js", "static/board.css", "templates/page.html"):
        assert (files / name).is_file(), name
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'pumpd_board = ["templates/*.html", "static/*.js", "static/*.css"' in pyproject
