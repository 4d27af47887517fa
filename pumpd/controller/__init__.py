"""The per-pump supervising controller; see docs/controller.md."""

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
from pumpd.controller.loop import Controller, ControllerStatus

__all__ = [
    "AlarmNotSeen",
    "AuditUnavailable",
    "Controller",
    "ControllerConfig",
    "ControllerError",
    "ControllerStatus",
    "InvalidControllerConfig",
    "NoSession",
    "NothingToAcknowledge",
    "PumpNotAnswering",
    "SessionActive",
]
