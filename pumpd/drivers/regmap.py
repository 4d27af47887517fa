"""Register-map profiles: a real pump's Modbus table described as data, not as GIP-MB1.

GIP-MB1 was designed for pumpd (sequence echo, heartbeat register, one status block, every
value an integer in contract units). A pump somebody sells has none of that: float32
values in litres per hour, status bit fields over two registers, commands that are a plain
register write confirmed by a status bit, a communication watchdog configured at the pump,
power-up behaviour that may start the pump by itself. A register-map profile (TOML with
``schema = "register-map"``) says all of that declaratively:

- ``[registers.NAME]``: address, ``type`` (uint16, int16, uint32, int32, float32), ``unit``
  (``l/h``, ``mL/h``, ``l``, ``mL``, ``uL``, ``ms``, ``s`` or none), ``scale`` and ``access``;
- ``[word_order]``: a fixed word order, or the register holding a known pattern from which
  the driver learns it at connect (a pattern it does not know refuses the pump);
- ``[bits.REGISTER]``: named bits of an integer register;
- ``[status]``: the blocks read per poll and which register or bit gives each reading;
- ``[alarms]`` / ``[warnings]``: which bits are which contract flag (any other set bit of a
  source register reads as UNKNOWN, never dropped);
- ``[commands.X]``: register writes plus the read-back that confirms them;
- ``[program]``, ``[failsafe]``, ``[power_up]``, ``[capabilities]``.

Everything is checked when the file is loaded; an error names the key at fault, the way
Home Assistant's Modbus schema does, and nothing is contacted before the map is sound.
"""

from __future__ import annotations

import re
import struct
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from pumpd.drivers.base import AlarmFlag, Command, ProfileError, WarningFlag
from pumpd.drivers.profile import Profile, parse_profile, read_profile_document

RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32"]
WordOrder = Literal["high_first", "low_first"]
Unit = Literal["l/h", "mL/h", "l", "mL", "uL", "ms", "s"]

WIDTH_WORDS: dict[str, int] = {
    "uint16": 1,
    "int16": 1,
    "uint32": 2,
    "int32": 2,
    "float32": 2,
}
FLOW_TO_ML_H: dict[str, Decimal] = {"l/h": Decimal(1000), "mL/h": Decimal(1)}
VOLUME_TO_UL: dict[str, Decimal] = {"l": Decimal(1_000_000), "mL": Decimal(1000), "uL": Decimal(1)}
TIME_TO_MS: dict[str, Decimal] = {"ms": Decimal(1), "s": Decimal(1000)}
_REF = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z0-9_]+)$")
_U16 = Annotated[int, Field(ge=0, le=0xFFFF)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Register(_Frozen):
    """One value: where it starts, how it is encoded, what one count is worth."""

    address: _U16
    type: RegisterType
    unit: Unit | None = None
    scale: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] = Decimal(1)
    access: Literal["read", "write", "read-write"] = "read"

    @property
    def words(self) -> int:
        return WIDTH_WORDS[self.type]

    @property
    def readable(self) -> bool:
        return self.access != "write"

    @property
    def writable(self) -> bool:
        return self.access != "read"

    @property
    def is_integer(self) -> bool:
        return self.type != "float32"


class WordOrderSpec(_Frozen):
    """A fixed order, or the register whose known pattern tells it."""

    fixed: WordOrder | None = None
    pattern_register: str | None = None
    pattern: Annotated[int, Field(ge=0, le=0xFFFF_FFFF)] | None = None


class Block(_Frozen):
    first: _U16
    count: Annotated[int, Field(ge=1, le=125)]


class StatusSpec(_Frozen):
    """What one poll reads and where each contract reading comes from."""

    blocks: Annotated[list[Block], Field(min_length=1, max_length=4)]
    running: str
    """A bit reference (``register.bit``): set while the pump moves fluid."""
    rate_actual: str
    volume_infused: str
    max_rate: str | None = None
    restart_counter: str | None = None
    """A register that grows on each power-up: a change means the pump restarted."""


class FlagSpec(_Frozen):
    """Contract flag name → bit references; `sources` are registers whose every set bit
    counts (UNKNOWN when no name covers it); `summary` is a bit that says "there is one"."""

    model_config = ConfigDict(extra="allow", frozen=True)
    sources: list[str] = Field(default_factory=list)
    summary: str | None = None


class Write(_Frozen):
    reg: str = Field(alias="register")
    value: int | Decimal


