"""Every command in every pump state, over real Modbus TCP, against the GIP-MB1 rules.

The expected table is written from the GIP-MB1 text, not from the simulator's code: the
two are independent readings of the same specification.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from pumpsim.harness import Fault, Simulator

from pumpd.drivers.base import (
    Command,
    CommandRejected,
    CommandResult,
    PumpState,
    PumpStatus,
)
from pumpd.drivers.modbus import ModbusConfig, ModbusPumpDriver
from pumpd.drivers.profile import load_profile, parse_profile

from .conftest import TIME_SCALE, program, rtu_config, tcp_config, wait_state

Setup = Callable[[ModbusPumpDriver, Simulator], Awaitable[None]]


async def _idle(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await drv.write_program(program())


async def _idle_door_open(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await drv.write_program(program())
    sim.inject(1, Fault.DOOR_OPEN, on=True)


async def _priming(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await drv.write_program(program(prime_volume_ul=100_000, prime_rate_ml_h="1.00"))
    await drv.command(Command.PRIME)
    await wait_state(drv, PumpState.PRIMING)


async def _infusing(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await drv.write_program(program())
    await drv.command(Command.START)
    await wait_state(drv, PumpState.INFUSING)


async def _paused(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await _infusing(drv, sim)
    await drv.command(Command.PAUSE)
    await wait_state(drv, PumpState.PAUSED)


async def _kvo(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await drv.write_program(program(rate_ml_h="1200.00", vtbi_ul=10, kvo_rate_ml_h="1.00"))
    await drv.command(Command.START)
    await wait_state(drv, PumpState.KVO)


async def _alarm_present(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await _infusing(drv, sim)
    sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=True)
    await wait_state(drv, PumpState.ALARM)


async def _alarm_cleared(drv: ModbusPumpDriver, sim: Simulator) -> None:
    await _alarm_present(drv, sim)
    sim.inject(1, Fault.OCCLUSION_DOWNSTREAM, on=False)


SETUPS: dict[str, tuple[Setup, PumpState]] = {
    "IDLE": (_idle, PumpState.IDLE),
    "IDLE+door_open": (_idle_door_open, PumpState.IDLE),
    "PRIMING": (_priming, PumpState.PRIMING),
    "INFUSING": (_infusing, PumpState.INFUSING),
    "PAUSED": (_paused, PumpState.PAUSED),
    "KVO": (_kvo, PumpState.KVO),
    "ALARM+condition": (_alarm_present, PumpState.ALARM),
    "ALARM+cleared": (_alarm_cleared, PumpState.ALARM),
}

OK, STATE, ALARM = CommandResult.OK, CommandResult.REJECTED_STATE, CommandResult.REJECTED_ALARM
S = PumpState

# (setup, command) -> (result, state afterwards); from the GIP-MB1 command rules.
EXPECTED: dict[tuple[str, Command], tuple[CommandResult, PumpState]] = {
    # START: IDLE or PAUSED with no condition and good parameters -> INFUSING; else 1 / 3.
    ("IDLE", Command.START): (OK, S.INFUSING),
    ("IDLE+door_open", Command.START): (ALARM, S.IDLE),
    ("PRIMING", Command.START): (STATE, S.PRIMING),
    ("INFUSING", Command.START): (STATE, S.INFUSING),
    ("PAUSED", Command.START): (OK, S.INFUSING),
    ("KVO", Command.START): (STATE, S.KVO),
    ("ALARM+condition", Command.START): (STATE, S.ALARM),
    ("ALARM+cleared", Command.START): (STATE, S.ALARM),
    # PAUSE: INFUSING only.
    ("IDLE", Command.PAUSE): (STATE, S.IDLE),
    ("IDLE+door_open", Command.PAUSE): (STATE, S.IDLE),
    ("PRIMING", Command.PAUSE): (STATE, S.PRIMING),
    ("INFUSING", Command.PAUSE): (OK, S.PAUSED),
    ("PAUSED", Command.PAUSE): (STATE, S.PAUSED),
    ("KVO", Command.PAUSE): (STATE, S.KVO),
    ("ALARM+condition", Command.PAUSE): (STATE, S.ALARM),
    ("ALARM+cleared", Command.PAUSE): (STATE, S.ALARM),
    # STOP: any state but ALARM -> IDLE; in ALARM result 0 and stays.
    ("IDLE", Command.STOP): (OK, S.IDLE),
    ("IDLE+door_open", Command.STOP): (OK, S.IDLE),
    ("PRIMING", Command.STOP): (OK, S.IDLE),
    ("INFUSING", Command.STOP): (OK, S.IDLE),
    ("PAUSED", Command.STOP): (OK, S.IDLE),
    ("KVO", Command.STOP): (OK, S.IDLE),
    ("ALARM+condition", Command.STOP): (OK, S.ALARM),
    ("ALARM+cleared", Command.STOP): (OK, S.ALARM),
    # PRIME: IDLE only, no condition.
    ("IDLE", Command.PRIME): (OK, S.PRIMING),
    ("IDLE+door_open", Command.PRIME): (ALARM, S.IDLE),
    ("PRIMING", Command.PRIME): (STATE, S.PRIMING),
    ("INFUSING", Command.PRIME): (STATE, S.INFUSING),
    ("PAUSED", Command.PRIME): (STATE, S.PAUSED),
    ("KVO", Command.PRIME): (STATE, S.KVO),
    ("ALARM+condition", Command.PRIME): (STATE, S.ALARM),
    ("ALARM+cleared", Command.PRIME): (STATE, S.ALARM),
    # CLEAR_VOLUMES: IDLE only.
    ("IDLE", Command.CLEAR_VOLUMES): (OK, S.IDLE),
    ("IDLE+door_open", Command.CLEAR_VOLUMES): (OK, S.IDLE),
    ("PRIMING", Command.CLEAR_VOLUMES): (STATE, S.PRIMING),
    ("INFUSING", Command.CLEAR_VOLUMES): (STATE, S.INFUSING),
    ("PAUSED", Command.CLEAR_VOLUMES): (STATE, S.PAUSED),
    ("KVO", Command.CLEAR_VOLUMES): (STATE, S.KVO),
    ("ALARM+condition", Command.CLEAR_VOLUMES): (STATE, S.ALARM),
    ("ALARM+cleared", Command.CLEAR_VOLUMES): (STATE, S.ALARM),
    # ACK_ALARM: ALARM -> IDLE when no condition remains (else 3); other states 1.
    ("IDLE", Command.ACK_ALARM): (STATE, S.IDLE),
    ("IDLE+door_open", Command.ACK_ALARM): (STATE, S.IDLE),
    ("PRIMING", Command.ACK_ALARM): (STATE, S.PRIMING),
    ("INFUSING", Command.ACK_ALARM): (STATE, S.INFUSING),
    ("PAUSED", Command.ACK_ALARM): (STATE, S.PAUSED),
    ("KVO", Command.ACK_ALARM): (STATE, S.KVO),
    ("ALARM+condition", Command.ACK_ALARM): (ALARM, S.ALARM),
    ("ALARM+cleared", Command.ACK_ALARM): (OK, S.IDLE),
}


def test_table_covers_every_command_in_every_setup() -> None:
    assert set(EXPECTED) == {(s, c) for s in SETUPS for c in Command}


async def _send(drv: ModbusPumpDriver, command: Command) -> tuple[CommandResult, PumpStatus, int]:
    try:
        outcome = await drv.command(command)
    except CommandRejected as exc:
        return exc.result, exc.status, exc.cmd_seq
    return outcome.result, outcome.status, outcome.cmd_seq


@pytest.fixture(params=["tcp", "rtu"])
async def wired(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Simulator, ModbusConfig]]:
    """The same simulator set-up reached over Modbus TCP or over RTU on a pty."""
    rtu = request.param == "rtu"
    async with Simulator(pumps=1, tcp=not rtu, rtu=rtu, time_scale=TIME_SCALE) as sim:
        yield sim, rtu_config(sim) if rtu else tcp_config(sim)


@pytest.mark.parametrize(("setup", "command"), sorted(EXPECTED, key=str), ids=str)
async def test_command_in_state(
    wired: tuple[Simulator, ModbusConfig], setup: str, command: Command
) -> None:
    sim, config = wired
    async with ModbusPumpDriver(config) as drv:
        prepare, state_before = SETUPS[setup]
        await prepare(drv, sim)
        assert (await drv.read_status()).state is state_before
        result, status, seq = await _send(drv, command)
        want_result, want_state = EXPECTED[(setup, command)]
        assert (result, status.state) == (want_result, want_state)
        assert status.last_cmd_seq == seq
        last = sim.command_log(1)[-1]
        assert (last.cmd_seq, last.result) == (seq, list(CommandResult).index(want_result))


@pytest.mark.parametrize(
    ("changes", "command"),
    [
        ({"rate_ml_h": "0"}, Command.START),
        ({"rate_ml_h": "1200.01"}, Command.START),
        ({"vtbi_ul": 0}, Command.START),
        ({"prime_volume_ul": 0}, Command.PRIME),
        ({"prime_rate_ml_h": "0"}, Command.PRIME),
    ],
    ids=str,
)
async def test_bad_parameters_rejected(
    sim_tcp: Simulator, changes: dict[str, object], command: Command
) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program(**changes))  # type: ignore[arg-type]
        with pytest.raises(CommandRejected) as caught:
            await drv.command(command)
        assert caught.value.result is CommandResult.REJECTED_PARAMS
        assert caught.value.status.state is PumpState.IDLE


async def test_start_rejected_when_vtbi_already_reached(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await drv.write_program(program(rate_ml_h="1200.00", vtbi_ul=50))
        await drv.command(Command.START)
        done = await wait_state(drv, PumpState.IDLE)
        assert done.volume_infused_ul >= 50
        with pytest.raises(CommandRejected) as caught:
            await drv.command(Command.START)
        assert caught.value.result is CommandResult.REJECTED_PARAMS


async def test_unknown_command_code_is_rejected_with_result_4(sim_tcp: Simulator) -> None:
    # A site profile with a wrong command code: the pump answers UNKNOWN_COMMAND.
    data = load_profile().model_dump()
    data["commands"]["ACK_ALARM"] = 99
    async with ModbusPumpDriver(tcp_config(sim_tcp), profile=parse_profile(data)) as drv:
        with pytest.raises(CommandRejected) as caught:
            await drv.command(Command.ACK_ALARM)
        assert caught.value.result is CommandResult.UNKNOWN_COMMAND


async def test_rate_change_while_infusing_takes_effect_at_once(sim_tcp: Simulator) -> None:
    async with ModbusPumpDriver(tcp_config(sim_tcp)) as drv:
        await _infusing(drv, sim_tcp)
        await drv.write_program(program(rate_ml_h="2.50"))
        status = await drv.read_status()
        assert status.rate_actual_ml_h == Decimal("2.50")
