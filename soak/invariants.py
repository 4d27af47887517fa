"""The soak's invariants, checked from the evidence alone (pure: no I/O, no clock).

Each check returns :class:`Violation` s; an empty list is a pass. The bounds are stated
here and in docs/soak.md:

* **reaction bound** ``B = heartbeat_timeout_s + 1 s`` (real seconds): the pump's own
  failsafe stops it ``heartbeat_timeout_s`` after pumpd's last heartbeat (a dead daemon, a
  dead link), and within that pumpd stops it itself; the extra second covers ten polls,
  the sampler's period and scheduling on a loaded machine. A pump that ignores remote
  commands cannot be stopped from pumpd (docs/safety/fault-matrix.md): there the bound
  is on pumpd *saying so* — a ``command.*.not_applied`` alarm within ``B``.
* **volume bound** ``L = V + 200 µL + max(5 % × V / 0.95, 500 µL)`` for a plan of ``V`` µL:
  the kernel's VTBI overrun (200 µL) plus its volume band at the largest expected volume
  a frozen counter can reach before the under-infusion rule pauses (docs/safety/
  supervision-rules.md). The pump's true volume (the simulator's, not its counter) may
  pass ``L`` only for a moment: it must stop delivering within ``B`` of passing it. At a
  time scale S one real second is S simulated seconds of flow, so the volume that passes
  in a reaction grows with S; the bound on time does not.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

from soak.evidence import AuditEvent, Evidence, FaultInjection, Sample, SimCommand

FINAL_STATES = frozenset({"DISCHARGED", "ABORTED"})
DELIVERING = frozenset({"PRIMING", "INFUSING", "KVO", "RUNNING"})
_PRIMING_STATES = frozenset({"PRIME_REQUESTED", "PRIMING"})
_INFUSING_STATES = frozenset({"START_REQUESTED", "RESUME_REQUESTED", "INFUSING", "ADJUSTING"})
ALLOWED_SESSION_STATES = {
    "PRIMING": _PRIMING_STATES,
    "INFUSING": _INFUSING_STATES,
    "KVO": _INFUSING_STATES | {"KVO"},
    "RUNNING": _PRIMING_STATES | _INFUSING_STATES,
}
"""Pump mode → the session states in which pumpd means it to run so. STOP_REQUESTED,
PAUSE_REQUESTED, COMPLETE, UNCERTAIN and ALARM are not among them: from there on the time
a pump keeps running is pumpd's reaction, and it is bounded."""
SIM_COMMAND_KINDS = {1: ("start", "resume"), 2: ("pause",), 3: ("stop",), 4: ("prime",)}
"""GIP-MB1 command words (docs/gip-mb1.md) → the intents that may announce them."""
ONCE_ONLY = frozenset({"start", "resume", "prime"})
RESULT_TYPES = ("pump.command.confirmed", "pump.command.uncertain", "pump.command.failed")
STAMP_TOLERANCE_S = 0.002
"""Placing a UTC audit stamp on the monotonic line: both clocks are read by the same host,
the offset is sampled every ~0.1 s. An intent is stamped when it is handed to the writer,
before its command is sent (a start's also committed before; a halt's not waited for:
docs/controller.md), so a command the pump took more than 2 ms before its intent's stamp
is a real violation; one within 2 ms before it would pass."""
KVO_EXTRA_UL = 0
"""Every shipped protocol has kvo_rate_ml_h = 0, so no session of the soak reaches KVO; a
soak of a KVO protocol must add the protocol's KVO allowance here."""


@dataclass(frozen=True)
class Violation:
    kind: str
    pump_id: str | None
    detail: str
    t_mono: float | None = None
    """When it was seen on the monotonic line (None: a finding with no moment)."""
    faults: tuple[FaultInjection, ...] | None = None
    """The faults on its pump in the window before ``t_mono`` (``check_all`` fills it; None:
    not known, the evidence kept no injections)."""


def reaction_bound_s(ev: Evidence) -> float:
    return ev.heartbeat_timeout_s + 1.0


def volume_bound_ul(plan_ul: int) -> int:
    return plan_ul + 200 + max(math.ceil(plan_ul * 5 / 95), 500) + KVO_EXTRA_UL


def check_all(ev: Evidence) -> list[Violation]:
    found: list[Violation] = []
    for check in (
        check_chain,
        check_intents,
        check_results,
        check_delivery,
        check_volume,
        check_recovery,
        check_sessions_ended,
        check_nurse_findings,
        check_forwarding,
    ):
        found += check(ev)
    if not ev.injections_kept:
        return found
    return [dataclasses.replace(v, faults=ev.faults_before(v.pump_id, v.t_mono)) for v in found]


