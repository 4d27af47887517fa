"""What every audit payload is built from: the base model (strict, frozen, no extra keys), the
constrained field types (free text cut to its bound with a marker, codes in lower snake
case, quantities as Decimal text, never floats) and the enums of the log (``PumpCommand``,
``ActorRole``). Defined here, at the bottom, so the session, the controller and the
catalogue share one vocabulary."""

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
TEXT_MAX_CHARS = 500
"""The longest free text a payload holds (a reason, a message, a detail, a note)."""


def _bounded(value: Any) -> Any:
    """Free text over :data:`TEXT_MAX_CHARS` cut to fit, with a visible marker and the
    original length. Refusing it instead would fail the event, and a stop or an alarm must
    be recorded whatever words came with it (fail-safe); the cut is on record, never
    silent."""
    if isinstance(value, str) and len(value) > TEXT_MAX_CHARS:
        marker = f"… [cut: {len(value)} characters]"
        return value[: TEXT_MAX_CHARS - len(marker)] + marker
    return value


BoundedText = Annotated[
    str, Field(min_length=1, max_length=TEXT_MAX_CHARS), BeforeValidator(_bounded)
]
"""Free text, bounded by the model itself at construction (see :func:`_bounded`): no
caller has to remember to cut it. Empty text is still refused."""
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
