"""status board counters

The status board reads running counts instead of aggregating assignments and pupils: ``assignment_tallies``
(per QPV, envelope, kind, device status, active or ended: how many and their cost) and ``pupil_tallies``
(registered pupils per organisation, QPV and need), kept by the domain (``domain/tallies.py``). Assignments
also keep when their device was handed over, indexed for the board's handovers per day. Existing rows are
counted here; ``logistique recount`` does the same on a running database.

Revision ID: a77e65262327
Revises: 8b75733f6b58
Create Date: 2026-11-28 08:58:08.071030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a77e65262327"
down_revision = "8b75733f6b58"
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
KINDS = ("tablette", "ordinateur", "connexion")
PUPIL_FLAGS = {"tablette": "needs_tablet", "ordinateur": "needs_laptop", "connexion": "needs_connection"}


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "assignment_tallies",
        sa.Column("qpv_code", sa.String(length=8), nullable=False),
        sa.Column("envelope_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum(KINDS, "tally_kind"), nullable=False),
        sa.Column("device_status", _enum(DEVICE_STATUS, "tally_device_status"), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("devices", sa.BigInteger(), nullable=False),
        sa.Column("cost_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["envelope_id"], ["envelopes.id"], name=op.f("fk_assignment_tallies_envelope_id_envelopes")
        ),
        sa.ForeignKeyConstraint(
            ["qpv_code"], ["qpvs.code"], name=op.f("fk_assignment_tallies_qpv_code_qpvs")
        ),
        sa.PrimaryKeyConstraint(
            "qpv_code", "envelope_id", "kind", "device_status", "active", name=op.f("pk_assignment_tallies")
        ),
    )
    op.create_table(
        "pupil_tallies",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("qpv_code", sa.String(length=8), nullable=False),
        sa.Column("kind", _enum(KINDS, "pupil_tally_kind"), nullable=False),
        sa.Column("pupils", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_pupil_tallies_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(["qpv_code"], ["qpvs.code"], name=op.f("fk_pupil_tallies_qpv_code_qpvs")),
        sa.PrimaryKeyConstraint("organisation_id", "qpv_code", "kind", name=op.f("pk_pupil_tallies")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_over_at", sa.DateTime(), nullable=True))

    # count what exists (the same GROUP BYs as ``tallies.rebuild``)
    op.execute(
        "INSERT INTO assignment_tallies "
        "(qpv_code, envelope_id, kind, device_status, active, devices, cost_cents) "
        "SELECT qpv_code, envelope_id, kind, device_status, cancelled_at IS NULL, count(*), "
        "sum(unit_cost_cents) FROM assignments "
        "GROUP BY qpv_code, envelope_id, kind, device_status, cancelled_at IS NULL"
    )
    pupils = sa.table(
        "pupils", *(sa.column(c) for c in ("organisation_id", "qpv_code", *PUPIL_FLAGS.values()))
    )
    pupil_tallies = sa.table(
        "pupil_tallies", *(sa.column(c) for c in ("organisation_id", "qpv_code", "kind", "pupils"))
    )
    for kind, flag in PUPIL_FLAGS.items():
        op.execute(
            pupil_tallies.insert().from_select(
                ["organisation_id", "qpv_code", "kind", "pupils"],
                sa.select(pupils.c.organisation_id, pupils.c.qpv_code, sa.literal(kind), sa.func.count())
                .where(pupils.c[flag].is_(True))
                .group_by(pupils.c.organisation_id, pupils.c.qpv_code),
            )
        )
    op.execute(
        "UPDATE assignments SET handed_over_at = ("
        "SELECT max(handovers.handed_over_at) FROM slip_lines "
        "JOIN handovers ON handovers.id = slip_lines.handover_id "
        "WHERE slip_lines.assignment_id = assignments.id) "
        "WHERE id IN (SELECT assignment_id FROM slip_lines WHERE handover_id IS NOT NULL)"
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignments_handed_over",
            ["qpv_code", "handed_over_at"],
            unique=False,
            sqlite_where=sa.text("handed_over_at IS NOT NULL"),
            postgresql_where=sa.text("handed_over_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_assignments_handed_over",
            sqlite_where=sa.text("handed_over_at IS NOT NULL"),
            postgresql_where=sa.text("handed_over_at IS NOT NULL"),
        )
        batch_op.drop_column("handed_over_at")
    op.drop_table("pupil_tallies")
    op.drop_table("assignment_tallies")
