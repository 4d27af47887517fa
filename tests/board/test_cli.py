"""`pumpd-board --check`: a file it refuses is exit 2, the problem named by its key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "pumpd-board"), *args], capture_output=True, text=True, timeout=60
    )


def test_check_refuses_a_bad_key_by_name(config_file: Callable[[str], Path]) -> None:
    path = config_file('[board]\nlisten = "192.0.2.7:8470"\nmask_patient_ref = "yes"\n')
    result = run("--config", str(path), "--check")
    assert result.returncode == 2
    assert "board.mask_patient_ref" in result.stderr


def test_check_a_good_file(config_file: Callable[[str], Path], tmp_path: Path) -> None:
    path = config_file('[board]\nlisten = "127.0.0.1:8471"\n')
    result = run("--config", str(path), "--check")
    assert result.returncode == 0, result.stderr
    assert "listen 127.0.0.1:8471" in result.stdout
    assert str(tmp_path / "pumpd.sock") in result.stdout


def test_a_file_the_daemon_refuses_is_refused(config_file: Callable[[str], Path]) -> None:
    path = config_file("[deamon]\npoll_hz = 10\n")
    result = run("--config", str(path), "--check")
    assert result.returncode == 2
    assert "deamon" in result.stderr