class Confirm(_Frozen):
    """Read back after the write: a bit (``bit`` = ``register.bit``) or a register value."""

    bit: str | None = None
    reg: str | None = Field(default=None, alias="register")
    equals: int | Decimal


class CommandSpec(_Frozen):
    write: Annotated[list[Write], Field(min_length=1, max_length=4)]
    confirm: Confirm


class ProgramSpec(_Frozen):
    rate: str
    """The register the rate setpoint is written to (in its unit) and read back from."""
    set_before: list[Write] = Field(default_factory=list)
    """Writes that make the pump run at that setpoint (e.g. its operating mode)."""


class FailsafeSpec(_Frozen):
    timeout_register: str
    """The pump's communication timeout, read-only over Modbus; 0 means off."""
    restarts_on_resume: bool
    """True when the pump, stopped by its timeout, starts again by itself on the next
    request: the driver must then send `stop` first after any long silence."""
    stop: Write
    max_ms: Annotated[int, Field(ge=1, le=3_600_000)]


class PowerUpSpec(_Frozen):
    reg: str = Field(alias="register")
    force: int
    """The value that makes the pump come up stopped after a power loss."""


class WatchdogCaps(_Frozen):
    min_s: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    max_s: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    set_by: Literal["pumpd", "pump-panel"]


class Capabilities(_Frozen):
    """What the pump can do and report: the same keys and values as the driver capability
    record's ``[capabilities]`` table, so one table serves both."""

    confirmation: Literal["sequence-echo", "state-readback"]
    pump_vtbi_stop: StrictBool
    watchdog: WatchdogCaps | Literal[False]
    detected_alarms: list[str]
    priming: StrictBool
    kvo: StrictBool
    reports_pressure: StrictBool
    reports_battery: StrictBool
    max_rate_source: Literal["register", "profile", "config", "syringe-table", "pump-refuses"]
    restart_evidence: Literal["uptime-register", "switch-on-counter", "reset-alarm"]
    max_rate_ml_h: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None


class RegisterMap(_Frozen):
    """A validated register-map profile. Build it with `parse_register_map`."""

    schema_: Literal["register-map"] = Field(alias="schema")
    name: str
    title: str
    source: str
    line: dict[str, int | str] = Field(default_factory=dict)
    word_order: WordOrderSpec
    registers: dict[str, Register]
    bits: dict[str, dict[str, Annotated[int, Field(ge=0, le=31)]]] = Field(default_factory=dict)
    status: StatusSpec
    alarms: FlagSpec
    warnings: FlagSpec
    commands: dict[str, CommandSpec]
    program: ProgramSpec
    failsafe: FailsafeSpec
    power_up: PowerUpSpec
    capabilities: Capabilities

    # ------------------------------------------------------------------ lookups

    def bit(self, ref: str) -> tuple[Register, int]:
        """The register and bit number of a checked ``register.bit`` reference."""
        match = _REF.match(ref)
        assert match is not None
        reg_name, bit_name = match.groups()
        return self.registers[reg_name], self.bits[reg_name][bit_name]

    def flag_bits(self, spec: FlagSpec) -> dict[str, list[tuple[Register, int]]]:
        extra = spec.model_extra or {}
        return {flag: [self.bit(ref) for ref in refs] for flag, refs in extra.items()}

    def command(self, command: Command) -> CommandSpec | None:
        return self.commands.get(command.value)


# ---------------------------------------------------------------------- codec


def encode(reg: Register, value: int | Decimal, order: WordOrder) -> list[int]:
    """The words for `value` (raw counts for integers, the number itself for float32).

    Integers out of the type's range raise ValueError; a float32 whose value would be
    rounded is the caller's to check (see `float32_words` and `nearest_float32`).
    """
    if reg.type == "float32":
        hi, lo = float32_words(Decimal(value))
        return [hi, lo] if order == "high_first" else [lo, hi]
    raw = int(value)
    if Decimal(raw) != Decimal(value):
        raise ValueError(f"{value} is not a whole number of counts")
    bits = 16 * reg.words
    signed = reg.type.startswith("int")
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= raw <= high:
        raise ValueError(f"{raw} does not fit {reg.type}")
    unsigned = raw & ((1 << bits) - 1)
    if reg.words == 1:
        return [unsigned]
    hi, lo = unsigned >> 16, unsigned & 0xFFFF
    return [hi, lo] if order == "high_first" else [lo, hi]


