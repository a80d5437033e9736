"""The device lifecycle (docs/architecture.md, « Cycle de vie »): one transition table, the only source of who
may do what from which state; ``check`` applies it, ``transition`` changes the state."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..db import utcnow
from ..models import (
    Assignment,
    Device,
    DeviceCondition,
    DeviceEvent,
    DeviceModel,
    DeviceStatus,
    Lot,
    Role,
    User,
)
from ..statements import Prepared, table
from . import scope, tallies
from .errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed

S = DeviceStatus
_WAREHOUSE = scope.WAREHOUSE
_COORDINATION = scope.COORDINATION


@dataclass(frozen=True)
class Transition:
    """One allowed move of the device lifecycle."""

    action: str
    sources: frozenset[DeviceStatus]
    target: DeviceStatus
    roles: frozenset[Role]
    label: str  # French infinitive, used in messages: « Impossible de {label} »
    needs_reason: bool = False


def _t(
    action: str,
    sources: set[DeviceStatus],
    target: DeviceStatus,
    roles: frozenset[Role],
    label: str,
    needs_reason: bool = False,
) -> tuple[str, Transition]:
    return action, Transition(action, frozenset(sources), target, roles, label, needs_reason)


TRANSITIONS: dict[str, Transition] = dict(
    [
        _t("assign", {S.IN_STOCK}, S.ASSIGNED, _COORDINATION, "attribuer l'équipement"),
        _t("unassign", {S.ASSIGNED}, S.IN_STOCK, _COORDINATION, "annuler l'attribution"),
        _t("add_to_slip", {S.ASSIGNED}, S.ON_SLIP, _COORDINATION, "mettre l'équipement sur un bordereau"),
        _t("remove_from_slip", {S.ON_SLIP}, S.ASSIGNED, _COORDINATION, "retirer l'équipement du bordereau"),
        _t("pick", {S.ON_SLIP}, S.PREPARED, _WAREHOUSE, "préparer l'équipement"),
        _t("unpick", {S.PREPARED}, S.ON_SLIP, _WAREHOUSE, "annuler la préparation"),
        _t("ship", {S.PREPARED}, S.SHIPPED, _WAREHOUSE, "expédier l'équipement"),
        _t("receive", {S.SHIPPED}, S.RECEIVED, _COORDINATION, "réceptionner l'équipement"),
        _t("declare_missing", {S.SHIPPED}, S.LOST, _COORDINATION, "déclarer l'équipement manquant", True),
        _t(
            "declare_damaged",
            {S.SHIPPED, S.RECEIVED},
            S.DEFECTIVE,
            _COORDINATION,
            "déclarer l'équipement endommagé",
            True,
        ),
        _t("hand_over", {S.RECEIVED}, S.HANDED_OVER, _COORDINATION, "remettre l'équipement à la famille"),
        _t(
            "take_back",
            {S.RECEIVED, S.HANDED_OVER},
            S.RETURNED,
            _COORDINATION,
            "enregistrer le retour de l'équipement",
            True,
        ),
        # end of loan (domain/returns.py): the family brings the device back, in good order or broken
        _t(
            "return_by_family",
            {S.HANDED_OVER},
            S.RETURNED,
            _COORDINATION,
            "enregistrer la restitution de l'équipement",
        ),
        _t(
            "return_defective",
            {S.HANDED_OVER},
            S.DEFECTIVE,
            _COORDINATION,
            "enregistrer la restitution d'un équipement défectueux",
            True,
        ),
        _t("restock", {S.RETURNED, S.DEFECTIVE}, S.IN_STOCK, _WAREHOUSE, "remettre l'équipement en stock"),
        # back at the warehouse on a return slip, a device the family declared broken is found broken indeed
        _t(
            "confirm_defective",
            {S.DEFECTIVE},
            S.DEFECTIVE,
            _WAREHOUSE,
            "confirmer le défaut de l'équipement",
            True,
        ),
        _t(
            "mark_defective",
            {S.IN_STOCK, S.RETURNED},
            S.DEFECTIVE,
            _WAREHOUSE,
            "déclarer l'équipement défectueux",
            True,
        ),
        _t(
            "mark_lost",
            {S.IN_STOCK, S.RETURNED, S.DEFECTIVE},
            S.LOST,
            _WAREHOUSE,
            "déclarer l'équipement perdu",
            True,
        ),
    ]
)

RECEPTION_ACTION = "reception_stock"
# moves after which the device is no longer on its way to its pupil: the assignment ends with them (the
# pupil is back on the waiting list and the envelope's money is released), in the same transaction;
# ``unassign`` is the cancellation of an assignment itself
ENDS_ASSIGNMENT = frozenset(
    {"unassign", "declare_missing", "declare_damaged", "take_back", "return_by_family", "return_defective"}
)


def actor_label(user: User | None) -> str:
    """How an actor is written in the journal."""
    return user.email if user is not None else "ligne de commande"


def may(action: str, user: User | None) -> bool:
    """Whether ``user``'s role may apply ``action`` at all (None is the command line: everything)."""
    return user is None or user.role in TRANSITIONS[action].roles