# ---------------------------------------------------------------------- the log itself


def check_chain(ev: Evidence) -> list[Violation]:
    """Gapless, duplicate-free seq from 1, and `pumpaudit verify` passing."""
    found: list[Violation] = []
    seqs = [e.seq for e in ev.events]
    seen: set[int] = set()
    expected = 1
    for seq in seqs:
        if seq in seen:
            found.append(Violation("audit.seq_duplicate", None, f"seq {seq} appears twice"))
            continue
        seen.add(seq)
        if seq != expected:
            found.append(Violation("audit.seq_gap", None, f"seq {expected} missing before {seq}"))
        expected = seq + 1
    if ev.verify_exit != 0:
        found.append(
            Violation("audit.verify_failed", None, f"exit {ev.verify_exit}: {ev.verify_output}")
        )
    return found


# ---------------------------------------------------------------------- commands


def _lives_by_instance(ev: Evidence) -> dict[str, tuple[float | None, str | None]]:
    """instance_id → (end of that daemon's life on the monotonic line, how it ended).

    The k-th instance to write `daemon.started` is the k-th life the soak started."""
    order: list[str] = []
    for e in ev.events:
        if e.event_type == "daemon.started" and e.instance_id not in order:
            order.append(e.instance_id)
    out: dict[str, tuple[float | None, str | None]] = {}
    for instance, life in zip(order, ev.lives, strict=False):
        out[instance] = (life.ended_mono, life.ended_by)
    return out


@dataclass
class _Intent:
    event: AuditEvent
    t_mono: float
    end_mono: float
    commands: int = 0


def _intents(ev: Evidence) -> dict[str, list[_Intent]]:
    """Per pump, every intent with the window in which the pump may take its command:
    from the intent's stamp to its result's (or the end of its daemon's life)."""
    lives = _lives_by_instance(ev)
    results: dict[str, list[AuditEvent]] = defaultdict(list)
    for e in ev.events:
        if e.event_type in RESULT_TYPES and e.correlation_id:
            results[e.correlation_id].append(e)
    per_pump: dict[str, list[_Intent]] = defaultdict(list)
    for e in ev.events:
        if e.event_type != "pump.command.requested" or e.pump_id is None:
            continue
        t = ev.mono_of_utc(e.occurred_at)
        closing = results.get(e.correlation_id or "", [])
        if closing:
            end = ev.mono_of_utc(closing[0].occurred_at)
        else:
            ended = lives.get(e.instance_id, (None, None))[0]
            end = ended if ended is not None else math.inf
        per_pump[e.pump_id].append(_Intent(e, t, end))
    return per_pump


def check_intents(ev: Evidence) -> list[Violation]:
    """Every command the pump took has an intent, stamped before it, whose window holds
    it; START and PRIME are taken at most once per intent; delivery is never started by
    the daemon itself (recovery never starts)."""
    found: list[Violation] = []
    pump_of_unit = {unit: pump for pump, unit in ev.units.items()}
    intents = _intents(ev)
    presses = {(p.unit, p.cmd_seq) for p in ev.presses}
    for c in sorted(ev.sim_commands, key=lambda c: c.t_mono):
        if (c.unit, c.cmd_seq) in presses:
            continue
        pump = pump_of_unit.get(c.unit)
        kinds = SIM_COMMAND_KINDS.get(c.command)
        if pump is None:
            continue
        if kinds is None:
            found.append(
                Violation(
                    "command.unknown", pump, f"command word {c.command} (cmd_seq {c.cmd_seq})"
                )
            )
            continue
        match = _matching_intent(intents.get(pump, []), kinds, c)
        if match is None:
            found.append(
                Violation(
                    "command.without_intent",
                    pump,
                    f"the pump took {kinds[0]} (word {c.command}, cmd_seq {c.cmd_seq}) at "
                    f"{c.t_mono:.3f} with no intent of that kind open before it",
                    c.t_mono,
                )
            )
            continue
        match.commands += 1
    for pump, items in intents.items():
        for it in items:
            command = str(it.event.payload.get("command"))
            if command in ONCE_ONLY and it.commands > 1:
                found.append(
                    Violation(
                        "command.repeated",
                        pump,
                        f"{command} (correlation {it.event.correlation_id}) reached the pump "
                        f"{it.commands} times",
                        it.t_mono,
                    )
                )
            if command in ONCE_ONLY and it.event.actor_kind == "daemon":
                found.append(
                    Violation(
                        "command.moving_by_daemon",
                        pump,
                        f"pumpd itself asked for {command} (seq {it.event.seq})",
                    )
                )
    return found


