"""Random nurse commands and random faults against the real controller and simulator.

Invariants, checked after every step and at the end:
- never a latched alarm while the pump delivers, unless the pump cannot be stopped from
  here (it ignores commands, or the link is down and its own failsafe is the stop);
- never more than the prescribed volume plus the documented bound in the patient
  (VTBI overrun allowance + the volume band, docs/safety/supervision-rules.md), counted
  with the simulator's true volume, not the pump's counter;
- every pump command preceded by its intent event (stamped before the pump took it);
- the audit chain valid at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pumpsim.harness import Simulator

from pumpd.audit import AsyncAuditWriter
from pumpd.controller import Controller, ControllerError
from pumpd.session import SessionError, State
from safety.plan import Order, Patient

from .conftest import (
    CHECKER,
    NURSE,
    Rig,
    halt,
    make_rig,
    make_store,
    protocol,
    running,
    session_state,
)
from .test_faults import intents_precede_commands

SCALE = 600.0
FAULTS = ("occlusion-downstream", "air-in-line", "runaway", "stuck-volume", "drop-link")
STEPS = st.lists(
    st.one_of(
        st.sampled_from(["pause", "resume", "stop", "ack", "vitals", "note", "adjust", "wait"]),
        st.tuples(st.sampled_from(["on", "off"]), st.sampled_from(FAULTS)),
    ),
    min_size=2,
    max_size=7,
)
UNSTOPPABLE = {"drop-link"}


async def _step(rig: Rig, ctl_step: object, ctl: Controller, active: set[str]) -> None:
    if isinstance(ctl_step, tuple):
        on, fault = ctl_step
        kwargs = {"factor": "1.5"} if fault == "runaway" and on == "on" else {}
        rig.sim.inject(1, fault, on=on == "on", **kwargs)  # type: ignore[arg-type]
        (active.add if on == "on" else active.discard)(fault)
        return
    with contextlib.suppress(SessionError, ControllerError):
        if ctl_step == "pause":
            await ctl.pause(by=NURSE)
        elif ctl_step == "resume":
            await ctl.resume(by=NURSE)
        elif ctl_step == "stop":
            await ctl.stop(by=NURSE, reason="random stop")
        elif ctl_step == "ack":
            await ctl.acknowledge(by=NURSE, note="seen")
        elif ctl_step == "vitals":
            await ctl.vitals(by=NURSE, reading=rig.vitals())
        elif ctl_step == "note":
            await ctl.note(by=NURSE, text="random note")
        elif ctl_step == "adjust":
            await ctl.adjust(by=NURSE, reason="slower", order=Order(duration_min=Decimal(60)))
            await ctl.confirm_adjust(by=NURSE)
    if ctl_step == "wait":
        await asyncio.sleep(0.8)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
async def test_random_commands_and_faults_keep_the_invariants(steps: list[object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "audit.db"
        store = make_store(db_path)
        writer = AsyncAuditWriter(store)
        async with Simulator(pumps=1, tcp=True, time_scale=SCALE) as sim:
            rig = make_rig(sim, store, writer, db_path)
            ctl = await rig.controller()
            task = await running(ctl)
            active: set[str] = set()
            try:
                await ctl.program(
                    by=NURSE,
                    session_id="S-1",
                    patient_ref="P-0117",
                    protocol=protocol("ketamine-trd-standard"),
                    patient=Patient(weight_kg=Decimal(80)),
                    order=Order(),
                )
                await ctl.confirm(by=CHECKER, weight="80 kg")
                await ctl.vitals(by=NURSE, reading=rig.vitals())
                await ctl.start(by=NURSE, primed_confirmed=True)
                session = ctl.session
                assert session is not None
                bound_ul = session.plan.vtbi_ul + 200 + 500
                for step in steps:
                    await _step(rig, step, ctl, active)
                    await asyncio.sleep(0.15)
                    model = rig.sim.peek(1).snapshot()
                    delivering = model["state"] in ("PRIMING", "INFUSING", "KVO")
                    if session_state(ctl) is State.ALARM and delivering:
                        # give the controller one more moment to act on it
                        await asyncio.sleep(0.3)
                        model = rig.sim.peek(1).snapshot()
                        delivering = model["state"] in ("PRIMING", "INFUSING", "KVO")
                        assert not delivering or active & UNSTOPPABLE, (steps, model["state"])
                    assert int(str(model["true_infused_ul"])) <= bound_ul
            finally:
                await halt(task)
                await ctl.journal.drain()
            intents_precede_commands(rig)
            assert rig.chain_ok()
        await writer.aclose()
        store.close()
