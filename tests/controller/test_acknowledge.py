"""A nurse's acknowledgement in pumpctl never clears the pump's own alarm (pumpd never
sends ACK_ALARM; docs/controller.md, "Acknowledging an alarm"). An occlusion is cleared by
someone at the pump: until the pump has left its alarm, pumpd refuses the acknowledgement
and the alarm stays latched."""

from __future__ import annotations

import pytest
from pumpsim import registers as reg
from pumpsim.harness import Fault

from pumpd.controller import AlarmNotSeen, NothingToAcknowledge
from pumpd.session import CommandRefused, State

from .conftest import NURSE, Rig, halt, running, session_state, to_infusing, wait_until

ACK_ALARM = int(reg.Command.ACK_ALARM)


def press_alarm_key(rig: Rig) -> None:
    """The nurse at the pump presses its alarm key (the panel, not Modbus from pumpd)."""
    model = rig.sim.pump(1)
    seq = (int(model.snapshot()["last_cmd_seq"]) + 32768) % 65536 or 1  # type: ignore[call-overload]
    model.write_holding(reg.CMD_SEQ.address, [seq, ACK_ALARM])


async def test_remote_acknowledgement_never_clears_an_alarm_at_the_pump(rig: Rig) -> None:
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        await wait_until(lambda: ctl.delivered_ul() > 500, what="some delivery")
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the occlusion alarm")
        # Remote acknowledgement while the pump is in alarm: refused, nothing changes.
        with pytest.raises(CommandRefused) as refused:
            await ctl.acknowledge(by=NURSE, note="seen on the ward screen")
        assert "ack.pump_in_alarm" in refused.value.codes
        # The cause is gone, but the pump's alarm is latched until someone is at the pump.
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=False)
        with pytest.raises(CommandRefused) as still:
            await ctl.acknowledge(by=NURSE)
        assert "ack.pump_in_alarm" in still.value.codes
        assert session_state(ctl) is State.ALARM
        assert rig.sim.pump(1).snapshot()["state"] == "ALARM"
        assert ACK_ALARM not in [r.command for r in rig.sim.command_log(1)]
        # At the pump: the nurse clears the line and presses the key; then pumpctl's
        # acknowledgement is accepted and the session is STOPPED (never INFUSING).
        press_alarm_key(rig)
        assert rig.sim.pump(1).snapshot()["state"] == "IDLE"
        await ctl.acknowledge(by=NURSE, note="line unkinked at the pump")
        assert session_state(ctl) is State.STOPPED
    finally:
        await halt(task)
    await ctl.journal.drain()
    # pumpd itself never sent ACK_ALARM: every command the pump took over Modbus was its.
    assert ACK_ALARM not in [r.command for r in rig.sim.command_log(1)]
    assert "alarm.acknowledged" in rig.types(session="S-1")
    assert rig.chain_ok()


async def test_an_acknowledgement_with_nothing_latched_is_refused_and_writes_nothing(
    rig: Rig,
) -> None:
    """Answering "acknowledged" when no alarm was there would let a nurse believe an alarm
    was dealt with (the soak's wrong-action check found it answered as done)."""
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        with pytest.raises(NothingToAcknowledge, match="no alarm is latched"):
            await ctl.acknowledge(by=NURSE)  # no session at all
        await to_infusing(rig, ctl)
        with pytest.raises(NothingToAcknowledge, match="nothing to acknowledge on chair-2"):
            await ctl.acknowledge(by=NURSE, note="just in case")
        assert session_state(ctl) is State.INFUSING
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert "alarm.acknowledged" not in rig.types(session="S-1")


async def test_an_alarm_latched_after_the_screen_was_shown_refuses_the_acknowledgement(
    rig: Rig,
) -> None:
    """An acknowledgement names what its person saw; an alarm that came in after that is
    not acknowledged with it (the soak's nurse looked, saw none, and a moment later its
    acknowledgement took an over-infusion alarm it had never been shown)."""
    ctl = await rig.controller()
    task = await running(ctl)
    try:
        await to_infusing(rig, ctl)
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
        await wait_until(lambda: session_state(ctl) is State.ALARM, what="the occlusion alarm")
        rig.sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=False)
        press_alarm_key(rig)
        codes = [a.code for a in ctl.status().alarms]
        assert "tick.pump.alarm.occlusion_downstream" in codes, codes
        with pytest.raises(AlarmNotSeen, match="came in after your screen") as refused:
            await ctl.acknowledge(by=NURSE, seen=[])
        assert "Downstream occlusion" in str(refused.value)
        assert session_state(ctl) is State.ALARM  # nothing was acknowledged
        await ctl.acknowledge(by=NURSE, seen=codes)
        assert session_state(ctl) is State.STOPPED
    finally:
        await halt(task)
    await ctl.journal.drain()
    assert rig.types(session="S-1").count("alarm.acknowledged") >= 1
