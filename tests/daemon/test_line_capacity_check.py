"""A serial line that cannot poll its pumps at ``poll_hz`` is refused for live use by
``pumpd --check`` and by the start, naming the line, its pumps and the period that fits;
in simulation the same line is a warning and the daemon may start."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from pumpd.config import parse_config
from pumpd.daemon import lines


def config_text(
    tmp_path: Path,
    *,
    pumps: int,
    baudrate: int = 115_200,
    poll_hz: float = 10.0,
    simulation: bool = False,
    device: str = "/dev/ttyUSB0",
) -> str:
    (tmp_path / "run").mkdir(exist_ok=True)
    text = (
        f'[daemon]\nsocket = "{tmp_path / "run" / "s.sock"}"\n'
        f'database = "sqlite:///{tmp_path / "audit.db"}"\n'
        'audit_spool = "off"\n'
        f"poll_hz = {poll_hz}\n"
        f"simulation = {'true' if simulation else 'false'}\n"
    )
    for unit in range(1, pumps + 1):
        text += (
            f'[[pump]]\nid = "chair-{unit}"\ntransport = "modbus-rtu"\ndevice = "{device}"\n'
            f"baudrate = {baudrate}\nunit = {unit}\n"
        )
    return text


def review(tmp_path: Path, text: str) -> tuple[list[lines.LineRefusal], list[str]]:
    return lines.review(parse_config(text, path=tmp_path / "pumpd.toml"))


def test_sixteen_pumps_at_10_hz_on_one_rtu_line_are_refused(tmp_path: Path) -> None:
    refused, warnings = review(tmp_path, config_text(tmp_path, pumps=16))
    assert warnings == []
    [refusal] = refused
    assert refusal.key == "daemon.poll_hz"
    assert refusal.message.startswith(
        "Line /dev/ttyUSB0 @ 115200 8N1 cannot poll its 16 pump(s) (chair-1, chair-2, "
    )
    assert "chair-16) every 100 ms" in refusal.message
    assert "poll_hz ≤ 2.13" in refusal.message
    assert "at most 3 such pump(s)" in refusal.message


def test_the_period_it_names_is_accepted(tmp_path: Path) -> None:
    assert review(tmp_path, config_text(tmp_path, pumps=16, poll_hz=2.13)) == ([], [])
    refused, _ = review(tmp_path, config_text(tmp_path, pumps=16, poll_hz=2.2))
    assert refused


def test_pumps_on_different_lines_are_judged_apart(tmp_path: Path) -> None:
    text = config_text(tmp_path, pumps=3)
    assert review(tmp_path, text) == ([], [])
    assert review(tmp_path, config_text(tmp_path, pumps=6))[0]
    # Three more on a line of their own fit, where six on one line do not.
    other = config_text(tmp_path, pumps=3, device="/dev/ttyUSB1").split("[[pump]]", 1)[1]
    assert review(tmp_path, text + "[[pump]]" + other.replace("chair-", "bed-")) == ([], [])


def test_the_factory_rate_carries_one_gip_mb1_pump_not_two(tmp_path: Path) -> None:
    assert review(tmp_path, config_text(tmp_path, pumps=1, baudrate=19_200)) == ([], [])
    refused, _ = review(tmp_path, config_text(tmp_path, pumps=2, baudrate=19_200))
    assert "poll_hz ≤ 7.07" in refused[0].message


def test_a_simulated_line_is_warned_about_not_refused(tmp_path: Path) -> None:
    text = config_text(tmp_path, pumps=16, simulation=True, device="/dev/pts/77")
    refused, [warning] = review(tmp_path, text)
    assert refused == []
    assert warning.startswith("SIMULATION ONLY, refused for live use: Line /dev/pts/77 @ 115200")


def test_tcp_endpoints_are_not_judged(tmp_path: Path) -> None:
    text = config_text(tmp_path, pumps=0)
    for unit in range(1, 65):
        text += (
            f'[[pump]]\nid = "chair-{unit}"\ntransport = "modbus-tcp"\n'
            f'address = "127.0.0.1:5020"\nunit = {unit}\n'
        )
    assert review(tmp_path, text) == ([], [])


async def _pumpd(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pumpd.cli.daemon", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.slow
async def test_check_and_the_start_refuse_it_and_simulation_warns(tmp_path: Path) -> None:
    config = tmp_path / "pumpd.toml"
    config.write_text(config_text(tmp_path, pumps=16))
    code, out = await _pumpd("--config", str(config), "--check")
    assert code == 1, out
    assert f"{config}: daemon.poll_hz: Line /dev/ttyUSB0 @ 115200 8N1 cannot poll its 16" in out
    code, out = await _pumpd("--config", str(config))
    assert code == 1, out
    assert "start-up refused" in out
    assert "cannot poll its 16 pump(s)" in out
    config.write_text(config_text(tmp_path, pumps=16, simulation=True, device="/dev/pts/77"))
    code, out = await _pumpd("--config", str(config), "--check")
    assert code == 0, out
    assert f"{config}: note: SIMULATION ONLY, refused for live use: Line /dev/pts/77" in out
