"""Payloads of the control socket (requests served, views), the staff registry, the daemon's
announcements and the audit spool's outages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pumpd.audit.vocabulary import BoundedText, Code, Payload, PersonName

Method = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]*$", max_length=80)]
StaffId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40)]


class ControlRequest(Payload):
    """One allowed control-socket request and how it ended (refusals by a safety rule
    included: ``outcome_code`` names the error; ``access.denied`` is the unauthorized case)."""

    method: Method
    uid: Annotated[int, Field(ge=0)]
    roles: list[Code] = Field(default_factory=list)
    outcome_code: Code
    message: BoundedText | None = None
    note: BoundedText | None = None
    """The person's own words (a pause reason) when ``message`` is the refusal."""


PumpIdText = Annotated[str, Field(min_length=1, max_length=80)]
UtcText = Annotated[str, Field(min_length=1, max_length=40)]


class ControlView(Payload):
    """The reads of one control-socket connection (a ``status``, a ``watch`` left open, a
    board): who, since when, what was read and how often. A read is a look, not an act, so
    it is recorded per connection and not per request; a failed read is a
    ``control.request.served`` of its own."""

    uid: Annotated[int, Field(ge=0)]
    roles: list[Code] = Field(default_factory=list)
    opened_at: UtcText
    reads: Annotated[dict[Method, Annotated[int, Field(ge=1)]], Field(min_length=1)]
    """Method → how many times it was answered on this connection."""
    pumps: list[PumpIdText] = Field(default_factory=list)
    """The pumps asked for by id; ``all_pumps`` when every pump was read."""
    all_pumps: bool = False


class ControlViewClosed(ControlView):
    closed_at: UtcText
    end_code: Code
    """Why it ended: ``client_closed``, ``idle_timeout``, ``write_failed`` (the client
    stopped reading or left before its answer), ``request_error`` (a broken request line
    closed it), ``daemon_stopping``, ``error``."""


class StaffRegistered(Payload):
    staff_id: StaffId
    name: PersonName
    role: Code


class StaffChanged(Payload):
    """An admin changed an entry: ``change`` is pin_set, disabled, enabled or role_set."""

    staff_id: StaffId
    change: Code
    detail: BoundedText | None = None


class StaffLogin(Payload):
    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]


class StaffLogout(Payload):
    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]
    reason_code: Code


class StaffPinRefused(Payload):
    """A wrong PIN (login or witness); ``failures`` counts the consecutive ones."""

    staff_id: StaffId
    uid: Annotated[int, Field(ge=0)]
    failures: Annotated[int, Field(ge=1)]


class StaffLocked(Payload):
    staff_id: StaffId
    failures: Annotated[int, Field(ge=1)]
    locked_until: Annotated[str, Field(min_length=1, max_length=40)]


class ServiceNotice(Payload):
    """The daemon's own announcements (SIGTERM pausing infusions, watchdog trouble)."""

    notice_code: Code
    message: BoundedText


class SpoolDrained(Payload):
    """An outage of the audit database, written once everything it held back is in.

    The events of the outage are in the chain before this one, each with the time it
    happened; this record says that the database was away, since when, for how long, how
    many events waited in the local spool and how many could not be made durable at all
    (the spool failing too: those callers were told, none was acknowledged)."""

    cause_code: Literal["commit_failed", "leftover_spool"]
    since: Annotated[str, Field(min_length=1, max_length=40)]
    duration_ms: Annotated[int, Field(ge=0)]
    spooled_events: Annotated[int, Field(ge=0)]
    refused_events: Annotated[int, Field(ge=0)]
    reason: BoundedText
