"""The memory benchmark's shape from a tiny real run (two pumps, a few seconds)."""

from __future__ import annotations

import pytest

from bench import bench_memory
from bench.report import Report

pytestmark = pytest.mark.timeout(120)


async def test_memory_figures_are_measured_beside_their_baselines() -> None:
    report = Report()
    await bench_memory.measure(report, bench_memory.Sizes(pumps=2, window_s=2.0, checks=2))
    heap, rss, peak, kept = report.rows
    assert heap.baseline_name.startswith("bare pymodbus loop")
    assert "polls" in heap.name
    assert rss.unit == "KiB"
    # the hashes took their memory while they ran (64 MiB each), and gave it back
    assert peak.baseline == 128
    assert peak.figure > 32
    assert kept.baseline == 64
    assert kept.met is True
