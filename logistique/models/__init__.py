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
from .money import Envelope, Lot, LotUnitCost
from .referential import CiteEducative, Commune, Department, Organisation, Qpv, Region, organisation_qpvs
from .stock import Device, DeviceEvent, DeviceModel

__all__ = [
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
]