def _matching_intent(items: list[_Intent], kinds: tuple[str, ...], c: SimCommand) -> _Intent | None:
    best: _Intent | None = None
    for it in items:
        if str(it.event.payload.get("command")) not in kinds:
            continue
        opened = it.t_mono - STAMP_TOLERANCE_S <= c.t_mono <= it.end_mono + STAMP_TOLERANCE_S
        if opened and (best is None or it.t_mono > best.t_mono):
            best = it  # the latest intent opened before the command
    return best


def check_results(ev: Evidence) -> list[Violation]:
    """Every intent has exactly one result, unless its daemon was killed before it could
    be written (then the next daemon reports the open work: check_recovery)."""
    found: list[Violation] = []
    lives = _lives_by_instance(ev)
    results: dict[str, int] = defaultdict(int)
    for e in ev.events:
        if e.event_type in RESULT_TYPES and e.correlation_id:
            results[e.correlation_id] += 1
    for e in ev.events:
        if e.event_type != "pump.command.requested":
            continue
        n = results.get(e.correlation_id or "", 0)
        if n > 1:
            found.append(
                Violation("command.duplicate_result", e.pump_id, f"{e.correlation_id}: {n} results")
            )
        if n == 0 and lives.get(e.instance_id, (None, None))[1] != "KILL":
            found.append(
                Violation(
                    "command.no_result",
                    e.pump_id,
                    f"{e.payload.get('command')} intent seq {e.seq} ({e.correlation_id}) has "
                    "no result and its daemon was not killed",
                    ev.mono_of_utc(e.occurred_at),
                )
            )
    return found


# ---------------------------------------------------------------------- the pumps


def _life_at(ev: Evidence, t: float) -> bool:
    """True when a daemon was up (ready, not yet signalled) at monotonic time t."""
    return any(
        life.ready_mono <= t and (life.ended_mono is None or t < life.ended_mono)
        for life in ev.lives
    )


def _by_unit(ev: Evidence) -> dict[int, list[Sample]]:
    out: dict[int, list[Sample]] = defaultdict(list)
    for s in sorted(ev.samples, key=lambda s: s.t_mono):
        out[s.unit].append(s)
    return out


def check_delivery(ev: Evidence) -> list[Violation]:
    """No pump delivers, longer than B, while its session is not in a state that means
    it to (or while no daemon runs), unless pumpd announced within B that the pump does
    not obey (`command.*.not_applied`)."""
    found: list[Violation] = []
    bound = reaction_bound_s(ev)
    pump_of_unit = {unit: pump for pump, unit in ev.units.items()}
    for unit, samples in _by_unit(ev).items():
        view: Sample | None = None
        began: float | None = None
        announced = False
        for s in samples:
            up = _life_at(ev, s.t_mono)
            if s.daemon_answered:
                view = s
            elif not up:
                view = None
            delivering = s.pump_state in DELIVERING
            ok = (
                up
                and view is not None
                and view.session_state in ALLOWED_SESSION_STATES.get(s.pump_state, frozenset())
            )
            if delivering and not ok:
                if began is None:
                    began, announced = s.t_mono, False
                if (
                    up
                    and view is not None
                    and s.t_mono - began <= bound
                    and any(c.endswith(".not_applied") for c in view.alarm_codes)
                ):
                    announced = True
                if s.t_mono - began > bound and not announced:
                    state = view.session_state if view is not None and up else "no daemon"
                    found.append(
                        Violation(
                            "delivery.unsupervised",
                            pump_of_unit.get(unit),
                            f"pump {s.pump_state} for > {bound:g} s (from {began:.3f}) while "
                            f"the session was {state}",
                            s.t_mono,
                        )
                    )
                    announced = True  # one violation per interval
            else:
                began = None
    return found


@dataclass
class _Window:
    pump_id: str
    session_id: str
    begin: float
    end: float
    plan_ul: int


