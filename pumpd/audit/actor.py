"""Who acts: one typed value, made where the person is known and carried unchanged to the log.

The control socket makes an :class:`Actor` once per request, from the peer's credentials
(the uid) and the request's staff login or witness (the staff id), with the role that
allowed the request. The controller and its event builder take that value and write its
fields into the event's actor columns; no layer below the socket names a person again or
gives one a role of its own. The daemon acts as :meth:`Actor.daemon`, under the one reserved
name :data:`DAEMON_NAME`, which no person may take: a person called ``pumpd`` would be
indistinguishable from the daemon in the log.

Defined at the bottom of the audit package (no database, no I/O besides the daemon's own
uid) so the socket, the controller and the store share it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal

from pumpd.audit.vocabulary import ActorRole

DAEMON_NAME: Final = "pumpd"
"""The daemon's own name in the audit log; reserved: no person, account or staff member
acts under it."""

STAFF_PREFIX: Final = "staff:"
"""A staff member acts as ``staff:<id>``; OS user names cannot hold ``:``, so the two
never collide."""

NAME_MAX = 120
"""The audit column's width (``actor_name``)."""


class InvalidActor(ValueError):
    """An actor that the audit log could not name truthfully; nothing was made."""


def is_reserved(name: str) -> bool:
    """True for the daemon's reserved name, compared as the session compares people
    (without case or surrounding spaces)."""
    return name.strip().casefold() == DAEMON_NAME


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: a person (with the uid the socket saw, and the staff id when a
    PIN vouched for them) or the daemon itself.

    Make one with :meth:`person`, :meth:`staff` or :meth:`daemon`: they refuse what
    :meth:`problem` finds. The store checks every event's actor by the same rules, so an
    actor built field by field cannot reach the log either.
    """

    kind: Literal["person", "daemon"]
    name: str
    """The identity the log records (``actor_name``): an OS user, ``staff:<id>``, or
    :data:`DAEMON_NAME`."""
    role: str
    uid: int | None = None
    staff_id: str | None = None
    """The staff member's id when a PIN vouched for the person (the name then is
    ``staff:<staff_id>``); None for an OS account and for the daemon."""

    @classmethod
    def daemon(cls) -> Actor:
        return cls(kind="daemon", name=DAEMON_NAME, role=ActorRole.DAEMON.value, uid=os.getuid())

    @classmethod
    def person(cls, name: str, role: ActorRole | str, uid: int | None = None) -> Actor:
        """An OS account (or a name the log already holds) acting with ``role``."""
        return cls(kind="person", name=name, role=str(role), uid=uid).checked()

    @classmethod
    def staff(cls, staff_id: str, role: ActorRole | str, uid: int | None) -> Actor:
        """A staff member whose PIN was checked, at the account ``uid``."""
        name = f"{STAFF_PREFIX}{staff_id}"
        return cls(kind="person", name=name, role=str(role), uid=uid, staff_id=staff_id).checked()

    @property
    def pin_verified(self) -> bool:
        return self.staff_id is not None

    def checked(self) -> Actor:
        """This actor, or :class:`InvalidActor` naming the first rule it breaks."""
        problem = self.problem()
        if problem is not None:
            raise InvalidActor(problem)
        return self

    def problem(self) -> str | None:
        """The first rule this actor breaks, as a sentence; None when it may be recorded."""
        roles = {r.value for r in ActorRole}
        if self.role not in roles:
            return f"actor role {self.role!r} is not one of {sorted(roles)}"
        if self.kind not in ("person", "daemon"):
            return f"actor kind {self.kind!r} is not person or daemon"
        if (self.kind == "daemon") != (self.role == ActorRole.DAEMON.value):
            return "only the daemon actor has the daemon role"
        if not 1 <= len(self.name) <= NAME_MAX or not self.name.isprintable():
            return f"actor name must be 1-{NAME_MAX} printable characters"
        if self.uid is not None and self.uid < 0:
            return f"actor uid {self.uid} is negative"
        if self.kind == "daemon" and self.name != DAEMON_NAME:
            return f"the daemon acts as {DAEMON_NAME!r}, not {self.name!r}"
        if self.kind == "person" and is_reserved(self.name):
            return f"{self.name.strip()!r} is the daemon's reserved name; no person acts under it"
        if self.staff_id is not None and (
            not self.staff_id
            or self.kind != "person"
            or self.name != f"{STAFF_PREFIX}{self.staff_id}"
        ):
            return f"a staff member acts as {STAFF_PREFIX}<staff id>, not {self.name!r}"
        return None
