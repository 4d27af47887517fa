"""One readable line per audit event, for ``pumpaudit show`` (the auditors' timeline).

The stored payload is canonical JSON; printed as is, a session's checkpoints (its whole
state, kept for recovery) fill a screen each and a table wraps them into fragments. Here a
payload becomes ``key=value`` pairs on one line: the catalogue's keys carry their units
(``rate_ml_h=150``, ``volume_ul=100000``), texts are quoted, lists are joined with commas,
nested objects are flattened (``accounting.expected_ul=…``). A checkpoint is summarised
by its state and volumes: the snapshot is internal state; a start's supervision limits are
said in words, without their sources. ``--json`` still prints every event whole, exactly
as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Final

from pumpd.audit import EventRecord
from pumpd.controller import CheckpointRecord, CheckpointUnreadable

CHECKPOINT: Final = "session.checkpointed"
"""The recovery snapshots: listed only on request (``pumpaudit show --checkpoints``)."""


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
    figures = [f"state={_value(payload.get('state'))}"]
    try:
        record = CheckpointRecord.read(payload)
    except CheckpointUnreadable as exc:
        return f"{figures[0]} (unreadable recovery snapshot: {exc}; --json has it whole)"
    accounting = record.accounting
    if accounting.expected_ul is not None:
        figures.append(f"expected_ul={accounting.expected_ul}")
    if accounting.pump is not None:
        figures.append(f"pump_counter_ul={accounting.pump.counter_ul}")
    if accounting.delivery_elapsed_ms is not None:
        figures.append(f"delivery_elapsed_ms={accounting.delivery_elapsed_ms}")
    return " ".join(figures) + " (recovery snapshot; --json has it whole)"


def _figure(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _duration(ms: Any) -> str:
    """Whole minutes as minutes (a protocol's pause and delivery bounds), else seconds."""
    if int(ms) >= 60_000 and int(ms) % 60_000 == 0:
        return f"{int(ms) // 60_000} min"
    return f"{_figure(Decimal(int(ms)) / 1000)} s"


def _percent(fraction: Any) -> str:
    return f"{_figure(Decimal(str(fraction)) * 100)} %"


def _started(payload: Mapping[str, Any]) -> str:
    """The plan, then the kernel's limits in a nurse's words; their sources stay in --json."""
    text = " ".join(_pairs({k: v for k, v in payload.items() if k != "supervision"}))
    limits = payload.get("supervision")
    if not isinstance(limits, Mapping):
        return text
    volume_rel, rate_rel = (
        _percent(limits[k]) for k in ("volume_tolerance_rel", "rate_tolerance_rel")
    )
    parts = [
        f"volume ±{limits['volume_tolerance_abs_ul']} µL or {volume_rel}",
        f"rate ±{limits['rate_tolerance_abs_ml_h']} mL/h or {rate_rel}",
        f"link lost after {_duration(limits['comm_timeout_ms'])}",
        f"VTBI +{limits['vtbi_overrun_ul']} µL",
    ]
    if limits.get("max_delivery_ms") is not None:
        parts.append(f"delivery ≤ {_duration(limits['max_delivery_ms'])}")
    parts.append(f"pause ≤ {_duration(limits['pause_stop_after_ms'])}")
    return f"{text} limits: {', '.join(parts)} (--json has their sources)"


_SPECIAL: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {
    CHECKPOINT: _checkpoint,
    "session.started": _started,
}


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
