"""Who the audit log names for a clinical step is the socket's peer, as the socket made it:
the OS account's name and uid, or the staff member logged in (or witnessing) at that uid.
The controller below takes that actor as it is; it does not name the person again."""

from __future__ import annotations

import os

from pumpd.control.identity import user_name

from .conftest import PROGRAM, Rig
from .test_clinical import PIN_N042, PIN_N043, _staff


async def _written(rig: Rig) -> None:
    await rig.supervisor.controllers["chair-1"].journal.drain()
    await rig.flushed_events()


def _actor(rig: Rig, event_type: str) -> tuple[str, str, int | None, str]:
    [event] = rig.events(event_type=event_type)
    return (event.actor_kind, event.actor_name, event.actor_uid, event.actor_role)


async def test_the_session_events_name_the_peer_and_the_witness_at_its_uid(rig: Rig) -> None:
    await _staff(rig)
    c = await rig.client()
    c.token = (await c.ok("staff.login", staff_id="N042", pin=PIN_N042))["token"]
    await c.ok("session.program", **PROGRAM)
    await c.ok(
        "session.confirm",
        pump="chair-1",
        weight="80kg",
        witness={"staff_id": "N043", "pin": PIN_N043},
    )
    await _written(rig)
    uid = os.getuid()
    assert _actor(rig, "session.programmed") == ("person", "staff:N042", uid, "nurse")
    assert _actor(rig, "double_check.completed") == ("person", "staff:N043", uid, "nurse")


async def test_an_os_account_is_named_with_its_uid_in_the_session_events(rig: Rig) -> None:
    c = await rig.client()  # the rig's account holds the nurse role; no staff login
    await c.ok("session.program", **PROGRAM)
    await c.ok("session.note", pump="chair-1", text="patient settled, lights dimmed")
    await _written(rig)
    uid = os.getuid()
    me = ("person", user_name(uid), uid, "nurse")
    assert _actor(rig, "session.programmed") == me
    assert _actor(rig, "note.recorded") == me
    served = await rig.flushed_events(event_type="control.request.served")
    assert {(e.actor_name, e.actor_uid, e.actor_role) for e in served} == {me[1:]}
