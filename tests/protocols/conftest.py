"""Fixtures for the protocol-library tests: a writable copy of the shipped library."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "protocols"


@pytest.fixture
def library_dir(tmp_path: Path) -> Path:
    """A copy of protocols/ (TOML files and the released manifest) that a test may damage."""
    target = tmp_path / "protocols"
    target.mkdir()
    for file in SHIPPED.iterdir():
        if file.suffix == ".toml" or file.name == "released.sha256":
            shutil.copy2(file, target / file.name)
    return target
