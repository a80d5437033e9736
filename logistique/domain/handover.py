"""Handover to the family: the guardian signs on the phone, the devices become ``remis``, a receipt is issued.

One signature covers a pupil's bundle (a tablet and its 4G key). Submitting the same handover twice gives back
the first one; handing over a device already handed over in another handover is a conflict."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from ..db import rows_changed, utcnow
from ..models import Assignment, Device, Handover, HandoverMode, Pupil, SlipLine, User
from . import devices, slips
from .errors import BusinessRuleViolation, Conflict, Forbidden, NotFound, ValidationFailed
from .pupils import pupil_filter

MAX_SIGNATURE_BYTES = 512 * 1024
RELATIONS = [
    "mère",
    "père",
    "responsable légal",
    "tuteur ou tutrice",
    "grand-parent",
    "frère ou sœur majeur",
    "élève majeur",
    "autre",
]


def decode_signature(data: str | bytes) -> bytes:
    """The PNG of a signature from a ``data:image/png;base64,…`` URL (or raw bytes), checked to be a real,
    non-empty PNG image of sensible size."""
    if isinstance(data, str):
        header, _, payload = data.partition(",")
        if not header.startswith("data:image/png;base64") or not payload:
            raise ValidationFailed("La signature doit être une image PNG (data:image/png;base64,…).")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed("La signature est illisible (base64 invalide).") from exc
    else:
        raw = data
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise ValidationFailed("La signature dépasse 512 Ko.")
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        raise ValidationFailed("La signature n'est pas une image PNG.")
    width, height = struct.unpack(">II", raw[16:24])
    if not (20 <= width <= 4000 and 20 <= height <= 4000):
        raise ValidationFailed("La signature a des dimensions invalides.")
    return raw


def is_blank(png: bytes) -> bool:
    """Whether a signature PNG has no stroke at all (every pixel the same)."""
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(png)) as image:
        extrema: Any = image.convert("LA").getextrema()
    return all(low == high for low, high in extrema)


def ready_devices(session: Session, pupil: Pupil) -> list[sa.Row[tuple[Device, SlipLine]]]:
    """The pupil's devices that may be handed over now (received at the destination), with their slip line."""
    return list(
        session.execute(
            sa.select(Device, SlipLine)
            .join(Assignment, sa.and_(Assignment.device_id == Device.id, Assignment.cancelled_at.is_(None)))
            .join(SlipLine, sa.and_(SlipLine.device_id == Device.id, SlipLine.removed_at.is_(None)))
            .where(Assignment.pupil_id == pupil.id, Device.status.in_(devices.sources("hand_over")))
            .options(joinedload(Device.model))
        ).all()
    )


