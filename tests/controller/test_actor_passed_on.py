"""The controller writes the actor it is handed into the step's events, as it is: the role
and uid the control socket saw, not a role of its own (before, every person was recorded
as a nurse without a uid). The daemon's own steps are the daemon's."""

from __future__ import annotations

from decimal import Decimal

from pumpd.audit import Actor
from safety.plan import Order, Patient

from .conftest import Rig, protocol

PHYSICIAN = Actor.person("dr.lee", "physician", 4242)
ADMIN_AT_STATION = Actor.staff("N077", "admin", 1007)


async def test_the_events_carry_the_actor_as_handed_in(rig: Rig) -> None:
    ctl = await rig.controller()
    await ctl.program(
        by=PHYSICIAN,
        session_id="S-1",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.note(by=ADMIN_AT_STATION, text="consent form signed")
    await ctl.abort(by=PHYSICIAN, reason="patient changed their mind")
    await ctl.journal.drain()

    def actor(event_type: str) -> tuple[str, str, int | None, str]:
        [e] = rig.events(session="S-1", event_type=event_type)
        return (e.actor_kind, e.actor_name, e.actor_uid, e.actor_role)

    assert actor("session.programmed") == ("person", "dr.lee", 4242, "physician")
    assert actor("note.recorded") == ("person", "staff:N077", 1007, "admin")
    assert actor("session.stopped") == ("person", "dr.lee", 4242, "physician")
    # The session records the person by name (the actor's identity, never rebuilt).
    s = ctl.session
    assert s is not None
    assert (s.data.programmed_by, s.data.aborted_by) == ("dr.lee", "dr.lee")
    assert s.data.last_note is not None
    assert s.data.last_note.by == "staff:N077"
