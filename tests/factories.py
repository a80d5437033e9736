"""Builders shared by the slip and handover tests: pupils with devices assigned, slips at each stage of
their life, signatures as the phone's pad makes them, and a snapshot of what a refusal must leave alone."""

from __future__ import annotations

import base64
from io import BytesIO
from types import SimpleNamespace

import pypdfium2 as pdfium
import sqlalchemy as sa
from PIL import Image, ImageDraw

from logistique.domain import assignments, devices, handover, pupils, slips
from logistique.models import (
    Assignment,
    Device,
    DeviceCondition,
    DeviceEvent,
    Handover,
    HandoverMode,
    Organisation,
    Pupil,
    ReceptionState,
    Slip,
    SlipEvent,
    SlipLine,
)

SECRET = "secret-de-test"
BASE = "https://logistique.test"


# ---------------------------------------------------------------- pupils and devices


def add_pupil(
    session,
    world: SimpleNamespace,
    first: str,
    last: str,
    *,
    needs: str = "tablette+connexion",
    organisation: Organisation | None = None,
    guardian: str | None = None,
) -> Pupil:
    """A pupil of the Roubaix association (registered by its coordinator), or of ``organisation``."""
    organisation = organisation or world.assoc_roubaix
    qpv = pupils.served_qpvs(session, organisation.id)
    qpv_code = "QN05981M" if "QN05981M" in qpv else sorted(qpv)[0]
    data = pupils.PupilData(
        first, last, "CM2", "0750654D", qpv_code, guardian or f"Parent {last}", "06 12 34 56 78", needs
    )
    if organisation.id == world.assoc_roubaix.id:
        return pupils.register_pupil(session, data, by=world.coordinator)
    return pupils.register_pupil(session, data, by=None, organisation=organisation)


def add_device(session, world: SimpleNamespace, serial: str, kind: str = "tablet", lot=None) -> Device:
    """A refurbished device in the stock of ``lot``'s warehouse (Lille by default)."""
    model = {"tablet": world.tablet, "key": world.key, "laptop": world.laptop}[kind]
    return devices.receive_device(
        session,
        lot=lot or world.lot,
        model=model,
        serial=serial,
        condition=DeviceCondition.REFURBISHED,
        by=None,
    )


def assign(session, world: SimpleNamespace, pupil: Pupil, device: Device) -> Assignment:
    by = world.coordinator if pupil.organisation_id == world.assoc_roubaix.id else None
    return assignments.assign(session, pupil=pupil, device=device, by=by)


def bundle(session, world: SimpleNamespace, n: int, first: str = "Léa", last: str | None = None):
    """A Roubaix pupil with a Lille tablet ``SN-TAB-n`` and a Lille 4G key ``SN-CLE-n`` assigned."""
    pupil = add_pupil(session, world, first, last or f"Martin{chr(64 + n)}")
    tablet = add_device(session, world, f"SN-TAB-{n}", "tablet")
    key = add_device(session, world, f"SN-CLE-{n}", "key")
    assign(session, world, pupil, tablet)
    assign(session, world, pupil, key)
    return SimpleNamespace(pupil=pupil, tablet=tablet, key=key, serials=[tablet.serial, key.serial])


# ---------------------------------------------------------------- slips at each stage


def issued_slip(session, world: SimpleNamespace, serials: list[str]) -> Slip:
    return slips.create_slip(
        session, destination=world.assoc_roubaix, serials=serials, by=world.coordinator, issue=True
    )


def pick_all(session, world: SimpleNamespace, slip: Slip) -> None:
    for line in slip.active_lines:
        result = slips.scan_for_pick(session, slip, line.device.serial, by=world.warehouse)
        assert result.outcome == "picked", result.message


def shipped_slip(session, world: SimpleNamespace, serials: list[str]) -> Slip:
    slip = issued_slip(session, world, serials)
    pick_all(session, world, slip)
    slips.ship(session, slip, by=world.warehouse)
    return slip


def received_slip(session, world: SimpleNamespace, serials: list[str]) -> Slip:
    slip = shipped_slip(session, world, serials)
    slips.receive(
        session,
        slip,
        [slips.ReceptionLine(s, ReceptionState.RECEIVED) for s in serials],
        by=world.coordinator,
    )
    return slip