def allows(action: str, status: DeviceStatus) -> bool:
    """Whether ``action`` applies to a device in ``status``."""
    return status in TRANSITIONS[action].sources


def sources(action: str) -> list[DeviceStatus]:
    """The statuses ``action`` starts from, for the SQL of pick lists (``Device.status.in_(...)``)."""
    return sorted(TRANSITIONS[action].sources)


def allowed_actions(device: Device, user: User | None) -> list[Transition]:
    """The transitions this user could apply to this device now (for buttons and API hints)."""
    return [
        t
        for t in TRANSITIONS.values()
        if allows(t.action, device.status) and may(t.action, user) and _in_scope(device, user, t)
    ]


def _in_scope(device: Device, user: User | None, rule: Transition) -> bool:
    try:
        check_write_scope(device, user, rule.action)
    except NotFound:
        return False
    return True


class DeviceRef(NamedTuple):
    """What a transition reads of a device, when it was read as a row rather than loaded as an object."""

    id: int
    serial: str
    status: DeviceStatus
    warehouse_id: int


def check_write_scope(
    device: Device | DeviceRef, user: User | None, action: str, *, session: Session | None = None
) -> None:
    """Writers act only on what they own: a warehouse on its stock; a coordinator assigns from its region's
    stock, and every other move of theirs concerns a device whose active assignment is their organisation's
    (a device of another association of the region is as unknown to them as one that does not exist).
    ``session``: where to ask, for a ``DeviceRef`` (a loaded device knows its session)."""
    if user is None or user.role is Role.ADMIN:
        return
    if session is None:
        session = sa.inspect(device).session
    if user.role is Role.COORDINATOR and action != "assign":
        mine = sa.select(Assignment.id).where(
            Assignment.device_id == device.id,
            Assignment.cancelled_at.is_(None),
            Assignment.organisation_id == user.organisation_id,
        )
        visible: bool | None = user.organisation_id is not None and session.scalar(mine.limit(1)) is not None
    else:
        visible = scope.warehouse_visible(user, device.warehouse_id)
    if visible is None:
        visible = bool(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(Device)
                .where(Device.id == device.id, scope.device_filter(user))
            )
        )
    if not visible:
        raise NotFound("Équipement introuvable, ou hors de votre périmètre.")


def check(
    action: str,
    device: Device | DeviceRef,
    user: User | None,
    *,
    reason: str = "",
    session: Session | None = None,
) -> Transition:
    """Whether ``user`` may apply ``action`` to ``device`` now (role, scope, state, and the comment some
    moves need): the table's rule, or the domain error that refuses it. Every transition goes through here."""
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise ValidationFailed(f"Action inconnue : {action}.")
    if not may(action, user):
        raise Forbidden(f"Votre rôle ne permet pas de {rule.label}.")
    check_write_scope(device, user, action, session=session)
    if rule.needs_reason and not reason.strip():
        raise ValidationFailed(f"Un commentaire est obligatoire pour {rule.label}.")
    if not allows(action, device.status):
        raise InvalidTransition(
            f"Impossible de {rule.label} : l'équipement {device.serial} est « {device.status.label} »."
        )
    return rule


