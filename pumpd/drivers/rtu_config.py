"""The serial-line keys of a Modbus RTU pump (parity, stop bits, data bits) and its profile.

Checked with the configuration, so a clinic's file that names an unknown profile or a
line setting the pump cannot have is refused by key before anything opens a port. A
register-map profile carries the pump's factory line settings; they are the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pumpd.drivers.base import ProfileError
from pumpd.drivers.regmap import RegisterMap, load_any_profile

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True, slots=True)
class SerialKeys:  # an immutable value: safe as a dataclass default
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


def check_profile(at: str, name: str, problems: list[tuple[str, str]]) -> RegisterMap | None:
    """The register map a pump's ``profile`` names (None for a GIP-MB1-schema profile)."""
    try:
        loaded = load_any_profile(name)
    except ProfileError as exc:
        problems.append((f"{at}.profile", str(exc)))
        return None
    return loaded if isinstance(loaded, RegisterMap) else None


def serial_keys(
    at: str,
    given: Mapping[str, object],
    rmap: RegisterMap | None,
    problems: list[tuple[str, str]],
) -> SerialKeys:
    """``parity``/``stopbits``/``bytesize`` as given, else the profile's, else 8N1."""
    present = {k: v for k, v in given.items() if v is not None}
    line = rmap.line if rmap is not None else {}
    parity = present.get("parity", line.get("parity", "N"))
    stopbits = present.get("stopbits", line.get("stopbits", 1))
    bytesize = present.get("bytesize", line.get("bytesize", 8))
    if parity not in ("N", "E", "O"):
        problems.append((f"{at}.parity", f"expected N, E or O, got {parity!r}"))
        parity = "N"
    if stopbits not in (1, 2):
        problems.append((f"{at}.stopbits", f"expected 1 or 2, got {stopbits!r}"))
        stopbits = 1
    if bytesize not in (7, 8):
        problems.append((f"{at}.bytesize", f"expected 7 or 8, got {bytesize!r}"))
        bytesize = 8
    if bytesize == 7 and parity == "N":
        problems.append((f"{at}.bytesize", "Modbus RTU frames are 8 data bits; 7N is not RTU"))
    return SerialKeys(parity=parity, stopbits=stopbits, bytesize=bytesize)  # type: ignore[arg-type]


def simulated_line_problem(at: str, keys: SerialKeys) -> tuple[str, str] | None:
    """A pseudo-terminal keeps no parity: a simulated RTU line must say ``parity = "N"``."""
    if keys.parity != "N":
        return (
            f"{at}.parity",
            f'a pseudo-terminal keeps no parity, so a simulated line runs with parity = "N" '
            f"(got {keys.parity!r}; the real pump's line keeps its own)",
        )
    return None
