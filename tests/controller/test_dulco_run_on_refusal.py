"""A DULCO flex whose own Modbus timeout would let it run on past the plan is refused.

The pump has no volume limit of its own: if pumpd or its link falls silent as the plan's
volume falls due, the pump runs on until its Modbus timeout (register 61, set at its
panel) stops it. At the plan's rate that run-on may not exceed the 200 µL the kernel allows
above the plan's volume (hazard H74, safety/runon.py). The timeout judged is the one the
driver read from the pump, in wall-clock seconds, whatever the time scale.

The real controller, the register-map driver with the prominent-dulcoflex profile and
pumpsim's DULCO pump on a real pseudo-terminal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpd.session.errors import CommandRefused

from .conftest import CHECKER, NURSE, normal_vitals, program, session_state
from .test_dulco_overrun_ack import PROTOCOL, dulco_controller, dulco_rig_with


async def test_a_ten_second_modbus_timeout_at_150_ml_h_is_refused(tmp_path: Path) -> None:
    async with dulco_rig_with(tmp_path, 10) as rig:
        ctl, _driver = await dulco_controller(rig, pump_timeout_s=10)
        with pytest.raises(CommandRefused) as refused:
            await program(ctl, PROTOCOL)
        (verdict,) = refused.value.verdicts
        assert verdict.code == "pump.watchdog_run_on"
        # The pump's 10 s (wall), not the controller's 2400 s of simulated time.
        for figure in ("timeout of 10 s", "150 mL/h", "417 µL", "200 µL", "at most 4.8 s"):
            assert figure in verdict.message, verdict.message
        assert session_state(ctl) is None
        await ctl.journal.drain()
        assert "session.programmed" not in rig.types()


async def test_the_timeout_read_from_the_pump_is_judged_not_the_configured_bound(
    tmp_path: Path,
) -> None:
    # heartbeat_timeout_s = 10 (the driver refuses a pump timeout longer than that), the
    # pump's own timeout set at its panel to 3 s: 125 µL at 150 mL/h, accepted.
    async with dulco_rig_with(tmp_path, 3) as rig:
        ctl, _driver = await dulco_controller(rig, pump_timeout_s=10)
        await program(ctl, PROTOCOL)
        await ctl.confirm(by=CHECKER, weight="80 kg")
        await ctl.vitals(by=NURSE, reading=normal_vitals(rig.clock))
        # Judged again at the start, on the pump's timeout as it is read now: set at the
        # panel to 10 s meanwhile, the start is refused (read again at the next connect).
        assert rig.sim.dulco is not None
        rig.sim.dulco.inject(20, "modbus-timeout-ms", value=10_000)
        await _driver.connect()
        with pytest.raises(CommandRefused) as refused:
            await ctl.start(by=NURSE, primed_confirmed=True)
        assert [v.code for v in refused.value.verdicts] == ["pump.watchdog_run_on"]
        await ctl.journal.drain()
        assert "session.programmed" in rig.types()
        assert "session.started" not in rig.types()
