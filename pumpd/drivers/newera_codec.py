"""The New Era NE-1000 family's RS-232 protocol as pure functions: framing, numbers, replies.

No I/O and no clock here, so every rule of the wire can be tested on its own (and with
hypothesis). Source: the NE-1000 manual (Pub. #1200-01) §10; the reply and number formats
agree with the open nesp-lib implementation.

Safe mode frame: ``STX, len, data, CRC hi, CRC lo, ETX`` with ``len = len(data) + 4`` and
the CRC-16 CCITT of ``data`` as ``binascii.crc_hqx(data, 0)``. Basic mode: a request is
``<text>CR``; a reply ``STX <text> ETX``, with no check at all (simulation only).
Reply text: two address digits, then a prompt character (the pump's state) or ``A?`` and
an alarm character, then data or ``?`` and an error code.
"""

from __future__ import annotations

import binascii
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

STX = 0x02
ETX = 0x03
CR = 0x0D
MAX_PAYLOAD = 255 - 4
MAX_DIGITS = 4
MAX_DECIMALS = 3
MAX_ADDRESS = 99


class Prompt(enum.StrEnum):
    """The state character every reply carries."""

    INFUSING = "I"
    WITHDRAWING = "W"
    STOPPED = "S"
    PAUSED = "P"
    PAUSE_PHASE = "T"
    USER_WAIT = "U"
    PURGING = "X"


class Alarm(enum.StrEnum):
    """``A?`` and one of these: the pump stopped for this reason."""

    RESET = "R"
    STALL = "S"
    WATCHDOG = "T"
    PROGRAM_ERROR = "E"
    PHASE_OUT_OF_RANGE = "O"


class ErrorCode(enum.StrEnum):
    """``?`` and one of these after the prompt: the pump refused the request."""

    NOT_RECOGNIZED = ""
    NOT_APPLICABLE = "NA"
    OUT_OF_RANGE = "OOR"
    BAD_PACKET = "COM"
    IGNORED = "IGN"


class RateUnit(enum.StrEnum):
    UL_MIN = "UM"
    ML_MIN = "MM"
    UL_H = "UH"
    ML_H = "MH"


class VolumeUnit(enum.StrEnum):
    UL = "UL"
    ML = "ML"


class CodecError(ValueError):
    """Bytes or text that do not follow the protocol."""


class NotRepresentable(ValueError):
    """A value the pump cannot hold exactly (it would truncate it to 4 digits)."""


# ------------------------------------------------------------------ framing


def crc16(data: bytes) -> int:
    """CRC-16 CCITT with initial value 0, as the manual's ``SAF0`` packet shows (0x5543)."""
    return binascii.crc_hqx(data, 0)


def encode_safe(data: bytes) -> bytes:
    if not 1 <= len(data) <= MAX_PAYLOAD:
        raise CodecError(f"a Safe-mode packet carries 1..{MAX_PAYLOAD} bytes, got {len(data)}")
    return bytes([STX, len(data) + 4]) + data + crc16(data).to_bytes(2, "big") + bytes([ETX])


def encode_basic_request(text: str) -> bytes:
    return text.encode("ascii") + bytes([CR])


def encode_basic_reply(text: str) -> bytes:
    return bytes([STX]) + text.encode("ascii") + bytes([ETX])


@dataclass(frozen=True, slots=True)
class Frame:
    """A packet whose framing and CRC checked out."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that looked like a packet and failed a check; `reason` says which."""

    reason: str
    raw: bytes


