"""The benchmark report's shape: a tiny controller benchmark run for real, and the table.

No timing is asserted: the figures are whatever the machine gives. What is checked is that
every figure the goals ask for is there, with its baseline, ratio, goal and verdict, and
that the verdicts and limits follow from the figures by the rules the report states.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/ is not installed

from bench import bench_controller
from bench import bench_forward_loop as fl
from bench.__main__ import main
from bench.report import Report, Row

TINY = bench_controller.Sizes(
    injections=4, lanes=2, cpu_pumps=(1, 2), cpu_window_s=0.5, bare_reads=20
)


@pytest.mark.slow
async def test_tiny_controller_benchmark_has_every_figure_with_its_limit_and_goal() -> None:
    report = Report()
    await bench_controller.measure(report, TINY)
    rows = {r.name: r for r in report.rows}
    assert all(r.suite == "controller" for r in report.rows)
    assert all(math.isfinite(r.figure) and r.figure > 0 for r in report.rows)

    bare = next(r for name, r in rows.items() if name.startswith("bare pymodbus status read"))
    limit_ms = bench_controller.POLL_PERIOD_S * 1000 + bare.figure
    goal_ms = bench_controller.POLL_PERIOD_S * 1000 + bench_controller.GOAL_MARGIN_MS
    variants = (f"{TINY.lanes} pumps on one line", "one pump on its line")
    for kind, variant in ((k, v) for k in ("A", "B") for v in variants):
        p50, p99 = (
            next(
                r
                for name, r in rows.items()
                if name.startswith(f"reaction {kind}:") and variant in name and q in name
            )
            for q in ("p50", "p99")
        )
        assert f"n={TINY.injections}" in p99.name
        assert "a quick run" in p99.name
        assert p50.baseline == p99.baseline == limit_ms
        assert p50.figure <= p99.figure
        assert p99.met is (p99.figure <= goal_ms)
        assert p99.ratio == p99.figure / limit_ms

    cpu = [r for name, r in rows.items() if name.startswith("CPU per infusing pump")]
    assert [r.name.split(", ")[1] for r in cpu] == ["1 pump(s)", "2 pump(s)"]
    assert all(r.baseline is not None and r.baseline > 0 for r in cpu)
    whole = next(r for name, r in rows.items() if name.startswith("CPU s per wall s, 2 pumps"))
    assert whole.goal.startswith("< 1.0 (one core)")
    assert whole.met is not None
    # the same CPU share, computed per pump in ms and for the process in s: equal but
    # for float rounding
    assert whole.figure == pytest.approx(cpu[-1].figure * 2 / 1000, rel=1e-12)
    projected = next(r for name, r in rows.items() if "projected to 10 Hz" in name)
    assert projected.met is (projected.figure < 1.0)

    notes = "\n".join(report.notes)
    assert "tick.rate.mismatch" in notes  # the kernel rule behind the halting command (A)
    assert "tick.pump.alarm.occlusion_downstream" in notes  # the alarm event measured in B
    table = report.markdown()
    assert table.count("\n| controller |") == len(report.rows)


def test_table_has_one_row_per_figure_with_baseline_ratio_goal_and_verdict() -> None:
    report = Report(header=["pumpd benchmarks, now"])
    report.add(Row("s", "fast thing", 50.0, "ms", 40.0, "bare", "ratio ≤ 2", True))
    report.add(Row("s", "slow thing", 300.0, "ms", 100.0, "bare", "ratio ≤ 2", False))
    report.add(Row("s", "plain figure", 3.0, "x"))
    report.note("how it was measured")
    lines = report.markdown().splitlines()
    assert lines[0] == "pumpd benchmarks, now"
    table = [line for line in lines if line.startswith("| s |")]
    assert table == [
        "| s | fast thing | 50.00 ms | 40.00 ms (bare) | 1.25 | ratio ≤ 2 | yes |",
        "| s | slow thing | 300 ms | 100 ms (bare) | 3.00 | ratio ≤ 2 | **no** |",
        "| s | plain figure | 3.00 x |  |  |  |  |",
    ]
    assert lines[-1] == "- how it was measured"


def test_a_selection_that_matches_nothing_writes_an_empty_table(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    # No module matches: nothing is measured, and the table is still written, empty.
    assert main(["--only", "no-such-benchmark", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| suite | figure | value | baseline (same run) | ratio | goal | met |" in text
    assert "| controller |" not in text


def test_tiny_keychain_benchmark_has_its_figure_baseline_and_goal(tmp_path: Path) -> None:
    from bench import bench_keychain

    report = Report()
    bench_keychain._measure(report, tmp_path, 20)
    keyed, cost = report.rows
    assert keyed.suite == cost.suite == "audit/keychain"
    assert keyed.baseline is not None
    assert keyed.baseline > 0
    assert "raw sqlite3" in keyed.baseline_name
    assert keyed.goal == "ratio >= 0.5"
    assert keyed.met is (keyed.figure / keyed.baseline >= 0.5)
    assert cost.figure == keyed.figure
    assert cost.baseline_name.startswith("unkeyed")


def _phase(polls: float, cpu: float, late: float, p50: float, p99: float) -> fl.Phase:
    return fl.Phase(polls, cpu, cpu * 0.9, late, p50, p99, shipped_per_s=3000.0)


def test_forwarding_rows_hold_each_mode_against_off_within_the_off_rounds_spread() -> None:
    sizes = fl.Sizes(rounds=3, pumps=16, window_s=5.0, injections=16, lanes=8, backlog=1000)
    phases = {
        # off: polls 9.8 / 10.0 / 10.0 → median 10.0, spread 2 %; CPU 20 / 22 / 24 → 22, 18 %
        "off": [
            _phase(9.8, 20, 2, 30, 60),
            _phase(10.0, 22, 3, 32, 70),
            _phase(10.0, 24, 4, 34, 80),
        ],
        # on: polls 9.7 (ratio 0.97 < 0.98: worse than the spread); CPU 25 → 1.14 ≤ 1.18
        "on": [_phase(9.7, 25, 3, 33, 75)] * 3,
        "unreachable": [_phase(10.0, 22, 3, 32, 70)] * 3,
    }
    report = Report()
    fl._rows(report, sizes, phases)
    rows = {r.name: r for r in report.rows}
    assert len(rows) == len(fl.FIGURES) * 2
    assert all(r.suite == fl.SUITE and r.baseline_name == "forwarding off" for r in report.rows)

    def row(start: str, mode: str) -> Row:
        return next(r for n, r in rows.items() if n.startswith(start) and mode in n)

    polls_on = row("polls per pump per s", "shipping")
    assert polls_on.baseline == 10.0
    assert polls_on.goal.startswith("ratio ≥ 0.98")
    assert polls_on.met is False
    loop_on = row("CPU per pump per s, event-loop thread", "shipping")
    assert loop_on.baseline == 22 * 0.9
    assert loop_on.goal.startswith("ratio ≤ 1.18")
    assert loop_on.met is True
    whole = row("CPU per pump per s, whole process", "closed port")
    assert whole.goal == ""  # the forwarder's own CPU: informative, no goal
    assert whole.met is None
    assert row("reaction A (runaway → PAUSE at the pump), p99", "closed port").met is True
    assert all(
        "no worse than off beyond the run-to-run spread" in r.goal
        for r in rows.values()
        if r.met is not None
    )
    assert any("3,000, 3,000, 3,000 events/s" in n for n in report.notes)


@pytest.mark.slow
async def test_tiny_forwarding_benchmark_ships_and_has_every_row(tmp_path: Path) -> None:
    from bench.bench_audit import _pg_base

    base = _pg_base()
    if base is None:
        pytest.skip("no reachable PUMPD_TEST_PG_URL")
    tiny = fl.Sizes(rounds=1, pumps=2, window_s=0.5, injections=1, lanes=1, backlog=3000)
    report = Report()
    await fl.measure(report, tiny, base, tmp_path)
    assert len(report.rows) == len(fl.FIGURES) * 2
    assert all(math.isfinite(r.figure) and r.figure > 0 for r in report.rows)
    assert all(r.baseline is not None and r.baseline > 0 for r in report.rows)
    assert all(r.goal.startswith("no worse than off") for r in report.rows if r.goal)
    shipped = next(n for n in report.notes if "while on, the forwarder shipped" in n)
    assert "unreachable: state unreachable" in shipped
