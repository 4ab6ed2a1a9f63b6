"""audit records of administration (users, centres): audit_log.study_id may be empty

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = ("UPDATE", "DELETE")


def _sqlite_triggers(create: bool) -> None:
    """SQLite rebuilds the table to change a column (batch mode), which drops its triggers: the
    append-only triggers of 0001 are dropped before and created again after."""
    for what in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{what.lower()}")
        if create:
            op.execute(
                f"CREATE TRIGGER audit_log_no_{what.lower()} BEFORE {what} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def _study_id_nullable(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        _sqlite_triggers(create=False)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('study_id', existing_type=sa.Integer(), nullable=nullable)
    if sqlite:
        _sqlite_triggers(create=True)


def upgrade() -> None:
    _study_id_nullable(True)


def downgrade() -> None:  # fails while records of administration (no study) exist
    _study_id_nullable(False)
