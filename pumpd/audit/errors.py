"""Every way the audit store can refuse or fail, as a type the caller can act on.

The controller must tell "this event is wrong" (a bug: nothing was written) from "the log
could not be written" (fail safe: stop the pump); these are separate branches below.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit store's errors."""


class EventRefused(AuditError):
    """The event is malformed; nothing was written."""


class UnknownEventType(EventRefused):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown audit event type {event_type!r} (not in the catalogue)")
        self.event_type = event_type


class InvalidPayload(EventRefused):
    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"invalid payload for {event_type}: {detail}")
        self.event_type = event_type
        self.detail = detail


class InvalidEnvelope(EventRefused):
    """Actor, ids or references are missing or malformed for this event type."""

    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"invalid envelope for {event_type}: {detail}")
        self.event_type = event_type
        self.detail = detail


class AuditWriteFailed(AuditError):
    """The database did not durably accept the event; the caller must fail safe."""


class StoreClosed(AuditWriteFailed):
    """The store (or its writer thread) is closed; nothing more can be written."""


class SchemaError(AuditError):
    """The database's schema revision is missing, unknown or not the one this code needs."""


class KeyFileError(AuditError):
    """The HMAC key file is missing, unreadable, too loosely protected or too short."""


class CheckpointFormatError(AuditError, ValueError):
    """A ``SEQ:HASH`` checkpoint text that does not parse."""