class _StreamReader:
    """A byte stream's buffer; bytes that are dropped unread count as noise."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.noise_bytes = 0

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def reset(self) -> None:
        """Drop a partial packet (the manual's 0.5 s inter-byte timeout)."""
        self.noise_bytes += len(self._buf)
        self._buf.clear()


class SafeReader(_StreamReader):
    """Splits a byte stream into Safe-mode packets; bytes outside a packet are noise.

    After a failed packet the search for the next STX restarts one byte after the failed
    one's STX, so a real packet hidden in garbage is still found.
    """

    def feed(self, chunk: bytes) -> list[Frame | BadFrame]:
        self._buf.extend(chunk)
        out: list[Frame | BadFrame] = []
        while self._buf:
            start = self._buf.find(STX)
            if start < 0:
                self.noise_bytes += len(self._buf)
                self._buf.clear()
                break
            if start:
                self.noise_bytes += start
                del self._buf[:start]
            if len(self._buf) < 2:
                break
            length = self._buf[1]
            if length < 5:
                out.append(BadFrame(f"length byte {length} is too short", bytes(self._buf[:2])))
                del self._buf[:1]
                continue
            total = length + 1
            if len(self._buf) < total:
                break
            raw = bytes(self._buf[:total])
            data, crc, etx = raw[2:-3], raw[-3:-1], raw[-1]
            if etx != ETX:
                out.append(BadFrame("no ETX where the length byte says the packet ends", raw))
                del self._buf[:1]
                continue
            if int.from_bytes(crc, "big") != crc16(data):
                out.append(BadFrame("CRC mismatch", raw))
                del self._buf[:total]
                continue
            out.append(Frame(data))
            del self._buf[:total]
        return out


class BasicReader(_StreamReader):
    """Splits a byte stream into Basic-mode replies (``STX … ETX``); nothing is checked."""

    def feed(self, chunk: bytes) -> list[Frame | BadFrame]:
        self._buf.extend(chunk)
        out: list[Frame | BadFrame] = []
        while True:
            start = self._buf.find(STX)
            if start < 0:
                self.noise_bytes += len(self._buf)
                self._buf.clear()
                break
            if start:
                self.noise_bytes += start
                del self._buf[:start]
            end = self._buf.find(ETX)
            if end < 0:
                break
            out.append(Frame(bytes(self._buf[1:end])))
            del self._buf[: end + 1]
        return out


# ------------------------------------------------------------------ requests and replies


def request_text(address: int, command: str = "", argument: str = "") -> str:
    """``<address><COMMAND><argument>``; an empty command is the status query."""
    if isinstance(address, bool) or not 0 <= address <= MAX_ADDRESS:
        raise CodecError(f"address must be 0..{MAX_ADDRESS}, got {address!r}")
    return f"{address}{command}{argument}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One decoded reply. Exactly one of `prompt` and `alarm` is set."""

    address: int
    prompt: Prompt | None
    alarm: Alarm | None
    error: ErrorCode | None
    data: str


_REPLY = re.compile(r"(\d\d)(?:A\?([A-Z])|([A-Z]))(.*)", re.ASCII | re.DOTALL)


def parse_reply(data: bytes) -> Reply:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CodecError(f"reply is not ASCII: {data!r}") from None
    match = _REPLY.fullmatch(text)
    if match is None:
        raise CodecError(f"reply does not start with an address and a prompt: {text!r}")
    address_text, alarm_text, prompt_text, rest = match.groups()
    alarm = prompt = None
    try:
        if alarm_text is not None:
            alarm = Alarm(alarm_text)
        else:
            prompt = Prompt(prompt_text)
    except ValueError:
        raise CodecError(f"unknown state in reply {text!r}") from None
    error = None
    if rest.startswith("?"):
        try:
            error = ErrorCode(rest[1:])
        except ValueError:
            raise CodecError(f"unknown error code in reply {text!r}") from None
        rest = ""
    return Reply(int(address_text), prompt, alarm, error, rest)


def reply_text(reply: Reply) -> str:
    """The text of `reply` as the pump sends it (the inverse of `parse_reply`)."""
    if reply.alarm is not None:
        state = f"A?{reply.alarm.value}"
    elif reply.prompt is not None:
        state = reply.prompt.value
    else:
        raise CodecError("a reply needs a prompt or an alarm")
    tail = f"?{reply.error.value}" if reply.error is not None else reply.data
    return f"{reply.address:02d}{state}{tail}"


# ------------------------------------------------------------------ numbers


def format_number(value: Decimal) -> str:
    """The pump's text for `value`, or NotRepresentable: never rounded, never truncated.

    The pump holds at most 4 digits with at most 3 after the point (0.001 … 9999).
    """
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise NotRepresentable(f"{value!r} is not a finite, non-negative Decimal")
    for decimals in range(MAX_DECIMALS + 1):
        scaled = value.scaleb(decimals)
        if scaled == scaled.to_integral_value():
            if scaled >= 10**MAX_DIGITS:
                break
            return f"{value:.{decimals}f}"
    raise NotRepresentable(
        f"{value} needs more than {MAX_DIGITS} digits or {MAX_DECIMALS} decimals; "
        "the pump would truncate it"
    )


_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)