def decode(reg: Register, words: list[int], order: WordOrder) -> int | Decimal:
    """The value of `reg` from its words: an int for integer types, the exact Decimal of
    the float32 (every float32 is a finite binary fraction, so Decimal holds it exactly)."""
    if reg.words == 1:
        raw = words[0]
    else:
        hi, lo = (words[0], words[1]) if order == "high_first" else (words[1], words[0])
        raw = hi << 16 | lo
    if reg.type == "float32":
        (number,) = struct.unpack(">f", raw.to_bytes(4, "big"))
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"register {reg.address} holds a float32 that is not a number")
        return Decimal(number)
    if reg.type.startswith("int") and raw >= 1 << (16 * reg.words - 1):
        raw -= 1 << (16 * reg.words)
    return raw


def float32_words(value: Decimal) -> tuple[int, int]:
    """High and low word of the float32 nearest to `value`."""
    raw = int.from_bytes(struct.pack(">f", float(value)), "big")
    return raw >> 16, raw & 0xFFFF


def nearest_float32(value: Decimal) -> Decimal:
    """The exact value the float32 nearest to `value` holds."""
    (number,) = struct.unpack(">f", struct.pack(">f", float(value)))
    return Decimal(number)


# ---------------------------------------------------------------------- checks

_CONTRACT_COMMANDS = {c.value for c in Command}


def _ref_problem(rmap: RegisterMap, key: str, ref: str, *, need_bits: bool) -> None:
    if need_bits:
        match = _REF.match(ref)
        if match is None:
            raise ProfileError(key, f"{ref!r} is not a register.bit reference")
        reg_name, bit_name = match.groups()
        if reg_name not in rmap.registers:
            raise ProfileError(key, f"no register called {reg_name!r}")
        if bit_name not in rmap.bits.get(reg_name, {}):
            raise ProfileError(key, f"register {reg_name!r} has no bit called {bit_name!r}")
        if not rmap.registers[reg_name].readable:
            raise ProfileError(key, f"register {reg_name!r} is write-only")
        return
    if ref not in rmap.registers:
        raise ProfileError(key, f"no register called {ref!r}")


def _check_registers(rmap: RegisterMap) -> None:
    owner: dict[int, str] = {}
    for name, reg in rmap.registers.items():
        if not re.match(r"^[a-z][a-z0-9_]*$", name):
            raise ProfileError(f"registers.{name}", "names are a-z 0-9 _, starting a-z")
        if reg.type == "float32" and reg.scale != 1:
            raise ProfileError(f"registers.{name}.scale", "a float32 carries its own value")
        if reg.address + reg.words - 1 > 0xFFFF:
            raise ProfileError(f"registers.{name}.address", "runs past register 65535")
        for address in range(reg.address, reg.address + reg.words):
            if address in owner:
                raise ProfileError(
                    f"registers.{name}.address",
                    f"register {address} is already used by {owner[address]}",
                )
            owner[address] = name
    for reg_name, bits in rmap.bits.items():
        bit_reg = rmap.registers.get(reg_name)
        if bit_reg is None:
            raise ProfileError(f"bits.{reg_name}", f"no register called {reg_name!r}")
        if not bit_reg.is_integer:
            raise ProfileError(f"bits.{reg_name}", f"{bit_reg.type} has no bit fields")
        seen: dict[int, str] = {}
        for bit_name, bit in bits.items():
            if bit >= 16 * bit_reg.words:
                raise ProfileError(
                    f"bits.{reg_name}.{bit_name}", f"bit {bit} does not exist in {bit_reg.type}"
                )
            if bit in seen:
                raise ProfileError(
                    f"bits.{reg_name}.{bit_name}", f"bit {bit} is already {seen[bit]}"
                )
            seen[bit] = bit_name


def _check_word_order(rmap: RegisterMap) -> None:
    spec = rmap.word_order
    if (spec.fixed is None) == (spec.pattern_register is None):
        raise ProfileError("word_order", "give either fixed or pattern_register (with pattern)")
    if spec.pattern_register is not None:
        reg = rmap.registers.get(spec.pattern_register)
        if reg is None:
            raise ProfileError(
                "word_order.pattern_register", f"no register called {spec.pattern_register!r}"
            )
        if reg.type not in ("uint32", "int32") or not reg.readable:
            raise ProfileError("word_order.pattern_register", "must be a readable 32-bit integer")
        if spec.pattern is None:
            raise ProfileError("word_order.pattern", "required with pattern_register")
        hi, lo = spec.pattern >> 16, spec.pattern & 0xFFFF
        if hi == lo:
            raise ProfileError("word_order.pattern", "its two words must differ")


