"""The kinds of pump a soak clinic mixes, and how the soak reaches each one's simulator.

A kind is a transport of the end-to-end stack (``tests/e2e/stack.py``): GIP-MB1 over
Modbus TCP (``tcp``), GIP-MB1 on the simulator's RTU pty line (``rtu``), a New Era syringe
pump on the simulator's New Era pty line (``newera``), a DULCO flex metering pump (the
prominent-dulcoflex register-map profile) on the simulator's DULCO pty line (``dulco``; it
cannot prime over Modbus, so its nurse starts on a line primed by hand). For each the soak
knows the protocol its sessions run, the minutes of its prime, the faults its simulator injects, and
how to read its state and true volume from the simulator's control channel in one shape.

How many pumps of each kind a run has comes from the seed (:func:`draw_mix`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pumpsim.control import ControlClient

NEWERA_KEY_BASE = 100
"""Simulator keys of New Era pumps are 100 + their network address, apart from the
GIP-MB1 unit ids (1..20): one key space for samples, faults and evidence."""

DULCO_KEY_BASE = 200
"""Simulator key of the DULCO pump: 200 + its unit id (20)."""
DULCO_UNIT = 20

SEEDED_KINDS: tuple[str, ...] = ("newera", "dulco")
"""Kinds the seed mixes in beside GIP-MB1 (TCP and RTU); a new kind is one more name here,
one more :data:`KINDS` entry and its stack transport."""
HELD_BACK_KINDS: tuple[str, ...] = ()
"""Kinds wired into the soak but not drawn yet, each with its open finding in docs/soak.md;
none now. The DULCO flex was held back twice and is drawn again: a daemon restart no longer
reads as a pump restart (its switch-on counter), and an exceedance of the plan's volume that
a nurse acknowledged on the stopped pump no longer alarms again at every reading."""
MAX_OF_KIND = {"dulco": 1}
"""The simulator serves one DULCO pump on its line."""


@dataclass(frozen=True)
class PumpKind:
    name: str
    protocol: str
    prime_min: float
    """Simulated minutes of the protocol's prime at its rate."""
    max_weight_kg: int
    """The heaviest patient the soak draws for this kind: inside the protocol's soft limits,
    because the soak's nurse gives no weight override and a program above the soft limit is
    refused (``weight.above_soft_max``), leaving a session that never runs."""
    faults: tuple[str, ...]
    """Every fault the kind's simulator can inject (the soak draws from these)."""
    resets: frozenset[str]
    """Faults that zero the pump's counters (the volume up to them is sampled first)."""
    prime_in_counter_ul: int = 0
    """The prime the simulator counts as infused (a New Era pump has one counter); the
    volume invariant allows it once per prime intent."""
    primes: bool = True
    """False: the pump cannot prime over its bus; the nurse starts `primed_by_hand`."""


_GIP_PUMP_FAULTS = (
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
    "drop-link",
    "latency",
)
NEWERA_FAULTS = (
    "stall",
    "watchdog-expire",
    "power-loss",
    "garble",
    "bad-crc",
    "silent",
    "lose-commands",
)
DULCO_FAULTS = (
    "metering-monitor",
    "hose-rupture",
    "level",
    "temperature",
    "power-loss",
    "no-answer",
)
"""The DULCO simulator's pump and link faults (its keypad settings are the conformance
suite's and the driver tests' business: a pump set up wrongly is refused at connect)."""

KINDS: dict[str, PumpKind] = {
    k.name: k
    for k in (
        PumpKind(
            "tcp",
            "ketamine-trd-standard",
            3.0,  # 15 mL at 300 mL/h
            125,
            (*_GIP_PUMP_FAULTS, "reset-tcp", "half-open-tcp", "silent-tcp"),
            frozenset({"reboot"}),
        ),
        PumpKind(
            "rtu",
            "ketamine-trd-standard",
            3.0,
            125,
            (*_GIP_PUMP_FAULTS, "corrupt-rtu", "truncate-rtu", "noise-rtu", "foreign-frame-rtu"),
            frozenset({"reboot"}),
        ),
        PumpKind(
            "newera",
            "ketamine-trd-syringe",
            2.0,  # 2 mL at 60 mL/h
            110,  # the syringe protocol's soft maximum (its hard 116 kg fills the syringe)
            NEWERA_FAULTS,
            frozenset({"power-loss"}),
            2_000,
        ),
        PumpKind(
            "dulco",
            "ketamine-trd-standard",
            0.0,  # no prime over Modbus: primed by hand before the start
            125,
            DULCO_FAULTS,
            frozenset(),  # its volume counter survives a power loss
            primes=False,
        ),
    )
}