def _session_windows(ev: Evidence) -> list[_Window]:
    first: dict[str, AuditEvent] = {}
    last: dict[str, AuditEvent] = {}
    plan: dict[str, int] = {}
    for e in ev.events:
        if e.session_id is None:
            continue
        if e.event_type == "session.programmed" and e.session_id not in first:
            first[e.session_id] = e
        if e.event_type in ("session.programmed", "session.adjusted"):
            volume = int(e.payload.get("volume_ul", 0))
            plan[e.session_id] = max(plan.get(e.session_id, 0), volume)
        last[e.session_id] = e
    finals = _final_states(ev)
    windows = []
    for sid, e in first.items():
        if e.pump_id is None:
            continue
        end = ev.mono_of_utc(last[sid].occurred_at)
        if finals.get(sid) not in FINAL_STATES:
            end = math.inf  # still open when the evidence was taken
        windows.append(_Window(e.pump_id, sid, ev.mono_of_utc(e.occurred_at), end, plan[sid]))
    return windows


def check_volume(ev: Evidence) -> list[Violation]:
    """Per session, the pump's true infused volume (summed over counter resets) may pass
    L only for at most B of delivery; no volume moves outside every session."""
    found: list[Violation] = []
    bound = reaction_bound_s(ev)
    by_unit = _by_unit(ev)
    windows = _session_windows(ev)
    primes = _prime_allowance_ul(ev)
    for w in windows:
        samples = [
            s for s in by_unit.get(ev.units.get(w.pump_id, -1), []) if w.begin <= s.t_mono <= w.end
        ]
        limit = volume_bound_ul(w.plan_ul) + primes.get(w.session_id, 0)
        total = 0.0
        over_at: float | None = None
        for prev, cur in pairwise(samples):
            total += max(0.0, cur.true_infused_ul - prev.true_infused_ul)
            if total > limit and over_at is None:
                over_at = cur.t_mono
            if (
                over_at is not None
                and cur.true_infused_ul > prev.true_infused_ul
                and cur.t_mono - over_at > bound
            ):
                found.append(
                    Violation(
                        "volume.over_bound",
                        w.pump_id,
                        f"session {w.session_id}: {total:.0f} µL delivered against a plan of "
                        f"{w.plan_ul} µL (bound {limit} µL) and still flowing "
                        f"{cur.t_mono - over_at:.2f} s after passing the bound",
                        cur.t_mono,
                    )
                )
                break
    for unit, samples in by_unit.items():
        pump = next((p for p, u in ev.units.items() if u == unit), None)
        mine = [w for w in windows if w.pump_id == pump]
        for prev, cur in pairwise(samples):
            moved = cur.true_infused_ul - prev.true_infused_ul
            inside = any(w.begin <= prev.t_mono and cur.t_mono <= w.end for w in mine)
            touching = any(w.begin <= cur.t_mono and prev.t_mono <= w.end for w in mine)
            if moved > 0 and not inside and not touching:
                found.append(
                    Violation(
                        "delivery.outside_session",
                        pump,
                        f"{moved:.0f} µL between {prev.t_mono:.3f} and {cur.t_mono:.3f} with "
                        "no session on the pump",
                        cur.t_mono,
                    )
                )
    return found


def _prime_allowance_ul(ev: Evidence) -> dict[str, int]:
    """session_id → the prime volume its pump counts as infused: the kind's prime (New Era:
    one counter for prime and infusion) once for every prime intent of the session."""
    allowance: dict[str, int] = defaultdict(int)
    for e in ev.events:
        per_prime = ev.prime_in_counter_ul.get(e.pump_id or "", 0)
        if (
            per_prime
            and e.session_id is not None
            and e.event_type == "pump.command.requested"
            and e.payload.get("command") == "prime"
        ):
            allowance[e.session_id] += per_prime
    return allowance


def max_excess_ul(ev: Evidence) -> tuple[float, str]:
    """The largest true volume above its plan (and the prime a pump counts with it) of any
    session (µL), and which session."""
    by_unit = _by_unit(ev)
    primes = _prime_allowance_ul(ev)
    worst, which = 0.0, "-"
    for w in _session_windows(ev):
        samples = [
            s for s in by_unit.get(ev.units.get(w.pump_id, -1), []) if w.begin <= s.t_mono <= w.end
        ]
        total = sum(max(0.0, b.true_infused_ul - a.true_infused_ul) for a, b in pairwise(samples))
        excess = total - w.plan_ul - primes.get(w.session_id, 0)
        if excess > worst:
            worst, which = excess, w.session_id
    return worst, which


# ---------------------------------------------------------------------- recovery