def _check_status(rmap: RegisterMap) -> None:
    st = rmap.status
    covered: set[int] = set()
    for i, block in enumerate(st.blocks):
        if block.first + block.count - 1 > 0xFFFF:
            raise ProfileError(f"status.blocks[{i}]", "runs past register 65535")
        covered.update(range(block.first, block.first + block.count))
    _ref_problem(rmap, "status.running", st.running, need_bits=True)
    for key in ("rate_actual", "volume_infused", "max_rate", "restart_counter"):
        ref = getattr(st, key)
        if ref is None:
            continue
        _ref_problem(rmap, f"status.{key}", ref, need_bits=False)
        reg = rmap.registers[ref]
        if key in ("rate_actual", "max_rate") and reg.unit not in FLOW_TO_ML_H:
            raise ProfileError(f"status.{key}", f"register {ref!r} needs a flow unit (l/h, mL/h)")
        if key == "volume_infused" and reg.unit not in VOLUME_TO_UL:
            raise ProfileError(f"status.{key}", f"register {ref!r} needs a volume unit (l, mL, uL)")
    for key, ref in _status_registers(rmap):
        reg = rmap.registers[ref]
        if not reg.readable:
            raise ProfileError(key, f"register {ref!r} is write-only")
        missing = set(range(reg.address, reg.address + reg.words)) - covered
        if missing:
            raise ProfileError(key, f"register {ref!r} ({reg.address}) is in no status block")


def _status_registers(rmap: RegisterMap) -> list[tuple[str, str]]:
    """(key, register name) of every register one poll decodes."""
    st = rmap.status
    out = [("status.running", st.running.split(".")[0])]
    out += [
        (f"status.{k}", getattr(st, k))
        for k in ("rate_actual", "volume_infused", "max_rate", "restart_counter")
        if getattr(st, k) is not None
    ]
    for section, spec in (("alarms", rmap.alarms), ("warnings", rmap.warnings)):
        out += [(f"{section}.sources", ref) for ref in spec.sources]
        if spec.summary is not None:
            out.append((f"{section}.summary", spec.summary.split(".")[0]))
        for flag, refs in (spec.model_extra or {}).items():
            out += [(f"{section}.{flag}", str(ref).split(".")[0]) for ref in refs]
    return out


def _check_flags(rmap: RegisterMap) -> None:
    for section, spec, names in (
        ("alarms", rmap.alarms, AlarmFlag),
        ("warnings", rmap.warnings, WarningFlag),
    ):
        for i, ref in enumerate(spec.sources):
            _ref_problem(rmap, f"{section}.sources[{i}]", ref, need_bits=False)
            if not rmap.registers[ref].is_integer:
                raise ProfileError(f"{section}.sources[{i}]", f"{ref!r} is not a bit field")
        if spec.summary is not None:
            _ref_problem(rmap, f"{section}.summary", spec.summary, need_bits=True)
        for flag, refs in (spec.model_extra or {}).items():
            key = f"{section}.{flag}"
            if flag not in names.__members__ or flag in ("NONE", "UNKNOWN"):
                known = ", ".join(n for n in names.__members__ if n not in ("NONE", "UNKNOWN"))
                raise ProfileError(key, f"not a contract flag; the flags are {known}")
            if not isinstance(refs, list) or not refs:
                raise ProfileError(key, "expected a non-empty list of register.bit references")
            for ref in refs:
                if not isinstance(ref, str):
                    raise ProfileError(key, f"expected register.bit, got {ref!r}")
                _ref_problem(rmap, key, ref, need_bits=True)


def _check_write(rmap: RegisterMap, key: str, write: Write) -> None:
    reg = rmap.registers.get(write.reg)
    if reg is None:
        raise ProfileError(f"{key}.register", f"no register called {write.reg!r}")
    if not reg.writable:
        raise ProfileError(f"{key}.register", f"register {write.reg!r} is read-only")
    try:
        encode(reg, write.value, "high_first")
    except (ValueError, OverflowError) as exc:
        raise ProfileError(f"{key}.value", str(exc)) from None
    if reg.type == "float32" and nearest_float32(Decimal(write.value)) != Decimal(write.value):
        raise ProfileError(f"{key}.value", f"{write.value} is not exact in float32")


