"""The shared-line benchmark's report from a tiny real run (New Era line: the quickest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pumpd.drivers.priority as priority
from bench import bench_line
from bench.bench_controller import daemon_logs_to_nowhere
from bench.report import Report


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    with daemon_logs_to_nowhere():
        yield


async def test_new_era_rows_carry_the_goal_from_the_same_runs_round_trip(
    quiet_logs: object,
) -> None:
    report = Report()
    sizes = bench_line.Sizes(injections=2, newera_injections=2, round_trips=5)
    await bench_line.measure(report, sizes, quick=True, kinds=("newera",))
    assert priority.PRIORITIZE_HALTS  # put back after the "no priority" figures
    rtt = next(r for r in report.rows if r.name.startswith("status read round trip"))
    assert rtt.figure > 0
    p99s = [r for r in report.rows if r.name.endswith("p99") and r.goal]
    # push → STP and stall → durable alarm, in each of three modes
    assert len(p99s) == 6
    waits = [r for r in report.rows if r.name.startswith("a halting request's wait")]
    assert waits  # the STOPs after the stalls
    assert all(r.baseline == rtt.figure for r in waits)
    period = next(r for r in report.rows if r.name.startswith("poll period used"))
    # the line's own period: never faster than the asked poll period, slower when it cannot carry it
    assert period.figure >= bench_line.POLL_PERIOD_S * 1000 - 1e-6
    for row in p99s:
        assert row.baseline == pytest.approx(period.figure + 2 * rtt.figure)
        assert row.met is (row.figure <= row.baseline)
    modes = {"priority, wake", "priority, no wake", "no priority, wake"}
    assert all(any(m in r.name for r in p99s) for m in modes)
    # push → STP also in round trips of the pump, against one
    trips = [r for r in report.rows if r.unit == "round trips"]
    assert trips
    assert all(r.baseline == 1 and r.met is (r.figure <= 1) for r in trips)


async def test_one_fault_at_a_time_rows_on_a_small_tcp_line(
    quiet_logs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The goal's own scene (bench_line_steady.py), on three pumps instead of sixteen."""
    monkeypatch.setattr(bench_line, "MODBUS_PUMPS", 3)
    monkeypatch.setenv("BENCH_LINE_STORM", "0")
    report = Report()
    sizes = bench_line.Sizes(injections=2, newera_injections=2, round_trips=5, rounds=1)
    await bench_line.measure(report, sizes, quick=True, kinds=("tcp",))
    assert priority.PRIORITIZE_HALTS
    p99s = [r for r in report.rows if r.name.endswith("p99") and r.goal]
    scenes = {
        (what, mode)
        for r in p99s
        for what in ("runaway", "occlusion")
        for mode in ("one fault at a time, priority", "one fault at a time, no priority")
        if r.name.startswith(what) and f"{mode}," in r.name
    }
    assert len(scenes) == 4, [r.name for r in p99s]
    assert len(p99s) == 4  # the storm was not run
    assert all("missed" not in r.name for r in p99s), [r.name for r in p99s]
    parts = [
        r for r in report.rows if r.name.startswith("A breakdown") and "fault → read" in r.name
    ]
    assert parts  # A cut into its segments
    b_cut = [r for r in report.rows if r.name.startswith("B breakdown") and "write began" in r.name]
    assert b_cut  # B too
    assert any(n.startswith("line tcp B one fault at a time") for n in report.notes)
    polls = [r for r in report.rows if r.name.startswith("polls per pump per s")]
    assert polls
    assert all(r.figure > 0 for r in polls)


def test_b_is_cut_at_the_read_that_found_the_fault_and_its_parts_add_up() -> None:
    reads = [(0.90, 0.90, 0.901, 0, 0), (1.00, 1.00, 1.001, 0, 0), (1.10, 1.10, 1.102, 0, 0)]
    parts = bench_line.b_parts(reads, 0.95, handed=1.0015, write=(1.002, 3), committed=1.004)
    assert parts is not None
    whole = sum(parts[name] for name, _, _ in bench_line.B_SEGMENTS)
    assert whole == pytest.approx((1.004 - 0.95) * 1000)
    assert parts["fault → read asked"] == pytest.approx(50.0)
    assert parts["read asked → answered"] == pytest.approx(1.0)
    assert parts["batch"] == 3
    # no handover, no write, or only a read from before the fault: not counted
    assert bench_line.b_parts(reads, 0.95, None, (1.002, 3), 1.004) is None
    assert bench_line.b_parts(reads, 0.95, 1.0015, None, 1.004) is None
    assert bench_line.b_parts(reads, 1.05, 1.0015, (1.002, 3), 1.004) is None
    # and each of those says why
    assert "no hand-over" in bench_line.b_uncut(reads, 0.95, None, (1.002, 3), 1.004)
    assert "not stamped" in bench_line.b_uncut(reads, 0.95, 1.0015, None, 1.004)
    early = bench_line.b_uncut(reads, 1.05, 1.0015, (1.002, 3), 1.004)
    assert "asked 50 ms before the fault" in early, early
