"""Which configured pumps may deliver to a patient, judged by what they declare they can do.

Run by ``pumpd --check`` and at every start, before any pump is contacted: a pump without
a watchdog of its own goes on delivering when pumpd or its link fails, so it is refused
for live use unless its ``[[pump]]`` sets ``accept_no_pump_watchdog = true``. The rule is
the kernel's (`safety.capability.live_use`); the controller applies it again at each
program and start, and records an accepted risk there (``pump.risk.accepted``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pumpd.config import DaemonConfig, PumpConfig
from pumpd.controller import ACCEPT_NO_WATCHDOG_KEY, abilities_of
from pumpd.drivers import NOT_REPORTED, DriverError, PumpCapabilities, UnknownTransport, make_driver
from safety.capability import live_use
from safety.verdicts import Severity


@dataclass(frozen=True, slots=True)
class PumpRefusal:
    """One pump the start would refuse: the configuration key at fault and why."""

    key: str
    message: str


def review(config: DaemonConfig) -> tuple[list[PumpRefusal], list[str]]:
    """The pumps refused for live use, and notes (accepted risks, needless acceptances)."""
    refused: list[PumpRefusal] = []
    notes: list[str] = []
    for index, pump in enumerate(config.pumps):
        at = f"pump[{index}]"
        try:
            caps = make_driver(pump, config.time_scale).capabilities
        except (DriverError, UnknownTransport) as exc:
            refused.append(PumpRefusal(f"{at}.profile", f"{pump.id}: {exc}"))
            continue
        accepted = pump.accept_no_pump_watchdog
        for verdict in live_use(
            abilities_of(caps), simulation=config.simulation, no_watchdog_accepted=accepted
        ):
            if verdict.severity is Severity.HARD:
                refused.append(
                    PumpRefusal(f"{at}.{ACCEPT_NO_WATCHDOG_KEY}", f"{pump.id}: {verdict.message}")
                )
            else:
                notes.append(f"{pump.id}: {verdict.message}")
        if accepted and caps.watchdog is not None:
            notes.append(
                f"{at}.{ACCEPT_NO_WATCHDOG_KEY}: {pump.id} has a watchdog of its own; "
                "the acceptance is not needed"
            )
    return refused, notes


_WIRE = {"modbus-tcp": "tcp", "modbus-rtu": "rtu", "newera-serial": "serial"}
_READINGS = (
    ("pressure_downstream_mmhg", "line pressure", "reports_pressure"),
    ("battery_percent", "battery", "reports_battery"),
)


def connected_payload(pump: PumpConfig, caps: PumpCapabilities) -> dict[str, Any]:
    """``pump.connected`` for a pump now supervised: where it is, what it declares it can
    do, and in words which readings it does not report (so the audit never leaves a
    reviewer to guess whether a missing pressure was zero)."""
    missing = [(key, label) for key, label, flag in _READINGS if not getattr(caps, flag)]
    payload: dict[str, Any] = {
        "transport": _WIRE.get(pump.transport, "serial"),
        "address": pump.address,
        "model": pump.profile,
        "capabilities": caps.as_dict(),
        "not_reported": [key for key, _ in missing],
    }
    if missing:
        payload["detail"] = f"{', '.join(label for _, label in missing)}: {NOT_REPORTED}"
    return payload
