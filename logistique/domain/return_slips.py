"""Return slips (docs/architecture.md, « Retours »): the devices families brought back go from the
organisation to the warehouse that delivered them, where each one is checked by scanning: back en_stock, or
defectueux. Lifecycle: brouillon → emis → expedie → receptionne, annule before shipping; the lines are
restitution lines, so the delivery slips' flow is untouched."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager, joinedload

from ..db import rows_changed, utcnow
from ..models import (
    Device,
    DeviceStatus,
    Organisation,
    Restitution,
    RestitutionLine,
    RestitutionStatus,
    ReturnSlip,
    ReturnSlipEvent,
    ReturnSlipLine,
    Role,
    SlipStatus,
    User,
)
from . import devices, scope, tallies, tokens
from .errors import BusinessRuleViolation, Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from .returns import RETURN_ACTIONS
from .slips import ScanResult, guarded_move, journal_entry, parse_scan

# what the warehouse finds when it checks a returned device (perdu: missing from the parcel, typed by hand)
CHECK_OUTCOMES = (DeviceStatus.IN_STOCK, DeviceStatus.DEFECTIVE, DeviceStatus.LOST)
_VERDICTS = {
    DeviceStatus.IN_STOCK: "remis en stock",
    DeviceStatus.DEFECTIVE: "défectueux",
    DeviceStatus.LOST: "manquant",
}
MAX_LINES = 500

S = SlipStatus
NEXT: dict[SlipStatus, set[SlipStatus]] = {
    S.DRAFT: {S.ISSUED, S.CANCELLED},
    S.ISSUED: {S.SHIPPED, S.CANCELLED},
    S.SHIPPED: {S.RECEIVED},
}
# who moves a return slip: the roles of the device transition its action stands for
_DEVICE_ACTION = {"create": "return_by_family", "ship": "return_by_family", "receive": "restock"}


def _require(by: User | None, action: str, what: str) -> None:
    if not devices.may(_DEVICE_ACTION[action], by):
        raise Forbidden(f"Votre rôle ne permet pas de {what}.")


# ---------------------------------------------------------------- return slips: scope and lookup


def return_slip_filter(user: User | None):
    """Return slips a user may see: its organisation's, its warehouse's, its territory's."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.organisation_id is None and user.role in (Role.WAREHOUSE, Role.COORDINATOR):
        return sa.false()
    if user.role is Role.WAREHOUSE:
        return ReturnSlip.warehouse_id == user.organisation_id
    if user.role is Role.COORDINATOR:
        return ReturnSlip.organisation_id == user.organisation_id
    return ReturnSlip.organisation_id.in_(
        sa.select(Organisation.id).where(Organisation.department_code.in_(scope.territory_departments(user)))
    )


def get_return_slip(
    session: Session, user: User | None, *, number: str | None = None, slip_id: int | None = None
) -> ReturnSlip:
    """A return slip the user may see, or NotFound."""
    query = sa.select(ReturnSlip).where(return_slip_filter(user))
    query = (
        query.where(ReturnSlip.id == slip_id)
        if slip_id is not None
        else query.where(ReturnSlip.number == (number or "").strip().upper())
    )
    found = session.scalar(query)
    if found is None:
        raise NotFound("Bordereau de retour introuvable, ou hors de votre périmètre.")
    return found


def list_return_slips(session: Session, user: User | None, *, statuses=None) -> list[ReturnSlip]:
    """Return slips in the user's scope, newest first."""
    query = sa.select(ReturnSlip).where(return_slip_filter(user))
    if statuses:
        query = query.where(ReturnSlip.status.in_(statuses))
    return list(
        session.scalars(
            query.options(joinedload(ReturnSlip.organisation), joinedload(ReturnSlip.warehouse))
            .order_by(ReturnSlip.id.desc())
            .limit(200)
        )
    )


def token_for(return_slip: ReturnSlip, secret: str) -> str:
    """The signed token printed in the return slip's QR code (``/r/<token>``)."""
    return tokens.sign(secret, "return_slip", return_slip.id)


def from_token(session: Session, secret: str, token: str) -> ReturnSlip:
    """The return slip a QR token names: tampered, unknown or cancelled is refused (NotFound)."""
    slip_id = tokens.verify(secret, "return_slip", token)
    found = session.get(ReturnSlip, slip_id) if slip_id is not None else None
    if found is None or found.status is SlipStatus.CANCELLED:
        raise NotFound(
            "Ce QR code ne correspond à aucun bordereau de retour valide (altéré, inconnu ou annulé)."
        )
    return found


