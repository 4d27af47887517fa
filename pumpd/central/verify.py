"""The centre's own findings about one site, beside the chain walk ``pumpaudit verify`` does.

The chain walk (pumpd/audit/verify.py, on the views narrowed to the site) proves the rows
the centre holds are one unbroken chain. What it cannot see, the centre recorded as the
rows arrived or holds beside them:

- a conflict (``central_conflict``): the site sent another event under a number already
  held, a row that did not chain to the held one, or claimed its id with another log —
  the site's log was rewritten, cut or replaced after forwarding;
- a published head (``central_head``) that forks from the held chain: the site's log was
  rewritten before those events were forwarded (or the head was forged).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, event, select, text

from pumpd.central.schema import SITE_SETTING, central_conflict
from pumpd.db import reader


@dataclass(frozen=True, slots=True)
class CentralFinding:
    seq: int
    kind: str
    detail: str


class UnknownSite(LookupError):
    """The centre holds no site of that id."""


def narrow_to_site(engine: Engine, site: str) -> None:
    """Every connection of ``engine`` sees ``site``'s rows only in the auditors' views."""

    @event.listens_for(engine.pool, "connect")
    def _scope(dbapi_con: object, _record: object) -> None:
        cur = dbapi_con.cursor()  # type: ignore[attr-defined]
        try:
            cur.execute("SELECT set_config(%s, %s, false)", (SITE_SETTING, site))
        finally:
            cur.close()
        dbapi_con.commit()  # type: ignore[attr-defined]


def check_site(conn: Connection, site: str) -> None:
    known = [
        str(s) for s in conn.execute(text("SELECT site FROM central_site ORDER BY site")).scalars()
    ]
    if site not in known:
        listed = ", ".join(known) or "none yet"
        raise UnknownSite(f"the central store holds no site {site!r} (sites: {listed})")


def central_findings(engine: Engine, site: str) -> list[CentralFinding]:
    """Every finding about ``site``, in seq order (the first is the one to report)."""
    findings: list[CentralFinding] = []
    with reader(engine).connect() as conn:
        check_site(conn, site)
        for row in conn.execute(
            select(
                central_conflict.c.seq,
                central_conflict.c.kind,
                central_conflict.c.detail,
                central_conflict.c.detected_at,
            )
            .where(central_conflict.c.site == site)
            .order_by(central_conflict.c.seq, central_conflict.c.id)
        ):
            findings.append(
                CentralFinding(
                    int(row.seq),
                    f"conflict:{row.kind}",
                    f"{row.detail} (recorded at the centre {row.detected_at:%Y-%m-%dT%H:%M:%SZ})",
                )
            )
        # Through the auditors' view: the auditor role reads no table of events.
        for row in conn.execute(
            text(
                "SELECT h.seq, h.event_hash, h.ts, e.event_hash FROM central_head h "
                "JOIN audit_events e ON e.site = h.site AND e.seq = h.seq "
                "WHERE h.site = :site AND e.event_hash <> h.event_hash ORDER BY h.seq"
            ),
            {"site": site},
        ):
            findings.append(
                CentralFinding(
                    int(row[0]),
                    "head_fork",
                    f"the head published at {row[2]} names event {row[0]} as {row[1][:16]}…, "
                    f"the centre holds {row[3][:16]}…: the site's log was rewritten before "
                    "it was forwarded",
                )
            )
    findings.sort(key=lambda f: f.seq)
    return findings