def token(slip: Slip, secret: str = SECRET) -> str:
    return slips.token_for(slip, secret)


# ---------------------------------------------------------------- signatures


def signature_png(width: int = 300, height: int = 120) -> bytes:
    """A PNG with a stroke, as the phone's signature pad makes (transparent background)."""
    image = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    ImageDraw.Draw(image).line(
        [(10, height - 20), (80, 20), (150, height - 30), (width - 10, 30)], fill=(0, 0, 0, 255), width=4
    )
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def blank_png() -> bytes:
    """What the pad sends when nobody signed: a fully transparent PNG."""
    out = BytesIO()
    Image.new("RGBA", (300, 120), (0, 0, 0, 0)).save(out, "PNG")
    return out.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def hand_over(session, world: SimpleNamespace, pupil: Pupil, serials: list[str], **kw) -> Handover:
    values = {
        "receiver_name": "Nadia Receveuse",
        "relation": "mère",
        "mode": HandoverMode.LOAN,
        "signature": data_url(signature_png()),
    }
    values.update(kw)
    return handover.hand_over(session, pupil=pupil, serials=serials, by=world.coordinator, **values)


# ---------------------------------------------------------------- PDFs


def pdf_pages(data: bytes) -> int:
    return len(pdfium.PdfDocument(data))


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    return "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))


# ---------------------------------------------------------------- what a refusal must not change


def snapshot(session, *, fresh: bool = True) -> dict[str, list[tuple]]:
    """Statuses, journals, lines, assignments and handovers. ``fresh``: as committed (after the requests);
    otherwise as the current transaction sees it (a domain refusal must not have written anything)."""

    def rows(*columns, order):
        return [tuple(r) for r in session.execute(sa.select(*columns).order_by(order)).all()]

    if fresh:
        session.rollback()
    try:
        return {
            "slips": rows(Slip.id, Slip.number, Slip.status, Slip.cancelled_at, order=Slip.id),
            "slip_events": rows(SlipEvent.id, SlipEvent.slip_id, SlipEvent.action, order=SlipEvent.id),
            "lines": rows(
                SlipLine.id,
                SlipLine.slip_id,
                SlipLine.device_id,
                SlipLine.picked_at,
                SlipLine.reception_state,
                SlipLine.reception_comment,
                SlipLine.handover_id,
                SlipLine.removed_at,
                order=SlipLine.id,
            ),
            "devices": rows(Device.id, Device.serial, Device.status, order=Device.id),
            "device_events": rows(
                DeviceEvent.id, DeviceEvent.device_id, DeviceEvent.action, order=DeviceEvent.id
            ),
            "assignments": rows(
                Assignment.id, Assignment.device_id, Assignment.cancelled_at, order=Assignment.id
            ),
            "handovers": rows(
                Handover.id,
                Handover.number,
                Handover.receiver_name,
                Handover.signature_sha256,
                order=Handover.id,
            ),
        }
    finally:
        if fresh:
            session.rollback()


def device_status(session, serial: str):
    session.rollback()
    try:
        return session.scalar(sa.select(Device.status).where(Device.serial == serial))
    finally:
        session.rollback()


def slip_status(session, number: str):
    session.rollback()
    try:
        return session.scalar(sa.select(Slip.status).where(Slip.number == number))
    finally:
        session.rollback()


def events_of(session, serial: str) -> list[str]:
    """The device journal's actions, oldest first, as committed."""
    session.rollback()
    try:
        return list(
            session.scalars(
                sa.select(DeviceEvent.action)
                .join(Device, DeviceEvent.device_id == Device.id)
                .where(Device.serial == serial)
                .order_by(DeviceEvent.id)
            )
        )
    finally:
        session.rollback()


def slip_events(session, number: str) -> list[str]:
    session.rollback()
    try:
        return list(
            session.scalars(
                sa.select(SlipEvent.action)
                .join(Slip, SlipEvent.slip_id == Slip.id)
                .where(Slip.number == number)
                .order_by(SlipEvent.id)
            )
        )
    finally:
        session.rollback()
