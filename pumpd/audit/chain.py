"""The hash chain: what is hashed, in which byte form, and with which key.

Each event's hash covers every stored column except its own hash, in a fixed order, as a
UTF-8 JSON array without whitespace (``ENCODING_TAG`` first, so a future format cannot be
confused with this one). The payload enters as its stored canonical text, so what is
hashed is byte for byte what is stored. With a key, the digest is HMAC-SHA-256: someone
who can write the database but has not got the key cannot compute a valid chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path

from pumpd.audit.errors import KeyFileError

ENCODING_TAG = "pumpd.audit.v1"
GENESIS_HASH = "0" * 64
MIN_KEY_BYTES = 32
_KEY_ID_TAG = b"pumpd.audit.key-id.v1\x00"


def key_id_of(secret: bytes) -> str:
    """A key's public fingerprint (16 lowercase hex digits): names the key in events and
    published heads, tells a verifier which key file to use, and reveals nothing of it."""
    return hashlib.sha256(_KEY_ID_TAG + secret).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event, exactly as in the table."""

    seq: int
    occurred_at: str
    mono_ns: int
    host: str
    instance_id: str
    actor_kind: str
    actor_uid: int | None
    actor_name: str
    actor_role: str
    pump_id: str | None
    session_id: str | None
    patient_ref: str | None
    event_type: str
    correlation_id: str | None
    simulated: bool
    payload: str
    prev_hash: str
    event_hash: str


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EventRecord))
"""Column order used by every raw SELECT on the read side: ``EventRecord``'s fields, the one
definition of the event row's names and order. Its SQL form for the site's and the centre's
table is ``pumpd.audit.schema.event_row_columns``; tests/audit holds the two equal."""


_HASHED = len(COLUMNS) - 1
"""Every column is hashed but the row's own hash, the last."""
_SIMULATED_AT = 1 + COLUMNS.index("simulated")
"""Where ``simulated`` sits in the hashed array, after ``ENCODING_TAG``."""


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} cannot be part of a hashed audit row")


def _make_dumps() -> Callable[[list[object]], str]:
    """``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, built once.

    ``JSONEncoder.encode`` rebuilds its C encoder on every call; verification encodes a
    million rows, so the C encoder is made once here (same output, checked in the tests).
    """
    if c_make_encoder is None:  # pure-Python json: same text, slower
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    encoder = c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", True, False, False)
    return lambda fields: "".join(encoder(fields, 0))


_dumps = _make_dumps()


def encode_row(row: Sequence[object], seq: int | None = None) -> bytes:
    """The hashed bytes of a row in ``COLUMNS`` order (its own hash, last, is left out).

    ``seq`` replaces the stored sequence number: verification uses it to ask "would this
    row be valid at another position?" when it classifies a break.
    """
    fields: list[object] = [ENCODING_TAG, row[0] if seq is None else seq, *row[1:_HASHED]]
    fields[_SIMULATED_AT] = bool(fields[_SIMULATED_AT])  # SQLite hands back 0/1
    return _dumps(fields).encode()


def encode(record: EventRecord) -> bytes:
    return encode_row(tuple(getattr(record, name) for name in COLUMNS))


class Hasher:
    """SHA-256, or HMAC-SHA-256 when a key is given."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise KeyFileError(f"an HMAC key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._key_id = None if key is None else key_id_of(key)

    @property
    def keyed(self) -> bool:
        return self._key is not None

    @property
    def key_id(self) -> str | None:
        return self._key_id

    def digest(self, data: bytes) -> str:
        if self._key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()


def _is_text(data: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in data)


def load_key(path: Path) -> bytes:
    """Read an HMAC key file; refuse one that others can read or that is too short.

    A text file (every byte printable ASCII or white space: ``head -c 48 /dev/urandom |
    base64 > key``) is taken without its trailing newline; any other file (``pumpd audit
    keygen`` writes 32 raw random bytes) is taken whole, so a random key that happens to
    end in a newline byte keeps it.
    """
    try:
        info = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise KeyFileError(
            f"key file {path} is accessible to group/others "
            f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it"
        )
    key = data.rstrip(b"\r\n") if _is_text(data) else data
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(f"key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES}")
    return key
