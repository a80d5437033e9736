"""Enumerations stored in status and kind columns: their values are the stable stored codes
(docs/architecture.md, « Cycle de vie »)."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa


class Labelled(StrEnum):
    """An enum whose members have a French ``label``; ``label_lower`` is for the middle of a sentence."""

    @property
    def label(self) -> str:  # overridden by each enum
        return self.value

    @property
    def label_lower(self) -> str:
        """« Clé 4G / routeur » → « clé 4G / routeur » (only the first letter: acronyms keep their case)."""
        text = self.label
        return text[:1].lower() + text[1:]


class Role(Labelled):
    ADMIN = "admin"
    WAREHOUSE = "warehouse"
    COORDINATOR = "coordinator"
    PREFECTURE = "prefecture"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.ADMIN: "Administration",
    Role.WAREHOUSE: "Entrepôt",
    Role.COORDINATOR: "Coordination",
    Role.PREFECTURE: "Préfecture",
}


class OrganisationKind(Labelled):
    ASSOCIATION = "association"
    SCHOOL = "ecole"
    WAREHOUSE = "entrepot"
    PREFECTURE = "prefecture"

    @property
    def label(self) -> str:
        return {
            "association": "Association",
            "ecole": "École / établissement",
            "entrepot": "Entrepôt",
            "prefecture": "Préfecture",
        }[self.value]


class TerritoryKind(StrEnum):
    REGION = "region"
    DEPARTMENT = "departement"


class EnvelopeKind(Labelled):
    DELEGATED = "credits_delegues"
    CITE_2019 = "cite_2019"
    CITE_2020 = "cite_2020"

    @property
    def label(self) -> str:
        return {
            "credits_delegues": "Crédits délégués",
            "cite_2019": "Cité éducative — reliquat 2019",
            "cite_2020": "Cité éducative — 2020 (15 % au plus)",
        }[self.value]


class DeviceKind(Labelled):
    TABLET = "tablette"
    LAPTOP = "ordinateur"
    HOTSPOT = "cle_4g"

    @property
    def label(self) -> str:
        return {"tablette": "Tablette", "ordinateur": "Ordinateur portable", "cle_4g": "Clé 4G / routeur"}[
            self.value
        ]


class DeviceCondition(Labelled):
    NEW = "neuf"
    REFURBISHED = "reconditionne"

    @property
    def label(self) -> str:
        return {"neuf": "Neuf", "reconditionne": "Reconditionné"}[self.value]


class DeviceStatus(Labelled):
    IN_STOCK = "en_stock"
    ASSIGNED = "attribue"
    ON_SLIP = "sur_bordereau"
    PREPARED = "prepare"
    SHIPPED = "expedie"
    RECEIVED = "receptionne"
    HANDED_OVER = "remis"
    RETURNED = "retourne"
    DEFECTIVE = "defectueux"
    LOST = "perdu"

    @property
    def label(self) -> str:
        return DEVICE_STATUS_LABELS[self]


DEVICE_STATUS_LABELS = {
    DeviceStatus.IN_STOCK: "En stock",
    DeviceStatus.ASSIGNED: "Attribué",
    DeviceStatus.ON_SLIP: "Sur bordereau",
    DeviceStatus.PREPARED: "Préparé",
    DeviceStatus.SHIPPED: "Expédié",
    DeviceStatus.RECEIVED: "Réceptionné",
    DeviceStatus.HANDED_OVER: "Remis",
    DeviceStatus.RETURNED: "Retourné",
    DeviceStatus.DEFECTIVE: "Défectueux",
    DeviceStatus.LOST: "Perdu",
}


def enum_column(enum: type[StrEnum], name: str) -> sa.Enum:
    """A VARCHAR column with a CHECK constraint holding the enum's values (same on SQLite and PostgreSQL)."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
