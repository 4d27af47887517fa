"""What every audit payload is built from: the base model (strict, frozen, no extra keys), the
constrained field types (texts bounded, codes in lower snake case, quantities as Decimal text,
never floats) and the enums of the log (``PumpCommand``, ``ActorRole``). Defined here, at the
bottom, so the session, the controller and the catalogue share one vocabulary."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("floats are not accepted in audit payloads; pass a Decimal or a string")
    return value


DecimalText = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    Field(allow_inf_nan=False),
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
]
"""A Decimal quantity, stored and hashed as its plain string form (``"0.50"``)."""

NonNegDecimal = Annotated[DecimalText, Field(ge=0)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Code = Annotated[str, Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$", max_length=120)]
"""A lower-case identifier, dotted by level; hyphens allowed (protocol ids such as
``ketamine-trd-standard``)."""
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PersonName = Annotated[str, Field(min_length=1, max_length=120)]
"""A member of staff (never a patient: patients are referred to by pseudonymous id only)."""


class Payload(BaseModel):
    """Base of every payload: unknown keys are an error, values cannot change after checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PumpCommand(enum.StrEnum):
    """A pump command as the session asks for it and as the log records it.

    Defined here, at the bottom, so the session, the controller and the catalogue's
    command events share one vocabulary (the driver's wire commands are
    ``pumpd.drivers.base.Command``, a different thing).
    """

    PRIME = "prime"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    SET_RATE = "set_rate"


class ActorRole(enum.StrEnum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    AUDITOR = "auditor"
    ADMIN = "admin"
    DAEMON = "daemon"
