"""An acknowledged exceedance of the plan's volume is kept with the volume it was
acknowledged at: the kernel reminds of it, instead of alarming again, while the pump stays
stopped at that volume (``safety.delivery_rules.rule_vtbi``). The figure is in the checkpoint, so a
restart of pumpd keeps it; an acknowledgement of any other alarm leaves it as it was."""

from __future__ import annotations

import pytest

from pumpd.session import Session, State
from pumpd.session.errors import InvalidCommandInput
from safety.actions import Priority
from safety.pump import PumpMode

from .conftest import PROGRAMMER, Bedside, drive

EXCEEDED = "tick.vtbi.exceeded"


def _exceeded_and_stopped(b: Bedside, s: Session) -> None:
    s.stop(by="pumpd", reason="over the volume", reason_code=EXCEEDED, at=b.at())
    s.stop_confirmed(at=b.at())
    s.alarm(code=EXCEEDED, priority=Priority.HIGH, message="over", source="kernel", at=b.at())
    assert s.state is State.ALARM


def test_the_volume_an_exceedance_was_acknowledged_at_is_kept_and_restored() -> None:
    b, s = drive(State.INFUSING)
    _exceeded_and_stopped(b, s)
    assert s.data.vtbi_exceeded_acknowledged_ul is None
    step = s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at(), delivered_ul=100_600)
    assert step.dest is State.OBSERVATION
    assert s.data.vtbi_exceeded_acknowledged_ul == 100_600
    restored = Session.restore(s.snapshot(), b.protocol, rebase_to=b.at(0))
    assert restored.data.vtbi_exceeded_acknowledged_ul == 100_600
    # Another alarm's acknowledgement keeps the figure; a new exceedance's replaces it.
    s.alarm(
        code="tick.pump.battery_low", priority=Priority.LOW, message="b", source="kernel", at=b.at()
    )
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at(), delivered_ul=100_650)
    assert s.data.vtbi_exceeded_acknowledged_ul == 100_600
    s.alarm(code=EXCEEDED, priority=Priority.HIGH, message="again", source="kernel", at=b.at())
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at(), delivered_ul=100_650)
    assert s.data.vtbi_exceeded_acknowledged_ul == 100_650


def test_without_a_volume_nothing_is_acknowledged_at_one() -> None:
    b, s = drive(State.INFUSING)
    _exceeded_and_stopped(b, s)
    s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at())
    assert s.data.vtbi_exceeded_acknowledged_ul is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100600"])
def test_the_volume_must_be_a_whole_number_of_microlitres(bad: object) -> None:
    b, s = drive(State.INFUSING)
    _exceeded_and_stopped(b, s)
    with pytest.raises(InvalidCommandInput, match="delivered_ul"):
        s.acknowledge(by=PROGRAMMER, pump_mode=PumpMode.IDLE, at=b.at(), delivered_ul=bad)  # type: ignore[arg-type]
    assert s.state is State.ALARM
