"""``make bench``: run every benchmark module and print one markdown table.

Each module in ``bench/`` named ``bench_*.py`` exposes ``run(report, quick)``. ``--quick``
shrinks sizes for a smoke run; ``--only NAME`` runs one module; ``--out FILE`` also writes
the table to a file (``make bench`` writes ``bench/last-report.md``). The table starts with
when and where it was measured and the machine's load average before and after, because
every figure here depends on what else the machine was doing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

from bench.report import Report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", action="append", default=[], help="run only bench_NAME")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only or n in args.only]
    report = Report()
    load_before = _load()
    started_utc = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed: list[str] = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"bench.{name}").run(report, args.quick)
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"   FAILED: {exc!r}", flush=True)
        print(f"   ({time.monotonic() - started:.1f} s)", flush=True)
    report.header = [
        f"pumpd benchmarks{' (--quick)' if args.quick else ''}, {started_utc}, "
        f"{' '.join(n.removeprefix('bench_') for n in names)}",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average (1/5/15 min) {load_before} before, "
        f"{_load()} after.",
    ]
    if failed:
        report.header.append("FAILED: " + "; ".join(failed))
    table = report.markdown()
    print("\n" + table)
    if args.out:
        args.out.write_text(table + "\n")
    for f in failed:
        print(f"benchmark failed: {f}", file=sys.stderr)
    return 1 if failed else 0


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
