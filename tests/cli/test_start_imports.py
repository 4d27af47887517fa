"""What a fresh process imports before it does anything: pumpctl runs once per nurse command
and the daemon is restarted by systemd, so neither may load what its path never uses.

Structural, not timed (timings are in ``make bench``, bench/bench_startup.py): each check
imports in a fresh interpreter and names the modules that must stay out of ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _loaded(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """Modules under ``prefixes`` that are in sys.modules after running ``code``."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "hardware-sim"), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(
    "command",
    [
        "import pumpd.cli.pumpctl",
        # what `pumpctl status --json` runs: the command modules and the socket client
        "import pumpd.cli.pumpctl, pumpd.cli.live.reads, pumpd.cli.live.session, "
        "pumpd.cli.live.staff, pumpd.cli.client",
    ],
)
def test_pumpctl_loads_no_database_no_models_no_rich(command: str) -> None:
    heavy = ("sqlalchemy", "alembic", "pydantic", "structlog", "rich")
    assert _loaded(command, heavy) == []


def test_daemon_start_path_leaves_the_forwarder_out() -> None:
    # Without [forward] nothing of pumpd.central but the settings' dataclass is needed.
    code = "import pumpd.cli.daemon, pumpd.config, pumpd.daemon.app"
    assert _loaded(code, ("pumpd.central",)) == ["pumpd.central", "pumpd.central.settings"]
