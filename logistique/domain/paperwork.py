"""Turn slips, devices and handovers into the plain documents that ``logistique.pdf`` draws."""

from __future__ import annotations

from ..models import Device, Handover, Organisation, ReceptionState, Slip
from ..pdf.documents import Address, Label, ReceiptDevice, ReceiptDocument, SlipDocument, SlipLine
from . import slips


def address(org: Organisation) -> Address:
    """An organisation's postal address block."""
    return Address(name=org.name, address=org.address, postal_code=org.postal_code, city=org.city)


def slip_url(slip: Slip, base_url: str, secret: str) -> str:
    """What the slip's QR code opens."""
    return f"{base_url}/s/{slips.token_for(slip, secret)}"


def slip_document(slip: Slip, *, base_url: str, secret: str) -> SlipDocument:
    """A slip as printed: devices with pupil references only, never a name."""
    lines = [
        SlipLine(
            kind=line.device.model.kind.label,
            model=line.device.model.name,
            serial=line.device.serial,
            asset_tag=line.device.asset_tag,
            pupil_reference=line.assignment.pupil.reference,
        )
        for line in slip.active_lines
    ]
    lots = sorted({line.device.lot.reference for line in slip.active_lines})
    return SlipDocument(
        number=slip.number,
        qr_url=slip_url(slip, base_url, secret),
        sender=address(slip.warehouse),
        destination=address(slip.destination),
        issued_at=slip.issued_at,
        status_label=slip.status.label,
        lines=lines,
        lot_references=lots,
    )


def label(device: Device, *, base_url: str) -> Label:
    """A device's label: QR of /d/<asset tag>, serial as Code 128."""
    return Label(
        url=f"{base_url}/d/{device.asset_tag}",
        asset_tag=device.asset_tag,
        serial=device.serial,
        model=device.model.name,
    )


def receipt_document(handover: Handover) -> ReceiptDocument:
    """The family's receipt: attestation de remise (gift) or convention de prêt (loan)."""
    devices = [
        ReceiptDevice(
            kind=line.device.model.kind.label,
            model=line.device.model.name,
            serial=line.device.serial,
            asset_tag=line.device.asset_tag,
        )
        for line in handover.lines
    ]
    return ReceiptDocument(
        number=handover.number,
        mode=handover.mode.value,
        pupil_reference=handover.pupil.reference,
        receiver_name=handover.receiver_name or "(donnée effacée)",
        relation=handover.relation,
        organisation=address(handover.organisation),
        handed_over_at=handover.handed_over_at,
        devices=devices,
        signature_png=handover.signature_png,
        signature_sha256=handover.signature_sha256,
    )


__all__ = ["ReceptionState", "address", "label", "receipt_document", "slip_document", "slip_url"]
