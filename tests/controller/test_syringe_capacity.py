"""The syringe-capacity rule in the controller: an order the pump's syringe cannot hold
(with its prime) is refused at program, before anything reaches the audit log or the pump;
one that fits is programmed. A pump without a syringe is not judged by it."""

from __future__ import annotations

import pytest

from pumpd.session import CommandRefused, State
from safety.syringe import SyringeCapacity

from .conftest import Rig, halt, program, running, session_state

SIXTY_ML = SyringeCapacity("bd-plastic-60ml", 60_000)


async def test_a_bag_order_on_a_syringe_pump_is_refused_before_anything_is_written(
    rig: Rig,
) -> None:
    ctl = await rig.controller(syringe=SIXTY_ML)
    task = await running(ctl)
    try:
        with pytest.raises(CommandRefused) as refused:
            await program(ctl, "ketamine-trd-standard")  # 100 mL and a 15 mL prime at 80 kg
        assert refused.value.codes == ("syringe.vtbi_above_capacity",)
        (verdict,) = refused.value.verdicts
        assert verdict.rule == "order.syringe_capacity"
        assert "need 115 mL, more than the 60 mL the bd-plastic-60ml syringe holds" in (
            verdict.message
        )
        assert ctl.session is None
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert rig.types(session="S-1") == []
    assert rig.sim.command_log(1) == []


async def test_a_syringe_order_that_fits_is_programmed(rig: Rig) -> None:
    ctl = await rig.controller(syringe=SIXTY_ML)
    task = await running(ctl)
    try:
        await program(ctl, "ketamine-trd-syringe")  # 40 mL and a 2 mL prime at 80 kg
        assert session_state(ctl) is State.PROGRAMMED
    finally:
        await halt(task)


async def test_a_pump_fed_from_a_bag_is_not_judged_by_the_syringe_rule(rig: Rig) -> None:
    ctl = await rig.controller()  # no syringe configured
    task = await running(ctl)
    try:
        await program(ctl, "ketamine-trd-standard")
        assert session_state(ctl) is State.PROGRAMMED
    finally:
        await halt(task)
