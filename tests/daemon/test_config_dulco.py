"""pumpd.toml for a register-map pump (the DULCO flex): the documented keys load, the RTU
line keys are checked by key, and a simulated pty line must say parity N."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pumpd.config import ConfigError, DaemonConfig, parse_config
from pumpd.daemon.app import make_driver
from pumpd.drivers import RegisterMapDriver

EXAMPLE = """
[[pump]]
id = "chair-3"
transport = "modbus-rtu"
profile = "prominent-dulcoflex"
device = "/dev/ttyUSB0"
baudrate = 19200
parity = "E"
unit = 20
heartbeat_timeout_s = 10
"""


def parse(text: str) -> DaemonConfig:
    return parse_config(text, path=Path("/etc/pumpd/pumpd.toml"))


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return dict(caught.value.problems)


def test_the_documented_example_loads_and_builds_the_register_map_driver() -> None:
    (pump,) = parse(EXAMPLE).pumps
    assert (pump.transport, pump.profile, pump.unit) == ("modbus-rtu", "prominent-dulcoflex", 20)
    assert (pump.serial.parity, pump.serial.stopbits, pump.serial.bytesize) == ("E", 1, 8)
    driver = make_driver(pump, time_scale=1.0)
    assert isinstance(driver, RegisterMapDriver)
    assert driver.config.line_settings().parity == "E"
    assert driver.heartbeat_timeout_s == 10


def test_the_profile_gives_the_line_defaults() -> None:
    (pump,) = parse(EXAMPLE.replace('parity = "E"\n', "")).pumps
    assert pump.serial.parity == "E"  # the pump's factory 8E1


def test_gip_mb1_rtu_pumps_keep_8n1() -> None:
    text = EXAMPLE.replace('profile = "prominent-dulcoflex"\n', "").replace('parity = "E"\n', "")
    (pump,) = parse(text).pumps
    assert (pump.serial.parity, pump.serial.stopbits, pump.serial.bytesize) == ("N", 1, 8)


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ('parity = "E"', 'parity = "X"', "pump[0].parity", "N, E or O"),
        ('parity = "E"', "stopbits = 3", "pump[0].stopbits", "1 or 2"),
        ('parity = "E"', "bytesize = 6", "pump[0].bytesize", "7 or 8"),
        ('parity = "E"', 'parity = "N"\nbytesize = 7', "pump[0].bytesize", "not RTU"),
        ('profile = "prominent-dulcoflex"', 'profile = "dulco-9"', "pump[0].profile", "no shipped"),
    ],
)
def test_each_refusal_names_its_key(old: str, new: str, key: str, fragment: str) -> None:
    found = problems(EXAMPLE.replace(old, new))
    assert key in found, found
    assert fragment in found[key]


def test_line_keys_are_only_for_modbus_rtu() -> None:
    text = """
[[pump]]
id = "chair-1"
transport = "modbus-tcp"
address = "127.0.0.1:5020"
unit = 1
parity = "E"
"""
    assert "only for transport modbus-rtu" in problems(text)["pump[0].parity"]


def test_a_simulated_pty_line_runs_without_parity(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        text = "[daemon]\nsimulation = true\n" + EXAMPLE.replace("/dev/ttyUSB0", os.ttyname(slave))
        assert "keeps no parity" in problems(text)["pump[0].parity"]
        (pump,) = parse(text.replace('parity = "E"', 'parity = "N"')).pumps
        assert pump.serial.parity == "N"
    finally:
        os.close(master)
        os.close(slave)
