"""The audit journal for what is not a device transition (pupils, imports, plans, purges)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import AuditEvent, User
from .devices import actor_label


def record(session: Session, action: str, *, by: User | None, subject: str = "", detail: str = "") -> None:
    """Append an audit event (no names of pupils here: references only)."""
    session.add(
        AuditEvent(
            at=utcnow(),
            actor_id=by.id if by else None,
            actor_label=actor_label(by),
            action=action,
            subject=subject[:100],
            detail=detail[:1000],
        )
    )
