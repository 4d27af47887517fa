"""The summary table printed after every soak run (markdown, so it can go into a note)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from soak.evidence import FAULT_WINDOW_S, FaultInjection
from soak.invariants import Violation
from soak.world import RSS_FLOOR_WINDOW_S


@dataclass(frozen=True)
class Rss:
    """One daemon life's resident set size, KiB."""

    at_ready_kib: int = 0
    at_end_kib: int = 0
    floor_at_end_kib: int = 0
    """The lowest in the last ``RSS_FLOOR_WINDOW_S`` of the life."""
    peak_kib: int = 0
    life_s: float = 0.0


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
    rss_first: Rss = Rss()
    rss_last: Rss = Rss()
    rss_longest: Rss = Rss()
    max_excess_ul: tuple[float, str] = (0.0, "-")
    max_excess_faults: tuple[str, float, tuple[FaultInjection, ...]] | None = None
    """The largest overrun's pump, when it passed its plan, the faults on it just before."""
    bounds: str = ""
    evidence: str = ""


def _counts(c: Counter[str], limit: int = 40) -> str:
    items = c.most_common(limit)
    text = ", ".join(f"{k} {v}" for k, v in items)
    return text + (f", … ({len(c) - limit} more kinds)" if len(c) > limit else "") or "none"


def _mib(r: Rss) -> str:
    """A life's RSS: at ready → the lowest of its last seconds (what it keeps); then the one
    reading at its end and the highest seen, which include the PIN hashes in flight (64 MiB
    each, two at most)."""
    return (
        f"{r.at_ready_kib / 1024:.1f} → {r.floor_at_end_kib / 1024:.1f} MiB kept over "
        f"{r.life_s:.0f} s (at ready → lowest in its last {RSS_FLOOR_WINDOW_S:g} s); at its end "
        f"{r.at_end_kib / 1024:.1f} MiB, peak {r.peak_kib / 1024:.1f} MiB"
    )


def _fault_text(i: FaultInjection, t_mono: float) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(i.params.items()))
    text = f"{i.fault}{f' ({params})' if params else ''} on {i.pump_kind} unit {i.unit}: on at "
    text += f"{i.on_utc} (mono {i.on_mono:.3f}, {t_mono - i.on_mono:.2f} s before, "
    text += f"daemon life {i.on_life if i.on_life is not None else 'none up'})"
    if i.off_mono is None:
        return text + ", never turned off"
    life = i.off_life if i.off_life is not None else "none up"
    return text + f", off at {i.off_utc} (mono {i.off_mono:.3f}, daemon life {life})"


def violation_text(v: Violation) -> str:
    """A violation as printed, with the faults on its pump just before it."""
    text = f"VIOLATION {v.kind} [{v.pump_id or '-'}]: {v.detail}"
    if v.pump_id is None or v.t_mono is None or v.faults is None:
        return text
    if not v.faults:
        return text + f"\n  no fault injected on {v.pump_id} in the {FAULT_WINDOW_S:g} s before"
    head = f"\n  faults on {v.pump_id} in the {FAULT_WINDOW_S:g} s before (mono {v.t_mono:.3f}):"
    return text + head + "".join(f"\n  - {_fault_text(i, v.t_mono)}" for i in v.faults)


def excess_faults_text(found: tuple[str, float, tuple[FaultInjection, ...]] | None) -> str:
    """The faults before the largest overrun passed its plan (``soak.causes``), as printed."""
    if found is None:
        return "-"
    pump, t_mono, faults = found
    head = f"{pump}, passed at mono {t_mono:.3f}; in the {FAULT_WINDOW_S:g} s before: "
    return head + ("; ".join(_fault_text(i, t_mono) for i in faults) or "no fault injected")


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
        ("faults before it passed its plan", excess_faults_text(s.max_excess_faults)),
        ("bounds checked", s.bounds),
        ("evidence checked", s.evidence),
        ("daemon RSS (first daemon)", _mib(s.rss_first)),
        ("daemon RSS (last daemon)", _mib(s.rss_last)),
        ("daemon RSS (longest life)", _mib(s.rss_longest)),
        ("invariant violations", f"{len(s.violations)}: {_counts(violations)}"),
    ]
    lines = ["| soak | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    for v in s.violations[:50]:
        lines.append("\n" + violation_text(v))
    if len(s.violations) > 50:
        lines.append(f"\n… and {len(s.violations) - 50} more violations")
    return "\n".join(lines)
