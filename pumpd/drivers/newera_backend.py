"""The ``newera-serial`` backend: a `NewEraPumpDriver` from a pump's settings."""

from __future__ import annotations

from pumpd.drivers.newera import NewEraConfig, NewEraPumpDriver
from pumpd.drivers.registry import PumpSettings, register_backend

DEFAULT_BAUD = 19200


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


register_backend("newera-serial", make_newera_driver)
