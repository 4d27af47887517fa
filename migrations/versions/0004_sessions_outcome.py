"""The sessions view says what became of a session in the words ``pumpaudit sessions`` uses.

Revision ID: 0004_sessions_outcome
Revises: 0003_staff_registry
Create Date: 2026-12-07

``audit_sessions.outcome`` was the type of the session's last ending event
(``infusion.completed`` or ``session.stopped``), so a session abandoned before any start
(``session.stopped`` with reason ``abort``) read as stopped, and one not ended yet as
NULL. It is now the outcome as ``pumpaudit sessions`` folds it from the same events
(pumpd/audit/queries.py): ``completed``, ``aborted`` (stopped with reason ``abort`` and
never started), ``stopped`` (every other stop: a nurse's, an interlock's, a
delivery-accuracy alarm after which the session ended by itself), ``running`` (started,
not ended) or ``programmed`` (never started). Every other column is unchanged.

On PostgreSQL the view is replaced in place (``CREATE OR REPLACE VIEW``: same columns,
same types), so its owner and the auditor's grant stay as ``postgres-roles.sql`` set them;
SQLite has no grants and recreates it.
"""

from __future__ import annotations

from alembic import op

revision = "0004_sessions_outcome"
down_revision = "0003_staff_registry"
branch_labels = None
depends_on = None

_END_TYPES = "('infusion.completed', 'session.stopped')"


def _j(alias: str, field: str, sqlite: bool) -> str:
    if sqlite:
        return f"json_extract({alias}.payload, '$.{field}')"
    return f"(({alias}.payload)::jsonb ->> '{field}')"


def _end(field: str) -> str:
    """A field of the session's last ending event (completed or stopped)."""
    return (
        f"(SELECT {field} FROM audit_event x WHERE x.session_id = p.session_id "
        f"AND x.event_type IN {_END_TYPES} ORDER BY x.seq DESC LIMIT 1)"
    )


def _started() -> str:
    return (
        "(SELECT MIN(x.occurred_at) FROM audit_event x WHERE x.session_id = p.session_id "
        "AND x.event_type = 'session.started')"
    )


def outcome_sql(sqlite: bool) -> str:
    """The outcome column: the fold of pumpd/audit/queries.py ``SessionSummary``."""
    end_type = _end("x.event_type")
    reason = _end(_j("x", "reason_code", sqlite))
    words = f"""CASE
         WHEN {end_type} = 'infusion.completed' THEN 'completed'
         WHEN {end_type} = 'session.stopped' AND {reason} = 'abort'
              AND {_started()} IS NULL THEN 'aborted'
         WHEN {end_type} = 'session.stopped' THEN 'stopped'
         WHEN {_started()} IS NOT NULL THEN 'running'
         ELSE 'programmed'
       END"""
    return words if sqlite else f"CAST({words} AS VARCHAR(80))"


def sessions_sql(sqlite: bool) -> str:
    def j(alias: str, field: str) -> str:
        return _j(alias, field, sqlite)

    def count(event_type: str) -> str:
        return (
            "(SELECT COUNT(*) FROM audit_event x WHERE x.session_id = p.session_id "
            f"AND x.event_type = '{event_type}')"
        )

    return f"""
SELECT p.session_id, p.patient_ref, p.pump_id,
       {j("p", "protocol_id")} AS protocol_id,
       {j("p", "protocol_version")} AS protocol_version,
       {j("p", "prescribed_dose_mg")} AS prescribed_dose_mg,
       {j("p", "rate_ml_h")} AS rate_ml_h,
       {j("p", "volume_ul")} AS planned_volume_ul,
       p.occurred_at AS programmed_at,
       p.actor_name AS programmed_by,
       {_started()} AS started_at,
       {_end("x.occurred_at")} AS ended_at,
       {outcome_sql(sqlite)} AS outcome,
       {_end(j("x", "delivered_volume_ul"))} AS delivered_volume_ul,
       {_end(j("x", "delivered_dose_mg"))} AS delivered_dose_mg,
       {count("alarm.raised")} AS alarms,
       {count("override.granted")} AS overrides,
       p.simulated
FROM audit_event p
WHERE p.event_type = 'session.programmed'
  AND p.seq = (SELECT MIN(y.seq) FROM audit_event y WHERE y.session_id = p.session_id
                 AND y.event_type = 'session.programmed')""".strip()


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP VIEW audit_sessions")
        op.execute(f"CREATE VIEW audit_sessions AS {sessions_sql(sqlite)}")
    else:
        op.execute(f"CREATE OR REPLACE VIEW audit_sessions AS {sessions_sql(sqlite)}")


def downgrade() -> None:
    raise RuntimeError("downgrade of the audit log is not supported")
