"""One readable line per audit event, for ``pumpaudit show`` (the auditors' timeline).

The stored payload is canonical JSON; printed as is, a session's checkpoints (its whole
state, kept for recovery) fill a screen each and a table wraps them into fragments. Here a
payload becomes ``key=value`` pairs on one line: the catalogue's keys carry their units
(``rate_ml_h=150``, ``volume_ul=100000``), texts are quoted, lists are joined with commas,
nested objects are flattened (``accounting.expected_ul=…``). A checkpoint is summarised
by its state and volumes: the snapshot is internal state, and ``--json`` still prints every
event whole, exactly as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from pumpd.audit.chain import EventRecord

CHECKPOINT: Final = "session.checkpointed"
"""The recovery snapshots: listed only on request (``pumpaudit show --checkpoints``)."""

_CHECKPOINT_FIGURES: Final = ("expected_ul", "pump_counter_ul", "delivery_elapsed_ms")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_value(v) for v in value) or "[]"
    text = str(value)
    if text == "" or any(c.isspace() or c in "\"'=" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _pairs(payload: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, Mapping):
            yield from _pairs(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}={_value(value)}"


def _checkpoint(payload: Mapping[str, Any]) -> str:
    accounting = payload.get("accounting") or {}
    figures = [f"state={_value(payload.get('state'))}"]
    figures += [f"{k}={_value(accounting[k])}" for k in _CHECKPOINT_FIGURES if k in accounting]
    return " ".join(figures) + " (recovery snapshot; --json has it whole)"


_SPECIAL: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {CHECKPOINT: _checkpoint}


def details(event: EventRecord) -> str:
    """The event's payload (and its correlation id) as one line of text."""
    try:
        payload = json.loads(event.payload)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        text = json.dumps(event.payload, ensure_ascii=False)  # escaped: stays one line
    elif event.event_type in _SPECIAL:
        text = _SPECIAL[event.event_type](payload)
    else:
        text = " ".join(_pairs(payload))
    if event.correlation_id:
        text += f" [{event.correlation_id}]"
    return text
