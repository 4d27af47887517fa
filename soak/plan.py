"""Every random decision of a soak, drawn from the seed before it is acted on.

Each pump has its own stream (``random.Random("<seed>:<pump_id>")``) and the daemon's
chaos has another (``"<seed>:daemon"``), so threads running at different speeds never
reorder each other's draws. A session's whole script is drawn when the session begins,
with a fixed number of draws whatever happens later, so the same seed gives the same
decisions in the same order; only the timing of the real processes differs.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field

from soak.kinds import KINDS

PUMP_FAULTS = (
    "occlusion-downstream",
    "occlusion-upstream",
    "air-in-line",
    "door-open",
    "system-fault",
    "low-battery",
    "battery-depleted",
    "runaway",
    "stuck-volume",
    "ignore-commands",
    "reboot",
)
LINK_FAULTS = ("drop-link", "latency")
TCP_FAULTS = ("reset-tcp", "half-open-tcp", "silent-tcp")
RTU_FAULTS = ("corrupt-rtu", "truncate-rtu", "noise-rtu", "foreign-frame-rtu")
ALL_FAULTS = PUMP_FAULTS + LINK_FAULTS + TCP_FAULTS + RTU_FAULTS

PHASES = ("priming", "infusing", "paused", "observation")

WRONG_BEFORE_CONFIRM = (
    "start_unverified",  # start before the double-check
    "confirm_same_person",  # the programming nurse confirms her own order
    "confirm_witness_is_programmer",  # the witness is the programmer's own staff id
    "confirm_wrong_weight",  # the second nurse types another weight
    "confirm_wrong_pin",  # the witness's PIN mistyped
)
WRONG_WHILE_INFUSING = (
    "prime_while_infusing",
    "start_again",
    "resume_not_paused",
    "discharge_early",
    "acknowledge_no_alarm",
    "abort_after_start",
    "program_while_infusing",
)
BAD_WEIGHTS = ("82,5kg", "500kg", "0kg", "-70kg", "eighty kg", "82 stone", "kg")


def pump_stream(seed: int, pump_id: str) -> random.Random:
    return random.Random(f"{seed}:{pump_id}")


def daemon_stream(seed: int) -> random.Random:
    return random.Random(f"{seed}:daemon")


@dataclass(frozen=True)
class FaultPlan:
    """One fault: what, in which phase of the session, when (a fraction of the phase's
    expected real length), for how long (real seconds; the nurse also clears it when she
    answers an alarm), and its parameters for the simulator's control channel."""

    kind: str
    phase: str
    at_fraction: float
    hold_s: float
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionScript:
    pump_id: str
    number: int
    """The session's number on its pump (0, 1, ...)."""
    patient_ref: str
    weight_kg: int
    bad_weight: str | None
    wrong_before_confirm: tuple[str, ...]
    abort_before_start: bool
    pause_at_fraction: float | None
    pause_hold_s: float
    adjust_at_fraction: float | None
    stop_at_fraction: float | None
    wrong_while_infusing: tuple[str, ...]
    wrong_at_fraction: float
    vitals_excursion: str | None
    """None, ``pause_band`` or ``stop_band``: a reading the protocol answers."""
    vitals_at_fraction: float
    resume_after_stop: bool
    resume_after_alarm: bool
    fault: FaultPlan | None


def _fault(rng: random.Random, transport: str) -> FaultPlan:
    if transport in KINDS and transport not in ("tcp", "rtu"):
        kinds = KINDS[transport].faults
    else:
        kinds = PUMP_FAULTS + LINK_FAULTS + (TCP_FAULTS if transport == "tcp" else RTU_FAULTS)
    kind = rng.choice(kinds)
    phase = rng.choice(PHASES)
    at_fraction = round(rng.random(), 3)
    hold_s = round(rng.uniform(0.3, 5.0), 2)
    # Every parameter is drawn whatever the kind, so the number of draws never varies.
    factor = rng.choice(("0.5", "1.5", "2", "3"))
    latency_ms = rng.choice((40, 300, 800, 3000))
    probability = rng.choice((0.05, 0.3, 1.0))
    count = rng.choice((1, 3, 10))
    by_count = rng.random() < 0.5
    params: dict[str, object] = {}
    if kind == "runaway":
        params = {"factor": factor}
    elif kind == "latency":
        params = {"ms": latency_ms}
    elif kind in RTU_FAULTS:
        params = {"count": count} if by_count else {"probability": probability}
    elif kind in ("reset-tcp", "half-open-tcp", "garble", "bad-crc"):
        params = {"count": min(count, 3)}
    return FaultPlan(kind, phase, at_fraction, hold_s, params)