# ---------------------------------------------------------------- return slips: building


def _held(organisation_id: int) -> sa.Select:
    on_slip = sa.select(ReturnSlipLine.id).where(
        ReturnSlipLine.restitution_line_id == RestitutionLine.id, ReturnSlipLine.removed_at.is_(None)
    )
    return (
        sa.select(RestitutionLine)
        .join(Restitution, RestitutionLine.restitution_id == Restitution.id)
        .join(Device, RestitutionLine.device_id == Device.id)
        .where(
            Restitution.organisation_id == organisation_id,
            Restitution.status == RestitutionStatus.RECORDED,
            RestitutionLine.outcome == Device.status,
            Device.status.in_(list(RETURN_ACTIONS)),
            ~on_slip.exists(),
        )
    )


def held(session: Session, organisation_id: int) -> list[RestitutionLine]:
    """Devices families brought back that the organisation still holds: recorded, still retourne or
    defectueux, on no return slip yet."""
    return list(
        session.scalars(
            _held(organisation_id)
            .options(
                contains_eager(RestitutionLine.device).joinedload(Device.model),
                contains_eager(RestitutionLine.device).joinedload(Device.warehouse),
            )
            .order_by(Device.warehouse_id, RestitutionLine.id)
        )
    )


def held_count(session: Session, organisation_id: int) -> int:
    """How many returned devices wait to go back to the warehouse (coordinator's home page)."""
    held_lines = _held(organisation_id).with_only_columns(RestitutionLine.id).subquery()
    return session.scalar(sa.select(sa.func.count()).select_from(held_lines)) or 0


def _event(
    session: Session,
    return_slip: ReturnSlip,
    action: str,
    source: SlipStatus | None,
    target: SlipStatus,
    by: User | None,
    detail: str = "",
    now: datetime | None = None,
) -> None:
    session.add(
        journal_entry(ReturnSlipEvent, "return_slip", return_slip, action, source, target, by, detail, now)
    )


def _move(
    session: Session,
    return_slip: ReturnSlip,
    target: SlipStatus,
    action: str,
    by: User | None,
    *,
    now: datetime,
    stamp: str | None = None,
    detail: str = "",
) -> None:
    """Change a return slip's status with a guarded update (the loser of a race gets a conflict)."""
    source = guarded_move(
        session, return_slip, target, next_statuses=NEXT, what="Le bordereau de retour", now=now, stamp=stamp
    )
    _event(session, return_slip, action, source, target, by, detail, now)


def _check_organisation(return_slip: ReturnSlip, by: User | None) -> None:
    if by is not None and by.role is Role.COORDINATOR and return_slip.organisation_id != by.organisation_id:
        raise NotFound("Bordereau de retour introuvable, ou hors de votre périmètre.")


def _check_warehouse(return_slip: ReturnSlip, by: User | None) -> None:
    if by is not None and by.role is Role.WAREHOUSE and return_slip.warehouse_id != by.organisation_id:
        raise NotFound("Bordereau de retour introuvable, ou hors de votre périmètre.")


