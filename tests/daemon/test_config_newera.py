"""pumpd.toml for New Era pumps: the documented keys load; each refusal names its key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pumpd.config import ConfigError, DaemonConfig, parse_config
from pumpd.daemon.app import controller_config, make_driver
from pumpd.drivers import NewEraPumpDriver
from safety.syringe import SyringeCapacity

EXAMPLE = """
[[pump]]
id = "chair-3"
transport = "newera-serial"
device = "/dev/ttyUSB1"        # a pseudo-terminal in simulation mode
baudrate = 19200               # 300–19200
address = 1                    # the pump's network address, 0–99
syringe_diameter_mm = 26.59    # or: syringe = "<name from the syringe table>"
syringe_capacity_ml = 60       # with a bare diameter: what the syringe holds
heartbeat_timeout_s = 10       # SAF watchdog, 1–255 s
"""


def parse(text: str) -> DaemonConfig:
    return parse_config(text, path=Path("/etc/pumpd/pumpd.toml"))


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return dict(caught.value.problems)


def test_the_documented_example_loads() -> None:
    (pump,) = parse(EXAMPLE).pumps
    assert pump.transport == "newera-serial"
    assert (pump.device, pump.baudrate, pump.unit) == ("/dev/ttyUSB1", 19200, 1)
    assert pump.syringe_diameter_mm == Decimal("26.59")
    assert pump.syringe_capacity_ul == 60_000
    assert pump.heartbeat_timeout_s == 10
    assert controller_config(parse(EXAMPLE), pump).syringe == SyringeCapacity("26.59 mm", 60_000)


def test_a_syringe_from_the_table() -> None:
    text = EXAMPLE.replace("syringe_diameter_mm = 26.59", 'syringe = "bd-plastic-10ml"')
    text = text.replace("syringe_capacity_ml = 60", "")
    (pump,) = parse(text).pumps
    assert pump.syringe_diameter_mm == Decimal("14.43")
    assert pump.syringe == "bd-plastic-10ml"
    assert pump.syringe_capacity_ul == 10_000
    syringe = controller_config(parse(text), pump).syringe
    assert syringe == SyringeCapacity("bd-plastic-10ml", 10_000)


def test_the_daemon_builds_a_new_era_driver_with_an_unscaled_watchdog() -> None:
    text = "[daemon]\nsimulation = true\ntime_scale = 60\n" + EXAMPLE.replace(
        "/dev/ttyUSB1", "/dev/pts/9"
    )
    cfg = parse(text)
    (pump,) = cfg.pumps
    driver = make_driver(pump, cfg.time_scale)
    assert isinstance(driver, NewEraPumpDriver)
    assert driver.config.address == 1
    assert driver.config.heartbeat_timeout_s == 10
    # The controller speaks clock seconds (× 60); the driver divides back for SAF n.
    assert controller_config(cfg, pump).heartbeat_timeout_s == 600
    assert driver.config.clock_scale == 60


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        (("baudrate = 19200", "baudrate = 115200"), "pump[0].baudrate", "300, 1200"),
        (("baudrate = 19200", "baudrate = 100"), "pump[0].baudrate", "greater than or equal"),
        (("address = 1", "address = 100"), "pump[0].address", "0-99"),
        (("address = 1", 'address = "1"'), "pump[0].address", "0-99"),
        (("address = 1", ""), "pump[0].address", "needs address"),
        (
            ("heartbeat_timeout_s = 10", "heartbeat_timeout_s = 256"),
            "pump[0].heartbeat_timeout_s",
            "1-255",
        ),
        (
            ("heartbeat_timeout_s = 10", "heartbeat_timeout_s = 0"),
            "pump[0].heartbeat_timeout_s",
            "greater than or equal to 1",
        ),
        (("syringe_diameter_mm = 26.59", ""), "pump[0].syringe_diameter_mm", "needs"),
        (
            ("syringe_capacity_ml = 60", ""),
            "pump[0].syringe_capacity_ml",
            "needs its nominal capacity",
        ),
        (
            ("syringe_capacity_ml = 60", "syringe_capacity_ml = 60.0005"),
            "pump[0].syringe_capacity_ml",
            "finer than 1 µL",
        ),
        (
            ("syringe_capacity_ml = 60", "syringe_capacity_ml = 0"),
            "pump[0].syringe_capacity_ml",
            "greater than 0",
        ),
        (
            ("syringe_diameter_mm = 26.59", 'syringe = "bd-plastic-60ml"'),
            "pump[0].syringe_capacity_ml",
            "the syringe table gives the capacity",
        ),
        (
            ("syringe_diameter_mm = 26.59", "syringe_diameter_mm = 26.591"),
            "pump[0].syringe_diameter_mm",
            "truncate",
        ),
        (
            ("syringe_diameter_mm = 26.59", 'syringe = "bd-99ml"'),
            "pump[0].syringe",
            "unknown syringe",
        ),
        (
            (
                "syringe_diameter_mm = 26.59",
                'syringe_diameter_mm = 26.59\nsyringe = "bd-plastic-60ml"',
            ),
            "pump[0].syringe",
            "not both",
        ),
        (('device = "/dev/ttyUSB1"', ""), "pump[0].device", "needs device"),
        (("address = 1", "address = 1\nunit = 1"), "pump[0].unit", "not for newera-serial"),
    ],
)
def test_each_refusal_names_its_key(change: tuple[str, str], key: str, fragment: str) -> None:
    found = problems(EXAMPLE.replace(*change))
    assert key in found, found
    assert fragment in found[key], found[key]


def test_modbus_pumps_refuse_the_new_era_keys() -> None:
    text = (
        '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 1\nsyringe = "x"\n'
    )
    assert "only for transport newera-serial" in problems(text)["pump[0].syringe"]
    text = text.replace('syringe = "x"', "syringe_capacity_ml = 60")
    assert "only for transport newera-serial" in problems(text)["pump[0].syringe_capacity_ml"]
    text = (
        '[[pump]]\nid = "c"\ntransport = "modbus-tcp"\naddress = "h:1"\nunit = 1\n'
        "heartbeat_timeout_s = 1\n"
    )
    assert "pump[0].heartbeat_timeout_s" in problems(text)


def test_two_pumps_on_one_line_need_two_addresses_and_one_protocol() -> None:
    second = EXAMPLE.replace('"chair-3"', '"chair-4"')
    found = problems(EXAMPLE + second)
    assert "address 1 on /dev/ttyUSB1 is already pump[0]" in found["pump[1].address"]
    rtu = '[[pump]]\nid = "c"\ntransport = "modbus-rtu"\ndevice = "/dev/ttyUSB1"\nunit = 1\n'
    assert "one line, one protocol" in problems(EXAMPLE + rtu)["pump[1].transport"]
    assert len(parse(EXAMPLE + second.replace("address = 1", "address = 2")).pumps) == 2


def test_simulation_accepts_only_a_pseudo_terminal() -> None:
    found = problems("[daemon]\nsimulation = true\n" + EXAMPLE)
    assert "pseudo-terminals" in found["pump[0].device"]
