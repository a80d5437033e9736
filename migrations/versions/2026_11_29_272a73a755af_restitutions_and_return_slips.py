"""restitutions and return slips

End of loan (issue 13, point 2): ``restitutions`` (what a family brings back, with a receipt) and their lines,
``return_slips`` with their lines and journal (the organisation sends the returned devices back to the
warehouse that delivered them), and ``return_tallies`` (the board's counters of returned devices). New tables
only: the delivery slips are untouched. Nothing to backfill (no restitution exists before this revision).

Revision ID: 272a73a755af
Revises: fedb4bb00aa2
Create Date: 2026-11-29 20:22:07.173132
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "272a73a755af"
down_revision = "fedb4bb00aa2"
branch_labels = None
depends_on = None

DEVICE_STATUS = (
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
)


def upgrade() -> None:
    op.create_table(
        "return_tallies",
        sa.Column("qpv_code", sa.String(length=8), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "tablette",
                "ordinateur",
                "connexion",
                name="return_tally_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                *DEVICE_STATUS,
                name="return_tally_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum(
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
                name="return_tally_outcome",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("devices", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["qpv_code"], ["qpvs.code"], name=op.f("fk_return_tallies_qpv_code_qpvs")),
        sa.PrimaryKeyConstraint("qpv_code", "kind", "state", "outcome", name=op.f("pk_return_tallies")),
    )
    op.create_table(
        "restitutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "brouillon",
                "enregistree",
                name="restitution_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("pupil_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("returned_at", sa.DateTime(), nullable=True),
        sa.Column("received_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_restitutions_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_restitutions_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(["pupil_id"], ["pupils.id"], name=op.f("fk_restitutions_pupil_id_pupils")),
        sa.ForeignKeyConstraint(
            ["received_by_id"], ["users.id"], name=op.f("fk_restitutions_received_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restitutions")),
        sa.UniqueConstraint("number", name=op.f("uq_restitutions_number")),
    )
    with op.batch_alter_table("restitutions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_restitutions_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_restitutions_pupil_id"), ["pupil_id"], unique=False)

    op.create_table(
        "return_slips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=24), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "brouillon",
                "emis",
                "prepare",
                "expedie",
                "receptionne",
                "cloture",
                "annule",
                name="return_slip_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_return_slips_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_return_slips_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"], ["organisations.id"], name=op.f("fk_return_slips_warehouse_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_slips")),
        sa.UniqueConstraint("number", name=op.f("uq_return_slips_number")),
    )
    with op.batch_alter_table("return_slips", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_return_slips_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index("ix_return_slips_warehouse_status", ["warehouse_id", "status"], unique=False)

    op.create_table(
        "return_slip_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("return_slip_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column(
            "from_status",
            sa.Enum(
                "brouillon",
                "emis",
                "prepare",
                "expedie",
                "receptionne",
                "cloture",
                "annule",
                name="return_from_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "brouillon",
                "emis",
                "prepare",
                "expedie",
                "receptionne",
                "cloture",
                "annule",
                name="return_to_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_return_slip_events_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["return_slip_id"],
            ["return_slips.id"],
            name=op.f("fk_return_slip_events_return_slip_id_return_slips"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_slip_events")),
    )
    with op.batch_alter_table("return_slip_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_return_slip_events_return_slip_id"), ["return_slip_id"], unique=False
        )

    op.create_table(
        "restitution_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("restitution_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("qpv_code", sa.String(length=8), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "tablette",
                "ordinateur",
                "connexion",
                name="restitution_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
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
                name="restitution_state",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
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
                name="restitution_outcome",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_restitution_lines_assignment_id_assignments")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_restitution_lines_device_id_devices")
        ),
        sa.ForeignKeyConstraint(["qpv_code"], ["qpvs.code"], name=op.f("fk_restitution_lines_qpv_code_qpvs")),
        sa.ForeignKeyConstraint(
            ["restitution_id"],
            ["restitutions.id"],
            name=op.f("fk_restitution_lines_restitution_id_restitutions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restitution_lines")),
        sa.UniqueConstraint(
            "restitution_id", "device_id", name=op.f("uq_restitution_lines_restitution_id_device_id")
        ),
    )
    with op.batch_alter_table("restitution_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_restitution_lines_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_restitution_lines_restitution_id"), ["restitution_id"], unique=False
        )

    op.create_table(
        "return_slip_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("return_slip_id", sa.Integer(), nullable=False),
        sa.Column("restitution_line_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.Column("checked_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
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
                name="return_line_outcome",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=True,
        ),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checked_by_id"], ["users.id"], name=op.f("fk_return_slip_lines_checked_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_return_slip_lines_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["restitution_line_id"],
            ["restitution_lines.id"],
            name=op.f("fk_return_slip_lines_restitution_line_id_restitution_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["return_slip_id"],
            ["return_slips.id"],
            name=op.f("fk_return_slip_lines_return_slip_id_return_slips"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_slip_lines")),
    )
    with op.batch_alter_table("return_slip_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_return_slip_lines_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_return_slip_lines_return_slip_id"), ["return_slip_id"], unique=False
        )
        batch_op.create_index(
            "ux_return_slip_lines_active_restitution_line",
            ["restitution_line_id"],
            unique=True,
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("return_slip_lines", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_return_slip_lines_active_restitution_line",
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_return_slip_lines_return_slip_id"))
        batch_op.drop_index(batch_op.f("ix_return_slip_lines_device_id"))

    op.drop_table("return_slip_lines")
    with op.batch_alter_table("restitution_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restitution_lines_restitution_id"))
        batch_op.drop_index(batch_op.f("ix_restitution_lines_device_id"))

    op.drop_table("restitution_lines")
    with op.batch_alter_table("return_slip_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_return_slip_events_return_slip_id"))

    op.drop_table("return_slip_events")
    with op.batch_alter_table("return_slips", schema=None) as batch_op:
        batch_op.drop_index("ix_return_slips_warehouse_status")
        batch_op.drop_index(batch_op.f("ix_return_slips_organisation_id"))

    op.drop_table("return_slips")
    with op.batch_alter_table("restitutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restitutions_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_restitutions_organisation_id"))

    op.drop_table("restitutions")
    op.drop_table("return_tallies")
