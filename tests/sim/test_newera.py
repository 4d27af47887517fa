"""pumpsim's New Era pumps: the pure model stepped by hand, and the control channel and CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from pumpsim.control import ControlClient
from pumpsim.errors import ControlRequestFailed, SimConfigError
from pumpsim.harness import Simulator
from pumpsim.newera import NewEraLine, crc16, safe_packet
from pumpsim.newera_pump import NeraPump, truncate4


def fresh(**fields: object) -> NeraPump:
    pump = NeraPump(1)
    for key, value in fields.items():
        setattr(pump, key, value)
    return pump


def ask(pump: NeraPump, text: str, sim_s: float = 0, wall_s: float = 0) -> str:
    return pump.handle(text, Fraction(sim_s), wall_s)


def test_the_manuals_packet() -> None:
    assert safe_packet("SAF0") == b"\x02\x08SAF0\x55\x43\x03"
    assert crc16(b"SAF0") == 0x5543


def test_delivery_follows_simulated_time_and_stops_at_the_volume() -> None:
    pump = fresh()
    assert ask(pump, "RAT60MH") == "01S"
    assert ask(pump, "VOLUL") == "01S"
    assert ask(pump, "VOL500") == "01S"
    assert ask(pump, "RUN") == "01I"
    pump.advance(Fraction(15))  # 60 mL/h = 1000 µL/min: 250 µL in 15 s
    assert pump.infused_ul == 250
    pump.advance(Fraction(60))
    assert (pump.state, pump.infused_ul) == ("S", 500)
    assert ask(pump, "DIS", 60) == "01SI500.0W0.UL"


def test_stp_pauses_then_stops_and_run_resumes() -> None:
    pump = fresh()
    ask(pump, "RUN")
    assert ask(pump, "STP") == "01P"
    assert ask(pump, "RUN") == "01I"
    assert ask(pump, "STP") == "01P"
    assert ask(pump, "STP") == "01S"
    assert ask(pump, "STP") == "01S?NA"


def test_numbers_are_truncated_to_four_digits_as_the_pump_does() -> None:
    assert truncate4(Decimal("12.3456")) == Decimal("12.34")
    assert truncate4(Decimal("0.12345")) == Decimal("0.123")
    pump = fresh()
    ask(pump, "VOL12.3456")
    assert pump.volume == Decimal("12.34")
    assert ask(pump, "VOL") == "01S12.34ML"


def test_refusals() -> None:
    pump = fresh()
    assert ask(pump, "XYZ") == "01S?"
    assert ask(pump, "RAT99999MH") == "01S?OOR"
    ask(pump, "RUN")
    assert ask(pump, "DIA20") == "01I?NA"
    assert ask(pump, "PUR") == "01I?NA"


def test_an_alarm_answers_the_next_packet_once_and_is_pushed_in_safe_mode() -> None:
    pump = fresh(safe_timeout_s=5)
    ask(pump, "RUN")
    pump.stalled = True
    pump.advance(Fraction(1))
    assert pump.pushed == ["S"]
    assert ask(pump, "RUN", 1) == "01A?S"  # not executed, only acknowledged
    assert pump.state == "S"
    assert ask(pump, "", 1) == "01S"


def test_the_watchdog_uses_wall_seconds_only() -> None:
    pump = fresh(safe_timeout_s=2)
    ask(pump, "RUN", sim_s=0, wall_s=100)
    pump.advance(Fraction(10_000))  # simulated time does not trip it
    pump.check_watchdog(101.9)
    assert pump.state == "I"
    pump.check_watchdog(102.1)
    assert (pump.state, pump.alarm) == ("S", "T")


def test_power_loss_resets_counters_and_keeps_saf() -> None:
    pump = fresh(safe_timeout_s=9)
    ask(pump, "RUN")
    pump.advance(Fraction(60))
    pump.power_loss(5.0)
    assert (pump.state, pump.alarm, pump.infused_ul, pump.safe_timeout_s) == ("S", "R", 0, 9)


def test_time_never_goes_back() -> None:
    pump = fresh()
    pump.advance(Fraction(5))
    with pytest.raises(ValueError, match="backwards"):
        pump.advance(Fraction(4))


def test_line_settings_are_checked() -> None:
    with pytest.raises(SimConfigError):
        NewEraLine(1, clock_now_s=lambda: Fraction(0), baud=115_200)
    with pytest.raises(SimConfigError):
        NewEraLine(5, clock_now_s=lambda: Fraction(0), first_address=97)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(
        pumps=1, tcp=False, control=True, newera_pumps=2, newera_link=str(tmp_path / "ne")
    ) as simulator:
        yield simulator


async def test_control_channel_injects_new_era_faults(sim: Simulator) -> None:
    assert sim.control_address is not None
    assert sim.newera is not None

    def talk() -> None:
        with ControlClient(*sim.control_address) as client:
            reply = client.request("newera-fault", address=2, fault="stall", on=True)
            status = reply["status"]
            assert isinstance(status, dict)
            assert status["stalled"] is True
            client.request("newera-fault", address=2, fault="bad-crc", count=3)
            assert client.request("newera-status", address=2)["status"]["bad_crc_left"] == 3  # type: ignore[index]
            client.request("newera-fault", address=1, fault="power-loss")
            with pytest.raises(ControlRequestFailed, match="UnknownFaultError"):
                client.request("newera-fault", address=1, fault="melt")
            with pytest.raises(ControlRequestFailed, match="UnknownUnitError"):
                client.request("newera-status", address=7)

    await asyncio.to_thread(talk)
    assert sim.newera.pump(2).stalled
    assert sim.newera.pump(1).alarm == "R"


def test_pumpsim_serves_new_era_from_the_command_line(tmp_path: Path) -> None:
    link = tmp_path / "ne"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpsim", "--newera-link", str(link), "--newera-pumps", "2"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "newera=" + str(link) in line
        assert link.is_symlink()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
