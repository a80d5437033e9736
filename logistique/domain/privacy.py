"""End of operation: close it, then purge the pupils' personal data, keeping anonymous proofs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import rows_changed, utcnow
from ..models import Handover, OperationState, Pupil, User
from . import audit, scope
from .errors import InvalidTransition


def state(session: Session) -> OperationState:
    """The operation's single state row (created open on first use)."""
    row = session.get(OperationState, 1)
    if row is None:
        row = OperationState(id=1)
        session.add(row)
        session.flush()
    return row


def close_operation(session: Session, *, by: User | None) -> OperationState:
    """Mark the operation closed: no new pupils' data is needed any more (no commit)."""
    scope.require(by, scope.Permission.MANAGE_USERS)
    row = state(session)
    if row.closed_at is None:
        row.closed_at = utcnow()
        row.closed_by = by.email if by else "ligne de commande"
        audit.record(session, "operation_closed", by=by)
    return row


def purge_personal_data(session: Session, *, by: User | None) -> int:
    """Erase names and guardian data of every pupil once the operation is closed; journal it (no commit).

    References, QPV, school, grade, dates, assignments and the devices' journals stay: they prove what
    happened without saying who the child was."""
    scope.require(by, scope.Permission.MANAGE_USERS)
    if state(session).closed_at is None:
        raise InvalidTransition(
            "L'opération n'est pas close : fermez-la d'abord (logistique close-operation)."
        )
    now = utcnow()
    result = session.execute(
        sa.update(Pupil)
        .where(Pupil.purged_at.is_(None))
        .values(first_name=None, last_name=None, guardian_name=None, guardian_phone=None, purged_at=now)
        .execution_options(synchronize_session=False)
    )
    count = rows_changed(result) or 0
    # the handover proofs keep their number, dates, devices and the signature's SHA-256; the drawing and
    # the receiver's name go
    session.execute(
        sa.update(Handover)
        .where(Handover.receiver_name.is_not(None))
        .values(receiver_name=None, signature_png=None)
        .execution_options(synchronize_session=False)
    )
    audit.record(session, "personal_data_purged", by=by, detail=f"{count} élève(s) anonymisé(s)")
    session.flush()
    return count
