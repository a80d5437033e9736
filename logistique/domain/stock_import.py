"""Stock imports: a lot's devices from a CSV file, all or nothing, with a report by row."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..csvfiles import CsvFileError, RowError, fold_accents, read_csv
from ..db import utcnow
from ..models import Device, DeviceCondition, DeviceKind, DeviceModel, Lot, User
from . import bulk
from .devices import (
    NewDevice,
    add_many_to_stock,
    check_can_receive,
    clean_asset_tag,
    clean_serial,
    new_asset_tags,
)
from .errors import Conflict, ImportRejected, ValidationFailed

STOCK_COLUMNS = {
    "numero_serie": {"numero_de_serie", "n_serie", "no_serie", "serie", "serial", "sn", "imei"},
    "type": {"type_equipement", "categorie", "kind"},
    "modele": {"model", "modele_equipement", "designation"},
    "etiquette": {"numero_inventaire", "inventaire", "asset_tag", "etiquette_inventaire"},
    "etat": {"condition", "etat_equipement"},
}
_KINDS = {
    "tablette": DeviceKind.TABLET,
    "tablet": DeviceKind.TABLET,
    "ordinateur": DeviceKind.LAPTOP,
    "ordinateur_portable": DeviceKind.LAPTOP,
    "portable": DeviceKind.LAPTOP,
    "pc_portable": DeviceKind.LAPTOP,
    "laptop": DeviceKind.LAPTOP,
    "cle_4g": DeviceKind.HOTSPOT,
    "cle4g": DeviceKind.HOTSPOT,
    "routeur": DeviceKind.HOTSPOT,
    "cle_4g_routeur": DeviceKind.HOTSPOT,
    "routeur_4g": DeviceKind.HOTSPOT,
    "hotspot": DeviceKind.HOTSPOT,
}
_CONDITIONS = {
    "neuf": DeviceCondition.NEW,
    "reconditionne": DeviceCondition.REFURBISHED,
    "recond": DeviceCondition.REFURBISHED,
    "occasion": DeviceCondition.REFURBISHED,
}


def _word(value: str) -> str:
    text = fold_accents(value).lower().strip()
    return "_".join(text.replace("/", " ").replace("-", " ").split())


# a file of 100 000 devices spells its types and conditions a few ways: each spelling is read once
@functools.lru_cache(maxsize=256)
def _kind(text: str) -> DeviceKind | None:
    return _KINDS.get(_word(text))


@functools.lru_cache(maxsize=256)
def _condition(text: str) -> DeviceCondition | None:
    return _CONDITIONS.get(_word(text))


@dataclass
class StockImportReport:
    lot: Lot
    created: int
    by_kind: dict[DeviceKind, int]


@dataclass
class CheckedStock:
    """A stock file that passed every check: what ``write_stock`` inserts."""

    lot: Lot
    devices: list[NewDevice]
    by_kind: dict[DeviceKind, int]
    given_tags: int  # asset tags read from the file (the others were generated)


def import_stock(
    session: Session, data: bytes, *, lot: Lot, by: User | None, progress: bulk.Progress | None = None
) -> StockImportReport:
    """Add the devices listed in ``data`` to ``lot``'s warehouse; any bad row refuses the whole file."""
    return write_stock(session, check_stock(session, data, lot=lot, by=by), by=by, progress=progress)


