"""Damaging a good document the way editors and disks do, for the loader fuzz tests.

A loader is fuzzed best from a file it accepts: the strategies here remove a key, give a
value of another type or an odd value (NaN, huge, negative, empty, a NUL, a path that
cannot be resolved), or add an unknown key, and a small TOML writer puts the damaged
document back on disk. Most examples so reach deep into validation instead of stopping at
the TOML syntax; byte flips and cuts (in the tests) cover the syntax and the encoding.
"""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "/dev/pts/\x00",
        "/run/pumpd/\x00.sock",
        "~no-such-user-here/audit.db",
        "postgresql://h:abc/db",
        "postgresql://[::1/db",
        "sqlite://",
        "sqlite:///:memory:",
        "mysql://h/db",
        "://",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "[::1]:502",
        "::1:502",
        "localhost:",
        "/dev/pts/0",
        "relative/path",
        "a" * 300,
        "\u202e\u0661\u0662",
        "\ud7ff\ue000",
    ]
)
"""Strings that have broken loaders before or sit on a rule's edge."""

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    NASTY_TEXT,
    st.just(0),
    st.just(-1),
    st.lists(st.integers(min_value=-5, max_value=70000), max_size=3),
    st.lists(NASTY_TEXT, max_size=2),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)
"""Values of every TOML type, and the odd ones."""


def key_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a decoded document (dict keys and list indexes)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((*prefix, key))
            out += key_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.append((*prefix, index))
            out += key_paths(value, (*prefix, index))
    return out


def damage(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Apply one to three edits: remove a key, replace a value, or add an unknown key."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="edits")):
        paths = key_paths(doc)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        kind = data.draw(st.sampled_from(["remove", "replace", "add"]), label="kind")
        if kind == "remove":
            del parent[last]
        elif kind == "replace":
            parent[last] = data.draw(scalars, label="value")
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=12), label="new key")] = data.draw(
                scalars
            )
    return doc


def to_toml(value: Any) -> str:
    """One value as TOML (inline tables and arrays keep the writer small)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return "nan"
        if value.is_infinite():
            return "inf" if value > 0 else "-inf"
        text = format(value, "f")
        return text if "." in text else text + ".0"
    if isinstance(value, str):
        return '"' + "".join(_char(c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(to_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_toml(str(k))} = {to_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _char(c: str) -> str:
    if " " <= c <= "~" and c not in '"\\':
        return c
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"


def dump(doc: dict[str, Any]) -> str:
    """A whole document: every top-level key on its own line."""
    return "\n".join(f"{to_toml(str(k))} = {to_toml(v)}" for k, v in doc.items()) + "\n"


def flip_and_cut(raw: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    """``raw`` with bytes overwritten at (position mod length, byte) and ``cut`` bytes off
    the end (at least one byte stays)."""
    out = bytearray(raw)
    for where, byte in flips:
        out[where % len(out)] = byte
    return bytes(out[: max(1, len(out) - cut)])


byte_damage = st.tuples(
    st.integers(min_value=0, max_value=4000),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)
"""(cut, flips) for :func:`flip_and_cut`."""
