"""The soak's fault requests as the evidence keeps them: one :class:`FaultInjection` per
fault, from the request that turned it on to the one that turned it off, with its pump,
the pump's kind, UTC and monotonic times and the daemon life each fell in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from soak.evidence import UTC_FORMAT, FaultInjection
from soak.world import DaemonLife, Injection


def utc_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(UTC_FORMAT)


def life_at(lives: Sequence[DaemonLife], t_mono: float) -> int | None:
    """The generation of the daemon up (ready, not yet signalled) at ``t_mono``; None when
    none was."""
    for life in lives:
        if life.ready_mono <= t_mono and (life.ended_mono is None or t_mono < life.ended_mono):
            return life.generation
    return None


def paired(
    requests: Sequence[Injection],
    units: dict[str, int],
    kinds: dict[str, str],
    lives: Sequence[DaemonLife],
) -> list[FaultInjection]:
    """Each "on" with the next "off" of the same fault on the same pump (an "off" ends every
    one still open); a fault never turned off keeps ``off_mono`` None. ``units``: pump_id →
    key; ``kinds``: pump_id → kind."""
    pump_of = {key: pump for pump, key in units.items()}
    done: list[FaultInjection] = []
    open_: dict[tuple[int, str], list[Injection]] = {}
    for r in sorted(requests, key=lambda r: r.t_mono):
        if r.on:
            open_.setdefault((r.unit, r.fault), []).append(r)
            continue
        for on in open_.pop((r.unit, r.fault), []):
            done.append(_injection(on, r, pump_of, kinds, lives))
    for ons in open_.values():
        done.extend(_injection(on, None, pump_of, kinds, lives) for on in ons)
    return sorted(done, key=lambda i: i.on_mono)


def _injection(
    on: Injection,
    off: Injection | None,
    pump_of: dict[int, str],
    kinds: dict[str, str],
    lives: Sequence[DaemonLife],
) -> FaultInjection:
    pump = pump_of.get(on.unit, f"unit-{on.unit}")
    return FaultInjection(
        pump_id=pump,
        pump_kind=kinds.get(pump, "?"),
        unit=on.unit,
        fault=on.fault,
        params=dict(on.params),
        on_mono=on.t_mono,
        on_utc=utc_of(on.t_epoch),
        on_life=life_at(lives, on.t_mono),
        off_mono=None if off is None else off.t_mono,
        off_utc=None if off is None else utc_of(off.t_epoch),
        off_life=None if off is None else life_at(lives, off.t_mono),
    )
