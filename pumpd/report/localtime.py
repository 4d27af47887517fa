"""The clinic's time zone for times a person reads; the audit itself stays UTC."""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class UnknownTimeZone(ValueError):
    """A zone name the system's tz database does not know."""


def clinic_zone(name: str | None = None) -> tzinfo:
    """``name`` (an IANA zone such as ``Europe/Berlin``), else the system's own zone.

    The system's zone is read as a name where the system gives one (``$TZ``, the target of
    ``/etc/localtime``) so that summer time is right for every date of the record, not only
    for today's offset.
    """
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UnknownTimeZone(
                f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
            ) from None
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    link = Path("/etc/localtime")
    try:
        target = str(link.resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        try:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    local = datetime.now(UTC).astimezone().tzinfo
    return local if local is not None else UTC


def zone_label(zone: tzinfo) -> str:
    """The zone as a person names it: ``Europe/Berlin`` or ``UTC``."""
    key = getattr(zone, "key", None)
    return str(key) if key else (zone.tzname(None) or "local")


def parse_utc(text: str) -> datetime:
    """A stored ``occurred_at`` (``...Z``) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local_text(moment: datetime, zone: tzinfo, *, seconds: bool = True) -> str:
    """``2026-12-06 09:14:05 CET``: date, time and the zone's abbreviation at that moment."""
    here = moment.astimezone(zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{here.strftime('%Y-%m-%d ' + clock)} {here.tzname() or zone_label(zone)}"
