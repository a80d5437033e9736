"""Turn slips, devices and handovers into the plain documents that ``logistique.pdf`` draws."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import (
    Device,
    DeviceStatus,
    EnvelopeKind,
    Handover,
    Organisation,
    ReceptionState,
    Restitution,
    ReturnSlip,
    Slip,
    TerritoryKind,
    User,
)
from ..pdf.documents import (
    Address,
    Label,
    ReceiptDevice,
    ReceiptDocument,
    RestitutionDevice,
    RestitutionDocument,
    SlipDocument,
    SlipLine,
)
from ..pdf.summary import SummaryDocument, SummaryEnvelope, SummaryRow
from . import return_slips, slips, status


def address(org: Organisation) -> Address:
    """An organisation's postal address block."""
    return Address(name=org.name, address=org.address, postal_code=org.postal_code, city=org.city)


def slip_url(slip: Slip, base_url: str, secret: str) -> str:
    """What the slip's QR code opens."""
    return f"{base_url}/s/{slips.token_for(slip, secret)}"


def _slip_line(device: Device, pupil_reference: str) -> SlipLine:
    return SlipLine(
        kind=device.model.kind.label,
        model=device.model.name,
        serial=device.serial,
        asset_tag=device.asset_tag,
        pupil_reference=pupil_reference,
    )


def slip_document(slip: Slip, *, base_url: str, secret: str) -> SlipDocument:
    """A slip as printed: devices with pupil references only, never a name."""
    lines = [_slip_line(line.device, line.assignment.pupil.reference) for line in slip.active_lines]
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


def restitution_document(restitution: Restitution) -> RestitutionDocument:
    """The family's restitution receipt: what came back, in which state (the pupil's name, as on the
    handover receipt: this paper goes to the family, through the coordinators of the organisation only)."""
    pupil = restitution.pupil
    name = " ".join(p for p in (pupil.first_name, pupil.last_name) if p) if pupil else ""
    return RestitutionDocument(
        number=restitution.number or "",
        pupil_reference=pupil.reference if pupil else "",
        pupil_name=name or "(donnée effacée)",
        organisation=address(restitution.organisation),
        returned_at=restitution.returned_at or restitution.created_at,
        received_by=restitution.received_by.email if restitution.received_by else "",
        devices=[
            RestitutionDevice(
                kind=line.device.model.kind.label,
                model=line.device.model.name,
                serial=line.device.serial,
                asset_tag=line.device.asset_tag,
                state="Défectueux" if line.state is DeviceStatus.DEFECTIVE else "Rendu en bon état",
                reason=line.reason if line.state is DeviceStatus.DEFECTIVE else "",
            )
            for line in restitution.lines
        ],
    )


def return_slip_url(return_slip: ReturnSlip, base_url: str, secret: str) -> str:
    """What a return slip's QR code opens."""
    return f"{base_url}/r/{return_slips.token_for(return_slip, secret)}"


def return_slip_document(return_slip: ReturnSlip, *, base_url: str, secret: str) -> SlipDocument:
    """A return slip as printed: the organisation sends, the warehouse receives; pupil references only."""
    lines = []
    for line in return_slip.active_lines:
        pupil = line.restitution_line.restitution.pupil
        lines.append(_slip_line(line.device, pupil.reference if pupil else ""))
    return SlipDocument(
        number=return_slip.number or "",
        qr_url=return_slip_url(return_slip, base_url, secret),
        sender=address(return_slip.organisation),
        destination=address(return_slip.warehouse),
        issued_at=return_slip.issued_at,
        status_label=return_slip.status.label,
        lines=lines,
        lot_references=sorted({line.device.lot.reference for line in return_slip.active_lines}),
        title="Bordereau de retour",
        sender_caption="Expéditeur — structure",
        sender_box="Pour la structure : nom, date, signature",
        destination_box="Pour l'entrepôt : nom, date, signature",
    )


def cap_note(env: status.EnvelopeRow) -> str:
    """« plafond 15 % : 1 500,00 € sur un montant annuel de 10 000,00 € » (cité éducative 2020 only)."""
    from ..formatting import euros

    if env.envelope.kind is not EnvelopeKind.CITE_2020 or env.cap_cents is None:
        return ""
    return (
        f"plafond 15\u00a0% : {euros(env.cap_cents)} sur un montant annuel de "
        f"{euros(env.envelope.annual_amount_cents)}"
    )


def summary_document(
    session: Session,
    user: User | None,
    territory: status.Territory,
    *,
    days: int,
    now: datetime | None = None,
) -> SummaryDocument:
    """The board's one-page summary of ``territory`` (for a prefect's meeting and the weekly e-mail)."""
    by = "qpv" if territory.kind is TerritoryKind.DEPARTMENT else "department"
    total, rows = status.board(session, territory, by=by)

    def summary_row(row: status.StatusRow) -> SummaryRow:
        return SummaryRow(row.code, row.name, row.needs, dict(row.counts), row.committed_cents)

    return SummaryDocument(
        territory=territory.label,
        generated_at=now or utcnow(),
        level="QPV" if by == "qpv" else "département",
        total=summary_row(total),
        rows=[summary_row(r) for r in rows],
        envelopes=[
            SummaryEnvelope(
                e.envelope.label, e.spendable_cents, e.committed_cents, e.delivered_cents, cap_note(e)
            )
            for e in status.money(session, territory)
        ],
        stuck_slips=status.stuck_slips(session, user, territory, days=days, limit=0).total,
        stuck_days=days,
        envelopes_scope="disponibles dans la région" if by == "qpv" else "disponibles",
    )


__all__ = [
    "ReceptionState",
    "address",
    "cap_note",
    "label",
    "receipt_document",
    "restitution_document",
    "return_slip_document",
    "return_slip_url",
    "slip_document",
    "slip_url",
    "summary_document",
]
