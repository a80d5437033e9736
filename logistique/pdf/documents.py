"""Plain data handed to the PDF builders: no models, no database, nothing personal beyond what a paper needs.

The domain layer fills these; ``logistique.pdf`` draws them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Address:
    name: str
    address: str = ""
    postal_code: str = ""
    city: str = ""
    phone: str = ""

    @property
    def lines(self) -> list[str]:
        return [
            line
            for line in (self.name, self.address, f"{self.postal_code} {self.city}".strip(), self.phone)
            if line
        ]


@dataclass(frozen=True)
class SlipLine:
    kind: str  # French label: « Tablette », « Ordinateur portable », « Clé 4G / routeur »
    model: str
    serial: str
    asset_tag: str
    pupil_reference: str  # never a name


@dataclass(frozen=True)
class SlipDocument:
    """A delivery slip (bon de livraison)."""

    number: str  # BL-59-2020-000123
    qr_url: str  # <base>/s/<token>
    sender: Address  # the warehouse
    destination: Address  # association or school
    issued_at: datetime | None
    status_label: str
    lines: list[SlipLine]
    lot_references: list[str] = field(default_factory=list)
    # a return slip (bordereau de retour) is drawn by the same code, the other way round
    title: str = "Bon de livraison"
    sender_caption: str = "Expéditeur — entrepôt"
    sender_box: str = "Pour l'entrepôt : nom, date, signature"
    destination_box: str = "Pour le destinataire : nom, date, signature"

    @property
    def totals(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for line in self.lines:
            counts[line.kind] = counts.get(line.kind, 0) + 1
        return counts


@dataclass(frozen=True)
class Label:
    """One device label: QR of <base>/d/<asset tag> and the serial as Code 128."""

    url: str
    asset_tag: str
    serial: str
    model: str


@dataclass(frozen=True)
class ReceiptDevice:
    kind: str
    model: str
    serial: str
    asset_tag: str


@dataclass(frozen=True)
class ReceiptDocument:
    """What the family keeps: an attestation de remise (gift) or a convention de prêt (loan)."""

    number: str  # RM-59-2020-000045
    mode: str  # "pret" or "don"
    pupil_reference: str
    receiver_name: str
    relation: str  # « mère », « père », « tuteur », …
    organisation: Address  # the association or school that hands over
    handed_over_at: datetime
    devices: list[ReceiptDevice]
    signature_png: bytes | None  # the guardian's signature as drawn on the phone
    signature_sha256: str
    loan_until: date | None = None


@dataclass(frozen=True)
class RestitutionDevice:
    kind: str
    model: str
    serial: str
    asset_tag: str
    state: str  # « Rendu en bon état », « Défectueux »
    reason: str = ""


@dataclass(frozen=True)
class RestitutionDocument:
    """What the family keeps when it brings devices back at the end of the loan."""

    number: str  # RS-59-2026-000012
    pupil_reference: str
    pupil_name: str  # the family's own paper, like the handover receipt
    organisation: Address
    returned_at: datetime
    received_by: str
    devices: list[RestitutionDevice]
