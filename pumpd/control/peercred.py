"""Who is on the other end of a Unix socket: SO_PEERCRED, plus the supplementary groups.

SO_PEERCRED gives ``(pid, uid, gid)`` with only the *primary* gid, as the kernel recorded
them at ``connect()``. Roles come from group membership, so the supplementary groups are
needed too:

1. ``SO_PEERGROUPS`` (Linux ≥ 4.13, option 59; Python 3.11's ``socket`` module does not
   export it): the peer's supplementary gids at ``connect()``, from the kernel. Used
   whenever it answers. It is the truth about the connecting process, including groups
   it dropped or gained after login.
2. Otherwise (an older kernel, another platform): the user database,
   ``os.getgrouplist(user, gid)`` for the peer's uid. That is what the user *would* get
   at login, not what the process holds; ``groups_source`` says ``"userdb"`` so the
   audit and ``whoami`` show which was used.

The pid is recorded only for the logs: authorization never looks at it (pids are reused).
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Literal

SO_PEERGROUPS = 59
"""Linux's option number (include/uapi/asm-generic/socket.h); not in Python 3.11."""

_UCRED = struct.Struct("3i")
_GID = struct.Struct("I")
_MAX_GROUPS = 65536

GroupsSource = Literal["so_peergroups", "userdb"]


class PeerCredError(Exception):
    """The kernel did not say who the peer is; the connection must be refused."""


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    """Primary and supplementary gids."""
    groups_source: GroupsSource


def peer_credentials(sock: socket.socket) -> PeerCred:
    """The credentials of a connected ``AF_UNIX`` stream socket's peer."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise PeerCredError(f"SO_PEERCRED failed: {exc}") from exc
    pid, uid, gid = _UCRED.unpack(raw)
    if uid < 0 or gid < 0:
        raise PeerCredError(f"SO_PEERCRED gave no identity (uid {uid}, gid {gid})")
    gids = peer_groups(sock)
    if gids is not None:
        return PeerCred(pid, uid, gid, frozenset(gids) | {gid}, "so_peergroups")
    return PeerCred(pid, uid, gid, frozenset(userdb_groups(uid, gid)) | {gid}, "userdb")


def peer_groups(sock: socket.socket) -> list[int] | None:
    """The peer's supplementary gids from ``SO_PEERGROUPS``, or None where unsupported.

    The kernel answers ERANGE when the buffer is too small; the buffer is then doubled.
    """
    size = 64 * _GID.size
    while size <= _MAX_GROUPS * _GID.size:
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, size)
        except OSError as exc:
            if exc.errno == errno.ERANGE:  # more groups than fit
                size *= 2
                continue
            return None  # ENOPROTOOPT and friends: not supported here
        count = len(raw) // _GID.size
        return [_GID.unpack_from(raw, i * _GID.size)[0] for i in range(count)]
    return None


def userdb_groups(uid: int, gid: int) -> list[int]:
    """The groups the user database gives ``uid`` (empty when the uid has no name)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return []
    return os.getgrouplist(name, gid)
