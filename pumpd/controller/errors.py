"""Errors the controller's nurse-facing API raises besides the session's own refusals."""

from __future__ import annotations


class ControllerError(Exception):
    """Base of the controller's own errors."""


class NoSession(ControllerError):
    """A command that needs a session arrived while the pump has none."""


class SessionActive(ControllerError):
    """A new session was programmed while the pump still has one that is not over."""


class AuditUnavailable(ControllerError):
    """The intent could not be made durable, so nothing was sent to the pump.

    The session is exactly as it was before the command.
    """


class PumpNotAnswering(ControllerError):
    """The pump gave no status, so a command that needs its present state was refused."""


class NothingToAcknowledge(ControllerError):
    """An acknowledgement arrived while no alarm is latched on the pump (or the only one is
    the audit-log alarm, which stays until the database answers): said, not answered as
    done, so a nurse never believes an alarm was dealt with that was not there."""


class AlarmNotSeen(ControllerError):
    """An acknowledgement named the alarms its person was shown, and another one is latched
    now (it came in after the screen was drawn): nothing is acknowledged, so nobody
    acknowledges an alarm they never saw (IEC 60601-1-8: acknowledging is a response to
    a signal)."""
