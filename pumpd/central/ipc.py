"""What the daemon and its forwarding process say to each other: JSON lines over pipes.

The daemon writes one start line (the ``[forward]`` settings and the site's database URL:
on a pipe, never on the command line, where ``ps`` would show a password); the process
answers ``ready`` once its forwarder is built. Then the daemon writes one ``step`` line
per step, and the process answers each with one reply line carrying the
outcome and a snapshot of the forwarder's status. Nothing else crosses: the process keeps
its engines, its mark and its connection to the centre to itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pumpd.central.forwarder import Conflict, ConflictKind, ForwardSettings, ForwardStatus, State

STEP = b"step\n"
READY = b"ready\n"
"""The process's first line: its forwarder is built (its imports, slow on a loaded machine,
are done), so a step's time is the step's alone."""

Outcome = Literal["ok", "unavailable", "conflict", "error"]
"""ok: a step ran; unavailable: the centre could not be reached (retry with backoff);
conflict: a tamper finding (forwarding stops); error: a fault in the step itself."""


class ProtocolError(ValueError):
    """A line that is not what the other end should have sent."""


@dataclass(frozen=True, slots=True)
class StepReply:
    outcome: Outcome
    status: ForwardStatus
    shipped: int = 0
    full: bool = False
    error: str | None = None
    conflict: Conflict | None = None


def encode_start(settings: ForwardSettings, database: str) -> bytes:
    data = asdict(settings)
    data["mark_file"] = str(settings.mark_file)
    return _line({"settings": data, "database": database})


def decode_start(line: bytes) -> tuple[ForwardSettings, str]:
    raw = _object(line)
    try:
        settings = dict(raw["settings"])
        settings["mark_file"] = Path(settings["mark_file"])
        return ForwardSettings(**settings), str(raw["database"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"not a start line: {exc}") from exc


def encode_reply(reply: StepReply) -> bytes:
    return _line(
        {
            "outcome": reply.outcome,
            "status": reply.status.as_json(),
            "shipped": reply.shipped,
            "full": reply.full,
            "error": reply.error,
            "conflict": None if reply.conflict is None else asdict(reply.conflict),
        }
    )


def decode_reply(line: bytes) -> StepReply:
    raw = _object(line)
    try:
        outcome = raw["outcome"]
        if outcome not in get_args(Outcome):
            raise ValueError(f"unknown outcome {outcome!r}")
        return StepReply(
            outcome=cast(Outcome, outcome),
            status=decode_status(raw["status"]),
            shipped=int(raw["shipped"]),
            full=bool(raw["full"]),
            error=None if raw["error"] is None else str(raw["error"]),
            conflict=_conflict(raw["conflict"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"not a step reply: {exc}") from exc


def decode_status(raw: dict[str, Any]) -> ForwardStatus:
    """The inverse of :meth:`ForwardStatus.as_json`."""
    state = raw["state"]
    if state not in get_args(State):
        raise ValueError(f"unknown state {state!r}")
    return ForwardStatus(
        site=str(raw["site"]),
        state=cast(State, state),
        acked_seq=int(raw["acked_seq"]),
        local_seq=int(raw["local_seq"]),
        lag_events=int(raw["lag_events"]),
        lag_s=float(raw["lag_s"]),
        error=None if raw["error"] is None else str(raw["error"]),
        conflict=_conflict(raw["conflict"]),
        shipped=int(raw["shipped"]),
    )


def _conflict(raw: Any) -> Conflict | None:
    if raw is None:
        return None
    kind = raw["kind"]
    if kind not in get_args(ConflictKind):
        raise ValueError(f"unknown conflict kind {kind!r}")
    return Conflict(cast(ConflictKind, kind), int(raw["seq"]), str(raw["detail"]))


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {line[:200]!r}") from exc
    if not isinstance(raw, dict):
        raise ProtocolError(f"not a JSON object: {line[:200]!r}")
    return raw
