"""Delivery slips (docs/architecture.md, « Cycle de vie »): create from assigned devices, issue, pick by
scanning, ship, receive.

Slip lifecycle: brouillon → emis → prepare → expedie → receptionne → cloture, and annule before any pick.
Every change goes through ``_move`` (guarded update + slip event) and the device transitions of
``devices.transition``, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, contains_eager, joinedload
from sqlalchemy.orm.util import identity_key

from ..db import rows_changed, utcnow
from ..models import (
    Assignment,
    Device,
    Organisation,
    OrganisationKind,
    ReceptionState,
    Role,
    Slip,
    SlipEvent,
    SlipLine,
    SlipStatus,
    User,
)
from ..statements import Prepared, table
from . import devices, notifications, scope, tokens
from .errors import BusinessRuleViolation, Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed

S = SlipStatus
NEXT: dict[SlipStatus, set[SlipStatus]] = {
    S.DRAFT: {S.ISSUED, S.CANCELLED},
    S.ISSUED: {S.PREPARED, S.CANCELLED},
    S.PREPARED: {S.SHIPPED},
    S.SHIPPED: {S.RECEIVED},
    S.RECEIVED: {S.CLOSED},
}
MAX_LINES = 500


# ---------------------------------------------------------------- scope and lookup


def slip_filter(user: User | None):
    """Slips a user may see: its warehouse's, its organisation's as destination, its territory's."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.role is Role.WAREHOUSE:
        return Slip.warehouse_id == user.organisation_id if user.organisation_id else sa.false()
    if user.role is Role.COORDINATOR:
        return Slip.destination_id == user.organisation_id if user.organisation_id else sa.false()
    return Slip.destination_id.in_(
        sa.select(Organisation.id).where(Organisation.department_code.in_(scope.territory_departments(user)))
    )


# Built once: the lookups and writes of a scan are on the warehouse's hot path (one request per device), and
# a statement built per call costs more than its execution (SQLAlchemy compiles it once per engine, keeps it).
_SLIP_BY_NUMBER = sa.select(Slip).where(Slip.number == sa.bindparam("number"))
_SLIP_BY_ID = sa.select(Slip).where(Slip.id == sa.bindparam("slip_id"))


def _sees(user: User | None, warehouse_id: int, destination_id: int) -> bool:
    """``slip_filter`` for a slip already read, for the roles whose scope needs no query (not prefecture)."""
    if user is None or user.role is Role.ADMIN:
        return True
    if user.role is Role.WAREHOUSE:
        return user.organisation_id is not None and warehouse_id == user.organisation_id
    return user.organisation_id is not None and destination_id == user.organisation_id


def get_slip(
    session: Session, user: User | None, *, number: str | None = None, slip_id: int | None = None
) -> Slip:
    """A slip the user may see, or NotFound."""
    wanted = (number or "").strip().upper()
    if user is not None and user.role is Role.PREFECTURE:  # a territory: its scope is a query
        key = Slip.id == slip_id if slip_id is not None else Slip.number == wanted
        slip = session.scalar(sa.select(Slip).where(slip_filter(user), key))
    else:
        statement, params = (
            (_SLIP_BY_ID, {"slip_id": slip_id})
            if slip_id is not None
            else (_SLIP_BY_NUMBER, {"number": wanted})
        )
        slip = session.execute(statement, params).scalar_one_or_none()
        if slip is not None and not _sees(user, slip.warehouse_id, slip.destination_id):
            slip = None
    if slip is None:
        raise NotFound("Bordereau introuvable, ou hors de votre périmètre.")
    return slip


def token_for(slip: Slip, secret: str) -> str:
    """The signed token printed in the slip's QR code."""
    return tokens.sign(secret, "slip", slip.id)


def slip_from_token(session: Session, secret: str, token: str) -> Slip:
    """The slip a QR token names: a tampered, unknown or cancelled token is refused (NotFound)."""
    slip_id = tokens.verify(secret, "slip", token)
    slip = session.get(Slip, slip_id) if slip_id is not None else None
    if slip is None or slip.status is SlipStatus.CANCELLED:
        raise NotFound("Ce QR code ne correspond à aucun bordereau valide (code altéré, inconnu ou annulé).")
    return slip


# ---------------------------------------------------------------- journal and moves


