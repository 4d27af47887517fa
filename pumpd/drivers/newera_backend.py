"""The ``newera-serial`` backend: its ``[[pump]]`` keys (serial line, network address,
syringe), checked, and a `NewEraPumpDriver` from a pump's settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pumpd.drivers.endpoints import device_problem, simulated_device_problem
from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.newera_codec import NotRepresentable, format_number
from pumpd.drivers.newera_config import MAX_SAFE_TIMEOUT_S
from pumpd.drivers.newera_line import BAUD_RATES
from pumpd.drivers.registry import (
    Problem,
    PumpKeys,
    PumpSettings,
    TransportSettings,
    register_backend,
)
from pumpd.drivers.syringes import SyringeCapacityError, configured_capacity_ul, syringe

DEFAULT_BAUD = 19200
PROFILE = "newera"
"""The name a New Era pump's settings carry as their profile (its protocol has no map)."""


class NewEraKeys(BaseModel):
    """A ``newera-serial`` pump's own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    address: str | int | None = None
    """The pump's network address, 0–99."""
    device: str | None = None
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] | None = None
    syringe_diameter_mm: Annotated[float, Field(gt=0, lt=100)] | None = None
    syringe: str | None = None
    syringe_capacity_ml: Annotated[float, Field(gt=0, le=1000)] | None = None


def _diameter(at: str, keys: NewEraKeys, problems: list[Problem]) -> Decimal | None:
    """From the syringe table or ``syringe_diameter_mm``, as the pump can hold it."""
    if keys.syringe is not None and keys.syringe_diameter_mm is not None:
        problems.append((f"{at}.syringe", "give syringe or syringe_diameter_mm, not both"))
    elif keys.syringe is not None:
        try:
            return syringe(keys.syringe).inside_diameter_mm
        except KeyError as exc:
            problems.append((f"{at}.syringe", str(exc.args[0])))
    elif keys.syringe_diameter_mm is not None:
        diameter = Decimal(str(keys.syringe_diameter_mm))
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
        return diameter
    else:
        problems.append(
            (f"{at}.syringe_diameter_mm", "newera-serial needs syringe_diameter_mm or syringe")
        )
    return None


def check_newera_keys(
    at: str, keys: NewEraKeys, heartbeat_timeout_s: int, problems: list[Problem]
) -> TransportSettings | None:
    """A New Era syringe pump on a serial line: device, baudrate, address 0–99, syringe."""
    start = len(problems)
    if bad := device_problem(at, "newera-serial", keys.device, "/dev/ttyUSB1"):
        problems.append(bad)
    baudrate = DEFAULT_BAUD if keys.baudrate is None else keys.baudrate
    if baudrate not in BAUD_RATES:
        problems.append(
            (
                f"{at}.baudrate",
                f"a New Era pump runs at {', '.join(map(str, BAUD_RATES))}, got {baudrate}",
            )
        )
    address = keys.address
    if address is None:
        problems.append((f"{at}.address", "newera-serial needs address, the pump's 0-99"))
    elif isinstance(address, str) or not 0 <= address <= 99:
        problems.append((f"{at}.address", f"expected an integer 0-99, got {address!r}"))
    if not 1 <= heartbeat_timeout_s <= MAX_SAFE_TIMEOUT_S:
        problems.append(
            (
                f"{at}.heartbeat_timeout_s",
                f"the pump's SAF watchdog takes 1-255 s, got {heartbeat_timeout_s}",
            )
        )
    diameter = _diameter(at, keys, problems)
    capacity_ul: int | None = None
    try:
        capacity_ul = configured_capacity_ul(
            keys.syringe, keys.syringe_diameter_mm, keys.syringe_capacity_ml
        )
    except SyringeCapacityError as exc:
        problems.append((f"{at}.{exc.key}", str(exc)))
    if len(problems) > start or not isinstance(address, int):
        return None
    return TransportSettings(
        unit=address,
        profile=PROFILE,
        device=keys.device,
        baudrate=baudrate,
        syringe_diameter_mm=diameter,
        syringe=keys.syringe,
        syringe_capacity_ul=capacity_ul,
        unit_key="address",
        scaled_watchdog=False,
    )


def simulated_newera(at: str, pump: PumpSettings) -> list[Problem]:
    bad = simulated_device_problem(at, pump.device)
    return [] if bad is None else [bad]


NOT_NEWERA = "not for newera-serial (address names the pump)"
NEWERA_KEYS = PumpKeys(
    NewEraKeys,
    check_newera_keys,
    refused={"unit": NOT_NEWERA, "profile": NOT_NEWERA},
    simulated=simulated_newera,
)


class MissingSetting(ValueError):
    """A checked configuration always has these; their absence is a programming error."""


def make_newera_driver(pump: PumpSettings, time_scale: float) -> NewEraPumpDriver:
    """A New Era pump counts its SAF watchdog in wall seconds, so its driver divides the
    controller's (scaled) seconds back by `time_scale`."""
    if pump.device is None or pump.syringe_diameter_mm is None:
        raise MissingSetting("newera-serial needs device and syringe_diameter_mm")
    return NewEraPumpDriver(
        NewEraConfig(
            device=pump.device,
            address=pump.unit,
            baudrate=pump.baudrate or DEFAULT_BAUD,
            syringe_diameter_mm=pump.syringe_diameter_mm,
            heartbeat_timeout_s=pump.heartbeat_timeout_s,
            clock_scale=time_scale,
        )
    )


register_backend("newera-serial", make_newera_driver, NEWERA_KEYS)