# Built once: a transition is on the warehouse's hot paths (a pick, a web scan), and a statement built per
# call costs more than its execution (SQLAlchemy then compiles it once per engine and keeps it).
_DEVICES = table(Device)
_ASSIGNMENTS = table(Assignment)
_EVENTS = table(DeviceEvent)
_MOVE_DEVICE = Prepared(
    sa.update(_DEVICES)
    .where(_DEVICES.c.id == sa.bindparam("device_id"), _DEVICES.c.status == sa.bindparam("source"))
    .values(status=sa.bindparam("target"), updated_at=sa.bindparam("now"))
)
_JOURNAL = Prepared(
    sa.insert(_EVENTS).returning(_EVENTS.c.id),
    columns=["device_id", "at", "actor_id", "actor_label", "action", "from_status", "to_status", "reason"],
)
_ACTIVE = sa.and_(
    _ASSIGNMENTS.c.device_id == sa.bindparam("of_device"), _ASSIGNMENTS.c.cancelled_at.is_(None)
)
_COUNTED = (
    _ASSIGNMENTS.c.id,
    _ASSIGNMENTS.c.qpv_code,
    _ASSIGNMENTS.c.envelope_id,
    _ASSIGNMENTS.c.kind,
    _ASSIGNMENTS.c.unit_cost_cents,
)
# the usual move: the active assignment holds the status its device leaves, and goes on
_MOVE_ASSIGNMENT = Prepared(
    sa.update(_ASSIGNMENTS)
    .where(_ACTIVE, _ASSIGNMENTS.c.device_status == sa.bindparam("source"))
    .values(device_status=sa.bindparam("target"))
    .returning(*_COUNTED)
)
_ACTIVE_ASSIGNMENTS = Prepared(sa.select(*_COUNTED, _ASSIGNMENTS.c.device_status).where(_ACTIVE))
_JOURNALED = ("device_id", "at", "actor_id", "actor_label", "action", "from_status", "to_status", "reason")


def _move_journal_and_carry(*extra: sa.ColumnElement) -> sa.Select:
    """The three writes of a usual transition as one statement (PostgreSQL's data-modifying WITH): the guarded
    device update, its journal event, and the usual move of its active assignment (the one holding the status
    the device leaves). One row per assignment carried, or one with no assignment; no row when the guard
    refused. PostgreSQL runs them in one round trip instead of three; SQLite, which has no data-modifying WITH
    and no round trip (in-process), runs the three statements one by one (``transition``)."""
    moved = (
        sa.update(_DEVICES)
        .where(_DEVICES.c.id == sa.bindparam("device_id"), _DEVICES.c.status == sa.bindparam("source"))
        .values(status=sa.bindparam("target"), updated_at=sa.bindparam("now"))
        .returning(_DEVICES.c.id)
        .cte("moved")
    )
    carried = (
        sa.update(_ASSIGNMENTS)
        .where(
            _ASSIGNMENTS.c.device_id.in_(sa.select(moved.c.id)),
            _ASSIGNMENTS.c.cancelled_at.is_(None),
            _ASSIGNMENTS.c.device_status == sa.bindparam("source"),
        )
        .values(device_status=sa.bindparam("target"))
        .returning(*_COUNTED)
        .cte("carried")
    )
    values = [moved.c.id]
    values += [sa.bindparam(name, type_=_EVENTS.c[name].type) for name in _JOURNALED[1:]]
    journal = (
        sa.insert(_EVENTS)
        .from_select(list(_JOURNALED), sa.select(*values))
        .returning(_EVENTS.c.id)
        .cte("journal")
    )
    return sa.select(journal.c.id, *carried.c, *extra).select_from(journal.outerjoin(carried, sa.true()))


_MOVE_JOURNAL_AND_CARRY = Prepared(_move_journal_and_carry())
_CARRIED_WIDTH = 1 + len(_COUNTED)  # the journal event's id, then the columns of an assignment carried


@dataclass
class Reading:
    """What a caller reads in the same statement as a usual transition (PostgreSQL's one statement), to save
    a round trip: ``statement`` (made by ``reading_with``), its own parameters, and, once ``transition`` ran
    it, the ``values`` of its columns (None when the transition took another path: read them yourself)."""

    statement: Prepared
    params: dict[str, Any]
    values: tuple | None = None


def reading_with(*columns: sa.ColumnElement) -> Prepared:
    """The one-statement transition that also reads ``columns`` (scalar subqueries). They see what was
    committed when the statement began, as a statement of their own run next would (READ COMMITTED)."""
    return Prepared(_move_journal_and_carry(*columns))


