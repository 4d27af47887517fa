"""Payloads of the pumps' links, refused access, the daemon's life, its configuration and
protocol library, and the chain's checkpoints and keys."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from pumpd.audit.vocabulary import BoundedText, Code, Payload, Sha256Hex


class PumpConnected(Payload):
    """``capabilities`` is what the pump declares it can do and report (docs/driver.md);
    ``not_reported`` names the readings it cannot give, and ``detail`` says so in words."""

    transport: Literal["tcp", "rtu", "serial"]
    address: Annotated[str, Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(min_length=1, max_length=80)]
    firmware: Annotated[str, Field(max_length=80)] | None = None
    serial_number: Annotated[str, Field(max_length=80)] | None = None
    capabilities: dict[str, Any] | None = None
    not_reported: list[Code] = Field(default_factory=list)
    detail: BoundedText | None = None


class PumpUnreachable(Payload):
    error_code: Code
    detail: BoundedText
    unreachable_ms: Annotated[int, Field(ge=0)]


class PumpRiskAccepted(Payload):
    """A residual risk of this pump that the site's configuration accepts (a pump without
    a watchdog of its own), recorded at every program and start that relies on it."""

    reason_code: Code
    detail: BoundedText
    config_key: Annotated[str, Field(min_length=1, max_length=80)]


class PumpRebooted(Payload):
    detail: BoundedText
    uptime_s: Annotated[int, Field(ge=0)] | None = None


class AccessDenied(Payload):
    method: Annotated[str, Field(min_length=1, max_length=120)]
    uid: Annotated[int, Field(ge=0)]
    reason_code: Code


KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
"""A chain key's public fingerprint (pumpd/audit/keys.py); never the key itself."""


class DaemonStarted(Payload):
    """``key_id``: the key this daemon chains with; absent when it runs without one."""

    version: Annotated[str, Field(min_length=1, max_length=40)]
    pid: Annotated[int, Field(gt=0)]
    config_sha256: Sha256Hex
    key_id: KeyId | None = None


class DaemonStopped(Payload):
    reason_code: Code


class DaemonRecovered(Payload):
    """Start-up found work left by a previous run (open sessions, uncertain commands)."""

    open_sessions: list[Annotated[str, Field(min_length=1, max_length=80)]]
    detail: BoundedText


class ConfigLoaded(Payload):
    path: Annotated[str, Field(min_length=1, max_length=500)]
    sha256: Sha256Hex


class ProtocolEntry(Payload):
    protocol_id: Code
    protocol_version: Annotated[str, Field(min_length=1, max_length=40)]
    sha256: Sha256Hex


class ProtocolLibraryLoaded(Payload):
    library_sha256: Sha256Hex
    protocols: Annotated[list[ProtocolEntry], Field(min_length=1)]


class ChainCheckpointed(Payload):
    """The head as it was before this event; the same pair goes to the outside log."""

    head_seq: Annotated[int, Field(ge=0)]
    head_hash: Sha256Hex


class ChainKeyChanged(Payload):
    """The chain's key changes here: this event and every later one (until the next such
    event) are hashed with ``new_key_id``'s key, or with plain SHA-256 when it is absent.
    ``reason_code``: ``first_key``, ``rotated`` or ``key_removed``."""

    old_key_id: KeyId | None = None
    new_key_id: KeyId | None = None
    reason_code: Literal["first_key", "rotated", "key_removed"]
