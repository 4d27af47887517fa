"""Older snapshot formats, read so that a daemon upgraded mid-session can still recover it.

Format 1 kept every vital-signs reading, acknowledged alarm, note and confirmed adjustment
of a session, so its checkpoints grew with the session. Format 2 keeps the latest of each
and how many there were (``records.SessionData`` says why). A format-1 snapshot's data is
turned into format 2 before it is validated: the same latest records, and the counts of
the lists it carried. Nothing else differs between the two formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

CURRENT: Final = 2
READABLE: Final = frozenset({1, CURRENT})

# format-1 list -> (format-2 field of the latest entry, format-2 count field)
_LISTS: Final = {
    "vitals": ("last_vitals", "vitals_recorded"),
    "notes": ("last_note", "notes_recorded"),
    "adjustments": ("last_adjustment", "adjustments_confirmed"),
}


def _as_list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"format-1 field {key} is not a list")
    return value


def data_of_format_1(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Format-1 session data as format 2: the latest record of each list and its length."""
    if not isinstance(raw, Mapping):
        raise ValueError("format-1 session data is not an object")
    data = dict(raw)
    for old, (last, count) in _LISTS.items():
        entries = _as_list(data, old)
        data.pop(old, None)
        data[last] = entries[-1] if entries else None
        data[count] = len(entries)
    acked = _as_list(data, "acknowledged_alarms")
    data.pop("acknowledged_alarms", None)
    if not all(isinstance(a, Mapping) for a in acked):
        raise ValueError("format-1 field acknowledged_alarms holds a non-object")
    # One acknowledgement covers every alarm latched at that moment: they share its time.
    latest_at = acked[-1].get("at") if acked else None
    data["last_acknowledged"] = [a for a in acked if a.get("at") == latest_at]
    data["alarms_acknowledged"] = len(acked)
    return data