def transition(
    session: Session,
    device: Device | DeviceRef,
    action: str,
    *,
    by: User | None,
    reason: str = "",
    now: datetime | None = None,
    reading: Reading | None = None,
) -> int:
    """Apply ``action`` to ``device``: check role, scope and state, change it and journal it (no commit).
    Returns the id of the journal event. ``reading``: columns to read in the same statement, if it is one."""
    reason = (reason or "").strip()
    rule = check(action, device, by, reason=reason, session=session)
    now = now or utcnow()
    source = device.status
    session.flush()  # what the caller changed through the ORM goes first, as it always did
    ends = action in ENDS_ASSIGNMENT
    journaled = {
        "device_id": device.id,
        "at": now,
        "actor_id": by.id if by is not None else None,
        "actor_label": actor_label(by),
        "action": action,
        "from_status": source,
        "to_status": rule.target,
        "reason": reason[:500],
    }
    conflict = Conflict(
        f"L'équipement {device.serial} vient d'être modifié par quelqu'un d'autre ; rechargez la page."
    )
    # Guarded update: of two requests racing from the same state, only one changes the row.
    if not ends and rule.target is not DeviceStatus.HANDED_OVER and _one_round_trip(session):
        values = {**journaled, "source": source, "target": rule.target, "now": now}
        if reading is None:
            rows = _MOVE_JOURNAL_AND_CARRY.rows(session, values)
        else:
            rows = reading.statement.rows(session, {**reading.params, **values})
            if rows:
                reading.values = rows[0][_CARRIED_WIDTH:]
        if not rows:
            raise conflict
        event_id = rows[0][0]
        carried = [(*row[1:_CARRIED_WIDTH], source) for row in rows if row[1] is not None]
        if carried:
            _count_moved(session, carried, rule.target, {"device_status": rule.target}, ends=False)
        else:  # the assignment held another status than its device's, or there is none
            set_assignment_status(session, device, rule.target, ends=False, by=by, now=now)
    else:
        moved = _MOVE_DEVICE.run(
            session, {"device_id": device.id, "source": source, "target": rule.target, "now": now}
        )
        if moved != 1:
            raise conflict
        set_assignment_status(session, device, rule.target, ends=ends, by=by, now=now, source=source)
        (event_id,) = _JOURNAL.first(session, journaled)
    # the device as this session holds it, if it does, shows the change (and reads its journal again)
    held = device if isinstance(device, Device) else session.identity_map.get(identity_key(Device, device.id))
    if held is not None:
        set_committed_value(held, "status", rule.target)
        set_committed_value(held, "updated_at", now)
        if "events" in held.__dict__:
            session.expire(held, ["events"])
    return int(event_id)


def set_assignment_status(
    session: Session,
    device: Device | DeviceRef,
    target: DeviceStatus,
    *,
    ends: bool,
    by: User | None,
    now: datetime,
    source: DeviceStatus | None = None,
) -> None:
    """The device's active assignment takes its new status (and ends when ``ends``), and the board's counters
    move with it, in one place: the only writer of ``Assignment.device_status`` after its creation.
    ``source``: the status the device leaves, which its assignment normally holds."""
    # the assignment carries its device's status (the status board reads assignments and their tallies); the
    # counters move from the status the assignment holds, which they count, whatever the device row says
    values: dict = {"device_status": target}
    if target is DeviceStatus.HANDED_OVER:
        values["handed_over_at"] = now
    if ends:
        values.update(cancelled_at=now, cancelled_by_id=by.id if by else None)
    moved: list = []
    if source is not None and len(values) == 1:
        # one statement in the usual case: the assignment held ``source``, so that is what the counters leave
        moved = [
            (*row, source)
            for row in _MOVE_ASSIGNMENT.rows(
                session, {"of_device": device.id, "source": source, "target": target}
            )
        ]
    if not moved:
        moved = _ACTIVE_ASSIGNMENTS.rows(session, {"of_device": device.id})
        if not moved:
            return
        session.connection().execute(
            sa.update(_ASSIGNMENTS)
            .where(_ASSIGNMENTS.c.id.in_([row[0] for row in moved]), _ASSIGNMENTS.c.cancelled_at.is_(None))
            .values(**values)
        )
    _count_moved(session, moved, target, values, ends=ends)


