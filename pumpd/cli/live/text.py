"""Plain-text figures for pumpctl's output: times in the clinic's zone, volumes, durations.

Kept apart from ``render`` (the rich tables and panels) so that ``--json`` commands, which
are most of what scripts and tests run, never import rich.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from pumpd.clinictime import duration_text, local_text, parse_utc, zone_or_utc


def dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def local_minute(text: object, zone_name: object) -> str:
    """An ISO 8601 UTC time from the wire in the clinic's zone, rounded *up* to the minute
    (``…T20:27:03Z`` in America/Chicago → ``2026-12-04 14:28 CST``): it is a "not before"
    time, and a discharge tried at 14:27 would still be refused."""
    moment = parse_utc(text)
    if moment is None:
        return "-" if not text else str(text)
    if moment.second or moment.microsecond:
        moment = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return local_text(moment, zone_or_utc(zone_name), date=True, seconds=False)


def clock(text: object, zone_name: object, *, date: bool = False) -> str:
    """A wire time as the clinic's wall clock with its zone (``14:05:09 CST``)."""
    moment = parse_utc(text)
    if moment is None:
        return "-"
    return local_text(moment, zone_or_utc(zone_name), date=date)


def seconds_until(at: object, as_of: object) -> int | None:
    """Whole seconds from the daemon's ``as_of`` to ``at`` (both from one answer, so a
    terminal's wrong clock, or a simulation's faster one, cannot skew a countdown)."""
    end, now = parse_utc(at), parse_utc(as_of)
    if end is None or now is None:
        return None
    return int((end - now).total_seconds())


def ml(ul: object) -> str:
    """Integer µL from the wire as mL with three decimals."""
    if isinstance(ul, bool) or not isinstance(ul, int):
        return "-"
    return f"{Decimal(ul) / 1000:.3f}"


def number(text: object, places: int = 2) -> str:
    """A Decimal-as-text figure rounded for reading; text that is not a number as is."""
    if text is None:
        return "-"
    try:
        return f"{Decimal(str(text)):.{places}f}"
    except InvalidOperation:
        return str(text)


def duration(seconds: object) -> str:
    """``2077`` → ``34 min 37 s``: with units, because a pump's own display shows h:mm and
    "34:37" could be read as hours. From an hour on, to the minute (``1 h 02 min``)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
        return "-"
    try:
        total = int(Decimal(str(seconds)))
    except InvalidOperation:
        return str(seconds)
    return duration_text(total)
