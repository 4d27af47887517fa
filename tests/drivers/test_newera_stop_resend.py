"""A New Era STOP or PAUSE whose STP went unheard sends it again as soon as a read shows it.

The driver confirms a halt by reading the pump back. When an STP went unanswered (lost on
the way, or its reply damaged after the pump acted on it) it used to send nothing more and
read for the rest of the attempt's timeout (the controller's `command_timeout_s`, 2 s)
while the reads showed the pump still running or only paused; only the next attempt sent
STP again. One damaged reply made a STOP take 2 s instead of some 35 ms, and a pump that
lost one STP ran on for those 2 s. Now a read that shows the pump short of where the
command leads sends the STPs again at once.

The real New Era simulator on a pseudo-terminal, its own wire faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from pumpsim.harness import Simulator

from pumpd.drivers.base import Command, PumpProgram, PumpState
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver

TIMEOUT_S = 2.0
"""The attempt's confirmation timeout, as the controller's default `command_timeout_s`."""
QUICK_S = 1.5
"""Under one attempt's timeout, well over the few exchanges a re-sent STP takes."""


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, newera_pumps=1, newera_link=str(tmp_path / "ne"), time_scale=60.0
    ) as sim:
        yield sim


@pytest.fixture
async def pump(sim: Simulator) -> AsyncIterator[NewEraPumpDriver]:
    assert sim.newera_path is not None
    config = NewEraConfig(
        device=sim.newera_path,
        address=1,
        syringe_diameter_mm=Decimal("26.59"),
        heartbeat_timeout_s=10,
        timeout_s=0.3,
    )
    async with NewEraPumpDriver(config) as driver:
        await driver.write_program(
            PumpProgram(
                rate_ml_h=Decimal(60),
                vtbi_ul=50_000,
                kvo_rate_ml_h=Decimal(0),
                prime_volume_ul=0,
                prime_rate_ml_h=Decimal(0),
            )
        )
        await driver.command(Command.START)
        assert (await driver.read_status()).state is PumpState.INFUSING
        yield driver


def _damage_the_reply_to_the_first_stp(sim: Simulator, fault: str) -> None:
    """The pump acts on the first STP it hears, and its reply to it is damaged on the wire
    (the simulator's own fault, injected as that STP arrives; a PAUSE reads first)."""
    line = sim.newera
    assert line is not None
    nera = line.pumps[1]
    original = nera.handle
    armed = [True]

    def handle(text: str, sim_s: Fraction, wall_s: float) -> str:
        reply = original(text, sim_s, wall_s)
        if armed[0] and text.strip().upper().startswith("STP"):
            armed[0] = False
            line.inject(1, fault, count=1)  # this reply, about to be sent
        return reply

    nera.handle = handle  # type: ignore[method-assign]


@pytest.mark.parametrize("fault", ["garble", "bad-crc"])
@pytest.mark.parametrize(
    ("command", "wanted"), [(Command.STOP, PumpState.IDLE), (Command.PAUSE, PumpState.PAUSED)]
)
async def test_a_damaged_reply_to_the_stp_costs_a_read_not_the_attempts_timeout(
    sim: Simulator, pump: NewEraPumpDriver, fault: str, command: Command, wanted: PumpState
) -> None:
    _damage_the_reply_to_the_first_stp(sim, fault)
    t0 = time.monotonic()
    outcome = await pump.command(command, timeout_s=TIMEOUT_S)
    took_s = time.monotonic() - t0
    assert outcome.status.state is wanted
    assert sim.newera.pump(1).state == ("S" if wanted is PumpState.IDLE else "P")
    assert took_s < QUICK_S, took_s


@pytest.mark.parametrize(
    ("command", "wanted"), [(Command.STOP, PumpState.IDLE), (Command.PAUSE, PumpState.PAUSED)]
)
async def test_an_stp_the_pump_never_heard_goes_again_once_a_read_shows_it_running(
    sim: Simulator, pump: NewEraPumpDriver, command: Command, wanted: PumpState
) -> None:
    assert sim.newera is not None
    sim.newera.inject(1, "lose-commands")
    asyncio.get_running_loop().call_later(
        0.2, lambda: sim.newera is not None and sim.newera.inject(1, "lose-commands", on=False)
    )
    t0 = time.monotonic()
    outcome = await pump.command(command, timeout_s=TIMEOUT_S)
    took_s = time.monotonic() - t0
    assert outcome.status.state is wanted
    # The first STP was lost (its timeout, 0.3 s); the read after it showed the pump still
    # infusing, and the STP sent then was heard.
    assert took_s < QUICK_S, took_s
    nera = sim.newera.pump(1)
    assert nera.state == ("S" if wanted is PumpState.IDLE else "P")