def create_return_slip(
    session: Session,
    *,
    organisation: Organisation,
    line_ids: list[int],
    by: User | None,
    issue: bool = False,
    now: datetime | None = None,
) -> ReturnSlip:
    """Group returned devices the organisation holds, all from one warehouse, on a new return slip."""
    _require(by, "create", "créer un bordereau de retour")
    if by is not None and by.role is Role.COORDINATOR and organisation.id != by.organisation_id:
        raise NotFound("Structure introuvable, ou hors de votre périmètre.")
    wanted = list(dict.fromkeys(line_ids))
    if not wanted:
        raise ValidationFailed("Choisissez au moins un équipement à renvoyer.")
    if len(wanted) > MAX_LINES:
        raise ValidationFailed(f"Un bordereau de retour compte au plus {MAX_LINES} équipements.")
    available = {line.id: line for line in held(session, organisation.id)}
    missing = [i for i in wanted if i not in available]
    if missing:
        raise Conflict(
            "Certains équipements ne sont plus à renvoyer (déjà sur un bordereau de retour, ou déplacés) ; "
            "rechargez la page."
        )
    warehouses = {available[i].device.warehouse_id for i in wanted}
    if len(warehouses) != 1:
        raise BusinessRuleViolation(
            "Un bordereau de retour va vers un seul entrepôt : séparez les équipements par entrepôt."
        )
    now = now or utcnow()
    return_slip = ReturnSlip(
        organisation_id=organisation.id,
        warehouse_id=warehouses.pop(),
        status=SlipStatus.DRAFT,
        created_at=now,
        created_by_id=by.id if by else None,
    )
    session.add(return_slip)
    session.flush()
    return_slip.number = f"RT-{organisation.department_code}-{now.year}-{return_slip.id:06d}"
    for i in wanted:
        line = available[i]
        session.add(
            ReturnSlipLine(return_slip=return_slip, restitution_line_id=line.id, device_id=line.device_id)
        )
    _event(session, return_slip, "create", None, SlipStatus.DRAFT, by, f"{len(wanted)} équipement(s)", now)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:
        raise Conflict("Un de ces équipements vient d'être mis sur un autre bordereau de retour.") from exc
    if issue:
        issue_return_slip(session, return_slip, by=by, now=now)
    return return_slip


def issue_return_slip(
    session: Session, return_slip: ReturnSlip, *, by: User | None, now: datetime | None = None
) -> None:
    """Issue a draft return slip: it can be printed with its QR code and packed."""
    _require(by, "create", "émettre un bordereau de retour")
    _check_organisation(return_slip, by)
    if not return_slip.active_lines:
        raise BusinessRuleViolation("Un bordereau de retour vide ne peut pas être émis.")
    _move(session, return_slip, SlipStatus.ISSUED, "issue", by, now=now or utcnow(), stamp="issued_at")


def cancel_return_slip(
    session: Session, return_slip: ReturnSlip, *, by: User | None, now: datetime | None = None
) -> None:
    """Cancel a return slip before it leaves: its devices wait to go back again, its QR stops working."""
    _require(by, "create", "annuler un bordereau de retour")
    _check_organisation(return_slip, by)
    now = now or utcnow()
    _move(session, return_slip, SlipStatus.CANCELLED, "cancel", by, now=now, stamp="cancelled_at")
    for line in return_slip.active_lines:
        line.removed_at = now
    session.flush()


def ship_return_slip(
    session: Session, return_slip: ReturnSlip, *, by: User | None, now: datetime | None = None
) -> bool:
    """The parcel leaves the organisation for the warehouse. Shipping twice is harmless (False)."""
    _require(by, "ship", "expédier un bordereau de retour")
    _check_organisation(return_slip, by)
    if return_slip.status in (SlipStatus.SHIPPED, SlipStatus.RECEIVED):
        return False
    if return_slip.status is not SlipStatus.ISSUED:
        raise InvalidTransition(
            f"Le bordereau de retour {return_slip.number} est « {return_slip.status.label} » : "
            "émettez-le avant de l'expédier."
        )
    now = now or utcnow()
    _move(session, return_slip, SlipStatus.SHIPPED, "ship", by, now=now, stamp="shipped_at")
    session.flush()
    return True


# ---------------------------------------------------------------- return slips: the warehouse checks


def _counts(return_slip: ReturnSlip) -> tuple[int, int]:
    lines = return_slip.active_lines
    return sum(1 for line in lines if line.checked_at is not None), len(lines)


def _line_for(session: Session, return_slip: ReturnSlip, text: str) -> ReturnSlipLine | None:
    return session.scalar(
        sa.select(ReturnSlipLine)
        .join(Device, ReturnSlipLine.device_id == Device.id)
        .options(contains_eager(ReturnSlipLine.device))
        .where(
            ReturnSlipLine.return_slip_id == return_slip.id,
            ReturnSlipLine.removed_at.is_(None),
            sa.or_(Device.serial == text, Device.asset_tag == text),
        )
    )


