"""Request and response schemas of the API: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import (
    DeviceCondition,
    DeviceKind,
    DeviceStatus,
    HandoverMode,
    NeedKind,
    OrganisationKind,
    ReceptionState,
    SlipStatus,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="Code machine, stable (not_found, forbidden, conflict…).")
    message: str = Field(description="Phrase en français, à montrer à l'utilisateur.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Organisation(BaseModel):
    id: int
    kind: OrganisationKind
    name: str
    department: str
    uai: str | None = None
    city: str = ""
    qpvs: list[str] = Field(description="Codes des QPV desservis.")


class OrganisationList(BaseModel):
    items: list[Organisation]


MAX_ID = 2**31 - 1  # logistique.bounds.MAX_ID


class PageQuery(Strict):
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=500)


class DeviceQuery(PageQuery):
    status: DeviceStatus | None = None
    kind: DeviceKind | None = None
    lot: str | None = Field(None, max_length=40, description="Référence du lot.")


class DeviceEventOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: DeviceStatus | None
    to_status: DeviceStatus
    reason: str


class Device(BaseModel):
    serial: str
    asset_tag: str
    kind: DeviceKind
    model: str
    condition: DeviceCondition
    status: DeviceStatus
    lot: str
    warehouse_id: int
    updated_at: datetime


class DeviceWithHistory(Device):
    history: list[DeviceEventOut]


class DevicePage(BaseModel):
    items: list[Device]
    page: int
    per_page: int
    total: int


class DeviceIn(Strict):
    serial: str = Field(min_length=1, max_length=64)
    lot: str = Field(min_length=1, max_length=40, description="Référence du lot.")
    kind: DeviceKind
    model: str = Field(min_length=1, max_length=120)
    condition: DeviceCondition
    asset_tag: str | None = Field(None, max_length=32, description="Généré quand absent.")


class PupilQuery(PageQuery):
    qpv: str | None = Field(None, max_length=8, description="Code du QPV.")


class PupilIn(Strict):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    grade: str = Field(min_length=1, max_length=20, description="CP … Tle.")
    school_uai: str = Field(min_length=8, max_length=12)
    qpv: str = Field(min_length=8, max_length=12)
    guardian_name: str = Field(min_length=1, max_length=200)
    guardian_phone: str = Field(min_length=9, max_length=20)
    needs: list[NeedKind] = Field(min_length=1)


class AssignmentBrief(BaseModel):
    id: int
    serial: str
    kind: NeedKind


class Pupil(BaseModel):
    reference: str
    first_name: str | None = Field(description="Seulement pour les coordinateurs de la structure.")
    last_name: str | None
    grade: str
    school_uai: str
    qpv: str
    guardian_name: str | None
    guardian_phone: str | None
    needs: list[NeedKind]
    assignments: list[AssignmentBrief]
    created_at: datetime


class PupilPage(BaseModel):
    items: list[Pupil]
    page: int
    per_page: int
    total: int


class AssignmentIn(Strict):
    serial: str = Field(min_length=1, max_length=64)
    pupil: str = Field(min_length=1, max_length=16, description="Référence de l'élève (E-59-000123).")


class AssignmentBatchIn(Strict):
    items: list[AssignmentIn] = Field(min_length=1, max_length=200)


class AssignmentScanIn(Strict):
    serial: str = Field(
        min_length=1, max_length=200, description="Numéro de série, étiquette ou URL d'étiquette."
    )


class AssignmentItemOut(BaseModel):
    serial: str
    pupil: str | None
    status: int = Field(description="201 attribué ; sinon le statut d'erreur qu'aurait eu POST /assignments.")
    code: str | None = None
    message: str | None = None
    id: int | None = Field(None, description="Identifiant de l'attribution créée.")


class AssignmentBatchOut(BaseModel):
    assigned: int
    refused: int
    items: list[AssignmentItemOut]


class Assignment(BaseModel):
    id: int
    serial: str
    pupil: str
    kind: NeedKind
    envelope_id: int
    unit_cost_cents: int
    created_at: datetime
    cancelled_at: datetime | None


class SlipIn(Strict):
    destination: int = Field(
        ge=1, le=MAX_ID, description="Identifiant de la structure destinataire (association ou école)."
    )
    serials: list[str] = Field(min_length=1, max_length=500)


class SlipLineOut(BaseModel):
    serial: str
    asset_tag: str
    kind: DeviceKind
    model: str
    pupil: str = Field(description="Référence de l'élève, jamais son nom.")
    device_status: DeviceStatus
    picked: bool
    reception: ReceptionState | None
    handed_over: bool


class Slip(BaseModel):
    number: str
    status: SlipStatus
    warehouse_id: int
    destination: int
    qr_url: str
    pdf_url: str
    issued_at: datetime | None
    shipped_at: datetime | None
    received_at: datetime | None
    lines: list[SlipLineOut]


class PickIn(Strict):
    serial: str = Field(
        min_length=1, max_length=300, description="Numéro de série, étiquette ou URL /d/<étiquette>."
    )


class PickOut(BaseModel):
    outcome: str = Field(description="picked, already (sans effet) ou refused.")
    message: str
    picked: int
    total: int
    serial: str | None


class ReceptionLineIn(Strict):
    serial: str = Field(min_length=1, max_length=64)
    state: ReceptionState
    comment: str = Field("", max_length=500)


class ReceptionIn(Strict):
    lines: list[ReceptionLineIn] = Field(min_length=1, max_length=500)


class HandoverIn(Strict):
    serial: str | None = Field(None, max_length=64, description="Un équipement…")
    serials: list[str] | None = Field(
        None, max_length=10, description="…ou le lot de l'élève (tablette et clé)."
    )
    receiver_name: str = Field(min_length=1, max_length=200)
    relation: str = Field(min_length=1, max_length=50)
    mode: HandoverMode
    signature: str = Field(min_length=30, max_length=800_000, description="data:image/png;base64,…")


class HandoverOut(BaseModel):
    id: int
    number: str
    pupil: str
    mode: HandoverMode
    serials: list[str]
    signature_sha256: str
    handed_over_at: datetime
    receipt_url: str


class RestitutionLineIn(Strict):
    serial: str = Field(min_length=1, max_length=200, description="Numéro de série ou étiquette.")
    state: Literal["retourne", "defectueux"] = "retourne"
    reason: str = Field("", max_length=500, description="Obligatoire pour « defectueux ».")


class RestitutionIn(Strict):
    lines: list[RestitutionLineIn] = Field(min_length=1, max_length=500)


class RestitutionLineOut(BaseModel):
    serial: str
    state: Literal["retourne", "defectueux"]
    reason: str


class RestitutionOut(BaseModel):
    id: int
    number: str
    pupil: str = Field(description="Référence de l'élève (jamais son nom).")
    returned_at: datetime
    lines: list[RestitutionLineOut]
    receipt_url: str


class StatusQuery(Strict):
    territory: str | None = Field(
        None, max_length=20, description="Code de région (32) ou de département (59)."
    )
    by: Literal["department", "qpv"] = "department"


class StatusRowOut(BaseModel):
    code: str
    name: str
    department: str
    needs: int
    allocated: int | None = Field(description="Quota du plan de répartition appliqué, s'il y en a un.")
    assigned: int = Field(description="Attribués, pas encore sur un bordereau.")
    on_slips: int
    shipped: int
    received: int
    handed_over: int
    missing: int
    damaged: int
    devices: int = Field(description="Somme des colonnes précédentes.")
    returned: int = Field(0, description="Rendus par les familles en fin de prêt (hors de « devices »).")
    restocked: int = Field(0, description="Parmi eux, remis en stock par l'entrepôt après contrôle.")
    defective: int = Field(0, description="Parmi eux, défectueux (déclarés par la famille ou au contrôle).")
    committed_eur: float
    reported: bool = Field(
        description="false : aucun besoin déclaré, aucun quota ni équipement (un QPV ou un département à "
        "relancer)."
    )


class StatusOut(BaseModel):
    territory: str
    by: Literal["department", "qpv"]
    total: StatusRowOut
    rows: list[StatusRowOut]
