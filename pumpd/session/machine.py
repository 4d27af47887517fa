"""The infusion session: a pure state machine the controller drives, one per pump.

Nothing here does I/O or reads a clock. A nurse command or a device fact comes in with the
moment it happened (:class:`~pumpd.clock.Stamp`); the session checks it against the safety
kernel, and either refuses it (a typed error, nothing changed) or moves and returns a
:class:`Step` that names the pump command the controller must now carry out and the audit
events it must write. The controller writes the intent, commands the pump, reads the
result, and reports the confirmed fact back (``start_confirmed``, ``command_uncertain`` ...).
"""

from __future__ import annotations

from .commands import NurseCommands
from .core import MACHINE, PROPOSED_EVENTS, SNAPSHOT_FORMAT, CommandIntent, DeliveryFacts, Step
from .facts import DeviceFacts

__all__ = [
    "MACHINE",
    "PROPOSED_EVENTS",
    "SNAPSHOT_FORMAT",
    "CommandIntent",
    "DeliveryFacts",
    "Session",
    "Step",
]


class Session(NurseCommands, DeviceFacts):
    """One infusion session: its state, its data, and every command and fact that moves it."""
