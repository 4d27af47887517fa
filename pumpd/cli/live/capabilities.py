"""What a pump can do and report, in words for ``pumpctl pumps``, ``status`` and ``watch``.

A reading the pump cannot give is shown as "not reported by this pump", never as "-"
(which means "not known just now") and never as a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text

NOT_REPORTED = "not reported by this pump"
"""The daemon's words (pumpd.drivers.capabilities.NOT_REPORTED); repeated here because
the client renders only what the wire says and imports nothing of the daemon's drivers."""

READINGS = (
    ("pressure_downstream_mmhg", "line pressure", "mmHg"),
    ("battery_percent", "battery", "%"),
)


def capability_text(caps: Mapping[str, Any] | None) -> Text:
    """One cell: the abilities a nurse or technician needs to know about this pump."""
    if not caps:
        return Text("not known until pumpd supervises it", "dim")
    wd = caps.get("watchdog")
    parts = [
        "stops itself at its volume"
        if caps.get("pump_vtbi_stop")
        else "no volume stop of its own: pumpd stops it",
        f"watchdog {wd.get('min_s')}-{wd.get('max_s')} s ({wd.get('set_by')})"
        if isinstance(wd, Mapping)
        else "NO WATCHDOG",
        "confirms by "
        + ("sequence echo" if caps.get("confirmation") == "sequence-echo" else "read-back"),
    ]
    if not caps.get("kvo"):
        parts.append("no KVO")
    if not caps.get("priming"):
        parts.append("no priming")
    for key, label in (("reports_pressure", "pressure"), ("reports_battery", "battery")):
        if not caps.get(key):
            parts.append(f"{label}: {NOT_REPORTED}")
    alarms = caps.get("detected_alarms") or []
    parts.append("detects " + (", ".join(str(a).lower() for a in alarms) or "no alarms"))
    text = Text("; ".join(parts))
    if not isinstance(wd, Mapping):
        text.stylize("bold red")
    return text


def reading_rows(view: Mapping[str, Any]) -> list[tuple[str, Text]]:
    """Line pressure and battery: the figure, "-" when not known now, or not reported."""
    if "not_reported" not in view:
        return []
    absent = set(view.get("not_reported") or [])
    rows = []
    for key, label, unit in READINGS:
        value = view.get(key)
        if key in absent:
            rows.append((label, Text(NOT_REPORTED, "dim italic")))
        else:
            rows.append((label, Text("-" if value is None else f"{value} {unit}")))
    return rows