def _one_round_trip(session: Session) -> bool:
    """Whether the usual transition's writes go as one statement (PostgreSQL) rather than three."""
    return session.get_bind().dialect.name == "postgresql"


def _count_moved(
    session: Session, moved: Sequence[Sequence], target: DeviceStatus, values: dict, *, ends: bool
) -> None:
    """The counters of the assignments ``moved`` (id, QPV, envelope, kind, cost, status left) follow them to
    ``target``; the objects of them this session holds show their new ``values``."""
    for assignment_id, qpv, envelope, kind, cents, status in moved:
        tallies.move_assignment(
            session,
            (qpv, envelope, kind, status, True),
            (qpv, envelope, kind, target, not ends),
            cents,
        )
        # an assignment this session holds sees its new values, as the ORM's own update would have shown it
        held = session.identity_map.get(identity_key(Assignment, assignment_id))
        if held is not None:
            for name, value in values.items():
                set_committed_value(held, name, value)


# ---------------------------------------------------------------- receiving stock

_TAG_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32: no I, L, O, U


def new_asset_tag() -> str:
    """A short random asset tag such as ``EQ-7K3M9P2X`` (40 bits: collisions are checked anyway)."""
    return new_asset_tags(1)[0]


def new_asset_tags(count: int) -> list[str]:
    """``count`` random asset tags (from one call to the system's random source)."""
    random = secrets.token_bytes(5 * count)
    tags = []
    for start in range(0, 5 * count, 5):
        bits = int.from_bytes(random[start : start + 5])
        tags.append("EQ-" + "".join([_TAG_ALPHABET[(bits >> shift) & 31] for shift in range(35, -5, -5)]))
    return tags


MAX_SERIAL = 64
_SERIAL = re.compile(r"[0-9A-Za-z_./-]+")


def clean_serial(raw: str) -> str:
    """A serial as typed or scanned: trimmed, upper-cased, refused when empty or odd."""
    serial = (raw or "").strip().upper()
    if not serial:
        raise ValidationFailed("Le numéro de série est vide.")
    if len(serial) > MAX_SERIAL:
        raise ValidationFailed(f"Le numéro de série dépasse {MAX_SERIAL} caractères.")
    if not _SERIAL.fullmatch(serial):
        raise ValidationFailed(
            f"Numéro de série invalide : {serial!r} (lettres, chiffres et - _ . / seulement)."
        )
    return serial


def clean_asset_tag(raw: str) -> str:
    """An asset tag given by the supplier: same alphabet as serials, at most 32 characters."""
    tag = clean_serial(raw)
    if len(tag) > 32:
        raise ValidationFailed("L'étiquette dépasse 32 caractères.")
    return tag


def lot_models(session: Session, lot: Lot) -> list[DeviceModel]:
    """The device models priced in this lot (only those may be received into it)."""
    return [uc.model for uc in lot.unit_costs]


def check_can_receive(lot: Lot, by: User | None) -> None:
    """A lot's devices are received by admins or by the volunteers of the lot's warehouse."""
    scope.require(by, scope.Permission.RECEIVE_STOCK)
    if by is not None and by.role is Role.WAREHOUSE and by.organisation_id != lot.warehouse_id:
        raise NotFound("Lot introuvable, ou hors de votre périmètre.")


