"""The audit record of a programmed session names the protocol by its real id, so an
auditor's ``WHERE protocol_id = 'ketamine-trd-standard'`` finds it (it used to be stored
as ``ketamine_trd_standard``), in the auditor view and in ``pumpaudit``."""

from __future__ import annotations

import json
from decimal import Decimal

from click.testing import CliRunner
from sqlalchemy import text

from pumpd.cli.pumpaudit import main
from safety.plan import Order, Patient

from .conftest import NURSE, Rig, protocol


async def test_the_programmed_record_carries_the_protocol_id_as_written(rig: Rig) -> None:
    ctl = await rig.controller()
    await ctl.program(
        by=NURSE,
        session_id="S-7",
        patient_ref="P-0117",
        protocol=protocol("ketamine-trd-standard"),
        patient=Patient(weight_kg=Decimal(80)),
        order=Order(),
    )
    await ctl.journal.drain()
    [programmed] = rig.events(event_type="session.programmed", session="S-7")
    assert json.loads(programmed.payload)["protocol_id"] == "ketamine-trd-standard"
    with rig.store.engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT session_id, protocol_version FROM audit_sessions "
                "WHERE protocol_id = 'ketamine-trd-standard'"
            )
        ).all()
    assert [tuple(r) for r in found] == [("S-7", "1")]
    listed = CliRunner().invoke(main, ["--database", f"sqlite:///{rig.db_path}", "sessions"])
    assert listed.exit_code == 0, listed.output
    assert "ketamine-trd-standard@1" in listed.output