def _check_commands(rmap: RegisterMap) -> None:
    for name, spec in rmap.commands.items():
        key = f"commands.{name}"
        if name not in _CONTRACT_COMMANDS:
            raise ProfileError(
                key, f"not a contract command ({', '.join(sorted(_CONTRACT_COMMANDS))})"
            )
        if name == "PRIME" and not rmap.capabilities.priming:
            raise ProfileError(key, "capabilities.priming is false")
        for i, write in enumerate(spec.write):
            _check_write(rmap, f"{key}.write[{i}]", write)
        confirm = spec.confirm
        if (confirm.bit is None) == (confirm.reg is None):
            raise ProfileError(f"{key}.confirm", "give either bit or register")
        if confirm.bit is not None:
            _ref_problem(rmap, f"{key}.confirm.bit", confirm.bit, need_bits=True)
            if confirm.equals not in (0, 1):
                raise ProfileError(f"{key}.confirm.equals", "a bit equals 0 or 1")
        else:
            assert confirm.reg is not None
            _ref_problem(rmap, f"{key}.confirm.reg", confirm.reg, need_bits=False)
            if not rmap.registers[confirm.reg].readable:
                raise ProfileError(f"{key}.confirm.reg", "is write-only")
    for required in ("START", "STOP", "PAUSE"):
        if required not in rmap.commands:
            raise ProfileError(f"commands.{required}", "required: pumpd must be able to do this")


def _check_rest(rmap: RegisterMap) -> None:
    prog = rmap.program
    reg = rmap.registers.get(prog.rate)
    if reg is None:
        raise ProfileError("program.rate", f"no register called {prog.rate!r}")
    if not (reg.readable and reg.writable) or reg.unit not in FLOW_TO_ML_H:
        raise ProfileError("program.rate", "must be a read-write register with a flow unit")
    for i, write in enumerate(prog.set_before):
        _check_write(rmap, f"program.set_before[{i}]", write)
    fs = rmap.failsafe
    treg = rmap.registers.get(fs.timeout_register)
    if treg is None:
        raise ProfileError("failsafe.timeout_register", f"no register {fs.timeout_register!r}")
    if not treg.readable or treg.unit not in TIME_TO_MS or not treg.is_integer:
        raise ProfileError("failsafe.timeout_register", "must be a readable integer in ms or s")
    _check_write(rmap, "failsafe.stop", fs.stop)
    pu = rmap.power_up
    preg = rmap.registers.get(pu.reg)
    if preg is None:
        raise ProfileError("power_up.register", f"no register called {pu.reg!r}")
    if not (preg.readable and preg.writable) or not preg.is_integer:
        raise ProfileError("power_up.register", "must be a read-write integer register")
    try:
        encode(preg, pu.force, "high_first")
    except ValueError as exc:
        raise ProfileError("power_up.force", str(exc)) from None
    caps = rmap.capabilities
    if caps.confirmation == "sequence-echo":
        raise ProfileError("capabilities.confirmation", "a register map confirms by read-back")
    for flag in caps.detected_alarms:
        if flag not in AlarmFlag.__members__ or flag in ("NONE", "UNKNOWN"):
            raise ProfileError("capabilities.detected_alarms", f"{flag!r} is not a contract alarm")
    if caps.priming != ("PRIME" in rmap.commands):
        raise ProfileError("capabilities.priming", "must agree with a PRIME command in the map")
    wd = caps.watchdog
    if wd is False or wd.set_by != "pump-panel":
        raise ProfileError(
            "capabilities.watchdog",
            "a register map's watchdog is the failsafe timeout register, set at the pump panel",
        )
    if wd.min_s > wd.max_s or wd.max_s * 1000 != fs.max_ms:
        raise ProfileError("capabilities.watchdog.max_s", "must agree with failsafe.max_ms")
    if caps.max_rate_source == "register" and rmap.status.max_rate is None:
        raise ProfileError("capabilities.max_rate_source", "no status.max_rate register")
    if caps.restart_evidence != "switch-on-counter":
        raise ProfileError(
            "capabilities.restart_evidence",
            "a register map shows a restart by its switch-on counter (status.restart_counter)",
        )
    if rmap.status.restart_counter is None:
        raise ProfileError("status.restart_counter", "required: the pump's switch-on counter")


def parse_register_map(data: dict[str, Any]) -> RegisterMap:
    """Validate a decoded register-map document; ProfileError names the first bad key."""
    try:
        rmap = RegisterMap.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        raise ProfileError(key, err["msg"]) from None
    _check_registers(rmap)
    _check_word_order(rmap)
    _check_flags(rmap)
    _check_status(rmap)
    _check_commands(rmap)
    _check_rest(rmap)
    return rmap


def load_any_profile(name_or_path: str | Path) -> RegisterMap | Profile:
    """A GIP-MB1-schema profile, or a register map when the file says ``schema``."""
    data = read_profile_document(name_or_path)
    if data.get("schema") is None:
        return parse_profile(data)
    return parse_register_map(data)