def draw_mix(seed: int, pumps: int, rtu_pumps: int) -> dict[str, int]:
    """How many pumps of each kind: the seeded kinds take 1..pumps // 2 each (from their own
    stream, so the sessions' draws do not move), GIP-MB1 the rest (``rtu_pumps`` of them on
    RTU, at most all but one)."""
    rng = random.Random(f"{seed}:kinds")
    mix: dict[str, int] = {}
    left = pumps
    for kind in SEEDED_KINDS:
        n = rng.randint(1, max(1, pumps // 2)) if pumps >= 2 else 0
        n = min(n, max(0, left - 1), MAX_OF_KIND.get(kind, pumps))
        mix[kind] = n
        left -= n
    for kind in HELD_BACK_KINDS:
        mix[kind] = 0
    mix["rtu"] = min(rtu_pumps, max(0, left - 1)) if left > 1 else 0
    mix["tcp"] = left - mix["rtu"]
    return mix


def sim_key(transport: str, unit: int, newera_address: int) -> int:
    """The simulator key of a chair: its unit id, 100 + its New Era address, or 200 + the
    DULCO unit id."""
    if transport == "dulco":
        return DULCO_KEY_BASE + DULCO_UNIT
    return NEWERA_KEY_BASE + newera_address if transport == "newera" else unit


def is_newera(key: int) -> bool:
    return NEWERA_KEY_BASE < key < DULCO_KEY_BASE


def is_dulco(key: int) -> bool:
    return key > DULCO_KEY_BASE


def read_sim(control: ControlClient, key: int) -> dict[str, Any]:
    """One pump's state and true infused volume, in the GIP-MB1 simulator's terms.

    A New Era pump's prime and infusion are the same motion (``I``), reported as RUNNING
    (the invariants allow it in the session states of either); its one counter is its true
    volume and holds the prime until pumpd clears it at the start (the volume invariant
    allows for the prime). An alarm the pump has not yet reported reads as ALARM.
    """
    if is_dulco(key):
        raw = control.request("dulco-status", unit=key - DULCO_KEY_BASE)["status"]
        assert isinstance(raw, dict)
        running = "INFUSING" if raw["motor_running"] else "IDLE"
        # An error, or the pump's own "stopped by timeout": latched until reset at the pump.
        state = "ALARM" if raw["errors"] or raw["stopped_by_timeout"] else running
        # The counter pumpd clears at the start (register 1036): this session's true volume.
        return {
            "state": state,
            "true_infused_ul": str(Fraction(str(raw["deletable_ul"]))),
            "restarts_by_itself": int(raw["restarts_by_itself"]),
        }
    if not is_newera(key):
        status = control.request("status", unit=key)["status"]
        assert isinstance(status, dict)
        return status
    raw = control.request("newera-status", address=key - NEWERA_KEY_BASE)["status"]
    assert isinstance(raw, dict)
    state = NEWERA_STATES.get(str(raw["state"]), f"NEWERA-{raw['state']}")
    if raw.get("alarm") is not None:
        state = "ALARM"
    return {"state": state, "true_infused_ul": str(Fraction(str(raw["infused_ul"])))}


NEWERA_STATES = {
    "I": "RUNNING",
    "X": "PRIMING",  # a purge: pumpd never sends one
    "W": "WITHDRAWING",
    "S": "IDLE",
    "P": "PAUSED",
    "T": "PAUSED",
    "U": "PAUSED",
}
