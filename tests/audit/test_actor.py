"""The actor type: made validated, the daemon's name reserved, the store refusing the same."""

from __future__ import annotations

import os

import pytest

from pumpd.audit.actor import DAEMON_NAME, Actor, InvalidActor
from pumpd.audit.errors import InvalidEnvelope
from pumpd.audit.store import NewEvent, prepare


def test_the_daemon_acts_under_its_reserved_name_with_its_own_uid() -> None:
    daemon = Actor.daemon()
    assert (daemon.kind, daemon.name, daemon.role, daemon.uid) == (
        "daemon",
        DAEMON_NAME,
        "daemon",
        os.getuid(),
    )
    assert daemon.staff_id is None
    assert daemon.problem() is None


@pytest.mark.parametrize("name", [DAEMON_NAME, "Pumpd", " PUMPD ", "pumpd "])
def test_no_person_takes_the_daemons_name(name: str) -> None:
    with pytest.raises(InvalidActor, match="reserved"):
        Actor.person(name, "nurse", 1001)


def test_a_staff_member_acts_as_staff_and_id() -> None:
    a = Actor.staff("N042", "nurse", 1001)
    assert (a.kind, a.name, a.role, a.uid, a.staff_id) == (
        "person",
        "staff:N042",
        "nurse",
        1001,
        "N042",
    )
    assert a.pin_verified
    assert not Actor.person("ada", "nurse", 1001).pin_verified


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Actor.person("ada", "janitor", 1001), "role 'janitor'"),
        (lambda: Actor.person("ada", "daemon", 1001), "only the daemon"),
        (lambda: Actor.person("", "nurse", 1001), "1-120 printable"),
        (lambda: Actor.person("a" * 121, "nurse", 1001), "1-120 printable"),
        (lambda: Actor.person("ada\nroot", "nurse", 1001), "1-120 printable"),
        (lambda: Actor.person("ada", "nurse", -1), "negative"),
        (lambda: Actor.staff("", "nurse", 1001), "staff:"),
    ],
    ids=["unknown-role", "daemon-role", "empty", "too-long", "control-char", "uid", "no-id"],
)
def test_a_bad_actor_is_refused_where_it_is_made(make: object, words: str) -> None:
    with pytest.raises(InvalidActor, match=words):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "actor",
    [
        Actor("person", DAEMON_NAME, "auditor", 0),
        Actor("daemon", "root", "daemon", 0),
        Actor("person", "staff:N042", "nurse", 0, staff_id="N043"),
    ],
    ids=["person-as-daemon", "daemon-under-another-name", "staff-id-not-its-name"],
)
def test_the_store_refuses_an_actor_built_field_by_field(actor: Actor) -> None:
    with pytest.raises(InvalidEnvelope, match=r"daemon\.stopped"):
        prepare(NewEvent("daemon.stopped", {"reason_code": "x"}, actor))
