"""The peer-credential layer and the identity mapping, on real socket pairs.

These run as any user: they read this process's own credentials through a real
``socketpair`` (the kernel answers SO_PEERCRED/SO_PEERGROUPS for the peer, which is us)
and compare them with what the OS says about this process.
"""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Iterator

import pytest

from pumpd.control.identity import (
    Caller,
    caller_of,
    group_names,
    os_acting,
    roles_of,
    same_person,
    staff_acting,
    user_name,
)
from pumpd.control.peercred import (
    PeerCred,
    PeerCredError,
    peer_credentials,
    peer_groups,
    userdb_groups,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield a, b
    a.close()
    b.close()


def test_peercred_reads_this_process(pair: tuple[socket.socket, socket.socket]) -> None:
    cred = peer_credentials(pair[0])
    assert (cred.pid, cred.uid, cred.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert cred.groups_source == "so_peergroups"
    assert cred.groups == frozenset(os.getgroups()) | {os.getgid()}


def test_so_peergroups_is_option_59_and_lists_our_groups(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    gids = peer_groups(pair[0])
    assert gids is not None
    assert set(gids) == set(os.getgroups())


def test_userdb_fallback_matches_getgrouplist() -> None:
    me = pwd.getpwuid(os.getuid())
    assert set(userdb_groups(os.getuid(), os.getgid())) == set(
        os.getgrouplist(me.pw_name, os.getgid())
    )
    assert userdb_groups(2_000_000_123, 0) == []  # a uid without a name has no groups


def test_a_socket_without_peer_is_refused() -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(PeerCredError):
            peer_credentials(udp)
        assert peer_groups(udp) is None
    finally:
        udp.close()


TABLE = {
    "nurse": frozenset({"ward-a", "ward-b"}),
    "auditor": frozenset({"qa"}),
    "admin": frozenset({"it"}),
    "superuser": frozenset({"ward-a"}),  # not a role pumpd knows: ignored
}


def test_groups_map_to_roles_without_implicit_superuser() -> None:
    assert roles_of(["ward-b", "users"], TABLE) == {"nurse"}
    assert roles_of(["qa", "it"], TABLE) == {"auditor", "admin"}
    assert roles_of(["root", "wheel", "sudo"], TABLE) == frozenset()
    root = caller_of(PeerCred(1, 0, 0, frozenset({0}), "userdb"), TABLE)
    assert root.user == "root"
    assert root.roles == frozenset()


def test_unknown_ids_get_placeholder_names() -> None:
    assert user_name(2_000_000_123) == "uid:2000000123"
    assert group_names([2_000_000_124]) == ("gid:2000000124",)


def _caller(user: str, roles: set[str]) -> Caller:
    return Caller(1, 1000, user, ("ward-a",), "so_peergroups", frozenset(roles))


def test_the_daemons_own_name_never_acts() -> None:
    assert os_acting(_caller("pumpd", {"nurse"})).roles == frozenset()
    assert os_acting(_caller("Pumpd", {"nurse"})).roles == frozenset()
    assert os_acting(_caller("ada", {"nurse"})).roles == {"nurse"}


def test_a_staff_login_narrows_never_widens() -> None:
    station = _caller("station1", {"nurse"})
    acting = staff_acting(station, "N042", "admin")
    assert acting.name == "staff:N042"
    assert acting.roles == frozenset()  # an admin's PIN at a nurse station gives no admin
    assert staff_acting(station, "N042", "nurse").roles == {"nurse"}
    assert acting.pin_verified
    assert not os_acting(station).pin_verified


def test_identities_compare_like_the_session_does() -> None:
    assert same_person("staff:N042", " STAFF:n042 ")
    assert not same_person("staff:N042", "n042")  # an OS user can never be a staff id
