"""The shipped unit, sysusers.d, tmpfiles.d and example config are checked by the real
systemd tools when they are installed (skipped loudly when not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pumpd.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
PUMPD = shutil.which("pumpd") or str(Path(__file__).resolve().parents[2] / ".venv/bin/pumpd")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed here: the unit/packaging files were NOT verified")
    return path


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    unit = (PACKAGING / "systemd/pumpd.service").read_text()
    assert "ExecStart=/opt/pumpd/bin/pumpd --config /etc/pumpd/pumpd.toml" in unit
    # verify checks that ExecStart exists: point it at this checkout's pumpd.
    copy = tmp_path / "pumpd.service"
    copy.write_text(unit.replace("/opt/pumpd/bin/pumpd", PUMPD))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    copy = tmp_path / "pumpd.service"
    copy.write_text(
        (PACKAGING / "systemd/pumpd.service")
        .read_text()
        .replace("/opt/pumpd/bin/pumpd", PUMPD)
        .replace("Type=notify", "Type=notifyy")
    )
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    # verify exits 0 on a mistyped value and only warns: hence "no stderr" above.
    assert "Failed to parse service type" in result.stderr


def test_unit_has_the_required_settings() -> None:
    lines = set((PACKAGING / "systemd/pumpd.service").read_text().splitlines())
    for wanted in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=10s",
        "Restart=on-failure",
        "User=pumpd",
        "SupplementaryGroups=dialout",
        "StateDirectory=pumpd",
        "StateDirectory=pumpd/spool",
        "RuntimeDirectory=pumpd",
        "ConfigurationDirectory=pumpd",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "DeviceAllow=char-ttyUSB rw",
        "RestartPreventExitStatus=2 3 4",
    ):
        assert wanted in lines, wanted


def test_security_exposure_is_ok(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    copy = tmp_path / "pumpd.service"
    copy.write_text(
        (PACKAGING / "systemd/pumpd.service").read_text().replace("/opt/pumpd/bin/pumpd", PUMPD)
    )
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for pumpd.service: 1." in result.stdout


def test_sysusers_and_tmpfiles_apply_to_a_scratch_root(tmp_path: Path) -> None:
    sysusers = need("systemd-sysusers")
    tmpfiles = need("systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    subprocess.run(
        [sysusers, f"--root={tmp_path}", str(PACKAGING / "sysusers.d/pumpd.conf")],
        check=True,
        capture_output=True,
    )
    groups = {line.split(":")[0] for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert {"pumpd", "pumpd-nurse", "pumpd-audit", "pumpd-admin"} <= groups
    users = (tmp_path / "etc/passwd").read_text()
    assert "pumpd:" in users
    assert "/usr/sbin/nologin" in users
    result = subprocess.run(
        [tmpfiles, f"--root={tmp_path}", "--create", str(PACKAGING / "tmpfiles.d/pumpd.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    state = tmp_path / "var/lib/pumpd"
    assert state.is_dir()
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    spool = state / "spool"  # the default audit_spool's directory
    assert spool.is_dir()
    assert oct(spool.stat().st_mode & 0o777) == "0o700"


def test_example_config_loads() -> None:
    cfg = load_config(PACKAGING / "pumpd.toml.example")
    assert [p.id for p in cfg.pumps] == ["chair-1", "chair-2"]
    assert cfg.simulation is False
    assert cfg.audit_spool == Path("/var/lib/pumpd/spool/audit.spool")