def _final_states(ev: Evidence) -> dict[str, str]:
    """session_id → the state of its last checkpoint."""
    state: dict[str, str] = {}
    for e in ev.events:
        if e.session_id is not None and e.event_type == "session.checkpointed":
            state[e.session_id] = str(e.payload.get("state"))
    return state


def check_recovery(ev: Evidence) -> list[Violation]:
    """After a daemon was killed or stopped, the next one started and reported every
    session that was open on its pump (`daemon.recovered`) before anything else of it."""
    found: list[Violation] = []
    order: list[str] = []
    for e in ev.events:
        if e.event_type == "daemon.started" and e.instance_id not in order:
            order.append(e.instance_id)
    state_of: dict[str, str] = {}
    pump_of: dict[str, str] = {}
    by_instance: dict[str, list[AuditEvent]] = defaultdict(list)
    for e in ev.events:
        by_instance[e.instance_id].append(e)
    for index, instance in enumerate(order):
        if index > 0:
            open_sessions = {sid for sid, st in state_of.items() if st not in FINAL_STATES}
            reported: set[str] = set()
            for e in by_instance[instance]:
                if e.event_type == "daemon.recovered":
                    reported |= {str(s) for s in e.payload.get("open_sessions", [])}
            for sid in sorted(open_sessions - reported):
                found.append(
                    Violation(
                        "recovery.session_not_recovered",
                        pump_of.get(sid),
                        f"session {sid} was open ({state_of[sid]}) when daemon {index} ended; "
                        f"daemon {index + 1} did not report it recovered",
                    )
                )
        for e in by_instance[instance]:
            if e.event_type == "session.checkpointed" and e.session_id:
                state_of[e.session_id] = str(e.payload.get("state"))
                if e.pump_id:
                    pump_of[e.session_id] = e.pump_id
    if len(order) < len(ev.lives):
        found.append(
            Violation(
                "recovery.daemon_not_started",
                None,
                f"{len(ev.lives)} daemons were started, {len(order)} wrote daemon.started",
            )
        )
    return found


def check_sessions_ended(ev: Evidence) -> list[Violation]:
    """Every session programmed was brought to an end (DISCHARGED or ABORTED) with the
    documented nurse actions only: none is left open, not even after a kill."""
    found: list[Violation] = []
    state_of: dict[str, str] = {}
    pump_of: dict[str, str | None] = {}
    last_at: dict[str, str] = {}
    for e in ev.events:
        if e.session_id is None:
            continue
        if e.event_type == "session.programmed":
            state_of.setdefault(e.session_id, "PROGRAMMED")
            pump_of[e.session_id] = e.pump_id
        if e.event_type in ("session.programmed", "session.checkpointed"):
            last_at[e.session_id] = e.occurred_at
        if e.event_type == "session.checkpointed":
            state_of[e.session_id] = str(e.payload.get("state"))
    for sid, state in state_of.items():
        if state not in FINAL_STATES:
            at = ev.mono_of_utc(last_at[sid])  # the faults before it entered that state
            found.append(Violation("session.unfinished", pump_of.get(sid),
                                   f"session {sid} left in {state}", at))  # fmt: skip
    return found


def check_nurse_findings(ev: Evidence) -> list[Violation]:
    return [Violation(kind, pump, detail) for kind, pump, detail in ev.nurse_findings]


# ---------------------------------------------------------------------- the central store


def check_forwarding(ev: Evidence) -> list[Violation]:
    """With ``--forward``: the centre holds exactly the site's events, in order, with equal
    hashes, after every kill and every cut connection; and it recorded no conflict."""
    if ev.forwarded is None:
        return []
    found: list[Violation] = []
    site = {seq: (prev, h) for seq, prev, h in ev.site_chain}
    held = [seq for seq, _, _ in ev.forwarded]
    if held != sorted(set(held)) or held != list(range(1, len(held) + 1)):
        found.append(
            Violation("forward.order", None, f"the centre's seqs are not 1..{len(held)} once each")
        )
    for seq, prev, h in ev.forwarded:
        if site.get(seq) != (prev, h):
            found.append(
                Violation("forward.hash", None, f"seq {seq} at the centre differs from the site's")
            )
            break
    if len(held) != len(ev.site_chain):
        found.append(
            Violation(
                "forward.count",
                None,
                f"the centre holds {len(held)} events, the site {len(ev.site_chain)}",
            )
        )
    for site_id, seq, kind in ev.central_conflicts:
        found.append(Violation("forward.conflict", None, f"{site_id} seq {seq}: {kind}"))
    return found
