"""No new delivery while the audit database is away: refused at the socket, at once.

The interlock is the controller's: a prime, start or resume whose write-ahead intent is not
committed in the database in time is not sent (docs/controller.md, Write-ahead). This is
the nurse's answer in front of it. While the daemon's writer spools (docs/audit-spool.md)
a ``program``, ``prime``, ``start`` or ``resume`` is refused before anything changes, with
a sentence that says why and what still works, instead of an intent that times out.

``program`` is refused too, although it moves no fluid: it opens a new session, and no new
session may start while its events cannot be written to the database. Refusing it at the
first step tells the nurse before the patient is prepared, not after the line is primed;
and should the spool fail as well, a programmed session would have no durable record at
all. A session programmed before the outage can still be double-checked; stop, pause,
acknowledgements, vitals and notes are never refused for the outage (they are made durable
in the spool).
"""

from __future__ import annotations

import datetime as dt

from pumpd.audit import AsyncAuditWriter
from pumpd.clinictime import duration_text

from .rpc import Code, RpcError


def refuse_while_unavailable(writer: AsyncAuditWriter, what: str) -> None:
    """Raise ``audit_unavailable`` for ``what`` while the writer cannot reach the database."""
    health = writer.health()
    if not health.degraded:
        return
    since = ""
    if health.degraded_since is not None:  # a duration: no time of day in a zone to misread
        lasted_s = (dt.datetime.now(dt.UTC) - health.degraded_since).total_seconds()
        since = f" for {duration_text(max(0.0, lasted_s))}"
    reason = f" ({health.reason[:160]})" if health.reason else ""
    if health.spool_failing:
        kept = "events cannot be made durable at all (the local spool fails too)"
    else:
        kept = "events are kept in the local spool until it answers"
    raise RpcError(
        Code.AUDIT_UNAVAILABLE,
        f"{what} refused: the audit database is not taking events{since}{reason}; {kept}, "
        "and no session can be programmed, primed, started or resumed meanwhile (stop, "
        "pause, acknowledgements, vitals and notes still work)",
        reason="audit_database_unavailable",
        spooled=health.spooled,
    )
