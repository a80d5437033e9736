"""All models, imported here so that ``Base.metadata`` knows every table."""

from .accounts import ApiToken, LoginThrottle, User
from .api import IdempotencyRecord
from .enums import (
    DeviceCondition,
    DeviceKind,
    DeviceStatus,
    EnvelopeKind,
    OrganisationKind,
    Role,
    TerritoryKind,
)
from .jobs import Job, JobStatus
from .money import Envelope, Lot, LotUnitCost
from .notifications import OutboxMessage, OutboxStatus
from .pupils import (
    AllocationLine,
    AllocationPlan,
    Assignment,
    AuditEvent,
    Need,
    NeedKind,
    OperationState,
    PlanStatus,
    Pupil,
)
from .referential import CiteEducative, Commune, Department, Organisation, Qpv, Region, organisation_qpvs
from .returns import (
    Restitution,
    RestitutionLine,
    RestitutionStatus,
    ReturnSlip,
    ReturnSlipEvent,
    ReturnSlipLine,
)
from .slips import Handover, HandoverMode, ReceptionState, Slip, SlipEvent, SlipLine, SlipStatus
from .stock import Device, DeviceEvent, DeviceModel
from .tallies import AssignmentTally, PupilTally, ReturnTally

__all__ = [
    "Job",
    "JobStatus",
    "AssignmentTally",
    "PupilTally",
    "ReturnTally",
    "Restitution",
    "RestitutionLine",
    "RestitutionStatus",
    "ReturnSlip",
    "ReturnSlipEvent",
    "ReturnSlipLine",
    "Handover",
    "HandoverMode",
    "ReceptionState",
    "Slip",
    "SlipEvent",
    "SlipLine",
    "SlipStatus",
    "AllocationLine",
    "AllocationPlan",
    "Assignment",
    "AuditEvent",
    "Need",
    "NeedKind",
    "OperationState",
    "PlanStatus",
    "Pupil",
    "ApiToken",
    "CiteEducative",
    "Commune",
    "Department",
    "Device",
    "DeviceCondition",
    "DeviceEvent",
    "DeviceKind",
    "DeviceModel",
    "DeviceStatus",
    "Envelope",
    "EnvelopeKind",
    "IdempotencyRecord",
    "LoginThrottle",
    "Lot",
    "LotUnitCost",
    "Organisation",
    "OrganisationKind",
    "Qpv",
    "Region",
    "Role",
    "TerritoryKind",
    "User",
    "organisation_qpvs",
    "OutboxMessage",
    "OutboxStatus",
]
