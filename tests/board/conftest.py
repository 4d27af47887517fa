"""Fixtures of the board's own tests: a configuration file as the daemon and the board read it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

DAEMON_PART = """\
[daemon]
socket = "{socket}"
database = "sqlite:///{dir}/audit.db"

[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "127.0.0.1:5020"
unit = 1
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """A pumpd.toml with one pump and the given extra text (e.g. a [board] section)."""

    def write(extra: str = "") -> Path:
        path = tmp_path / "pumpd.toml"
        base = DAEMON_PART.format(socket=tmp_path / "pumpd.sock", dir=tmp_path)
        path.write_text(base + "\n" + extra, encoding="utf-8")
        return path

    return write
