"""Reads the protocol library from disk into validated, hashed :class:`safety.protocol.Protocol`.

File reading lives here so that ``safety/`` stays free of I/O. One file per protocol
version, named ``<id>.v<version>.toml``; the name must agree with the content so that a
file copied to a new version without editing it is caught. Each file's sha256 is the
content hash a session records. ``released.sha256`` (``sha256sum`` format) lists released
files: a listed file whose bytes changed is refused, because a released protocol is
immutable and a change must be a new version; unlisted files load as drafts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pumpd.shipped import protocols_dir
from safety.protocol import Protocol

ENV_VAR = "PUMPD_PROTOCOLS"
MANIFEST = "released.sha256"
SCHEMA_FILE = "protocol.schema.json"
_FILENAME = re.compile(r"^(?P<id>[a-z0-9]+(?:-[a-z0-9]+)*)\.v(?P<version>[1-9][0-9]*)\.toml$")


class ProtocolFileError(Exception):
    """A protocol file or library that cannot be used; names the file and the key."""

    def __init__(self, path: Path | str, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}")
        self.path = str(path)
        self.key = key
        self.message = message


class UnknownProtocol(LookupError):
    """No protocol (or no such version) in the library."""


@dataclass(frozen=True, slots=True)
class LoadedProtocol:
    """A validated protocol with the hash of the exact bytes it was read from."""

    protocol: Protocol
    sha256: str
    path: Path
    released: bool


@dataclass(frozen=True, slots=True)
class Library:
    """All protocol versions of a directory, by id and version."""

    path: Path
    entries: dict[tuple[str, int], LoadedProtocol]

    def get(self, protocol_id: str, version: int | None = None) -> LoadedProtocol:
        """One version, by default the latest of ``protocol_id``."""
        versions = self.versions(protocol_id)
        if not versions:
            known = ", ".join(self.ids()) or "none"
            raise UnknownProtocol(f"no protocol {protocol_id!r} in {self.path} (known: {known})")
        if version is None:
            return versions[-1]
        for entry in versions:
            if entry.protocol.version == version:
                return entry
        have = ", ".join(str(e.protocol.version) for e in versions)
        raise UnknownProtocol(f"{protocol_id!r} has no version {version} (versions: {have})")

    def versions(self, protocol_id: str) -> list[LoadedProtocol]:
        return sorted(
            (e for (pid, _), e in self.entries.items() if pid == protocol_id),
            key=lambda e: e.protocol.version,
        )

    def ids(self) -> list[str]:
        return sorted({pid for pid, _ in self.entries})

    def __iter__(self) -> Iterator[LoadedProtocol]:
        return iter(
            sorted(self.entries.values(), key=lambda e: (e.protocol.id, e.protocol.version))
        )


def default_path() -> Path:
    """``$PUMPD_PROTOCOLS``, else the library that ships with pumpd."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return protocols_dir()


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _unit_hint(model_keys: frozenset[str], key: str) -> str:
    """For an unknown key that is a known key minus its unit suffix, say the unit is missing."""
    candidates = sorted(k for k in model_keys if k.startswith(f"{key}_"))
    if candidates:
        return f"missing unit: numeric keys carry their unit, e.g. {candidates[0]!r}"
    return "unknown key (a typo here would silently drop a setting, so it is refused)"


@cache
def _known_keys() -> frozenset[str]:
    """Every property name anywhere in the schema, for the missing-unit hint (built once:
    generating the JSON schema costs milliseconds, every refused unknown key asks)."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                keys.update(props)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(Protocol.model_json_schema())
    return frozenset(keys)


def _first_error(path: Path, exc: ValidationError) -> ProtocolFileError:
    # An unknown key first: it usually explains a "field required" next to it (bag_volume).
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return ProtocolFileError(path, _key(loc), _unit_hint(_known_keys(), str(loc[-1])))
    message = str(error["msg"]).removeprefix("Value error, ")
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ProtocolFileError(path, _key(loc), message)


def _read_manifest(directory: Path) -> dict[str, str]:
    manifest = directory / MANIFEST
    if not manifest.exists():
        return {}
    released: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise ProtocolFileError(manifest, f"line {number}", "expected '<sha256>  <file>'")
        released[parts[1].lstrip("*")] = parts[0]
    return released


def load_protocol_file(path: Path, released_sha256: str | None = None) -> LoadedProtocol:
    """One file, validated; ``released_sha256`` is its manifest entry when it has one."""
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if released_sha256 is not None and released_sha256 != sha256:
        raise ProtocolFileError(
            path,
            "(content)",
            f"changed after release (sha256 {sha256}, released {released_sha256}); "
            "a released protocol is immutable: make the change as a new version",
        )
    name = _FILENAME.fullmatch(path.name)
    if name is None:
        raise ProtocolFileError(path, "(file name)", "must be '<id>.v<version>.toml'")
    try:
        raw = tomllib.loads(data.decode("utf-8"), parse_float=Decimal)
    except UnicodeDecodeError as exc:
        raise ProtocolFileError(path, "(encoding)", f"not UTF-8: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolFileError(path, "(syntax)", str(exc)) from None
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        raise _first_error(path, exc) from None
    if protocol.id != name["id"]:
        raise ProtocolFileError(path, "id", f"{protocol.id!r} does not match the file name")
    if protocol.version != int(name["version"]):
        raise ProtocolFileError(path, "version", f"{protocol.version} does not match the file name")
    return LoadedProtocol(protocol, sha256, path, released=released_sha256 is not None)


def load_library(path: Path | str | None = None) -> Library:
    """Every ``*.toml`` in ``path`` (default :func:`default_path`); any bad file refuses all.

    Refusing the whole library on one bad file is deliberate: a clinic must not run with a
    silently smaller library than it reviewed.
    """
    directory = Path(path) if path is not None else default_path()
    if not directory.is_dir():
        raise ProtocolFileError(directory, "(library)", "not a directory")
    released = _read_manifest(directory)
    entries: dict[tuple[str, int], LoadedProtocol] = {}
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ProtocolFileError(directory, "(library)", "holds no protocol files (*.toml)")
    for file in files:
        loaded = load_protocol_file(file, released.get(file.name))
        entries[(loaded.protocol.id, loaded.protocol.version)] = loaded
    missing = sorted(set(released) - {f.name for f in files})
    if missing:
        raise ProtocolFileError(
            directory / MANIFEST, missing[0], "is listed as released but the file is missing"
        )
    return Library(directory, entries)


def schema_json() -> str:
    """The JSON Schema of a protocol file, as committed in ``protocols/protocol.schema.json``."""
    return json.dumps(Protocol.model_json_schema(), indent=2, sort_keys=True) + "\n"
