"""security: session versions, token expiry, idempotency records that expire and keep no names

``users.session_version`` is stamped in the session cookie at login and checked at each request (bumped at
logout everywhere, password change, deactivation); ``api_tokens.expires_at`` is an optional expiry;
``idempotency_records`` gain ``resource_reference`` (a replay reads the pupil again instead of keeping its
names) and an index on ``created_at`` for the cleanup of records older than a day.

Revision ID: c5e0a9d1f10a
Revises: a77e65262327
Create Date: 2026-11-29 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c5e0a9d1f10a"
down_revision = "a77e65262327"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("idempotency_records") as batch:
        batch.add_column(sa.Column("resource_reference", sa.String(length=64), nullable=True))
        batch.create_index("ix_idempotency_records_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_index("ix_idempotency_records_created_at")
        batch.drop_column("resource_reference")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
