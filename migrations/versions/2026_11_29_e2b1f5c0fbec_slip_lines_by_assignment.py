"""Slip lines by assignment: the device export joins each assignment to its active slip line (without this
index SQLite built a temporary one at every export, PostgreSQL scanned the lines)

Revision ID: e2b1f5c0fbec
Revises: d704b5eebf12
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "e2b1f5c0fbec"
down_revision = "d704b5eebf12"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slip_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slip_lines_assignment_id"), ["assignment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slip_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slip_lines_assignment_id"))
