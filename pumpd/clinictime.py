"""The clinic's local time: how a person reads a moment; the audit log keeps UTC.

The daemon's ``[daemon] timezone`` (an IANA name such as ``America/Chicago``; by default the
system's own zone) is the clinic's zone. The daemon tells its clients the name, so a
terminal set to another zone, or a board in a browser, still shows the clinic's time, each
time with its zone written beside it (``14:05:09 CST``): a bare "14:05" could be UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

FALLBACK_ZONE = "UTC"


class UnknownZone(ValueError):
    """A time zone name that is not in the IANA database of this machine."""


def system_zone_name() -> str:
    """This machine's zone as an IANA name (``TZ``, ``/etc/timezone``, ``/etc/localtime``);
    UTC when the system does not name one."""
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except (LookupError, ValueError, OSError):
        return FALLBACK_ZONE
    if not name:
        return FALLBACK_ZONE
    try:
        zone_of(name)
    except UnknownZone:
        return FALLBACK_ZONE
    return name


@lru_cache(maxsize=32)
def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The zone called ``name``, or :class:`UnknownZone` with a sentence a person can act on."""
    problem = (
        f"{name!r} is not a time zone name this machine knows; give an IANA name such as "
        '"Europe/Vienna", "America/Chicago" or "UTC"'
    )
    if not name or name != name.strip() or name.startswith("/") or ".." in name:
        raise UnknownZone(problem)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownZone(problem) from None


def zone_or_utc(name: object) -> zoneinfo.ZoneInfo:
    """For a client: the zone the daemon named, or UTC when it named none we know (an old
    daemon). Never the terminal's own zone: a person must read the clinic's time."""
    if isinstance(name, str):
        try:
            return zone_of(name)
        except UnknownZone:
            pass
    return zone_of(FALLBACK_ZONE)


def parse_utc(text: object) -> dt.datetime | None:
    """An ISO 8601 time from the wire (``…Z`` or ``…+00:00``) as an aware datetime."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """The wire's form of a moment: UTC, to the second, ``Z`` (``2026-12-06T23:40:05Z``)."""
    utc = moment.astimezone(dt.UTC).replace(microsecond=0)
    return utc.isoformat().replace("+00:00", "Z")


def local_text(
    moment: dt.datetime, zone: zoneinfo.ZoneInfo, *, date: bool = False, seconds: bool = True
) -> str:
    """``14:05:09 CST`` (``date``: ``2026-12-06 14:05:09 CST``): the clinic's wall clock
    with its zone's abbreviation, so it is never mistaken for UTC or the terminal's zone."""
    local = moment.astimezone(zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    fmt = f"%Y-%m-%d {clock} %Z" if date else f"{clock} %Z"
    return local.strftime(fmt)


def duration_text(seconds: float) -> str:
    """``2077`` → ``34 min 37 s``: the one way a duration is written for people, with
    units (a pump's own display shows h:mm, so "34:37" could be read as hours). From an
    hour on, to the minute (``1 h 02 min``)."""
    total = int(seconds)
    sign = "-" if total < 0 else ""
    h, rest = divmod(abs(total), 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h} h {m:02d} min"
    return f"{sign}{m} min {s:02d} s" if m else f"{sign}{s} s"
