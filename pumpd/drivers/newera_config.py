"""How to reach one New Era pump and what syringe it holds (validated at construction)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pumpd.drivers.newera_codec import NotRepresentable, format_number
from pumpd.drivers.newera_line import BAUD_RATES, NewEraLineSettings

MAX_SAFE_TIMEOUT_S = 255
"""``SAF n`` takes 0–255 s; 0 is Basic mode, so the watchdog is 1–255 s."""


LONGEST_REPLY_BYTES = 40
"""The longest packet a pump sends in answer to anything the driver asks, with room to
spare: the longest reply data is DIS's (address, prompt, ``I9999W9999ML``, 17 bytes; VER's
``NE1000V3.928`` is shorter), plus 5 bytes of Safe-mode framing."""


def longest_reply_s(baudrate: int) -> float:
    """Seconds the longest reply (`LONGEST_REPLY_BYTES`) takes on the wire at `baudrate`,
    8N1 (10 bits a byte): how long a reply the pump began before the timeout may still be
    arriving after it."""
    return LONGEST_REPLY_BYTES * 10 / baudrate


class NewEraConfig(BaseModel):
    """How to reach one New Era pump and what syringe it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str
    address: int = Field(ge=0, le=99)
    baudrate: int = 19200
    syringe_diameter_mm: Decimal = Field(gt=0, le=Decimal("99.99"))
    heartbeat_timeout_s: int = Field(default=10, ge=1, le=MAX_SAFE_TIMEOUT_S)
    mode: Literal["safe", "basic"] = "safe"
    """Basic mode has no CRC and no watchdog: the daemon never uses it; tests may."""
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    confirm_timeout_s: float = Field(default=2.0, gt=0, le=60)
    confirm_poll_s: float = Field(default=0.02, ge=0, le=5)
    gap_s: float = Field(default=0.005, ge=0, le=1)
    quiet_after_timeout_s: float | None = Field(default=None, ge=0, le=30)
    """None: the time the longest reply takes at the baud rate, plus the gap: a reply the
    pump began before the timeout (or its own reply behind a pushed alarm that crossed the
    request) finishes inside it."""
    reconnect_delay_s: float = Field(default=0.2, gt=0, le=30)
    clock_scale: float = Field(default=1.0, gt=0, le=10_000)
    """How many times faster the caller's clock runs than the wall (a simulation's time
    scale). `set_heartbeat_timeout` takes the caller's seconds; the pump counts wall
    seconds, so SAF gets the value divided by this scale."""

    @field_validator("baudrate")
    @classmethod
    def _baud(cls, value: int) -> int:
        if value not in BAUD_RATES:
            raise ValueError(f"must be one of {', '.join(map(str, BAUD_RATES))}")
        return value

    @field_validator("syringe_diameter_mm")
    @classmethod
    def _diameter(cls, value: Decimal) -> Decimal:
        try:
            format_number(value)
        except NotRepresentable as exc:
            raise ValueError(f"the pump cannot hold it exactly: {exc}") from None
        return value

    def line_settings(self) -> NewEraLineSettings:
        return NewEraLineSettings(
            device=self.device,
            baudrate=self.baudrate,
            mode=self.mode,
            timeout_s=self.timeout_s,
            gap_s=self.gap_s,
            quiet_after_timeout_s=(
                longest_reply_s(self.baudrate) + self.gap_s
                if self.quiet_after_timeout_s is None
                else self.quiet_after_timeout_s
            ),
            reconnect_delay_s=self.reconnect_delay_s,
        )
