"""From peer credentials to a caller with roles, and from a caller to the acting person.

The *caller* is the OS account on the other end of the socket (uid → user name, gids →
group names → roles by the ``[roles]`` table). The *acting person* is who the audit log
names: the OS user, or ``staff:<id>`` when the request carries a staff login token
obtained by that same uid (see ``staff.py``).

Normalisation: OS user names cannot contain ``:`` (it separates fields in /etc/passwd),
so ``staff:<id>`` can never collide with an OS user, and the session compares identities
without case or surrounding spaces (``pumpd.session.rules``). The one reserved name is
the daemon's own (``pumpd.audit.actor.DAEMON_NAME``): an OS account of that name gets no
role and acts as ``uid:<n>``, so no person is ever recorded under the daemon's name.

An acting person becomes the audit :class:`~pumpd.audit.actor.Actor` once per request
(:meth:`Acting.actor`, with the role that allowed it and the peer's uid); the controller
below takes that value as it is.

No implicit superuser: uid 0 gets a role only through the groups listed in ``[roles]``.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pumpd.audit import STAFF_PREFIX, Actor, is_reserved

from .peercred import GroupsSource, PeerCred

ROLES = ("nurse", "auditor", "admin")
"""The roles a caller can hold; each method lists the ones it allows (``methods.py``)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The OS account on the other end of one connection, fixed at ``connect()``."""

    pid: int
    uid: int
    user: str
    groups: tuple[str, ...]
    groups_source: GroupsSource
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Acting:
    """The person a request is recorded as, and the roles it may use."""

    name: str
    roles: frozenset[str]
    staff_id: str | None = None

    @property
    def pin_verified(self) -> bool:
        """True for a staff identity: a PIN, not just an account, vouches for it."""
        return self.staff_id is not None

    def actor(self, role: str, uid: int) -> Actor:
        """The audit actor: this person acting with ``role`` at the account ``uid``."""
        if self.staff_id is not None:
            return Actor.staff(self.staff_id, role, uid)
        return Actor.person(self.name, role, uid)


def user_name(uid: int) -> str:
    """The account's name, or ``uid:<n>`` for a uid the user database does not know."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def group_names(gids: Iterable[int]) -> tuple[str, ...]:
    names = []
    for gid in gids:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(f"gid:{gid}")
    return tuple(sorted(set(names)))


def roles_of(groups: Iterable[str], table: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Every role one of whose configured groups the caller is in (unknown roles ignored)."""
    have = set(groups)
    return frozenset(role for role, members in table.items() if role in ROLES and have & members)


def caller_of(cred: PeerCred, table: Mapping[str, frozenset[str]]) -> Caller:
    groups = group_names(cred.groups)
    return Caller(
        pid=cred.pid,
        uid=cred.uid,
        user=user_name(cred.uid),
        groups=groups,
        groups_source=cred.groups_source,
        roles=roles_of(groups, table),
    )


def os_acting(caller: Caller) -> Acting:
    """The OS user as the acting person (an account with the daemon's reserved name gets
    no roles, and acts as its uid: it is never recorded as the daemon)."""
    if is_reserved(caller.user):
        return Acting(f"uid:{caller.uid}", frozenset())
    return Acting(caller.user, caller.roles)


def staff_acting(caller: Caller, staff_id: str, staff_role: str) -> Acting:
    """A staff member at this account: their role, but never one the account lacks.

    A login narrows an account to a person; it never adds a role (no admin from a nurse
    station because an admin typed a PIN there).
    """
    roles = frozenset({staff_role}) & caller.roles
    return Acting(f"{STAFF_PREFIX}{staff_id}", roles, staff_id=staff_id)


def same_person(a: str, b: str) -> bool:
    """The session's own comparison (case and surrounding spaces ignored)."""
    return a.strip().casefold() == b.strip().casefold()
