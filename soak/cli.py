"""``python -m soak``: run the soak, check the invariants, print the summary.

Exit 0 when every invariant held, 1 on any violation, 2 on bad usage, 3 when the run
itself broke (the stack did not start, a thread crashed): a soak that could not run proves
nothing and must not look like a pass.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from soak import invariants
from soak.causes import faults_before_overrun
from soak.evidence import Evidence
from soak.invariants import volume_bound_ul
from soak.report import excess_faults_text, render, violation_text
from soak.run import RunSettings, run_soak


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    p.add_argument("--sessions", type=int, default=1000, help="complete sessions in all (1000)")
    p.add_argument("--seed", type=int, default=None, help="the seed (default: from the clock)")
    p.add_argument("--pumps", type=int, default=10, help="pumps at once (10)")
    p.add_argument("--rtu-pumps", type=int, default=None, help="of which on RTU (a third)")
    p.add_argument("--time-scale", type=float, default=240.0, help="simulated s per real s (240)")
    p.add_argument(
        "--kill-every", type=float, default=90.0, help="mean real seconds between daemon kills (90)"
    )
    p.add_argument("--no-kills", action="store_true", help="never signal the daemon")
    p.add_argument(
        "--forward",
        action="store_true",
        help="also forward to a central store on $PUMPD_TEST_PG_URL and check it (soak/forward.py)",
    )
    p.add_argument("--keep", type=Path, default=None, help="keep the evidence and logs here")
    p.add_argument(
        "--check-only", type=Path, default=None, help="check a kept evidence.json again, do not run"
    )
    args = p.parse_args(argv)
    if args.sessions < 1 or args.pumps < 1 or args.pumps > 20:
        p.error("--sessions must be >= 1 and --pumps 1..20")
    if args.rtu_pumps is None:
        args.rtu_pumps = args.pumps // 3
    if not 0 <= args.rtu_pumps <= args.pumps:
        p.error("--rtu-pumps must be within 0..--pumps")
    if not 1 <= args.time_scale <= 1000:
        p.error("--time-scale must be within 1..1000")
    if args.seed is None:
        args.seed = int(time.time()) % 1_000_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.check_only is not None:
        ev = Evidence.load(args.check_only)
        found = invariants.check_all(ev)
        for v in found:
            print(violation_text(v))
        excess, session_id = invariants.max_excess_ul(ev)
        if excess > 0:
            faults = excess_faults_text(faults_before_overrun(ev, session_id))
            print(f"largest true volume above plan: {excess:.0f} µL ({session_id}); faults before "
                  f"it passed its plan: {faults}")  # fmt: skip
        print(f"{len(found)} invariant violations")
        return 1 if found else 0
    print(f"soak: seed {args.seed} (replay: python -m soak --seed {args.seed} ...)", flush=True)
    settings = RunSettings(
        sessions=args.sessions,
        seed=args.seed,
        pumps=args.pumps,
        rtu_pumps=args.rtu_pumps,
        time_scale=args.time_scale,
        kill_every_s=None if args.no_kills else args.kill_every,
        keep=args.keep,
        forward=args.forward,
    )
    try:
        outcome = run_soak(settings)
    except Exception:
        traceback.print_exc()
        print(f"soak: the run itself failed (seed {args.seed})", file=sys.stderr)
        return 3
    ev = outcome.evidence
    found = invariants.check_all(ev)
    summary = outcome.summary
    summary.violations = found
    summary.max_excess_ul = invariants.max_excess_ul(ev)
    if summary.max_excess_ul[0] > 0:
        summary.max_excess_faults = faults_before_overrun(ev, summary.max_excess_ul[1])
    summary.bounds = (
        f"reaction B = {invariants.reaction_bound_s(ev):g} s real; volume L = plan + 200 µL + "
        f"max(5 % of plan/0.95, 500 µL) = {volume_bound_ul(100_000)} µL for 100 mL, passed for "
        "at most B"
    )
    intents = sum(1 for e in ev.events if e.event_type == "pump.command.requested")
    pressed = {(p.unit, p.cmd_seq) for p in ev.presses}
    in_log = sum(1 for c in ev.sim_commands if (c.unit, c.cmd_seq) in pressed)
    unanswered = sum(1 for p in ev.presses if not p.answered)
    summary.evidence = (
        f"{len(ev.samples)} samples; {len(ev.sim_commands)} commands in the simulator's log "
        f"({in_log} pressed at a pump panel; {unanswered} presses unanswered) "
        f"against {intents} intents; "
        f"{len(ev.lives)} daemon lives; {len(ev.injections)} fault injections kept"
    )
    summary.alarms = Counter(
        str(e.payload.get("alarm_code")) for e in ev.events if e.event_type == "alarm.raised"
    )
    summary.events = len(ev.events)
    summary.event_types = Counter(e.event_type for e in ev.events)
    print(render(summary), flush=True)
    if outcome.error:
        print(f"soak: the run broke: {outcome.error} (seed {args.seed})", file=sys.stderr)
        return 3
    if found:
        print(f"soak: {len(found)} invariant violations (seed {args.seed})", file=sys.stderr)
        return 1
    return 0
