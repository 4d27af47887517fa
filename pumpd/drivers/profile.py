"""Register-map profiles: a pump's Modbus table as data, so a site can add a pump without code.

A profile says where each value lives, how wide it is, how it is scaled and which codes
and bits mean what. It is validated completely when loaded — a profile that could make
the driver misread a rate is refused before any pump is contacted, with an error naming
the key at fault.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpd.drivers.base import (
    AlarmFlag,
    Command,
    CommandResult,
    ProfileError,
    PumpState,
    WarningFlag,
)
from pumpd.drivers.capabilities import CapabilitiesTable, PumpCapabilities, record_of

_U16 = Annotated[int, Field(ge=0, le=0xFFFF)]
_BIT = Annotated[int, Field(ge=0, le=14)]
"""Bit 15 is reserved for AlarmFlag.UNKNOWN / WarningFlag.UNKNOWN in the contract."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DEFAULT_PROFILE = "gip-mb1"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RegisterField(_Frozen):
    """One value in the map: first register, width, signedness and worth of one count."""

    address: _U16
    words: Literal[1, 2]
    signed: bool = False
    scale: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal(1)

    @cached_property
    def raw_min(self) -> int:
        return -(1 << (16 * self.words - 1)) if self.signed else 0

    @cached_property
    def raw_max(self) -> int:
        bits = 16 * self.words
        return (1 << (bits - 1)) - 1 if self.signed else (1 << bits) - 1


class InputFields(_Frozen):
    profile_version: RegisterField
    serial_number: RegisterField
    state: RegisterField
    alarm_flags: RegisterField
    warning_flags: RegisterField
    rate_actual: RegisterField
    volume_infused: RegisterField
    volume_primed: RegisterField
    pressure_downstream: RegisterField
    battery_percent: RegisterField
    last_cmd_seq: RegisterField
    last_cmd_result: RegisterField
    heartbeat_echo: RegisterField
    max_rate: RegisterField
    uptime_s: RegisterField


class InputBlock(_Frozen):
    """The status block, read with one function 0x04 request."""

    first: _U16
    count: Annotated[int, Field(ge=1, le=125)]
    fields: InputFields


class HoldingFields(_Frozen):
    rate_setpoint: RegisterField
    vtbi: RegisterField
    kvo_rate: RegisterField
    prime_volume: RegisterField
    prime_rate: RegisterField
    heartbeat: RegisterField
    heartbeat_timeout: RegisterField
    cmd_seq: RegisterField
    command: RegisterField


class HoldingBlock(_Frozen):
    fields: HoldingFields


class States(_Frozen):
    IDLE: _U16
    PRIMING: _U16
    INFUSING: _U16
    PAUSED: _U16
    KVO: _U16
    ALARM: _U16


class AlarmBits(_Frozen):
    OCCLUSION_DOWNSTREAM: _BIT
    OCCLUSION_UPSTREAM: _BIT
    AIR_IN_LINE: _BIT
    DOOR_OPEN: _BIT
    SYSTEM_FAULT: _BIT
    COMM_LOSS: _BIT
    BATTERY_DEPLETED: _BIT


class WarningBits(_Frozen):
    LOW_BATTERY: _BIT
    VTBI_COMPLETE: _BIT


class Commands(_Frozen):
    START: Annotated[int, Field(ge=1, le=0xFFFF)]
    PAUSE: Annotated[int, Field(ge=1, le=0xFFFF)]
    STOP: Annotated[int, Field(ge=1, le=0xFFFF)]
    PRIME: Annotated[int, Field(ge=1, le=0xFFFF)]
    CLEAR_VOLUMES: Annotated[int, Field(ge=1, le=0xFFFF)]
    ACK_ALARM: Annotated[int, Field(ge=1, le=0xFFFF)]


class Results(_Frozen):
    OK: _U16
    REJECTED_STATE: _U16
    REJECTED_PARAMS: _U16
    REJECTED_ALARM: _U16
    UNKNOWN_COMMAND: _U16


# Fields the contract carries as Decimal mL/h; every other field is an integer.
DECIMAL_FIELDS = frozenset({"rate_actual", "max_rate", "rate_setpoint", "kvo_rate", "prime_rate"})
# Fields holding codes, bits or counters whose value must arrive unscaled and unsigned.
CODE_FIELDS = frozenset(
    {
        "profile_version",
        "serial_number",
        "state",
        "alarm_flags",
        "warning_flags",
        "last_cmd_seq",
        "last_cmd_result",
        "heartbeat_echo",
        "heartbeat",
        "heartbeat_timeout",
        "cmd_seq",
        "command",
    }
)
_ONE_WORD = ("alarm_flags", "warning_flags", "heartbeat", "cmd_seq", "command")