def check_device(
    session: Session,
    return_slip: ReturnSlip,
    code: str,
    *,
    outcome: DeviceStatus,
    comment: str = "",
    by: User | None,
    now: datetime | None = None,
) -> ScanResult:
    """One device of a return parcel scanned at the warehouse after its check: back en_stock (``restock``),
    or defectueux with the reason. Scanning it again with the same verdict is harmless; anything else is
    refused and nothing changes. Two volunteers scanning the same device: one records it."""
    _require(by, "receive", "réceptionner un bordereau de retour")
    _check_warehouse(return_slip, by)
    comment = (comment or "").strip()
    try:
        text = parse_scan(code)
    except ValidationFailed as exc:
        return ScanResult("refused", exc.message, *_counts(return_slip))
    if outcome not in CHECK_OUTCOMES:
        return ScanResult(
            "refused", "Choisissez « remis en stock », « défectueux » ou « manquant ».", *_counts(return_slip)
        )
    line = _line_for(session, return_slip, text) if text else None
    if line is None:
        return ScanResult(
            "refused",
            f"{text or 'Ce code'} n'est PAS sur le bordereau de retour {return_slip.number} : "
            "mettez-le de côté, signalez-le.",
            *_counts(return_slip),
            text or None,
        )
    serial = line.device.serial
    if line.checked_at is not None:
        if line.outcome is outcome:
            return ScanResult("already", f"{serial} est déjà contrôlé.", *_counts(return_slip), serial)
        return ScanResult(
            "refused",
            f"{serial} a déjà été contrôlé « {line.outcome.label_lower if line.outcome else '?'} » : "
            "rien n'est changé.",
            *_counts(return_slip),
            serial,
        )
    if return_slip.status is not SlipStatus.SHIPPED:
        return ScanResult(
            "refused",
            f"Le bordereau de retour est « {return_slip.status.label} » : il n'a pas été expédié.",
            *_counts(return_slip),
            serial,
        )
    if line.device.status not in RETURN_ACTIONS:  # written off or restocked from its page meanwhile
        return ScanResult(
            "refused",
            f"{serial} est « {line.device.status.label} » : il ne se contrôle plus sur ce retour.",
            *_counts(return_slip),
            serial,
        )
    if outcome is not DeviceStatus.IN_STOCK and not comment:
        what = "le défaut constaté" if outcome is DeviceStatus.DEFECTIVE else "ce qui manque et pourquoi"
        return ScanResult("refused", f"{serial} : indiquez {what}.", *_counts(return_slip), serial)
    now = now or utcnow()
    won = rows_changed(
        session.execute(
            sa.update(ReturnSlipLine)
            .where(ReturnSlipLine.id == line.id, ReturnSlipLine.checked_at.is_(None))
            .values(
                checked_at=now, checked_by_id=by.id if by else None, outcome=outcome, comment=comment[:500]
            )
            .execution_options(synchronize_session=False)
        )
    )
    if won != 1:
        session.expire(line)
        return ScanResult(
            "already", f"{serial} vient d'être contrôlé par quelqu'un d'autre.", *_counts(return_slip), serial
        )
    session.expire(line, ["checked_at", "checked_by_id", "outcome", "comment"])
    device = line.device
    if outcome is DeviceStatus.IN_STOCK:
        action = "restock"
    elif outcome is DeviceStatus.LOST:
        action = "mark_lost"
    else:
        action = "confirm_defective" if device.status is DeviceStatus.DEFECTIVE else "mark_defective"
    devices.transition(
        session,
        device,
        action,
        by=by,
        reason=(comment or "Contrôlé au retour") + f" — bordereau de retour {return_slip.number}",
        now=now,
    )
    returned = line.restitution_line
    key = (returned.qpv_code, returned.kind, returned.state)
    before = (*key, returned.outcome) if returned.outcome else None
    returned.outcome = outcome
    tallies.move_return(session, before, (*key, outcome))
    session.flush()
    # volunteers checking the parcel's other devices at the same moment: queue on the return slip's row
    # (PostgreSQL; SQLite's writers are already serialized) so that the last to commit counts every check
    session.execute(sa.select(ReturnSlip.id).where(ReturnSlip.id == return_slip.id).with_for_update())
    checked, total = _counts(return_slip)
    if checked == total:
        _move(
            session,
            return_slip,
            SlipStatus.RECEIVED,
            "received",
            by,
            now=now,
            stamp="received_at",
            detail=_summary(return_slip),
        )
    return ScanResult("picked", f"{serial} contrôlé : {_VERDICTS[outcome]}.", checked, total, serial)


def _summary(return_slip: ReturnSlip) -> str:
    counts: dict[str, int] = {}
    for line in return_slip.active_lines:
        key = line.outcome.label_lower if line.outcome else "?"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
