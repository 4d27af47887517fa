"""What starting a process costs: CPU (user + sys) to import each entry point, and a real start.

The daemon is restarted by systemd after a crash, every nurse's ``pumpctl`` command is a new
process, and the test suite starts daemons, simulators and pumpctl hundreds of times: all of
them wait on Python imports first. Figures are CPU seconds (not wall time, which the
machine's load sets), the median of several runs:

- import of each console script's module (``pumpd``, ``pumpctl``, ``pumpaudit``,
  ``pumpsim``) and of the daemon's run path (``pumpd.daemon.app``, which ``pumpd --config``
  imports before it starts), in a fresh interpreter each;
- a real start, as the end-to-end tests do it: ``pumpsim`` up to its ready line, ``pumpd
  --config`` (simulation, two pumps, fresh SQLite) up to ``pumpd ready``, and one
  ``pumpctl whoami --json`` against it (a full round trip over the control socket; the
  benchmark runs as whoever runs it, which holds no role, and ``whoami`` needs none).

Baselines from the same run: a bare interpreter (``python -c pass``) for the light clients,
and ``import sqlalchemy.engine, pydantic`` (what the daemon cannot do without) for the
daemon's imports. A new module-level import of something heavy shows as a ratio jump.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.report import Report, Row

SUITE = "startup"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
BARE = "pass"
FLOOR = "import sqlalchemy.engine, pydantic"
IMPORTS = {
    "pumpctl": "import pumpd.cli.pumpctl",
    "pumpsim": "import pumpsim.cli",
    "pumpaudit": "import pumpd.cli.pumpaudit",
    "pumpd (run path)": "import pumpd.cli.daemon, pumpd.config, pumpd.daemon.app",
}
GOALS = {
    # ratio goals against the baseline named in the row; set from the figures measured when
    # the imports were last trimmed (docs/bench.md), with room for load.
    "pumpctl": ("bare", 4.0),
    "pumpsim": ("bare", 8.0),
    "pumpaudit": ("floor", 3.0),
    "pumpd (run path)": ("floor", 3.0),
}


def run(report: Report, quick: bool) -> None:
    runs = 3 if quick else 7
    bare = _median(runs, lambda: _cpu_of([sys.executable, "-c", BARE]))
    floor = _median(runs, lambda: _cpu_of([sys.executable, "-c", FLOOR]))
    for name, code in IMPORTS.items():
        figure = statistics.median(_cpu_of([sys.executable, "-c", code]) for _ in range(runs))
        which, limit = GOALS[name]
        base, base_name = (bare, "python -c pass") if which == "bare" else (floor, FLOOR)
        report.add(
            Row(
                SUITE,
                f"CPU to import {name}",
                figure,
                "s",
                baseline=base,
                baseline_name=base_name,
                goal=f"ratio <= {limit:g}",
                met=figure / base <= limit,
            )
        )
    starts = [_real_start() for _ in range(2 if quick else 5)]
    for i, name in enumerate(
        ("pumpsim to ready", "pumpd --config to ready", "pumpctl whoami --json")
    ):
        figure = statistics.median(s[i] for s in starts)
        report.add(
            Row(
                SUITE,
                f"CPU of a real start: {name}",
                figure,
                "s",
                baseline=bare,
                baseline_name="python -c pass",
            )
        )


def _median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def _cpu_of(argv: list[str], env: dict[str, str] | None = None) -> float:
    """User + system CPU seconds of one child process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _real_start() -> tuple[float, float, float]:
    # The end-to-end tests' own stack: the same processes, arguments and configuration.
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.e2e.stack import Stack

    stack = Stack(pumps=2)
    try:
        stack.start_sim()
        assert stack.sim is not None
        sim_s = _proc_cpu(stack.sim.pid)
        stack.write_config()
        stack.start_daemon()
        assert stack.daemon is not None
        daemon_s = _proc_cpu(stack.daemon.pid)
        command, env = stack.command(["whoami", "--json"], user=None)
        ctl_s = _cpu_of(command, env)
        return sim_s, daemon_s, ctl_s
    finally:
        stack.close()