def draw_session(rng: random.Random, pump_id: str, number: int, transport: str) -> SessionScript:
    """One session's script. The draws are the same in number and order for every session."""
    weight_kg = rng.randint(50, KINDS[transport].max_weight_kg if transport in KINDS else 125)
    bad_weight = rng.choice(BAD_WEIGHTS) if rng.random() < 0.15 else None
    wrong_before = tuple(w for w in WRONG_BEFORE_CONFIRM if rng.random() < 0.12)
    abort_before_start = rng.random() < 0.06
    pause = rng.random() < 0.3
    pause_at = round(rng.uniform(0.1, 0.8), 3)
    # Mostly short pauses; some outlast the protocol's stop_after_min (the kernel stops).
    pause_hold_s = round(rng.choice((0.3, 0.6, 1.0, 1.5, 4.0)), 2)
    adjust = rng.random() < 0.1
    adjust_at = round(rng.uniform(0.1, 0.6), 3)
    stop = rng.random() < 0.1
    stop_at = round(rng.uniform(0.05, 0.9), 3)
    wrong_during = tuple(w for w in WRONG_WHILE_INFUSING if rng.random() < 0.1)
    wrong_at = round(rng.uniform(0.05, 0.9), 3)
    excursion_roll = rng.random()
    vitals_excursion = (
        "stop_band" if excursion_roll < 0.04 else "pause_band" if excursion_roll < 0.1 else None
    )
    vitals_at = round(rng.uniform(0.1, 0.9), 3)
    resume_after_stop = rng.random() < 0.3
    resume_after_alarm = rng.random() < 0.3
    has_fault = rng.random() < 0.55
    fault = _fault(rng, transport)
    return SessionScript(
        pump_id=pump_id,
        number=number,
        patient_ref=f"P-{pump_id}-{number:05d}",
        weight_kg=weight_kg,
        bad_weight=bad_weight,
        wrong_before_confirm=wrong_before,
        abort_before_start=abort_before_start,
        pause_at_fraction=pause_at if pause else None,
        pause_hold_s=pause_hold_s,
        adjust_at_fraction=adjust_at if adjust else None,
        stop_at_fraction=stop_at if stop else None,
        wrong_while_infusing=wrong_during,
        wrong_at_fraction=wrong_at,
        vitals_excursion=vitals_excursion,
        vitals_at_fraction=vitals_at,
        resume_after_stop=resume_after_stop,
        resume_after_alarm=resume_after_alarm,
        fault=fault if has_fault else None,
    )


@dataclass(frozen=True)
class DaemonChaos:
    """One disruption of the daemon: after ``after_s`` real seconds of the previous
    daemon's life, ``signal`` (KILL or TERM), then ``down_s`` before the restart."""

    after_s: float
    signal: str
    down_s: float


def draw_daemon_chaos(rng: random.Random, mean_life_s: float) -> DaemonChaos:
    after_s = round(rng.expovariate(1.0 / mean_life_s), 2)
    sig = "KILL" if rng.random() < 0.8 else "TERM"
    down_s = round(rng.choice((0.0, 0.5, 1.5, 4.0, 6.0)), 2)
    return DaemonChaos(max(after_s, 1.0), sig, down_s)


def sessions_of(pump_index: int, pumps: int, sessions: int) -> int:
    """How many of the ``sessions`` pump number ``pump_index`` runs (round robin)."""
    return sessions // pumps + (1 if pump_index < sessions % pumps else 0)


def digest(scripts: list[SessionScript], chaos: list[DaemonChaos]) -> str:
    """A short hash of every decision, printed so two runs of a seed can be compared."""
    body = json.dumps(
        {"sessions": [asdict(s) for s in scripts], "daemon": [asdict(c) for c in chaos]},
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]
