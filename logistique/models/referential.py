"""Territories, QPV, cités éducatives and organisations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base
from .enums import OrganisationKind, enum_column

organisation_qpvs = sa.Table(
    "organisation_qpvs",
    Base.metadata,
    sa.Column("organisation_id", sa.ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("qpv_code", sa.ForeignKey("qpvs.code", ondelete="CASCADE"), primary_key=True),
)


class Region(Base):
    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))

    departments: Mapped[list[Department]] = relationship(back_populates="region", order_by="Department.code")


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("regions.code"), index=True)

    region: Mapped[Region] = relationship(back_populates="departments")


class Commune(Base):
    __tablename__ = "communes"

    code: Mapped[str] = mapped_column(sa.String(5), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    department_code: Mapped[str] = mapped_column(sa.ForeignKey("departments.code"), index=True)
    postal_codes: Mapped[str] = mapped_column(sa.String(100), default="")


class Qpv(Base):
    __tablename__ = "qpvs"

    code: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    department_code: Mapped[str] = mapped_column(sa.ForeignKey("departments.code"), index=True)
    list_year: Mapped[int] = mapped_column()
    commune_codes: Mapped[str] = mapped_column(sa.String(400), default="")  # ';'-separated INSEE codes
    commune_names: Mapped[str] = mapped_column(sa.String(1000), default="")  # ';'-separated names

    department: Mapped[Department] = relationship()

    @property
    def label(self) -> str:
        return f"{self.code} — {self.name}"


class CiteEducative(Base):
    __tablename__ = "cites_educatives"

    code: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    commune_codes: Mapped[str] = mapped_column(sa.String(200))  # ";"-separated INSEE codes
    department_code: Mapped[str] = mapped_column(sa.ForeignKey("departments.code"), index=True)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[OrganisationKind] = mapped_column(enum_column(OrganisationKind, "organisation_kind"))
    name: Mapped[str] = mapped_column(sa.String(200))
    uai: Mapped[str | None] = mapped_column(sa.String(8), unique=True)
    department_code: Mapped[str] = mapped_column(sa.ForeignKey("departments.code"), index=True)
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    postal_code: Mapped[str] = mapped_column(sa.String(5), default="")
    city: Mapped[str] = mapped_column(sa.String(100), default="")
    cite_educative_code: Mapped[str | None] = mapped_column(sa.ForeignKey("cites_educatives.code"))
    is_active: Mapped[bool] = mapped_column(default=True)

    department: Mapped[Department] = relationship()
    qpvs: Mapped[list[Qpv]] = relationship(secondary=organisation_qpvs, order_by="Qpv.code")

    @property
    def region_code(self) -> str:
        return self.department.region_code

    @property
    def kind_label(self) -> str:
        return self.kind.label
