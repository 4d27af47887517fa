"""A command the driver refuses before anything is sent (a setpoint the pump cannot hold
exactly) is an alarm that says the command was not sent, not that the pump refused it, and
the pump goes on as it was: nothing reached it.

The real New Era simulator in real time: the pump keeps 4 significant digits, so a rate of
139.53 mL/h (100 mL over 43 minutes) cannot be set on it, and the driver refuses it rather
than let the pump cut it to 139.5 (docs/driver.md, "New Era").
"""

from __future__ import annotations

from decimal import Decimal

from pumpd.session import State
from safety.plan import Order

from .conftest import NURSE, NeweraRig, session_state


async def test_a_rate_the_pump_cannot_hold_is_not_sent_and_the_alarm_says_so(
    newera_infusing: NeweraRig,
) -> None:
    sim, ctl, _ = newera_infusing
    assert sim.newera is not None
    pump = sim.newera.pumps[1]
    rate_before = pump.rate_ml_h()
    heard_before = len(sim.newera.request_log)
    plan = await ctl.adjust(by=NURSE, reason="patient asked", order=Order(duration_min=Decimal(43)))
    assert plan.rate_ml_h == Decimal("139.53")
    await ctl.confirm_adjust(by=NURSE)
    assert session_state(ctl) is State.ALARM
    session = ctl.session
    assert session is not None
    (alarm,) = [a for a in session.data.alarms if a.code == "command.set_rate.failed"]
    assert alarm.message.startswith("The set_rate command was not sent to the pump: ")
    assert "139.53 mL/h is not exact in 4 digits" in alarm.message
    assert alarm.source == "daemon"
    heard = list(sim.newera.request_log)[heard_before:]
    rates_asked = [r.text for r in heard if "RAT" in r.text]
    assert all(text.endswith("RAT") for text in rates_asked), rates_asked  # read, never set
    assert pump.rate_ml_h() == rate_before
