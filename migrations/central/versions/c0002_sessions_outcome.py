"""The central sessions view says what became of a session as the sites' view does.

Revision ID: c0002_sessions_outcome
Revises: c0001_central_store
Create Date: 2026-12-07

The central ``audit_sessions`` is the sites' view with a ``site`` column; its ``outcome``
changes as the site's does in ``0004_sessions_outcome``: ``completed``, ``aborted``
(stopped with reason ``abort`` and never started), ``stopped``, ``running`` or
``programmed``, the words ``pumpaudit sessions`` uses, instead of the type of the last
ending event. Replaced in place (same columns, same types), so its owner and the auditor's
grant from ``central-roles.sql`` stay.
"""

from __future__ import annotations

from alembic import op

revision = "c0002_sessions_outcome"
down_revision = "c0001_central_store"
branch_labels = None
depends_on = None

_SCOPE = "central_scoped_event"
_END_TYPES = "('infusion.completed', 'session.stopped')"


def _j(alias: str, field: str) -> str:
    return f"(({alias}.payload)::jsonb ->> '{field}')"


def _end(field: str) -> str:
    return (
        f"(SELECT {field} FROM {_SCOPE} x WHERE x.site = p.site AND x.session_id = p.session_id "
        f"AND x.event_type IN {_END_TYPES} ORDER BY x.seq DESC LIMIT 1)"
    )


def _count(event_type: str) -> str:
    return (
        f"(SELECT COUNT(*) FROM {_SCOPE} x WHERE x.site = p.site "
        f"AND x.session_id = p.session_id AND x.event_type = '{event_type}')"
    )


def _started() -> str:
    return (
        f"(SELECT MIN(x.occurred_at) FROM {_SCOPE} x WHERE x.site = p.site "
        "AND x.session_id = p.session_id AND x.event_type = 'session.started')"
    )


def _outcome() -> str:
    end_type = _end("x.event_type")
    return f"""CAST(CASE
         WHEN {end_type} = 'infusion.completed' THEN 'completed'
         WHEN {end_type} = 'session.stopped' AND {_end(_j("x", "reason_code"))} = 'abort'
              AND {_started()} IS NULL THEN 'aborted'
         WHEN {end_type} = 'session.stopped' THEN 'stopped'
         WHEN {_started()} IS NOT NULL THEN 'running'
         ELSE 'programmed'
       END AS VARCHAR(80))"""


def sessions_sql() -> str:
    j = _j
    return f"""
SELECT p.site, p.session_id, p.patient_ref, p.pump_id,
       {j("p", "protocol_id")} AS protocol_id,
       {j("p", "protocol_version")} AS protocol_version,
       {j("p", "prescribed_dose_mg")} AS prescribed_dose_mg,
       {j("p", "rate_ml_h")} AS rate_ml_h,
       {j("p", "volume_ul")} AS planned_volume_ul,
       p.occurred_at AS programmed_at,
       p.actor_name AS programmed_by,
       {_started()} AS started_at,
       {_end("x.occurred_at")} AS ended_at,
       {_outcome()} AS outcome,
       {_end(j("x", "delivered_volume_ul"))} AS delivered_volume_ul,
       {_end(j("x", "delivered_dose_mg"))} AS delivered_dose_mg,
       {_count("alarm.raised")} AS alarms,
       {_count("override.granted")} AS overrides,
       p.simulated
FROM {_SCOPE} p
WHERE p.event_type = 'session.programmed'
  AND p.seq = (SELECT MIN(y.seq) FROM {_SCOPE} y WHERE y.site = p.site
                 AND y.session_id = p.session_id AND y.event_type = 'session.programmed')""".strip()


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        raise RuntimeError("a central store is PostgreSQL only")
    op.execute(f"CREATE OR REPLACE VIEW audit_sessions AS {sessions_sql()}")


def downgrade() -> None:
    raise RuntimeError("downgrade of the central store is not supported")
