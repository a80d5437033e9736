"""Accounts, API tokens and login throttling."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from ..db import Base, utcnow
from .enums import Role, TerritoryKind, enum_column
from .referential import Department, Organisation, Region


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(300), default="")
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"))
    organisation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    territory_kind: Mapped[TerritoryKind | None] = mapped_column(enum_column(TerritoryKind, "territory_kind"))
    territory_code: Mapped[str | None] = mapped_column(sa.String(3))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_demo: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()
    # stamped in the session cookie at login; bumping it ends every session of the account
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # e-mail notifications (account page): every notice, and the prefecture's weekly summary (opt-in)
    notify_by_email: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    weekly_summary: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    organisation: Mapped[Organisation | None] = relationship()

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def role_label(self) -> str:
        return self.role.label

    @property
    def scope_label(self) -> str:
        if self.role is Role.ADMIN:
            return "Toutes les régions"
        if self.organisation is not None:
            return self.organisation.name
        session = object_session(self)
        if self.territory_kind is TerritoryKind.REGION:
            region = session.get(Region, self.territory_code) if session else None
            return f"Région {region.name if region else self.territory_code}"
        if self.territory_kind is TerritoryKind.DEPARTMENT:
            dep = session.get(Department, self.territory_code) if session else None
            return (
                f"Département {self.territory_code} — {dep.name}"
                if dep
                else f"Département {self.territory_code}"
            )
        return "Aucun périmètre"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))
    label: Mapped[str] = mapped_column(sa.String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Failed logins per account and per client address, to slow down guessing."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # sha256 of "email:…" or "ip:…"
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column()