def receive_device(
    session: Session,
    *,
    lot: Lot,
    model: DeviceModel,
    serial: str,
    condition: DeviceCondition,
    by: User | None,
    asset_tag: str | None = None,
    now: datetime | None = None,
) -> Device:
    """Add one device of ``lot`` to its warehouse's stock, journalled (no commit)."""
    check_can_receive(lot, by)
    serial = clean_serial(serial)
    if model.id not in {uc.model_id for uc in lot.unit_costs}:
        raise ValidationFailed(
            f"Le modèle « {model.name} » n'a pas de coût unitaire dans le lot {lot.reference}."
        )
    if session.scalar(sa.select(Device.id).where(Device.serial == serial)) is not None:
        raise Conflict(f"Le numéro de série {serial} est déjà enregistré.", code="duplicate_serial")
    tag = clean_asset_tag(asset_tag) if asset_tag else _free_asset_tag(session)
    if asset_tag and session.scalar(sa.select(Device.id).where(Device.asset_tag == tag)) is not None:
        raise Conflict(f"L'étiquette {tag} est déjà utilisée.", code="duplicate_asset_tag")
    device = add_to_stock(
        session,
        lot=lot,
        model=model,
        serial=serial,
        asset_tag=tag,
        condition=condition,
        by=by,
        now=now or utcnow(),
        reason=f"Réception du lot {lot.reference}",
    )
    try:
        with session.begin_nested():  # only this insert is undone: the caller's transaction is its own
            session.flush()
    except sa.exc.IntegrityError as exc:  # a racing request registered the same serial first
        raise Conflict(f"Le numéro de série {serial} est déjà enregistré.", code="duplicate_serial") from exc
    return device


def _stock_values(
    *, lot: Lot, model_id: int, serial: str, asset_tag: str, condition: DeviceCondition | None, now: datetime
) -> dict:
    """The columns of a device entering its lot's warehouse: en_stock."""
    return {
        "serial": serial,
        "asset_tag": asset_tag,
        "model_id": model_id,
        "lot_id": lot.id,
        "warehouse_id": lot.warehouse_id,
        "condition": condition,
        "status": DeviceStatus.IN_STOCK,
        "created_at": now,
        "updated_at": now,
    }


def _reception_values(*, by: User | None, now: datetime, reason: str) -> dict:
    """The columns of a device's first journal event."""
    return {
        "at": now,
        "actor_id": by.id if by is not None else None,
        "actor_label": actor_label(by),
        "action": RECEPTION_ACTION,
        "from_status": None,
        "to_status": DeviceStatus.IN_STOCK,
        "reason": reason,
    }


def add_to_stock(
    session: Session,
    *,
    lot: Lot,
    model: DeviceModel,
    serial: str,
    asset_tag: str,
    condition: DeviceCondition,
    by: User | None,
    now: datetime,
    reason: str,
) -> Device:
    """A new device in its lot's warehouse, en_stock, with its journal's first event (checked values only)."""
    device = Device(
        **_stock_values(
            lot=lot, model_id=model.id, serial=serial, asset_tag=asset_tag, condition=condition, now=now
        )
    )
    session.add(device)
    session.add(DeviceEvent(device=device, **_reception_values(by=by, now=now, reason=reason)))
    return device


@dataclass(frozen=True)
class NewDevice:
    """A checked row of a stock file."""

    serial: str
    asset_tag: str
    model_id: int
    condition: DeviceCondition


def add_many_to_stock(
    session: Session,
    lot: Lot,
    items: Sequence[NewDevice],
    *,
    by: User | None,
    now: datetime,
    reason: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """``add_to_stock`` for a whole file: the same rows, written by batches of executemany (no commit).
    ``progress(n)`` after each batch of n devices written with their events."""
    from . import bulk

    ids = bulk.reserve_ids(session, Device, len(items))
    varying = ("id", "serial", "asset_tag", "model_id", "condition")
    template = _stock_values(lot=lot, model_id=0, serial="", asset_tag="", condition=None, now=now)
    event = _reception_values(by=by, now=now, reason=reason)
    for start in range(0, len(items), bulk.BATCH_ROWS):
        chunk = range(start, min(start + bulk.BATCH_ROWS, len(items)))
        bulk.insert_rows(
            session,
            Device,
            varying,
            (
                (ids[i], items[i].serial, items[i].asset_tag, items[i].model_id, items[i].condition.value)
                for i in chunk
            ),
            constants={k: v for k, v in template.items() if k not in varying},
        )
        bulk.insert_rows(session, DeviceEvent, ("device_id",), ((ids[i],) for i in chunk), constants=event)
        if progress is not None:
            progress(len(chunk))
    return len(items)


def _free_asset_tag(session: Session, taken: set[str] | None = None) -> str:
    for _ in range(20):
        tag = new_asset_tag()
        if (taken is None or tag not in taken) and session.scalar(
            sa.select(Device.id).where(Device.asset_tag == tag)
        ) is None:
            return tag
    raise Conflict("Impossible de générer une étiquette libre ; réessayez.")
