"""The simulator's error types: callers branch on the type, never on the message."""

from __future__ import annotations


class SimError(Exception):
    """Base of every error pumpsim raises on purpose."""


class ModelInputError(SimError, ValueError):
    """A value handed to the pump model is impossible (negative time, bad register...)."""


class SimConfigError(SimError, ValueError):
    """The simulator was configured with an impossible value (pumps, baud, time scale...)."""


class UnknownUnitError(SimError, LookupError):
    """No pump with that unit id in this simulator."""


class FaultParameterError(SimError, ValueError):
    """A fault was injected with a missing, extra or out-of-range parameter."""


class UnknownFaultError(SimError, ValueError):
    """No fault by that name."""


class AlarmKeyRefused(SimError, RuntimeError):
    """The pump's alarm key was pressed while the pump is not in alarm, or while the alarm
    condition is still present; nothing changed."""


class ControlProtocolError(SimError):
    """A control-channel request or reply that does not follow the protocol."""


class ControlRequestFailed(SimError):
    """The simulator refused a control-channel request; carries the remote error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class SimulatorStateError(SimError, RuntimeError):
    """The simulator was used outside its running lifetime (before start, after stop)."""