def check_stock(
    session: Session, data: bytes, *, lot: Lot, by: User | None, progress: bulk.Progress | None = None
) -> CheckedStock:
    """Read and check a stock file against the lot and the devices already known (reads only; ``progress``
    hears of the rows checked).
    Raises ``ImportRejected`` listing the faulty rows: duplicates in the file and in the database included."""
    check_can_receive(lot, by)
    bulk.check_upload(data, what="équipements")
    try:
        table = read_csv(data, columns=STOCK_COLUMNS, required={"numero_serie", "type", "modele", "etat"})
    except CsvFileError as exc:
        raise ImportRejected(str(exc), []) from exc
    errors: list[RowError] = list(table.errors)
    models = {(uc.model.kind, uc.model.name.lower()): uc.model for uc in lot.unit_costs}
    serial_lines: dict[str, int] = {}
    tag_lines: dict[str, int] = {}
    rows: list[tuple[str, str | None, DeviceModel, DeviceCondition]] = []
    for line, row in bulk.counted(table.rows, progress):
        problems: list[str] = []
        serial = tag = None
        try:
            serial = clean_serial(row.get("numero_serie", ""))
        except ValidationFailed as exc:
            problems.append(exc.message)
        if row.get("etiquette"):
            try:
                tag = clean_asset_tag(row["etiquette"])
            except ValidationFailed as exc:
                problems.append(exc.message.replace("numéro de série", "étiquette"))
        kind = _kind(row.get("type", ""))
        if kind is None:
            problems.append(f"type inconnu : {row.get('type', '')!r} (tablette, ordinateur ou cle_4g)")
        model = None
        if kind is not None:
            model = models.get((kind, _model_key(row.get("modele", ""))))
            if model is None:
                problems.append(_unknown_model(row.get("modele", ""), kind, models.values()))
        condition = _condition(row.get("etat", ""))
        if condition is None:
            problems.append(f"état inconnu : {row.get('etat', '')!r} (neuf ou reconditionne)")
        if serial:
            if serial in serial_lines:
                problems.append(
                    f"numéro de série {serial} en double dans le fichier (déjà ligne {serial_lines[serial]})"
                )
            else:
                serial_lines[serial] = line
        if tag:
            if tag in tag_lines:
                problems.append(f"étiquette {tag} en double dans le fichier (déjà ligne {tag_lines[tag]})")
            else:
                tag_lines[tag] = line
        if problems:
            errors.append(RowError(line, " ; ".join(problems)))
        else:
            rows.append((serial, tag, model, condition))
    del table
    errors.extend(_already_known(session, Device.serial, serial_lines, "numéro de série {} déjà enregistré"))
    errors.extend(_already_known(session, Device.asset_tag, tag_lines, "étiquette {} déjà utilisée"))
    if errors:
        raise bulk.refuse(errors, "aucun équipement")
    if not rows:
        raise ImportRejected("Le fichier ne contient aucun équipement.", [])
    fresh = iter(_free_asset_tags(session, sum(1 for r in rows if r[1] is None), taken=set(tag_lines)))
    by_kind: dict[DeviceKind, int] = {}
    devices = []
    for serial, tag, model, condition in rows:
        devices.append(NewDevice(serial, tag or next(fresh), model.id, condition))
        by_kind[model.kind] = by_kind.get(model.kind, 0) + 1
    return CheckedStock(lot=lot, devices=devices, by_kind=by_kind, given_tags=len(tag_lines))


def write_stock(
    session: Session, checked: CheckedStock, *, by: User | None, progress: bulk.Progress | None = None
) -> StockImportReport:
    """Insert a checked stock file with the devices' first journal events (no commit). A device that another
    transaction registered since the check makes the whole file fail (nothing is written)."""
    lot = checked.lot
    try:
        with session.begin_nested():
            add_many_to_stock(
                session,
                lot,
                checked.devices,
                by=by,
                now=utcnow(),
                reason=f"Import du lot {lot.reference}",
                progress=progress,
            )
    except sa.exc.IntegrityError as exc:
        raise Conflict(
            "Des équipements de ce fichier viennent d'être enregistrés par un autre import ; rien n'a été "
            "importé. Importez à nouveau le fichier pour voir les lignes en cause."
        ) from exc
    return StockImportReport(lot=lot, created=len(checked.devices), by_kind=checked.by_kind)


def _free_asset_tags(session: Session, count: int, *, taken: set[str]) -> list[str]:
    """``count`` new random asset tags, unused in the database and outside ``taken``."""
    tags: set[str] = set()
    for _ in range(20):
        wanted = count - len(tags)
        if not wanted:
            return list(tags)
        candidates = set(new_asset_tags(wanted)) - taken - tags
        tags |= candidates - bulk.existing_values(session, Device.asset_tag, candidates)
    raise Conflict("Impossible de générer des étiquettes libres ; réessayez.")


@functools.lru_cache(maxsize=1024)
def _model_key(name: str) -> str:
    return " ".join(name.split()).lower()


def _unknown_model(name: str, kind: DeviceKind, models) -> str:
    same_kind = sorted(m.name for m in models if m.kind is kind)
    if same_kind:
        return f"modèle inconnu pour ce lot : {name!r} — modèles du lot : " + ", ".join(same_kind)
    return f"modèle inconnu pour ce lot : {name!r} (le lot n'a aucun modèle de type {kind.label_lower})"


def _already_known(session: Session, column, lines: dict[str, int], message: str) -> list[RowError]:
    return [
        RowError(lines[value], message.format(value))
        for value in bulk.existing_values(session, column, lines)
    ]
