"""status board reads assignments alone

Each assignment keeps its device's status (``device_status``, maintained by the device transitions while it is
active, frozen when it ends), so that the status board aggregates one table from covering indexes instead of
joining 500 000 devices (measured by ``scripts/bench board``). Existing rows are filled from their device.

Revision ID: 8b75733f6b58
Revises: 982581d4309f
Create Date: 2026-11-28 07:27:09.011629
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "8b75733f6b58"
down_revision = "982581d4309f"
branch_labels = None
depends_on = None


DEVICE_STATUS = sa.Enum(
    "en_stock",
    "attribue",
    "sur_bordereau",
    "prepare",
    "expedie",
    "receptionne",
    "remis",
    "retourne",
    "defectueux",
    "perdu",
    name="assignment_device_status",
    native_enum=False,
    create_constraint=True,
)


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_status", DEVICE_STATUS, nullable=True))
    op.execute(
        "UPDATE assignments SET device_status = "
        "(SELECT devices.status FROM devices WHERE devices.id = assignments.device_id)"
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.alter_column("device_status", existing_type=DEVICE_STATUS, nullable=False)
        batch_op.drop_index(batch_op.f("ix_assignments_envelope_active"))
        batch_op.drop_index(batch_op.f("ix_assignments_qpv_code"))
        batch_op.create_index(
            "ix_assignments_envelope_cost",
            ["envelope_id", "cancelled_at", "device_status", "unit_cost_cents"],
            unique=False,
        )
        batch_op.create_index(
            "ix_assignments_qpv_board",
            ["qpv_code", "device_status", "cancelled_at", "unit_cost_cents", "kind"],
            unique=False,
        )

    with op.batch_alter_table("pupils", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pupils_qpv_code"))
        batch_op.create_index(
            "ix_pupils_qpv_needs",
            ["qpv_code", "organisation_id", "needs_tablet", "needs_laptop", "needs_connection", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("pupils", schema=None) as batch_op:
        batch_op.drop_index("ix_pupils_qpv_needs")
        batch_op.create_index(batch_op.f("ix_pupils_qpv_code"), ["qpv_code"], unique=False)

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_qpv_board")
        batch_op.drop_index("ix_assignments_envelope_cost")
        batch_op.create_index(batch_op.f("ix_assignments_qpv_code"), ["qpv_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assignments_envelope_active"), ["envelope_id", "cancelled_at"], unique=False
        )
        batch_op.drop_constraint(batch_op.f("ck_assignments_assignment_device_status"), type_="check")
        batch_op.drop_column("device_status")
