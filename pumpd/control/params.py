"""The parameters of every method, as strict pydantic models (unknown keys are errors).

Quantities stay text (``"82kg"``, ``"40min"``) and are parsed by the safety kernel's
own parsers in the handlers, so the socket and ``pumpctl plan`` read a nurse's entry the
same way. Every string is bounded, so no parameter can make the daemon do unbounded work.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pumpd.audit.catalogue import BoundedText

from .rpc import Code, RpcError

Short = Annotated[str, Field(min_length=1, max_length=80)]
Quantity = Annotated[str, Field(min_length=1, max_length=40)]
Words = Annotated[str, Field(min_length=1, max_length=500)]
HaltWords = BoundedText
"""A nurse's words with a STOP or PAUSE: cut to fit the record (with a visible marker), never
refused for their length, so a halt is never turned away for how much was typed with it.
The request line's own limit (``MAX_LINE_BYTES``) still bounds the work."""
PatientRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
StaffIdText = Annotated[str, Field(min_length=1, max_length=40)]
Pin = Annotated[str, Field(min_length=1, max_length=64)]
Role = Literal["nurse", "auditor", "admin"]
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]{1,40}", re.ASCII)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


P = TypeVar("P", bound=Params)


class NoParams(Params):
    pass


class StatusParams(Params):
    pump: Short | None = None


class PumpParams(Params):
    pump: Short


class ProgramParams(PumpParams):
    patient_ref: PatientRef
    weight: Quantity
    height: Quantity | None = None
    sex: Literal["male", "female"] | None = None
    protocol: Short
    version: Annotated[int, Field(ge=1, le=10_000)] | None = None
    dose: Quantity | None = None
    duration: Quantity | None = None
    override_reason: Words | None = None


class Witness(Params):
    staff_id: StaffIdText
    pin: Pin


Shown = Annotated[
    list[Annotated[str, Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$", max_length=120)]],
    Field(max_length=32),
]
"""The verdict codes a person was shown before approving them."""


class ConfirmParams(PumpParams):
    weight: Quantity
    witness: Witness | None = None
    approve_override: bool = False
    shown: Shown | None = None


class ApproveParams(PumpParams):
    witness: Witness | None = None
    shown: Shown | None = None


class StartParams(PumpParams):
    override_reason: Words | None = None
    primed_by_hand: bool = False
    """The nurse confirms the line was primed by hand (a pump that cannot prime)."""


class PrimeParams(PumpParams):
    line_disconnected: bool


class PauseParams(PumpParams):
    reason: HaltWords | None = None


class ResumeParams(PumpParams):
    """``reason`` is required by the session to continue a stopped infusion (not to resume
    a paused one)."""

    reason: Words | None = None


class AdjustParams(PumpParams):
    duration: Quantity | None = None
    dose: Quantity | None = None
    reason: Words
    override_reason: Words | None = None

    @model_validator(mode="after")
    def _something(self) -> AdjustParams:
        if self.duration is None and self.dose is None:
            raise ValueError("an adjustment needs a new duration or dose")
        return self


class ReasonParams(PumpParams):
    reason: Words


class StopParams(PumpParams):
    reason: HaltWords


AlarmCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,120}$")]


class AckParams(PumpParams):
    note: Words | None = None
    alarms: Annotated[list[AlarmCode], Field(max_length=64)] | None = None
    """The alarm codes the person was shown; another alarm latched since refuses the
    acknowledgement (pumpctl ack sends what it showed)."""


class VitalsParams(PumpParams):
    bp: Annotated[str, Field(pattern=r"^[0-9]{2,3}/[0-9]{2,3}$")] | None = None
    hr: Annotated[int, Field(ge=0, le=400)] | None = None
    spo2: Annotated[int, Field(ge=0, le=100)] | None = None
    rr: Annotated[int, Field(ge=0, le=200)] | None = None

    @model_validator(mode="after")
    def _something(self) -> VitalsParams:
        if self.bp is None and self.hr is None and self.spo2 is None and self.rr is None:
            raise ValueError("a vitals entry needs at least one of bp, hr, spo2, rr")
        return self


class NoteParams(PumpParams):
    text: Words


class DischargeParams(PumpParams):
    confirmed: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=100)]
    gates_only: bool = False
    """Check only the facts a discharge needs (observation time, vitals), before anyone is
    asked a checklist question; nothing changes."""


class StaffLoginParams(Params):
    staff_id: StaffIdText
    pin: Pin


class StaffAddParams(Params):
    staff_id: StaffIdText
    name: Annotated[str, Field(min_length=1, max_length=120)]
    role: Role
    pin: Pin


class StaffPinParams(Params):
    staff_id: StaffIdText
    pin: Pin


class StaffIdParams(Params):
    staff_id: StaffIdText


def validate(model: type[P], params: dict[str, object]) -> P:
    """``params`` as ``model``, or ``invalid_params`` naming the first bad parameter."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        problem = first["msg"]
        if first["type"] == "extra_forbidden":
            problem = "unknown parameter"
        elif first["type"] == "missing":
            problem = "missing"
        elif first["type"] == "string_pattern_mismatch":
            problem = _pattern_sentence(first["loc"], params)
        shown = ".".join(_shown(p) for p in first["loc"]) or "params"
        raise RpcError(Code.INVALID_PARAMS, f"{shown}: {problem}", param=where) from None


_PATTERN_SENTENCES = {
    "patient_ref": (
        "is not a patient reference: give the clinic's pseudonymous patient id, 1 to 64 "
        "characters of letters, digits and . _ : - starting with a letter or digit (no "
        "names, no spaces), for example P-0042"
    ),
    "bp": "is not a blood pressure: give systolic/diastolic in whole mmHg, for example 132/84",
    "alarms": "is not an alarm code: letters, digits and . _ - only, at most 120 characters",
}


def _pattern_sentence(loc: tuple[int | str, ...], params: dict[str, object]) -> str:
    """What a value that does not have the required form should have been, in words: a
    nurse is never shown the regular expression."""
    name = str(loc[0]) if loc else ""
    value = params.get(name) if name else None
    if isinstance(value, list) and len(loc) > 1 and isinstance(loc[1], int):
        value = value[loc[1]] if loc[1] < len(value) else None
    shown = repr(value)[:70] if isinstance(value, str) else "the value"
    sentence = _PATTERN_SENTENCES.get(name, "does not have the form this parameter needs")
    return f"{shown} {sentence}"


def _shown(part: int | str) -> str:
    """A parameter name as the message shows it: quoted when it is not a plain word, so a
    key such as "\\n" or "" cannot break the one-line message or hide in it."""
    text = str(part)
    return text if _PLAIN_NAME.fullmatch(text) else repr(text)[:60]
