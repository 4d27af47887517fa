"""The per-pump supervising controller (docs/controller.md).

The daemon, the supervisor and the control socket come through this face: the
``Controller`` and its configuration and status, the errors its nurse API raises, the
capability rules the daemon checks at start (``abilities_of``, the key that accepts a
pump without a watchdog), the checkpoint record the report and the timeline
read back, and ``code_of``, the one way a sentence becomes an audit code.
Every other module here is private: tests/controller/ may import it, nothing else
(tests/test_package_faces.py holds the rule; docs/architecture.md, "Package faces").
"""

from pumpd.controller.capability import ACCEPT_NO_WATCHDOG_KEY, abilities_of
from pumpd.controller.checkpoint import (
    CheckpointAccounting,
    CheckpointRecord,
    CheckpointUnreadable,
)
from pumpd.controller.config import ControllerConfig, InvalidControllerConfig
from pumpd.controller.errors import (
    AlarmNotSeen,
    AuditUnavailable,
    ControllerError,
    NoSession,
    NothingToAcknowledge,
    PumpNotAnswering,
    SessionActive,
)
from pumpd.controller.journal import code_of
from pumpd.controller.loop import Controller, ControllerStatus

__all__ = [
    "ACCEPT_NO_WATCHDOG_KEY",
    "AlarmNotSeen",
    "AuditUnavailable",
    "CheckpointAccounting",
    "CheckpointRecord",
    "CheckpointUnreadable",
    "Controller",
    "ControllerConfig",
    "ControllerError",
    "ControllerStatus",
    "InvalidControllerConfig",
    "NoSession",
    "NothingToAcknowledge",
    "PumpNotAnswering",
    "SessionActive",
    "abilities_of",
    "code_of",
]