def parse_number(text: str) -> Decimal:
    if not _NUMBER.fullmatch(text):
        raise CodecError(f"not a pump number: {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise CodecError(f"not a pump number: {text!r}") from None


_ML_H_PER: dict[RateUnit, Decimal] = {
    RateUnit.ML_H: Decimal(1),
    RateUnit.UL_H: Decimal("0.001"),
    RateUnit.ML_MIN: Decimal(60),
    RateUnit.UL_MIN: Decimal("0.06"),
}


def encode_rate(rate_ml_h: Decimal) -> tuple[str, RateUnit]:
    """The first unit (mL/h, µL/h, mL/min, µL/min) in which the rate is exact on the pump."""
    for unit in (RateUnit.ML_H, RateUnit.UL_H, RateUnit.ML_MIN, RateUnit.UL_MIN):
        amount = rate_ml_h / _ML_H_PER[unit]
        if amount * _ML_H_PER[unit] != rate_ml_h:
            continue
        try:
            return format_number(amount), unit
        except NotRepresentable:
            continue
    raise NotRepresentable(
        f"{rate_ml_h} mL/h is not exact in 4 digits in any of mL/h, µL/h, mL/min, µL/min"
    )


_WITH_UNIT = re.compile(r"([0-9.]+)([A-Z]{2})", re.ASCII)
U = TypeVar("U", RateUnit, VolumeUnit)


def _decode_with_unit(text: str, what: str, factors: Mapping[U, Decimal]) -> Decimal:
    """A number followed by its two-letter unit, times that unit's factor."""
    match = _WITH_UNIT.fullmatch(text)
    if match is None:
        raise CodecError(f"not a {what}: {text!r}")
    unit = next((u for u in factors if u.value == match[2]), None)
    if unit is None:
        raise CodecError(f"unknown {what} unit in {text!r}")
    return parse_number(match[1]) * factors[unit]


def decode_rate(text: str) -> Decimal:
    """``1.234MH`` → mL/h."""
    return _decode_with_unit(text, "rate", _ML_H_PER)


_UL_PER: dict[VolumeUnit, Decimal] = {VolumeUnit.UL: Decimal(1), VolumeUnit.ML: Decimal(1000)}


def encode_volume(volume_ul: int) -> tuple[str, VolumeUnit]:
    """mL when exact there (it reaches further), else µL; NotRepresentable otherwise."""
    for unit in (VolumeUnit.ML, VolumeUnit.UL):
        try:
            return format_number(Decimal(volume_ul) / _UL_PER[unit]), unit
        except NotRepresentable:
            continue
    raise NotRepresentable(f"{volume_ul} µL is not exact in 4 digits in mL or µL")


def decode_volume(text: str) -> Decimal:
    """``5.000ML`` → µL."""
    return _decode_with_unit(text, "volume", _UL_PER)


_DISPENSED = re.compile(r"I([0-9.]+)W([0-9.]+)([A-Z]{2})", re.ASCII)


def decode_dispensed(text: str) -> tuple[Decimal, Decimal]:
    """``I1.234W0.000ML`` → (infused µL, withdrawn µL)."""
    match = _DISPENSED.fullmatch(text)
    if match is None:
        raise CodecError(f"not a DIS reply: {text!r}")
    try:
        unit = VolumeUnit(match[3])
    except ValueError:
        raise CodecError(f"unknown volume unit in {text!r}") from None
    scale = _UL_PER[unit]
    return parse_number(match[1]) * scale, parse_number(match[2]) * scale


_VERSION = re.compile(r"NE(\d+)(?:X\d*)?V(\d+\.\d+)", re.ASCII)


def decode_version(text: str) -> tuple[int, str]:
    """``NE1000V3.928`` → (1000, "3.928")."""
    match = _VERSION.fullmatch(text)
    if match is None:
        raise CodecError(f"not a VER reply: {text!r}")
    return int(match[1]), match[2]
