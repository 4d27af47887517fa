"""One table for every benchmark: figure, baseline from the same run, ratio, goal.

Benchmarks never assert timings; they measure, compare against a baseline taken in the
same process on the same machine, and print. A goal is text a reader checks at a glance,
with ``met`` computed only where the goal is a plain ratio or bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured figure with its same-run baseline."""

    suite: str
    name: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.figure / self.baseline


@dataclasses.dataclass
class Report:
    """Collects rows from every benchmark module and renders one markdown table."""

    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    header: list[str] = dataclasses.field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.suite}: {row.name} = {_fmt(row.figure)} {row.unit}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def markdown(self) -> str:
        lines = [line for h in self.header for line in (h, "")]
        lines += [
            "| suite | figure | value | baseline (same run) | ratio | goal | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            base = f"{_fmt(r.baseline)} {r.unit} ({r.baseline_name})" if r.baseline else ""
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(
                f"| {r.suite} | {r.name} | {_fmt(r.figure)} {r.unit} | {base} | {ratio} "
                f"| {r.goal} | {met} |"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


BenchFn = Callable[[Report, bool], None]
