"""The infusion session state machine: pure, synchronous, driven by the controller.

See docs/session.md for the states, the commands, the guards and how the controller uses
it; docs/session-diagram.md is generated from the machine (``python -m pumpd.session``).
"""

from pumpd.audit.catalogue import PumpCommand
from pumpd.session.errors import (
    CommandRefused,
    InvalidCommandInput,
    InvalidInState,
    ReentrantTrigger,
    RestoreError,
    SessionError,
)
from pumpd.session.machine import PROPOSED_EVENTS, CommandIntent, DeliveryFacts, Session, Step
from pumpd.session.states import (
    DEVICE_TRIGGERS,
    EDGES,
    NURSE_TRIGGERS,
    TRIGGERS,
    State,
    allowed_triggers,
)

__all__ = [
    "DEVICE_TRIGGERS",
    "EDGES",
    "NURSE_TRIGGERS",
    "PROPOSED_EVENTS",
    "TRIGGERS",
    "CommandIntent",
    "CommandRefused",
    "DeliveryFacts",
    "InvalidCommandInput",
    "InvalidInState",
    "PumpCommand",
    "ReentrantTrigger",
    "RestoreError",
    "Session",
    "SessionError",
    "State",
    "Step",
    "allowed_triggers",
]
