"""One poll's frames as `line_load` counts them are the bytes a real driver puts on a line.

The GIP-MB1 driver polls a simulated RTU line (read, then heartbeat, as the controller
does); the frames pymodbus sent and received (`trace_frames`) are added up per direction
and held against the exchanges the capacity check counts for the same pump.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from pumpsim.harness import Simulator

from pumpd.config_pumps import PumpConfig
from pumpd.drivers.line_load import poll_on_line
from pumpd.drivers.modbus import ModbusPumpDriver
from pumpd.drivers.newera_codec import decode_dispensed, decode_rate, encode_safe, parse_reply

from .conftest import rtu_config


def _bytes(caplog: pytest.LogCaptureFixture, direction: str) -> int:
    total = 0
    for record in caplog.records:
        args = record.args
        if record.name != "pumpd.drivers.line" or not isinstance(args, tuple):
            continue
        if len(args) == 3 and args[1] == direction:
            total += len(bytes.fromhex(str(args[2])))
    return total


async def test_a_gip_mb1_poll_is_the_frames_counted(
    sim_rtu: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    assert sim_rtu.rtu_path is not None
    pump = PumpConfig(
        id="chair-1",
        transport="modbus-rtu",
        unit=1,
        profile="gip-mb1",
        heartbeat_timeout_s=10,
        device=sim_rtu.rtu_path,
        baudrate=115_200,
    )
    counted = poll_on_line(pump)
    assert counted is not None
    async with ModbusPumpDriver(rtu_config(sim_rtu, trace_frames=True)) as driver:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="pumpd.drivers.line"):
            await driver.read_status()
            await driver.heartbeat()
    assert _bytes(caplog, "tx") == sum(e.request_bytes for e in counted.exchanges)
    assert _bytes(caplog, "rx") == sum(e.reply_bytes for e in counted.exchanges)
    assert len(counted.exchanges) == 2
    # The driver's own silence after a reply is the one the check counts.
    gap = rtu_config(sim_rtu).line_settings().gap_s
    assert counted.timing.gap_s == counted.timing.end_of_request_s == gap
    assert counted.line == f"{sim_rtu.rtu_path} @ 115200 8N1"


def test_a_new_era_poll_is_dis_and_rat_in_safe_mode_frames() -> None:
    pump = PumpConfig(
        id="chair-2",
        transport="newera-serial",
        unit=12,
        profile="newera",
        heartbeat_timeout_s=10,
        device="/dev/ttyUSB1",
        baudrate=19_200,
        syringe_diameter_mm=Decimal("26.59"),
    )
    counted = poll_on_line(pump)
    assert counted is not None
    # "12DIS" and "12RAT" framed: STX, length, data, CRC (2), ETX.
    assert [e.request_bytes for e in counted.exchanges] == [10, 10]
    # The longest replies: address, prompt, then the data "I9.999W9.999ML" (17 bytes in
    # all) and "9.999MH" (10).
    assert [e.reply_bytes for e in counted.exchanges] == [
        len(encode_safe(b"00II9.999W9.999ML")),
        len(encode_safe(b"00I9.999MH")),
    ]
    # Both are replies the driver's own codec takes, with the largest values it carries.
    assert decode_dispensed(parse_reply(b"00II9.999W9.999ML").data) == (9999, 9999)
    assert decode_rate(parse_reply(b"00I9.999MH").data) == Decimal("9.999")
    assert counted.timing.char.bits == 10
    assert counted.timing.end_of_request_s == 0.0


def test_a_register_map_pump_reads_each_status_block_and_sends_no_heartbeat() -> None:
    pump = PumpConfig(
        id="chair-3",
        transport="modbus-rtu",
        unit=3,
        profile="prominent-dulcoflex",
        heartbeat_timeout_s=10,
        device="/dev/ttyUSB2",
        baudrate=19_200,
    )
    counted = poll_on_line(pump)
    assert counted is not None
    assert all(e.request_bytes == 8 for e in counted.exchanges)
    assert len(counted.exchanges) >= 1


def test_modbus_tcp_is_not_a_serial_line() -> None:
    pump = PumpConfig(
        id="chair-4",
        transport="modbus-tcp",
        unit=1,
        profile="gip-mb1",
        heartbeat_timeout_s=10,
        host="127.0.0.1",
        port=5020,
    )
    assert poll_on_line(pump) is None
