"""The summary table printed after every soak run (markdown, so it can go into a note)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from soak.invariants import Violation


@dataclass
class Summary:
    seed: int
    digest: str
    pumps: dict[str, str]
    """pump_id → transport."""
    scale: float
    wall_s: float
    sessions: Counter[str] = field(default_factory=Counter)
    """outcome → count (the nurses' records)."""
    faults: Counter[str] = field(default_factory=Counter)
    alarms: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    rss_first_kib: tuple[int, int] = (0, 0)
    rss_last_kib: tuple[int, int] = (0, 0)
    rss_longest_kib: tuple[int, int, float] = (0, 0, 0.0)
    max_excess_ul: tuple[float, str] = (0.0, "-")
    bounds: str = ""
    evidence: str = ""


def _counts(c: Counter[str], limit: int = 40) -> str:
    items = c.most_common(limit)
    text = ", ".join(f"{k} {v}" for k, v in items)
    return text + (f", … ({len(c) - limit} more kinds)" if len(c) > limit else "") or "none"


def _mib(pair: tuple[int, int]) -> str:
    return f"{pair[0] / 1024:.1f} MiB → {pair[1] / 1024:.1f} MiB"


def render(s: Summary) -> str:
    tcp = sum(1 for t in s.pumps.values() if t == "tcp")
    rtu = sum(1 for t in s.pumps.values() if t == "rtu")
    newera = sum(1 for t in s.pumps.values() if t == "newera")
    dulco = sum(1 for t in s.pumps.values() if t == "dulco")
    total_sessions = sum(s.sessions.values())
    violations = Counter(v.kind for v in s.violations)
    rows = [
        ("seed", f"{s.seed} (decisions sha256 {s.digest})"),
        (
            "pumps",
            f"{len(s.pumps)} ({tcp} GIP-MB1 Modbus TCP, {rtu} GIP-MB1 Modbus RTU on the pty "
            f"line, {newera} New Era on the serial pty, {dulco} DULCO flex over RTU on its pty)",
        ),
        ("time scale", f"x{s.scale:g}; wall time {s.wall_s:.0f} s"),
        ("sessions", f"{total_sessions}: {_counts(s.sessions)}"),
        ("faults injected", f"{sum(s.faults.values())}: {_counts(s.faults)}"),
        ("alarms raised", f"{sum(s.alarms.values())}: {_counts(s.alarms, 12)}"),
        ("daemon restarts", f"{sum(s.restarts.values())}: {_counts(s.restarts)}"),
        ("audit events", f"{s.events}: {_counts(s.event_types, 8)}"),
        ("nurse actions", f"{sum(s.actions.values())}: {_counts(s.actions, 12)}"),
        ("wrong actions tried", f"{sum(s.wrong.values())}: {_counts(s.wrong)}"),
        ("largest true volume above plan", f"{s.max_excess_ul[0]:.0f} µL ({s.max_excess_ul[1]})"),
        ("bounds checked", s.bounds),
        ("evidence checked", s.evidence),
        ("daemon RSS (first daemon)", f"{_mib(s.rss_first_kib)} (at ready → at its end)"),
        ("daemon RSS (last daemon)", f"{_mib(s.rss_last_kib)} (at ready → at the end)"),
        (
            "daemon RSS (longest life)",
            f"{s.rss_longest_kib[0] / 1024:.1f} → {s.rss_longest_kib[1] / 1024:.1f} MiB over "
            f"{s.rss_longest_kib[2]:.0f} s",
        ),
        ("invariant violations", f"{len(s.violations)}: {_counts(violations)}"),
    ]
    lines = ["| soak | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    for v in s.violations[:50]:
        lines.append(f"\nVIOLATION {v.kind} [{v.pump_id or '-'}]: {v.detail}")
    if len(s.violations) > 50:
        lines.append(f"\n… and {len(s.violations) - 50} more violations")
    return "\n".join(lines)
