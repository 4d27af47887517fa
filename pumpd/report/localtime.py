"""The clinic's time zone for times a person reads; the audit itself stays UTC."""

from __future__ import annotations

from datetime import datetime, tzinfo

from pumpd.clinictime import UnknownZone, system_zone_name, zone_of


class UnknownTimeZone(ValueError):
    """A zone name the system's tz database does not know."""


def clinic_zone(name: str | None = None) -> tzinfo:
    """``name`` (an IANA zone such as ``Europe/Berlin``), else the system's own zone, by its
    name, so that summer time is right for every date of the record, not only today's."""
    if not name:
        return zone_of(system_zone_name())
    try:
        return zone_of(name)
    except UnknownZone:
        raise UnknownTimeZone(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
        ) from None


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