class Profile(_Frozen):
    """A validated register map. Build it with `load_profile`, not directly."""

    name: str
    profile_version: _U16
    word_order: Literal["high_first", "low_first"]
    input: InputBlock
    holding: HoldingBlock
    states: States
    alarm_bits: AlarmBits
    warning_bits: WarningBits
    commands: Commands
    results: Results
    capabilities: CapabilitiesTable
    """What the pump can do and report; required, because a map that does not say is
    never assumed to do everything (pumpd/drivers/capabilities.py)."""

    @cached_property
    def capability_record(self) -> PumpCapabilities:
        return record_of(self.capabilities)

    # Lookups derived once, used on every read.
    def state_by_code(self) -> dict[int, PumpState]:
        return {code: PumpState(name) for name, code in self.states.model_dump().items()}

    def result_by_code(self) -> dict[int, CommandResult]:
        return {code: CommandResult(name) for name, code in self.results.model_dump().items()}

    def command_code(self, command: Command) -> int:
        code: int = getattr(self.commands, command.value)
        return code

    def alarm_bit_map(self) -> dict[int, AlarmFlag]:
        return {bit: AlarmFlag[name] for name, bit in self.alarm_bits.model_dump().items()}

    def warning_bit_map(self) -> dict[int, WarningFlag]:
        return {bit: WarningFlag[name] for name, bit in self.warning_bits.model_dump().items()}

    def decode(self, fld: RegisterField, words: list[int], offset: int = 0) -> int:
        """The raw integer of a field whose first word is words[offset] (scale not applied)."""
        if fld.words == 1:
            raw = words[offset]
        elif self.word_order == "high_first":
            raw = words[offset] << 16 | words[offset + 1]
        else:
            raw = words[offset + 1] << 16 | words[offset]
        if fld.signed and raw > fld.raw_max:
            raw -= 1 << (16 * fld.words)
        return raw

    def encode(self, fld: RegisterField, raw: int) -> list[int]:
        """The words for `raw`; the caller has checked raw_min <= raw <= raw_max."""
        unsigned = raw & ((1 << (16 * fld.words)) - 1)
        words = [(unsigned >> (16 * i)) & 0xFFFF for i in reversed(range(fld.words))]
        return words if self.word_order == "high_first" else list(reversed(words))


def _check_semantics(profile: Profile) -> None:
    """Cross-field rules pydantic's per-field types cannot express; raise naming the key."""
    inp = profile.input
    for name, fld in inp.fields:
        assert isinstance(fld, RegisterField)
        last = fld.address + fld.words - 1
        if fld.address < inp.first or last >= inp.first + inp.count:
            raise ProfileError(
                f"input.fields.{name}.address",
                f"registers {fld.address}..{last} lie outside the status block "
                f"{inp.first}..{inp.first + inp.count - 1}",
            )
    for section, fields in (("input", inp.fields), ("holding", profile.holding.fields)):
        for name, fld in fields:
            assert isinstance(fld, RegisterField)
            key = f"{section}.fields.{name}"
            if name in CODE_FIELDS and (fld.scale != 1 or fld.signed):
                raise ProfileError(
                    f"{key}.scale", "codes, bits and counters are unscaled, unsigned"
                )
            if name not in DECIMAL_FIELDS and fld.scale != fld.scale.to_integral_value():
                raise ProfileError(f"{key}.scale", f"{fld.scale} must be a whole number here")
            if name in _ONE_WORD and fld.words != 1:
                raise ProfileError(f"{key}.words", "must be 1")
    holding = profile.holding.fields
    if holding.command.address != holding.cmd_seq.address + 1:
        raise ProfileError(
            "holding.fields.command.address",
            "must follow cmd_seq directly: both go out in one write",
        )
    _check_no_overlap(profile)
    if record_of(profile.capabilities).restart_evidence != "uptime-register":
        raise ProfileError(
            "capabilities.restart_evidence", "a GIP-MB1 profile reports its uptime register"
        )
    for table in ("states", "alarm_bits", "warning_bits", "commands", "results"):
        values = getattr(profile, table).model_dump()
        seen: dict[int, str] = {}
        for name, value in values.items():
            if value in seen:
                raise ProfileError(f"{table}.{name}", f"value {value} also used by {seen[value]}")
            seen[value] = name


def _check_no_overlap(profile: Profile) -> None:
    for section, fields in (("input", profile.input.fields), ("holding", profile.holding.fields)):
        owner: dict[int, str] = {}
        for name, fld in fields:
            assert isinstance(fld, RegisterField)
            for reg in range(fld.address, fld.address + fld.words):
                if reg in owner:
                    raise ProfileError(
                        f"{section}.fields.{name}.address",
                        f"register {reg} is already used by {owner[reg]}",
                    )
                owner[reg] = name


def parse_profile(data: dict[str, Any]) -> Profile:
    """Validate a decoded profile document; raise ProfileError naming the first bad key."""
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise ProfileError(key, err["msg"]) from None
    _check_semantics(profile)
    return profile


def read_profile_document(name_or_path: str | Path) -> dict[str, Any]:
    """The decoded TOML of a shipped profile (by name) or of any profile file (by path)."""
    if isinstance(name_or_path, str) and _NAME.match(name_or_path):
        resource = resources.files("pumpd.drivers.profiles") / f"{name_or_path}.toml"
        if not resource.is_file():
            raise ProfileError("<name>", f"no shipped profile called {name_or_path!r}")
        text = resource.read_text(encoding="utf-8")
        origin = f"shipped profile {name_or_path}"
    else:
        path = Path(name_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError("<file>", f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ProfileError("<encoding>", f"{path} is not UTF-8: {exc.reason}") from None
        origin = str(path)
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError("<toml>", f"{origin} is not valid TOML: {exc}") from None


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> Profile:
    """Load a shipped profile by name ("gip-mb1") or any profile file by path."""
    data = read_profile_document(name_or_path)
    if data.get("schema") is not None:
        raise ProfileError(
            "schema",
            f"{data.get('schema')!r} profiles are driven by the register-map driver, "
            "not the GIP-MB1 one",
        )
    return parse_profile(data)
