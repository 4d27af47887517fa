"""One New Era NE-1000 family syringe pump: its state, its physics and its answers.

Written from the NE-1000 manual (Pub. #1200-01, §10), independently of pumpd's driver, so
the two cross-check. `NeraPump` is pure: every call takes the time it happens at —
simulated seconds (scaled) for delivery, wall seconds for the Safe-mode watchdog, which a
real pump counts in real time whatever the simulation's time scale. The wire that carries
several of them is `pumpsim.newera.NewEraLine`; the modelled behaviour is listed there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from fractions import Fraction

MAX_SPEED_MM_H = Decimal(3000)
"""Plunger travel at the fastest rate; with a 26.59 mm syringe about 1666 mL/h."""
MODEL_NUMBER = 1000
FIRMWARE = "3.928"

_ML_H_PER = {"MH": Decimal(1), "UH": Decimal("0.001"), "MM": Decimal(60), "UM": Decimal("0.06")}
_UL_PER = {"UL": Decimal(1), "ML": Decimal(1000)}


def truncate4(value: Decimal) -> Decimal:
    """What the pump keeps of a number: 4 significant digits, 3 decimals, cut not rounded."""
    if value == 0:
        return Decimal(0)
    exponent = max(-3, value.adjusted() - 3)
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_DOWN)


def show(value: Decimal) -> str:
    """A held number as the pump prints it: always with a decimal point."""
    text = format(truncate4(value), "f")
    return text if "." in text else text + "."


@dataclass
class NeraPump:
    """One pump's state and physics. Volumes in µL as exact fractions."""

    address: int
    diameter_mm: Decimal = Decimal("26.59")
    rate: Decimal = Decimal(1)
    rate_unit: str = "MH"
    volume: Decimal = Decimal(0)
    volume_unit: str = "ML"
    direction: str = "INF"
    state: str = "S"
    infused_ul: Fraction = Fraction(0)
    withdrawn_ul: Fraction = Fraction(0)
    run_ul: Fraction = Fraction(0)
    alarm: str | None = None
    safe_timeout_s: int = 0
    last_packet_wall_s: float = 0.0
    stalled: bool = False
    silent: bool = False
    loses_commands: bool = False
    garble_left: int = 0
    bad_crc_left: int = 0
    sim_s: Fraction = Fraction(0)
    pushed: list[str] = field(default_factory=list)
    """Alarms raised since the line last pushed them (Safe mode)."""

    @property
    def safe(self) -> bool:
        return self.safe_timeout_s > 0

    def max_rate_ml_h(self) -> Decimal:
        area_mm2 = Decimal(math.pi) * self.diameter_mm * self.diameter_mm / 4
        return area_mm2 / 1000 * MAX_SPEED_MM_H

    def rate_ml_h(self) -> Decimal:
        return self.rate * _ML_H_PER[self.rate_unit]

    def volume_ul(self) -> Decimal:
        return self.volume * _UL_PER[self.volume_unit]

    # -------------------------------------------------------------- physics

    def _raise(self, alarm: str) -> None:
        self.state = "S"
        self.alarm = alarm
        if self.safe:
            self.pushed.append(alarm)

    def advance(self, sim_s: Fraction) -> None:
        """Deliver from the last call to `sim_s` (simulated seconds)."""
        if sim_s < self.sim_s:
            raise ValueError("time went backwards")
        dt = sim_s - self.sim_s
        self.sim_s = sim_s
        if self.state not in ("I", "W", "X"):
            return
        if self.stalled:
            self._raise("S")
            return
        withdrawing = self.state == "W"
        rate = self.max_rate_ml_h() if self.state == "X" else self.rate_ml_h()
        moved = Fraction(rate) * 1000 / 3600 * dt
        limit = self.volume_ul()
        if self.state != "X" and limit > 0 and self.run_ul + moved >= Fraction(limit):
            moved = Fraction(limit) - self.run_ul
            self.state = "S"
        self.run_ul += moved
        if withdrawing:
            self.withdrawn_ul += moved
        else:
            self.infused_ul += moved

    def check_watchdog(self, wall_s: float) -> None:
        """The Safe-mode watchdog, in wall seconds: silence for n s stops the pump."""
        if (
            self.safe
            and self.alarm != "T"
            and wall_s - self.last_packet_wall_s > self.safe_timeout_s
        ):
            self._raise("T")
            self.last_packet_wall_s = wall_s

    def expire_watchdog(self) -> None:
        self._raise("T")

    def power_loss(self, wall_s: float) -> None:
        self.state = "S"
        self.infused_ul = self.withdrawn_ul = self.run_ul = Fraction(0)
        self.last_packet_wall_s = wall_s
        self._raise("R")

    # -------------------------------------------------------------- requests

    def handle(self, text: str, sim_s: Fraction, wall_s: float) -> str:
        """The reply text to one valid request (address already stripped)."""
        self.advance(sim_s)
        self.last_packet_wall_s = wall_s
        if self.alarm is not None:
            alarm, self.alarm = self.alarm, None
            return f"{self.address:02d}A?{alarm}"
        body = text.replace(" ", "").upper()
        command, argument = body[:3], body[3:]
        try:
            data = self._command(command, argument)
        except _Refused as exc:
            return f"{self.address:02d}{self.state}?{exc.code}"
        return f"{self.address:02d}{self.state}{data}"

    def _command(self, command: str, argument: str) -> str:
        if command == "":
            return ""
        handler = getattr(self, f"_cmd_{command.lower()}", None)
        if handler is None or not command.isalpha():
            raise _Refused("")
        result: str = handler(argument)
        return result

    def _cmd_ver(self, argument: str) -> str:
        return f"NE{MODEL_NUMBER}V{FIRMWARE}"

    def _cmd_saf(self, argument: str) -> str:
        if not argument:
            return str(self.safe_timeout_s)
        value = _integer(argument)
        if not 0 <= value <= 255:
            raise _Refused("OOR")
        self.safe_timeout_s = value
        return ""

    def _cmd_dia(self, argument: str) -> str:
        if not argument:
            return show(self.diameter_mm)
        value = truncate4(_number(argument))
        if self.state != "S":
            raise _Refused("NA")
        if not Decimal("0.1") <= value <= Decimal("50"):
            raise _Refused("OOR")
        self.diameter_mm = value
        return ""

    def _cmd_rat(self, argument: str) -> str:
        if not argument:
            return f"{show(self.rate)}{self.rate_unit}"
        match = re.fullmatch(r"(C?)([0-9.]+)(UM|MM|UH|MH)?", argument)
        if match is None:
            raise _Refused("")
        if self.state not in ("S", "P") and not match[1]:
            raise _Refused("NA")  # while running only "RAT C" changes the rate
        value = truncate4(_number(match[2]))
        unit = match[3] or self.rate_unit
        rate_ml_h = value * _ML_H_PER[unit]
        if not 0 < rate_ml_h <= self.max_rate_ml_h() or value >= 10_000:
            raise _Refused("OOR")
        self.rate, self.rate_unit = value, unit
        return ""

    def _cmd_vol(self, argument: str) -> str:
        if not argument:
            return f"{show(self.volume)}{self.volume_unit}"
        if argument in _UL_PER:
            self.volume_unit = argument
            return ""
        value = truncate4(_number(argument))
        if value >= 10_000:
            raise _Refused("OOR")
        self.volume = value
        return ""

    def _cmd_dir(self, argument: str) -> str:
        if not argument:
            return self.direction
        if argument == "REV":
            argument = "WDR" if self.direction == "INF" else "INF"
        if argument not in ("INF", "WDR"):
            raise _Refused("")
        if self.state not in ("S", "P"):
            raise _Refused("NA")
        self.direction = argument
        return ""

    def _cmd_run(self, argument: str) -> str:
        if self.state == "S":
            self.run_ul = Fraction(0)
        elif self.state != "P":
            raise _Refused("NA")
        self.state = "I" if self.direction == "INF" else "W"
        return ""

    def _cmd_pur(self, argument: str) -> str:
        if self.state != "S":
            raise _Refused("NA")
        self.state = "X"
        return ""

    def _cmd_stp(self, argument: str) -> str:
        if self.state in ("I", "W"):
            self.state = "P"
        elif self.state in ("P", "X"):
            self.state = "S"
        else:
            raise _Refused("NA")
        return ""

    def _cmd_dis(self, argument: str) -> str:
        scale = _UL_PER[self.volume_unit]
        infused = Decimal(self.infused_ul.numerator) / Decimal(self.infused_ul.denominator)
        withdrawn = Decimal(self.withdrawn_ul.numerator) / Decimal(self.withdrawn_ul.denominator)
        return f"I{show(infused / scale)}W{show(withdrawn / scale)}{self.volume_unit}"

    def _cmd_cld(self, argument: str) -> str:
        if argument == "INF":
            self.infused_ul = Fraction(0)
        elif argument == "WDR":
            self.withdrawn_ul = Fraction(0)
        else:
            raise _Refused("")
        return ""

    def snapshot(self) -> dict[str, object]:
        return {
            "address": self.address,
            "state": self.state,
            "alarm": self.alarm,
            "diameter_mm": str(self.diameter_mm),
            "rate": f"{self.rate}{self.rate_unit}",
            "volume": f"{self.volume}{self.volume_unit}",
            "direction": self.direction,
            "infused_ul": float(self.infused_ul),
            "withdrawn_ul": float(self.withdrawn_ul),
            "safe_timeout_s": self.safe_timeout_s,
            "stalled": self.stalled,
            "silent": self.silent,
            "loses_commands": self.loses_commands,
            "garble_left": self.garble_left,
            "bad_crc_left": self.bad_crc_left,
        }


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _number(text: str) -> Decimal:
    if not re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
        raise _Refused("OOR")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise _Refused("OOR") from None


def _integer(text: str) -> int:
    if not text.isdigit():
        raise _Refused("OOR")
    return int(text)