def journal_entry(
    event_class: type,
    owner: str,
    row: object,
    action: str,
    source: SlipStatus | None,
    target: SlipStatus,
    by: User | None,
    detail: str = "",
    now: datetime | None = None,
):
    """A journal row of a delivery or return slip (``owner``: the event's relationship to ``row``)."""
    return event_class(
        **{owner: row},
        at=now or utcnow(),
        actor=by,
        actor_label=devices.actor_label(by),
        action=action,
        from_status=source,
        to_status=target,
        detail=detail[:500],
    )


def _event(
    session: Session,
    slip: Slip,
    action: str,
    source: SlipStatus | None,
    target: SlipStatus,
    by: User | None,
    detail: str = "",
    now: datetime | None = None,
) -> None:
    session.add(journal_entry(SlipEvent, "slip", slip, action, source, target, by, detail, now))


def _changed_meanwhile(what: str, number: str) -> Conflict:
    """The refusal of a guarded move that another request made first (``what``: « Le bordereau »)."""
    return Conflict(f"{what} {number} vient d'être modifié par quelqu'un d'autre ; rechargez la page.")


def guarded_move(
    session: Session,
    row,
    target: SlipStatus,
    *,
    next_statuses: dict[SlipStatus, set[SlipStatus]],
    what: str,
    now: datetime,
    stamp: str | None = None,
) -> SlipStatus:
    """Change the status of a delivery or return slip (``row``) with a guarded update: the loser of a race
    gets a conflict. Returns the status it left. ``what``: « Le bordereau », in messages."""
    source = row.status
    if target not in next_statuses.get(source, set()):
        raise InvalidTransition(
            f"{what} {row.number} est « {source.label} » : impossible de le passer à « {target.label} »."
        )
    model = type(row)
    values = {"status": target, **({stamp: now} if stamp else {})}
    result = session.execute(
        sa.update(model)
        .where(model.id == row.id, model.status == source)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        raise _changed_meanwhile(what, row.number)
    session.expire(row, ["status", *([stamp] if stamp else [])])
    return source


_SLIPS = table(Slip)


def _move(
    session: Session,
    slip: Slip,
    target: SlipStatus,
    action: str,
    by: User | None,
    *,
    detail: str = "",
    now: datetime | None = None,
    stamp: str | None = None,
) -> None:
    """Change a slip's status with a guarded update (the loser of a race gets a conflict) and journal it."""
    now = now or utcnow()
    source = guarded_move(
        session, slip, target, next_statuses=NEXT, what="Le bordereau", now=now, stamp=stamp
    )
    _event(session, slip, action, source, target, by, detail, now)


# who moves a slip: the roles of the device transition that each slip action applies to its lines
_DEVICE_ACTION = {
    "create": "add_to_slip",
    "issue": "add_to_slip",
    "remove_line": "remove_from_slip",
    "cancel": "remove_from_slip",
    "pick": "pick",
    "ship": "ship",
    "receive": "receive",
}


def _require_role(by: User | None, action: str, what: str) -> None:
    if not devices.may(_DEVICE_ACTION[action], by):
        raise Forbidden(f"Votre rôle ne permet pas de {what}.")


# ---------------------------------------------------------------- creation


def create_slip(
    session: Session,
    *,
    destination: Organisation,
    serials: list[str],
    by: User | None,
    issue: bool = False,
    now: datetime | None = None,
) -> Slip:
    """Group assigned devices of one warehouse for one destination into a new slip (brouillon, or emis)."""
    _require_role(by, "create", "créer un bordereau")
    if by is not None and by.role is Role.COORDINATOR and destination.id != by.organisation_id:
        raise NotFound("Structure introuvable, ou hors de votre périmètre.")
    if destination.kind not in (OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL):
        raise ValidationFailed("Un bordereau est destiné à une association ou à une école.")
    wanted = []
    for raw in serials:
        serial = devices.clean_serial(raw)
        if serial not in wanted:
            wanted.append(serial)
    if not wanted:
        raise ValidationFailed("Choisissez au moins un équipement.")
    if len(wanted) > MAX_LINES:
        raise ValidationFailed(f"Un bordereau compte au plus {MAX_LINES} équipements.")
    found = {
        d.serial: d
        for d in session.scalars(sa.select(Device).where(Device.serial.in_(wanted), scope.device_filter(by)))
    }
    unknown = [s for s in wanted if s not in found]
    if unknown:
        raise NotFound("Équipements introuvables, ou hors de votre périmètre : " + ", ".join(unknown) + ".")
    assignments = {
        a.device_id: a
        for a in session.scalars(
            sa.select(Assignment).where(
                Assignment.device_id.in_([d.id for d in found.values()]), Assignment.cancelled_at.is_(None)
            )
        )
    }
    problems = []
    for serial in wanted:
        device = found[serial]
        assignment = assignments.get(device.id)
        if not devices.allows("add_to_slip", device.status) or assignment is None:
            problems.append(
                f"{serial} est « {device.status.label} » (il faut un équipement attribué, "
                "pas encore sur un bordereau)"
            )
        elif assignment.organisation_id != destination.id:
            problems.append(f"{serial} est attribué à un élève d'une autre structure")
    if problems:
        raise BusinessRuleViolation("Bordereau refusé — " + " ; ".join(problems) + ".")
    warehouses = {found[s].warehouse_id for s in wanted}
    if len(warehouses) != 1:
        raise BusinessRuleViolation(
            "Un bordereau part d'un seul entrepôt : séparez les équipements par entrepôt."
        )
    now = now or utcnow()
    slip = Slip(
        warehouse_id=warehouses.pop(),
        destination_id=destination.id,
        status=SlipStatus.DRAFT,
        created_at=now,
        created_by_id=by.id if by else None,
    )
    session.add(slip)
    session.flush()
    slip.number = f"BL-{destination.department_code}-{now.year}-{slip.id:06d}"
    for serial in wanted:
        device = found[serial]
        devices.transition(session, device, "add_to_slip", by=by, reason=f"Bordereau {slip.number}", now=now)
        session.add(SlipLine(slip=slip, device_id=device.id, assignment_id=assignments[device.id].id))
    _event(session, slip, "create", None, SlipStatus.DRAFT, by, f"{len(wanted)} équipement(s)", now)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:
        raise Conflict("Un de ces équipements vient d'être mis sur un autre bordereau.") from exc
    if issue:
        issue_slip(session, slip, by=by, now=now)
    return slip


def assignable_devices(
    session: Session, destination: Organisation
) -> list[sa.Row[tuple[Device, Assignment]]]:
    """Devices assigned to pupils of ``destination`` that may go on a new slip, with their assignment."""
    return list(
        session.execute(
            sa.select(Device, Assignment)
            .join(Assignment, sa.and_(Assignment.device_id == Device.id, Assignment.cancelled_at.is_(None)))
            .where(
                Assignment.organisation_id == destination.id,
                Device.status.in_(devices.sources("add_to_slip")),
            )
            .options(joinedload(Device.model), joinedload(Device.warehouse))
            .order_by(Device.warehouse_id, Device.id)
        ).all()
    )


def _check_destination(slip: Slip, by: User | None) -> None:
    if by is not None and by.role is Role.COORDINATOR and slip.destination_id != by.organisation_id:
        raise NotFound("Bordereau introuvable, ou hors de votre périmètre.")


def _check_warehouse(slip: Slip | _Picking, by: User | None) -> None:
    if by is not None and by.role is Role.WAREHOUSE and slip.warehouse_id != by.organisation_id:
        raise NotFound("Bordereau introuvable, ou hors de votre périmètre.")


def issue_slip(session: Session, slip: Slip, *, by: User | None, now: datetime | None = None) -> None:
    """Issue a draft: it can now be printed with its QR code and prepared by the warehouse."""
    _require_role(by, "issue", "émettre un bordereau")
    _check_destination(slip, by)
    if not slip.active_lines:
        raise BusinessRuleViolation("Un bordereau vide ne peut pas être émis.")
    now = now or utcnow()
    _move(session, slip, SlipStatus.ISSUED, "issue", by, now=now, stamp="issued_at")
    notifications.slip_issued(session, slip, now=now)


def remove_line(session: Session, slip: Slip, line: SlipLine, *, by: User | None) -> None:
    """Take a device off a slip that nobody has started preparing; it stays assigned to its pupil."""
    _require_role(by, "remove_line", "retirer un équipement du bordereau")
    _check_destination(slip, by)
    started = any(other.picked_at for other in slip.active_lines)
    if slip.status not in (SlipStatus.DRAFT, SlipStatus.ISSUED) or started:
        raise InvalidTransition(
            "Ce bordereau est déjà en préparation : on ne peut plus en retirer d'équipement."
        )
    if line.removed_at is not None:
        return
    now = utcnow()
    devices.transition(
        session, line.device, "remove_from_slip", by=by, reason=f"Retiré de {slip.number}", now=now
    )
    line.removed_at = now
    _event(session, slip, "remove_line", slip.status, slip.status, by, line.device.serial, now)
    session.flush()


def cancel_slip(session: Session, slip: Slip, *, by: User | None, reason: str = "") -> None:
    """Cancel a slip before preparation starts: its devices stay assigned, its QR code stops working."""
    _require_role(by, "cancel", "annuler un bordereau")
    _check_destination(slip, by)
    if any(line.picked_at for line in slip.active_lines):
        raise InvalidTransition("La préparation a commencé : ce bordereau ne peut plus être annulé.")
    now = utcnow()
    for line in slip.active_lines:
        devices.transition(
            session, line.device, "remove_from_slip", by=by, reason=f"Bordereau {slip.number} annulé", now=now
        )
        line.removed_at = now
    _move(session, slip, SlipStatus.CANCELLED, "cancel", by, detail=reason, now=now, stamp="cancelled_at")
    session.flush()


# ---------------------------------------------------------------- warehouse: scan, pick, ship


@dataclass
class ScanResult:
    outcome: str  # "picked", "already", "refused"
    message: str
    picked: int
    total: int
    serial: str | None = None

    @property
    def progress(self) -> str:
        return f"{self.picked}/{self.total}"


def parse_scan(code: str) -> str:
    """What a scan or a typed code names: a serial or an asset tag (from a label's /d/<tag> URL too)."""
    if "/s/" in (code or ""):
        raise ValidationFailed("C'est le QR code d'un bordereau, pas celui d'un équipement.")
    return scope.scanned_text(code)


_LINES = table(SlipLine)
_LINE_FOR = (
    sa.select(SlipLine)
    .join(Device, SlipLine.device_id == Device.id)
    .options(contains_eager(SlipLine.device))
    .where(
        SlipLine.slip_id == sa.bindparam("slip_id"),
        SlipLine.removed_at.is_(None),
        sa.or_(Device.serial == sa.bindparam("code"), Device.asset_tag == sa.bindparam("code")),
    )
)
# What a pick reads, in one statement: the active line of the slip holding the scanned device, that line's
# pick time, the device, and the slip's progress (lines picked, active lines).
_DEVICES = table(Device)
_OTHERS = _LINES.alias("progress")
_PICKED = sa.func.count(_OTHERS.c.picked_at)
_ON_SLIP = sa.func.count(_OTHERS.c.id)
_SCANNED = sa.or_(_DEVICES.c.serial == sa.bindparam("code"), _DEVICES.c.asset_tag == sa.bindparam("code"))
_LINE_AND_DEVICE = (
    _LINES.c.id,
    _LINES.c.picked_at,
    _DEVICES.c.id,
    _DEVICES.c.serial,
    _DEVICES.c.status,
    _DEVICES.c.warehouse_id,
)


def _progress_of(slip_id: Any) -> tuple[sa.ScalarSelect, sa.ScalarSelect]:
    active = sa.and_(_OTHERS.c.slip_id == slip_id, _OTHERS.c.removed_at.is_(None))
    return (
        sa.select(_PICKED).where(active).scalar_subquery(),
        sa.select(_ON_SLIP).where(active).scalar_subquery(),
    )


_PICK_LOOKUP = Prepared(
    sa.select(*_LINE_AND_DEVICE, *_progress_of(sa.bindparam("slip_id")))
    .select_from(_LINES.join(_DEVICES, _DEVICES.c.id == _LINES.c.device_id))
    .where(_LINES.c.slip_id == sa.bindparam("slip_id"), _LINES.c.removed_at.is_(None), _SCANNED)
)
# the same, with the slip itself found by its number (and no line when the device is not on it)
_PICK_BY_NUMBER = Prepared(
    sa.select(
        _SLIPS.c.id,
        _SLIPS.c.status,
        _SLIPS.c.warehouse_id,
        _SLIPS.c.destination_id,
        *_LINE_AND_DEVICE,
        *_progress_of(_SLIPS.c.id),
    )
    .select_from(
        _SLIPS.outerjoin(
            _LINES.join(_DEVICES, sa.and_(_DEVICES.c.id == _LINES.c.device_id, _SCANNED)),
            sa.and_(_LINES.c.slip_id == _SLIPS.c.id, _LINES.c.removed_at.is_(None)),
        )
    )
    .where(_SLIPS.c.number == sa.bindparam("number"))
)
# Guarded on the line: of two volunteers scanning the same device, one only picks it.
_LINE_NOT_PICKED = sa.and_(
    _LINES.c.id == sa.bindparam("line_id"), _LINES.c.picked_at.is_(None), _LINES.c.removed_at.is_(None)
)
_PICKED_BY: dict[str, Any] = {"picked_at": sa.bindparam("now"), "picked_by_id": sa.bindparam("by_id")}
_PICK_LINE = Prepared(sa.update(_LINES).where(_LINE_NOT_PICKED).values(_PICKED_BY))
# On PostgreSQL, the same update also queues on the slip's row, held until the end of the transaction:
# volunteers picking a slip's last lines at the same moment would otherwise each count without the others'
# picks not committed yet, and the slip would never be prepared. The count that follows (``_pick``) is a
# statement of its own, so that it sees every pick committed before this one got the row. (SQLite's writers
# hold the database's write lock from their first statement; and its driver tells no row count for an update
# that starts with WITH.)
_HELD_SLIP = (
    sa.select(_SLIPS.c.id).where(_SLIPS.c.id == sa.bindparam("slip_id")).with_for_update().cte("held")
)
_PICK_LINE_HOLDING_SLIP = Prepared(
    sa.update(_LINES).where(_LINE_NOT_PICKED, sa.exists(sa.select(_HELD_SLIP.c.id))).values(_PICKED_BY)
)
_PROGRESS = Prepared(sa.select(*_progress_of(sa.bindparam("slip_id"))))
# the pick's device transition, with the slip's progress counted in the same statement (PostgreSQL)
_PICK_AND_COUNT = devices.reading_with(*_progress_of(sa.bindparam("slip_id")))


def _progress(session: Session, slip: Slip | _Picking) -> tuple[int, int]:
    picked, total = _PROGRESS.first(session, {"slip_id": slip.id}) or (0, 0)
    return picked, total


def _line_for(session: Session, slip: Slip, text: str) -> SlipLine | None:
    """The active line of ``slip`` whose device has this serial or asset tag."""
    return session.execute(_LINE_FOR, {"slip_id": slip.id, "code": text}).scalar_one_or_none()


def _other_slip(session: Session, slip: Slip | _Picking, text: str) -> str | None:
    """The number of another open slip of the same warehouse holding this device (removed from ``slip``
    and put on another while a phone was offline, say), if any: the reason of a refusal."""
    return session.scalar(
        sa.select(Slip.number)
        .join(SlipLine, SlipLine.slip_id == Slip.id)
        .join(Device, SlipLine.device_id == Device.id)
        .where(
            Slip.id != slip.id,
            Slip.warehouse_id == slip.warehouse_id,
            SlipLine.removed_at.is_(None),
            Slip.status.in_((SlipStatus.DRAFT, SlipStatus.ISSUED, SlipStatus.PREPARED)),
            sa.or_(Device.serial == text, Device.asset_tag == text),
        )
        .limit(1)
    )


@dataclass(frozen=True)
class _Picking:
    """The slip being prepared, as a pick reads it (its object is loaded only if the pick completes it)."""

    id: int
    number: str
    status: SlipStatus
    warehouse_id: int


def scan_for_pick(
    session: Session, slip: Slip, code: str, *, by: User | None, now: datetime | None = None
) -> ScanResult:
    """One scan in the warehouse: on this slip → picked; already picked → harmless; anything else → refused,
    and nothing changes. Two volunteers scanning the same device: one picks, the other is told it is done."""
    _require_role(by, "pick", "préparer un bordereau")
    _check_warehouse(slip, by)
    try:
        text = parse_scan(code)
    except ValidationFailed as exc:
        return ScanResult("refused", exc.message, *_progress(session, slip))
    if not text:
        return ScanResult(
            "refused", "Code vide : scannez l'étiquette de l'équipement.", *_progress(session, slip)
        )
    found = _PICK_LOOKUP.first(session, {"slip_id": slip.id, "code": text})
    picking = _Picking(slip.id, slip.number or "", slip.status, slip.warehouse_id)
    return _pick(session, picking, text, found, by=by, now=now, slip_object=slip)


def pick_by_number(
    session: Session, user: User | None, number: str, code: str, *, now: datetime | None = None
) -> ScanResult:
    """``scan_for_pick`` by ``user`` on the slip ``number`` as ``get_slip`` finds it (NotFound otherwise),
    with the slip, the scanned device's line and the slip's progress read by one statement: a volunteer's
    every scan, and the warehouse system's every pick, come here."""
    wanted = (number or "").strip().upper()
    try:
        text = parse_scan(code)
    except ValidationFailed:
        text = ""
    if not text or (user is not None and user.role is Role.PREFECTURE):  # answered as scan_for_pick does
        return scan_for_pick(session, get_slip(session, user, number=wanted), code, by=user, now=now)
    row = _PICK_BY_NUMBER.first(session, {"number": wanted, "code": text})
    if row is None or not _sees(user, row[2], row[3]):
        raise NotFound("Bordereau introuvable, ou hors de votre périmètre.")
    picking = _Picking(row[0], wanted, row[1], row[2])
    _require_role(user, "pick", "préparer un bordereau")
    _check_warehouse(picking, user)
    return _pick(session, picking, text, row[4:] if row[4] is not None else None, by=user, now=now)


def _pick(
    session: Session,
    slip: _Picking,
    text: str,
    found: tuple | None,
    *,
    by: User | None,
    now: datetime | None,
    slip_object: Slip | None = None,
) -> ScanResult:
    """The rest of a scan once the slip's line holding ``text`` (``found``: line id and pick time, device id,
    serial, status and warehouse, then the slip's progress) was read."""
    if found is None:
        elsewhere = _other_slip(session, slip, text)
        return ScanResult(
            "refused",
            f"{text} n'est PAS sur le bordereau {slip.number}"
            + (f" (il est maintenant sur le bordereau {elsewhere})" if elsewhere else "")
            + " : ne le mettez pas dans le colis.",
            *_progress(session, slip),
            text,
        )
    line_id, picked_at, device_id, serial, device_status, device_warehouse, picked, total = found
    if picked_at is not None:
        return ScanResult("already", f"{serial} est déjà préparé.", picked, total, serial)
    if slip.status is not SlipStatus.ISSUED:
        return ScanResult(
            "refused",
            f"Le bordereau est « {slip.status.label} » : il ne se prépare plus.",
            picked,
            total,
            serial,
        )
    now = now or utcnow()
    serialized = session.get_bind().dialect.name == "sqlite"
    won = (_PICK_LINE if serialized else _PICK_LINE_HOLDING_SLIP).run(
        session, {"line_id": line_id, "slip_id": slip.id, "now": now, "by_id": by.id if by else None}
    )
    line = session.identity_map.get(identity_key(SlipLine, line_id))  # if this session holds it
    if won != 1:
        if line is not None:
            session.expire(line)
        return ScanResult(
            "already", f"{serial} vient d'être préparé par quelqu'un d'autre.", picked, total, serial
        )
    if line is not None:
        session.expire(line, ["picked_at", "picked_by_id"])
    device = devices.DeviceRef(device_id, serial, device_status, device_warehouse)
    # Volunteers picking the slip's other lines at the same moment: the progress read with the line misses
    # their picks not committed yet. The line's update queued on the slip's row: count again, and the last to
    # commit sees every pick — in the transition's own statement when it is one (PostgreSQL), else after it.
    # (On SQLite the progress read with the line is the whole truth.)
    recount = None if serialized else devices.Reading(_PICK_AND_COUNT, {"slip_id": slip.id})
    devices.transition(
        session, device, "pick", by=by, reason=f"Préparé pour {slip.number}", now=now, reading=recount
    )
    picked += 1
    if recount is not None:
        picked, total = recount.values if recount.values is not None else _progress(session, slip)
    if picked == total:
        _complete(session, slip, by, now, slip_object)
    return ScanResult("picked", f"{serial} préparé.", picked, total, serial)


# The pick of a slip's last line prepares the slip: its guarded move and its journal row, as ``_move`` writes
# them, without loading the slip (one pick in ten, on slips of ten, did: a third of the cost of a pick).
_SLIP_EVENTS = table(SlipEvent)
_PREPARE_SLIP = Prepared(
    sa.update(_SLIPS)
    .where(_SLIPS.c.id == sa.bindparam("slip_id"), _SLIPS.c.status == SlipStatus.ISSUED)
    .values(status=SlipStatus.PREPARED, prepared_at=sa.bindparam("now"))
)
_PREPARED_EVENT = Prepared(
    sa.insert(_SLIP_EVENTS).values(
        action="prepared", from_status=SlipStatus.ISSUED, to_status=SlipStatus.PREPARED, detail=""
    ),
    columns=["slip_id", "at", "actor_id", "actor_label"],
)
assert SlipStatus.PREPARED in NEXT[SlipStatus.ISSUED]  # the rule _move would check


def _complete(session: Session, slip: _Picking, by: User | None, now: datetime, loaded: Slip | None) -> None:
    if _PREPARE_SLIP.run(session, {"slip_id": slip.id, "now": now}) != 1:
        raise _changed_meanwhile("Le bordereau", slip.number)
    _PREPARED_EVENT.run(
        session,
        {
            "slip_id": slip.id,
            "at": now,
            "actor_id": by.id if by else None,
            "actor_label": devices.actor_label(by),
        },
    )
    held = loaded or session.identity_map.get(identity_key(Slip, slip.id))
    if held is not None:  # the session's copy reads the new status again
        session.expire(held, ["status", "prepared_at", "events"])


def ship(session: Session, slip: Slip, *, by: User | None, now: datetime | None = None) -> bool:
    """The parcel leaves the warehouse: every device becomes expedie. Shipping twice is harmless (False)."""
    _require_role(by, "ship", "expédier un bordereau")
    _check_warehouse(slip, by)
    if slip.status in (SlipStatus.SHIPPED, SlipStatus.RECEIVED, SlipStatus.CLOSED):
        return False
    picked, total = _progress(session, slip)
    if slip.status is not SlipStatus.PREPARED:
        raise InvalidTransition(
            f"Le bordereau {slip.number} ne peut pas partir : {picked}/{total} équipements préparés."
            if slip.status is SlipStatus.ISSUED
            else f"Le bordereau {slip.number} est « {slip.status.label} »."
        )
    now = now or utcnow()
    _move(session, slip, SlipStatus.SHIPPED, "ship", by, now=now, stamp="shipped_at")
    for line in slip.active_lines:
        devices.transition(session, line.device, "ship", by=by, reason=f"Expédié avec {slip.number}", now=now)
    notifications.slip_shipped(session, slip, now=now)
    session.flush()
    return True


# ---------------------------------------------------------------- destination: reception


@dataclass
class ReceptionLine:
    serial: str
    state: ReceptionState
    comment: str = ""


_RECEPTION_ACTIONS = {
    ReceptionState.RECEIVED: "receive",
    ReceptionState.MISSING: "declare_missing",
    ReceptionState.DAMAGED: "declare_damaged",
}


def receive(
    session: Session, slip: Slip, lines: list[ReceptionLine], *, by: User | None, now: datetime | None = None
) -> int:
    """Confirm the parcel line by line; missing and damaged devices leave the flow and free their pupil.
    Saying again what was already said is harmless; contradicting it is a conflict. Returns lines changed."""
    _require_role(by, "receive", "réceptionner un bordereau")
    _check_destination(slip, by)
    if not lines:
        raise ValidationFailed("Indiquez l'état d'au moins un équipement.")
    if slip.status not in (SlipStatus.SHIPPED, SlipStatus.RECEIVED, SlipStatus.CLOSED):
        raise InvalidTransition(
            f"Le bordereau {slip.number} est « {slip.status.label} » : il n'a pas été expédié."
        )
    by_serial = {line.device.serial: line for line in slip.active_lines}
    problems, todo = [], []
    for item in lines:
        serial = parse_scan(item.serial)
        line = by_serial.get(serial)
        if line is None:
            problems.append(f"{serial} n'est pas sur ce bordereau")
        elif item.state is not ReceptionState.RECEIVED and not item.comment.strip():
            problems.append(f"{serial} : un commentaire est obligatoire pour « {item.state.label_lower} »")
        elif line.reception_state is not None and line.reception_state is not item.state:
            problems.append(f"{serial} a déjà été déclaré « {line.reception_state.label_lower} »")
        elif line.reception_state is None:
            todo.append((line, item))
    if problems:
        raise ValidationFailed("Réception refusée — " + " ; ".join(problems) + ".")
    now = now or utcnow()
    for line, item in todo:
        won = rows_changed(
            session.execute(
                sa.update(SlipLine)
                .where(SlipLine.id == line.id, SlipLine.reception_state.is_(None))
                .values(
                    reception_state=item.state, reception_comment=item.comment.strip()[:500], received_at=now
                )
                .execution_options(synchronize_session=False)
            )
        )
        if won != 1:
            raise Conflict(
                f"{line.device.serial} vient d'être réceptionné par quelqu'un d'autre ; rechargez."
            )
        session.expire(line, ["reception_state", "reception_comment", "received_at"])
        devices.transition(
            session,
            line.device,
            _RECEPTION_ACTIONS[item.state],
            by=by,
            reason=item.comment.strip() or f"Reçu avec {slip.number}",
            now=now,
        )
    _settle_lines(session, slip)
    if slip.status is SlipStatus.SHIPPED and all(line.reception_state for line in slip.active_lines):
        _move(
            session,
            slip,
            SlipStatus.RECEIVED,
            "received",
            by,
            now=now,
            stamp="received_at",
            detail=_reception_summary(slip),
        )
    close_if_done(session, slip, by=by, now=now)
    return len(todo)


def receive_scan(
    session: Session, slip: Slip, code: str, *, by: User | None, now: datetime | None = None
) -> ScanResult:
    """One device of the parcel scanned at its destination: on the slip → reçu; already received → harmless;
    declared missing or damaged, or not on the slip → refused, nothing changes. What is not scanned stays to
    decide (``receive`` with manquant or endommagé)."""
    _require_role(by, "receive", "réceptionner un bordereau")
    _check_destination(slip, by)

    def counts() -> tuple[int, int]:
        lines = slip.active_lines
        return sum(1 for line in lines if line.reception_state is not None), len(lines)

    try:
        text = parse_scan(code)
    except ValidationFailed as exc:
        return ScanResult("refused", exc.message, *counts())
    line = _line_for(session, slip, text) if text else None
    if line is None:
        return ScanResult(
            "refused",
            f"{text or 'Ce code'} n'est PAS sur le bordereau {slip.number} : mettez-le de côté, signalez-le.",
            *counts(),
            text or None,
        )
    serial = line.device.serial
    if line.reception_state is ReceptionState.RECEIVED:
        return ScanResult("already", f"{serial} est déjà reçu.", *counts(), serial)
    if line.reception_state is not None:
        return ScanResult(
            "refused",
            f"{serial} a déjà été déclaré « {line.reception_state.label_lower} » : rien n'est changé.",
            *counts(),
            serial,
        )
    try:
        receive(session, slip, [ReceptionLine(serial, ReceptionState.RECEIVED)], by=by, now=now)
    except (InvalidTransition, Conflict) as exc:
        return ScanResult("refused", exc.message, *counts(), serial)
    return ScanResult("picked", f"{serial} reçu.", *counts(), serial)


def _reception_summary(slip: Slip) -> str:
    counts: dict[str, int] = {}
    for line in slip.active_lines:
        counts[line.reception_state.label_lower] = counts.get(line.reception_state.label_lower, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _settle_lines(session: Session, slip: Slip) -> None:
    """Before deciding whether every line of ``slip`` is done: queue on the slip's row behind other users
    finishing its other lines at the same moment (PostgreSQL; SQLite's writers are already serialized), then
    read the lines again, so that the last to commit sees every line and moves the slip."""
    session.flush()
    session.execute(sa.select(Slip.id).where(Slip.id == slip.id).with_for_update())
    session.scalars(
        sa.select(SlipLine).where(SlipLine.slip_id == slip.id).execution_options(populate_existing=True)
    ).all()


def close_if_done(session: Session, slip: Slip, *, by: User | None, now: datetime | None = None) -> bool:
    """Close a received slip once every line is handed over or resolved (missing or damaged)."""
    if slip.status is not SlipStatus.RECEIVED:
        return False
    _settle_lines(session, slip)
    if all(
        line.handover_id is not None
        or line.reception_state in (ReceptionState.MISSING, ReceptionState.DAMAGED)
        for line in slip.active_lines
    ):
        _move(session, slip, SlipStatus.CLOSED, "close", by, now=now, stamp="closed_at")
        return True
    return False