def hand_over(
    session: Session,
    *,
    pupil: Pupil,
    serials: list[str],
    receiver_name: str,
    relation: str,
    mode: HandoverMode,
    signature: str | bytes,
    by: User | None,
    now: datetime | None = None,
) -> Handover:
    """Record the handover of a pupil's devices (received at the destination) to the family (no commit)."""
    if not devices.may("hand_over", by):
        raise Forbidden("Votre rôle ne permet pas d'enregistrer une remise.")
    if session.scalar(sa.select(Pupil.id).where(Pupil.id == pupil.id, pupil_filter(by))) is None:
        raise NotFound("Élève introuvable, ou hors de votre périmètre.")
    if pupil.purged_at is not None:
        raise BusinessRuleViolation("L'opération est close : plus aucune remise ne s'enregistre.")
    name = " ".join((receiver_name or "").split())
    if not name or len(name) > 200:
        raise ValidationFailed("Indiquez le nom de la personne qui reçoit l'équipement.")
    relation = (relation or "").strip()
    if relation not in RELATIONS:
        raise ValidationFailed("Lien avec l'élève inconnu (" + ", ".join(RELATIONS) + ").")
    png = decode_signature(signature)
    if is_blank(png):
        raise ValidationFailed("La signature est vide : faites signer la personne qui reçoit l'équipement.")
    digest = hashlib.sha256(png).hexdigest()
    wanted = []
    for raw in serials:
        serial = slips.parse_scan(raw)
        if serial and serial not in wanted:
            wanted.append(serial)
    if not wanted:
        raise ValidationFailed("Choisissez au moins un équipement à remettre.")
    rows = session.execute(
        sa.select(Device, Assignment, SlipLine)
        .join(Assignment, sa.and_(Assignment.device_id == Device.id, Assignment.cancelled_at.is_(None)))
        .outerjoin(SlipLine, sa.and_(SlipLine.device_id == Device.id, SlipLine.removed_at.is_(None)))
        .where(
            sa.or_(Device.serial.in_(wanted), Device.asset_tag.in_(wanted)), Assignment.pupil_id == pupil.id
        )
    ).all()
    found = {device.serial: (device, line) for device, _assignment, line in rows}
    found.update({device.asset_tag: (device, line) for device, _assignment, line in rows})
    missing = [s for s in wanted if s not in found]
    if missing:
        raise NotFound("Ces équipements ne sont pas attribués à cet élève : " + ", ".join(missing) + ".")
    items = list({device.id: (device, line) for device, line in (found[s] for s in wanted)}.values())
    done = {line.handover_id for _device, line in items if line is not None and line.handover_id is not None}
    if done:
        previous = session.get(Handover, done.pop())
        if (
            not done
            and all(line is not None and line.handover_id == previous.id for _d, line in items)
            and previous.signature_sha256 == digest
        ):
            return previous  # the same handover submitted twice
        raise Conflict(
            "Certains de ces équipements ont déjà été remis : "
            + ", ".join(d.serial for d, line in items if line is not None and line.handover_id)
            + ".",
            code="already_handed_over",
        )
    not_ready = [d.serial for d, _line in items if not devices.allows("hand_over", d.status)]
    if not_ready:
        raise BusinessRuleViolation(
            "Ces équipements ne sont pas réceptionnés par la structure : " + ", ".join(not_ready) + ".",
            code="not_received",
        )
    now = now or utcnow()
    handover = Handover(
        pupil_id=pupil.id,
        organisation_id=pupil.organisation_id,
        mode=mode,
        receiver_name=name,
        relation=relation,
        signature_png=png,
        signature_sha256=digest,
        handed_over_at=now,
        created_by_id=by.id if by else None,
    )
    session.add(handover)
    session.flush()
    handover.number = f"RM-{pupil.qpv.department_code}-{now.year}-{handover.id:06d}"
    touched = set()
    for device, line in items:
        devices.transition(
            session,
            device,
            "hand_over",
            by=by,
            reason=f"Remis ({mode.label_lower}) pour {pupil.reference}, reçu {handover.number}",
            now=now,
        )
        won = session.execute(
            sa.update(SlipLine)
            .where(SlipLine.id == line.id, SlipLine.handover_id.is_(None))
            .values(handover_id=handover.id)
            .execution_options(synchronize_session=False)
        )
        if rows_changed(won) != 1:
            raise Conflict(
                f"{device.serial} vient d'être remis par quelqu'un d'autre.", code="already_handed_over"
            )
        session.expire(line, ["handover_id"])
        touched.add(line.slip)
    session.flush()
    for slip in touched:
        slips.close_if_done(session, slip, by=by, now=now)
    return handover


def get_handover(session: Session, user: User | None, handover_id: int) -> Handover:
    """A handover whose pupil is in the user's scope, or NotFound."""
    handover = session.scalar(
        sa.select(Handover)
        .join(Pupil, Handover.pupil_id == Pupil.id)
        .where(Handover.id == handover_id, pupil_filter(user))
    )
    if handover is None:
        raise NotFound("Remise introuvable, ou hors de votre périmètre.")
    return handover
