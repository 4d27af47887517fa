"""The ``[[pump]]`` entries: each checked for its transport (Modbus TCP or RTU, New Era
serial), the limits a simulation puts on them, and pumps that would share one endpoint."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pumpd.drivers import (
    NotRepresentable,
    SerialKeys,
    SyringeCapacityError,
    check_profile,
    configured_capacity_ul,
    format_number,
    serial_keys,
    simulated_line_problem,
    syringe,
)

if TYPE_CHECKING:
    from pumpd.config import PumpSection

PUMP_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PTS = re.compile(r"^/dev/pts/[0-9]+$")


@dataclass(frozen=True, slots=True)
class PumpConfig:
    """A checked pump: ``host``/``port`` for TCP, ``device``/``baudrate`` for RTU."""

    id: str
    transport: Literal["modbus-tcp", "modbus-rtu", "newera-serial"]
    unit: int
    """The Modbus unit id; for newera-serial the pump's network address (0–99)."""
    profile: str
    heartbeat_timeout_s: int
    host: str | None = None
    port: int | None = None
    device: str | None = None
    baudrate: int | None = None
    syringe_diameter_mm: Decimal | None = None
    """newera-serial only: from ``syringe_diameter_mm`` or the syringe table."""
    syringe: str | None = None
    syringe_capacity_ul: int | None = None
    """newera-serial only: from the syringe table, or ``syringe_capacity_ml`` beside a
    bare diameter (the order's volume and prime are checked against it)."""
    serial: SerialKeys = SerialKeys()  # noqa: RUF009 (frozen, immutable)
    """modbus-rtu only: parity, stop bits, data bits."""
    accept_no_pump_watchdog: bool = False
    """The site accepts, for this pump, that it has no watchdog of its own: without it
    such a pump is refused for live use (docs/driver.md, "Capabilities")."""

    @property
    def address(self) -> str:
        """As the control socket shows it: ``127.0.0.1:5020`` or ``/dev/pts/3@19200``."""
        if self.transport == "modbus-tcp":
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"{host}:{self.port}"
        return f"{self.device}@{self.baudrate}"


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; raise ValueError with the sentence to show."""
    bad = ValueError(f'expected host:port, got "{text}"')
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
        if ":" in host:
            raise bad  # a bare IPv6 address needs brackets
    if not sep or not host or not port_text.isdigit():
        raise bad
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be 1..65535, got {port}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pump(index: int, raw: PumpSection, problems: list[tuple[str, str]]) -> PumpConfig | None:
    at = f"pump[{index}]"
    start = len(problems)
    if not PUMP_ID.fullmatch(raw.id):
        problems.append(
            (f"{at}.id", f"expected 1-40 of a-z 0-9 _ - (starting a-z or 0-9), got {raw.id!r}")
        )
    serial_given = {"parity": raw.parity, "stopbits": raw.stopbits, "bytesize": raw.bytesize}
    if raw.transport == "newera-serial":
        serial_keys(at, raw.transport, serial_given, None, problems)
        return _newera_pump(at, raw, problems, start)
    serial = serial_keys(
        at, raw.transport, serial_given, check_profile(at, raw.profile, problems), problems
    )
    for key in ("syringe_diameter_mm", "syringe", "syringe_capacity_ml"):
        if getattr(raw, key) is not None:
            problems.append((f"{at}.{key}", "only for transport newera-serial"))
    if raw.unit is None:
        problems.append((f"{at}.unit", "required key is missing"))
    if raw.heartbeat_timeout_s < 2:
        problems.append((f"{at}.heartbeat_timeout_s", "Input should be greater than or equal to 2"))
    if raw.baudrate is not None and raw.baudrate < 1200:
        problems.append((f"{at}.baudrate", "Input should be greater than or equal to 1200"))
    if isinstance(raw.address, int):
        problems.append((f"{at}.address", f"expected host:port, got {raw.address!r}"))
    host = port = device = baudrate = None
    if raw.transport == "modbus-tcp":
        for extra in ("device", "baudrate"):
            if getattr(raw, extra) is not None:
                problems.append((f"{at}.{extra}", "only for transport modbus-rtu"))
        if raw.address is None:
            problems.append((f"{at}.address", "modbus-tcp needs address = host:port"))
        else:
            try:
                host, port = parse_host_port(str(raw.address))
            except ValueError as exc:
                problems.append((f"{at}.address", str(exc)))
    else:
        if raw.address is not None:
            problems.append((f"{at}.address", "only for modbus-tcp; modbus-rtu uses device"))
        if raw.device is None:
            problems.append((f"{at}.device", "modbus-rtu needs device (e.g. /dev/ttyUSB0)"))
        elif not raw.device.startswith("/"):
            problems.append((f"{at}.device", f"expected an absolute path, got {raw.device!r}"))
        device = raw.device
        baudrate = raw.baudrate if raw.baudrate is not None else 19200
    if len(problems) > start or raw.unit is None:
        return None
    return PumpConfig(
        id=raw.id,
        transport=raw.transport,
        unit=raw.unit,
        profile=raw.profile,
        heartbeat_timeout_s=raw.heartbeat_timeout_s,
        host=host,
        port=port,
        device=device,
        baudrate=baudrate,
        serial=serial,
    )


NEWERA_BAUD_RATES = (300, 1200, 2400, 9600, 19200)


def _newera_pump(
    at: str, raw: PumpSection, problems: list[tuple[str, str]], start: int
) -> PumpConfig | None:
    """A New Era syringe pump on a serial line: device, baudrate, address 0–99, syringe."""
    for key in ("unit", "profile"):
        if key in raw.model_fields_set:
            problems.append((f"{at}.{key}", "not for newera-serial (address names the pump)"))
    if raw.device is None:
        problems.append((f"{at}.device", "newera-serial needs device (e.g. /dev/ttyUSB1)"))
    elif not raw.device.startswith("/"):
        problems.append((f"{at}.device", f"expected an absolute path, got {raw.device!r}"))
    baudrate = 19200 if raw.baudrate is None else raw.baudrate
    if baudrate not in NEWERA_BAUD_RATES:
        problems.append(
            (
                f"{at}.baudrate",
                f"a New Era pump runs at {', '.join(map(str, NEWERA_BAUD_RATES))}, got {baudrate}",
            )
        )
    address = raw.address
    if address is None:
        problems.append((f"{at}.address", "newera-serial needs address, the pump's 0-99"))
    elif isinstance(address, str) or not 0 <= address <= 99:
        problems.append((f"{at}.address", f"expected an integer 0-99, got {address!r}"))
    if not 1 <= raw.heartbeat_timeout_s <= 255:
        problems.append(
            (
                f"{at}.heartbeat_timeout_s",
                f"the pump's SAF watchdog takes 1-255 s, got {raw.heartbeat_timeout_s}",
            )
        )
    diameter: Decimal | None = None
    if raw.syringe is not None and raw.syringe_diameter_mm is not None:
        problems.append((f"{at}.syringe", "give syringe or syringe_diameter_mm, not both"))
    elif raw.syringe is not None:
        try:
            diameter = syringe(raw.syringe).inside_diameter_mm
        except KeyError as exc:
            problems.append((f"{at}.syringe", str(exc.args[0])))
    elif raw.syringe_diameter_mm is not None:
        diameter = Decimal(str(raw.syringe_diameter_mm))
        try:
            format_number(diameter)
        except NotRepresentable:
            problems.append(
                (
                    f"{at}.syringe_diameter_mm",
                    f"{diameter} mm has more than 4 digits or 3 decimals: the pump would "
                    "truncate it",
                )
            )
    else:
        problems.append(
            (f"{at}.syringe_diameter_mm", "newera-serial needs syringe_diameter_mm or syringe")
        )
    capacity_ul: int | None = None
    try:
        capacity_ul = configured_capacity_ul(
            raw.syringe, raw.syringe_diameter_mm, raw.syringe_capacity_ml
        )
    except SyringeCapacityError as exc:
        problems.append((f"{at}.{exc.key}", str(exc)))
    if len(problems) > start or not isinstance(address, int):
        return None
    return PumpConfig(
        id=raw.id,
        transport="newera-serial",
        unit=address,
        profile="newera",
        heartbeat_timeout_s=raw.heartbeat_timeout_s,
        device=raw.device,
        baudrate=baudrate,
        syringe_diameter_mm=diameter,
        syringe=raw.syringe,
        syringe_capacity_ul=capacity_ul,
    )


def _simulation_pump(pump: PumpConfig, index: int, problems: list[tuple[str, str]]) -> None:
    """In simulation mode a pump must not be reachable real hardware."""
    at = f"pump[{index}]"
    if pump.transport == "modbus-tcp":
        assert pump.host is not None
        if not is_loopback(pump.host):
            problems.append(
                (
                    f"{at}.address",
                    f"simulation = true accepts only loopback addresses (127.0.0.1, ::1, "
                    f"localhost), got {pump.host!r}: it could be a real pump",
                )
            )
        return
    assert pump.device is not None
    if pump.transport == "modbus-rtu" and (bad := simulated_line_problem(at, pump.serial)):
        problems.append(bad)
    real = os.path.realpath(pump.device)
    if not PTS.fullmatch(real):
        problems.append(
            (
                f"{at}.device",
                f"simulation = true accepts only pseudo-terminals (/dev/pts/N or a link to "
                f"one, the simulator's RTU line); {pump.device!r} resolves to {real!r}: it "
                "could be a real serial line",
            )
        )


def _same_endpoint(pumps: Sequence[PumpConfig], problems: list[tuple[str, str]]) -> None:
    """Two pumps on one line need different unit ids, and one serial line one baud rate."""
    units: dict[tuple[str, str], int] = {}
    bauds: dict[str, tuple[int, int | None]] = {}
    kinds: dict[str, tuple[int, str]] = {}
    for index, pump in enumerate(pumps):
        line = (
            pump.address if pump.transport == "modbus-tcp" else os.path.realpath(pump.device or "")
        )
        key = (line, str(pump.unit))
        name = "address" if pump.transport == "newera-serial" else "unit"
        if key in units:
            problems.append(
                (
                    f"pump[{index}].{name}",
                    f"{name} {pump.unit} on {line} is already pump[{units[key]}]",
                )
            )
        units.setdefault(key, index)
        if pump.transport != "modbus-tcp":
            first_kind = kinds.setdefault(line, (index, pump.transport))
            if first_kind[1] != pump.transport:
                problems.append(
                    (
                        f"pump[{index}].transport",
                        f"{line} carries {first_kind[1]} for pump[{first_kind[0]}]; "
                        "one line, one protocol",
                    )
                )
        if pump.transport in ("modbus-rtu", "newera-serial"):
            first = bauds.setdefault(line, (index, pump.baudrate))
            if first[1] != pump.baudrate:
                problems.append(
                    (
                        f"pump[{index}].baudrate",
                        f"{line} is driven at {first[1]} by pump[{first[0]}]; one line, one rate",
                    )
                )
