"""The staff registry: who may act at a shared nurse-station account, with a PIN hash.

Revision ID: 0003_staff_registry
Revises: 0002_auditor_views
Create Date: 2026-11-22

A mutable table beside the append-only log (``audit_event`` is untouched): an entry's PIN
hash, enabled flag, failure count and lock change, and every change is also written to the
audit log as a ``staff.*`` event, so the log stays the record and this table is state.
``pin_hash`` is an argon2id PHC string; the PIN itself is never stored. Times are the same
fixed-width UTC text as ``audit_event.occurred_at``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_staff_registry"
down_revision = "0002_auditor_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_member",
        sa.Column("staff_id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("pin_hash", sa.String(255), nullable=False),
        sa.Column(
            "enabled", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.true()
        ),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.String(27), nullable=True),
        sa.Column("created_at", sa.String(27), nullable=False),
        sa.Column("changed_at", sa.String(27), nullable=False),
        sa.CheckConstraint("role IN ('nurse', 'auditor', 'admin')", name="role"),
        sa.CheckConstraint("failures >= 0", name="failures"),
    )


def downgrade() -> None:
    raise RuntimeError("downgrade of the audit database is not supported")
