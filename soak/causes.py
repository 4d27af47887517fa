"""The faults on a pump just before its largest overrun of the run: an overrun stopped
within B is no violation, yet the reader wants its likely cause (docs/soak.md)."""

from __future__ import annotations

from itertools import pairwise

from soak.evidence import Evidence, FaultInjection
from soak.invariants import _by_unit, _prime_allowance_ul, _session_windows


def passed_plan_at(ev: Evidence, session_id: str) -> tuple[str, float] | None:
    """The pump of ``session_id`` and the first sample at which its true volume (summed as
    ``max_excess_ul`` sums it) was above its plan and the prime its pump counts; None if it
    never was."""
    by_unit = _by_unit(ev)
    primes = _prime_allowance_ul(ev)
    for w in _session_windows(ev):
        if w.session_id != session_id:
            continue
        unit = ev.units.get(w.pump_id, -1)
        samples = [s for s in by_unit.get(unit, []) if w.begin <= s.t_mono <= w.end]
        total = 0.0
        for a, b in pairwise(samples):
            total += max(0.0, b.true_infused_ul - a.true_infused_ul)
            if total > w.plan_ul + primes.get(session_id, 0):
                return w.pump_id, b.t_mono
    return None


def faults_before_overrun(
    ev: Evidence, session_id: str
) -> tuple[str, float, tuple[FaultInjection, ...]] | None:
    """(pump, the moment it passed its plan, the faults on that pump in the window before);
    None when the session never passed it or the evidence kept no injections."""
    at = passed_plan_at(ev, session_id)
    if at is None or not ev.injections_kept:
        return None
    pump, t_mono = at
    return pump, t_mono, ev.faults_before(pump, t_mono)
