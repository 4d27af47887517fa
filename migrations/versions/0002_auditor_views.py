"""Read-only views for auditors (psql, BI tools): events, sessions, alarms, overrides, commands.

Revision ID: 0002_auditor_views
Revises: 0001_audit_event
Create Date: 2026-11-22

Payload fields are pulled out with the back end's JSON functions; ``occurred_at`` stays the
ISO-8601 UTC text that is hashed (it sorts correctly; cast with ``::timestamptz`` on
PostgreSQL when a timestamp type is wanted).
"""

from __future__ import annotations

from alembic import op

revision = "0002_auditor_views"
down_revision = "0001_audit_event"
branch_labels = None
depends_on = None

VIEWS = ("audit_events", "audit_sessions", "audit_alarms", "audit_overrides", "audit_commands")

_ENVELOPE = (
    "seq, occurred_at, mono_ns, host, instance_id, actor_kind, actor_uid, actor_name, "
    "actor_role, pump_id, session_id, patient_ref, event_type, correlation_id, simulated, "
    "payload, prev_hash, event_hash"
)

_END_TYPES = "('infusion.completed', 'session.stopped')"
_RESULT_TYPES = "('pump.command.confirmed', 'pump.command.uncertain', 'pump.command.failed')"


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


def _view_sql(sqlite: bool) -> dict[str, str]:
    def j(alias: str, field: str) -> str:
        return _j(alias, field, sqlite)

    def count(event_type: str) -> str:
        return (
            "(SELECT COUNT(*) FROM audit_event x WHERE x.session_id = p.session_id "
            f"AND x.event_type = '{event_type}')"
        )

    return {
        "audit_events": f"SELECT {_ENVELOPE} FROM audit_event",
        "audit_sessions": f"""
SELECT p.session_id, p.patient_ref, p.pump_id,
       {j("p", "protocol_id")} AS protocol_id,
       {j("p", "protocol_version")} AS protocol_version,
       {j("p", "prescribed_dose_mg")} AS prescribed_dose_mg,
       {j("p", "rate_ml_h")} AS rate_ml_h,
       {j("p", "volume_ul")} AS planned_volume_ul,
       p.occurred_at AS programmed_at,
       p.actor_name AS programmed_by,
       (SELECT MIN(x.occurred_at) FROM audit_event x WHERE x.session_id = p.session_id
          AND x.event_type = 'session.started') AS started_at,
       {_end("x.occurred_at")} AS ended_at,
       {_end("x.event_type")} AS outcome,
       {_end(j("x", "delivered_volume_ul"))} AS delivered_volume_ul,
       {_end(j("x", "delivered_dose_mg"))} AS delivered_dose_mg,
       {count("alarm.raised")} AS alarms,
       {count("override.granted")} AS overrides,
       p.simulated
FROM audit_event p
WHERE p.event_type = 'session.programmed'
  AND p.seq = (SELECT MIN(y.seq) FROM audit_event y WHERE y.session_id = p.session_id
                 AND y.event_type = 'session.programmed')""",
        "audit_alarms": f"""
SELECT r.seq, r.occurred_at AS raised_at, r.correlation_id AS alarm_id,
       r.session_id, r.patient_ref, r.pump_id,
       {j("r", "alarm_code")} AS alarm_code,
       {j("r", "priority")} AS priority,
       {j("r", "source")} AS source,
       {j("r", "message")} AS message,
       (SELECT MIN(a.occurred_at) FROM audit_event a WHERE a.correlation_id = r.correlation_id
          AND a.event_type = 'alarm.acknowledged') AS acknowledged_at,
       (SELECT a.actor_name FROM audit_event a WHERE a.correlation_id = r.correlation_id
          AND a.event_type = 'alarm.acknowledged' ORDER BY a.seq LIMIT 1) AS acknowledged_by,
       r.simulated
FROM audit_event r
WHERE r.event_type = 'alarm.raised'""",
        "audit_overrides": f"""
SELECT o.seq, o.occurred_at, o.session_id, o.patient_ref, o.pump_id,
       o.actor_name AS recorded_by,
       {j("o", "reason_code")} AS reason_code,
       {j("o", "reason")} AS reason,
       {j("o", "approved_by")} AS approved_by,
       {j("o", "witness")} AS witness,
       {j("o", "verdict_codes") if sqlite else "((o.payload)::jsonb -> 'verdict_codes')::text"}
         AS verdict_codes,
       o.simulated
FROM audit_event o
WHERE o.event_type = 'override.granted'""",
        "audit_commands": f"""
SELECT q.seq AS requested_seq, q.occurred_at AS requested_at, q.correlation_id,
       q.pump_id, q.session_id, q.patient_ref, q.actor_name AS requested_by,
       {j("q", "command")} AS command,
       {j("q", "rate_ml_h")} AS rate_ml_h,
       {j("q", "volume_ul")} AS volume_ul,
       r.seq AS result_seq, r.occurred_at AS result_at, r.event_type AS result_type,
       q.simulated
FROM audit_event q
LEFT JOIN audit_event r ON r.correlation_id = q.correlation_id
      AND r.event_type IN {_RESULT_TYPES}
WHERE q.event_type = 'pump.command.requested'""",
    }


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, body in _view_sql(sqlite).items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")
        if not sqlite:
            op.execute(f"REVOKE ALL ON {name} FROM PUBLIC")


def downgrade() -> None:
    raise RuntimeError("downgrade of the audit log is not supported")
