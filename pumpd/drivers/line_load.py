"""What one poll of a pump puts on its serial line, from its configuration alone.

The controller's poll is one status read and a heartbeat (docs/controller.md, "One poll").
On the wire that is, per driver:

- GIP-MB1 schema (``ModbusPumpDriver``): a function 0x04 read of the status block and a
  function 0x10 write of the heartbeat register;
- a register-map profile (``RegisterMapDriver``): a function 0x03 read per status block;
  the heartbeat sends nothing, the read just fed the pump's timeout;
- New Era in Safe mode: ``DIS`` and, while the pump moves fluid, ``RAT``; the heartbeat
  sends nothing, the reply just restarted the pump's watchdog. Counted as infusing (the
  worst case), with the longest replies the driver can get.

The frames' sizes and the line's silences go to `safety.line_capacity`, which says whether
the line carries its pumps at the poll rate. ``tests/drivers/test_line_load.py`` holds
these sizes against the bytes a real driver puts on a simulated line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pumpd.drivers.modbus_backend import modbus_config
from pumpd.drivers.newera_codec import encode_safe, request_text
from pumpd.drivers.newera_config import NewEraConfig
from pumpd.drivers.profile import load_profile
from pumpd.drivers.registry import PumpSettings
from pumpd.drivers.regmap_driver import register_map
from safety.line_capacity import CharFormat, Exchange, SerialTiming

RTU_READ_REQUEST_BYTES = 8
"""Address, function, start (2), count (2), CRC (2)."""
RTU_WRITE_REPLY_BYTES = 8
"""Address, function, start (2), count (2), CRC (2)."""
NEWERA_LONGEST_DIS = "00II99.99W99.99ML"
"""Address, prompt, then ``I`` and ``W`` with the volumes infused and withdrawn (four digits
and a point each) and their unit: the longest ``DIS`` reply (`newera_codec.decode_dispensed`)."""
NEWERA_LONGEST_RAT = "00I99.99MH"
"""Address, prompt, a rate of four digits and a point, its unit: the longest ``RAT`` reply."""


def rtu_read(registers: int) -> Exchange:
    """Function 0x03/0x04: the request, and a reply of address, function, byte count, the
    registers, CRC."""
    return Exchange(RTU_READ_REQUEST_BYTES, 5 + 2 * registers)


def rtu_write(registers: int) -> Exchange:
    """Function 0x10: address, function, start, count, byte count, the registers, CRC."""
    return Exchange(9 + 2 * registers, RTU_WRITE_REPLY_BYTES)


@dataclass(frozen=True, slots=True)
class PollOnLine:
    """One pump's poll on its serial line."""

    line: str
    """The line as its configuration names it (``/dev/ttyUSB0 @ 115200 8N1``)."""
    key: str
    """The resolved device: pumps with the same key share one line."""
    timing: SerialTiming
    exchanges: tuple[Exchange, ...]


def poll_on_line(pump: PumpSettings) -> PollOnLine | None:
    """The serial line a pump's polls take and what they take of it; None for Modbus TCP
    (its capacity is the network's round trip, not a configuration fact)."""
    if pump.transport == "modbus-rtu":
        return _modbus_rtu(pump)
    if pump.transport == "newera-serial":
        return _newera(pump)
    return None


def _modbus_rtu(pump: PumpSettings) -> PollOnLine:
    cfg = modbus_config(pump)
    settings = cfg.line_settings()
    rmap = register_map(pump.profile)
    if rmap is not None:
        exchanges = tuple(rtu_read(b.count) for b in rmap.status.blocks)
    else:
        profile = load_profile(pump.profile)
        heartbeat = profile.holding.fields.heartbeat
        exchanges = (rtu_read(profile.input.count), rtu_write(heartbeat.words))
    char = CharFormat(cfg.bytesize, cfg.parity != "N", cfg.stopbits)
    timing = SerialTiming(
        baudrate=cfg.baudrate,
        char=char,
        end_of_request_s=settings.gap_s,
        gap_s=settings.gap_s,
    )
    name = f"{cfg.device} @ {cfg.baudrate} {cfg.bytesize}{cfg.parity}{cfg.stopbits}"
    return PollOnLine(name, settings.address, timing, exchanges)


def _newera(pump: PumpSettings) -> PollOnLine:
    device = pump.device or ""
    baudrate = pump.baudrate or 19200
    address = pump.unit

    def ask(command: str, longest_reply: str) -> Exchange:
        request = encode_safe(request_text(address, command).encode("ascii"))
        return Exchange(len(request), len(encode_safe(longest_reply.encode("ascii"))))

    gap = NewEraConfig.model_fields["gap_s"].default
    timing = SerialTiming(baudrate=baudrate, char=CharFormat(), end_of_request_s=0.0, gap_s=gap)
    exchanges = (ask("DIS", NEWERA_LONGEST_DIS), ask("RAT", NEWERA_LONGEST_RAT))
    return PollOnLine(f"{device} @ {baudrate} 8N1", os.path.realpath(device), timing, exchanges)
