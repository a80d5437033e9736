"""Stock imports: a lot's devices from a CSV file, all or nothing, with a report by row."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..csvfiles import CsvFileError, RowError, fold_accents, read_csv
from ..db import utcnow
from ..models import Device, DeviceCondition, DeviceKind, DeviceModel, Lot, User
from .devices import (
    _free_asset_tag,
    add_to_stock,
    check_can_receive,
    clean_asset_tag,
    clean_serial,
)
from .errors import ImportRejected, ValidationFailed

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


@dataclass
class StockImportReport:
    lot: Lot
    created: int
    by_kind: dict[DeviceKind, int]


def import_stock(session: Session, data: bytes, *, lot: Lot, by: User | None) -> StockImportReport:
    """Add the devices listed in ``data`` to ``lot``'s warehouse; any bad row refuses the whole file."""
    check_can_receive(lot, by)
    try:
        table = read_csv(data, columns=STOCK_COLUMNS, required={"numero_serie", "type", "modele", "etat"})
    except CsvFileError as exc:
        raise ImportRejected(str(exc), []) from exc
    errors: list[RowError] = list(table.errors)
    models = {(uc.model.kind, uc.model.name.lower()): uc.model for uc in lot.unit_costs}
    serial_lines: dict[str, int] = {}
    tag_lines: dict[str, int] = {}
    rows: list[tuple[int, str, str | None, DeviceModel, DeviceCondition]] = []
    for line, row in table.rows:
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
        kind = _KINDS.get(_word(row.get("type", "")))
        if kind is None:
            problems.append(f"type inconnu : {row.get('type', '')!r} (tablette, ordinateur ou cle_4g)")
        model = None
        if kind is not None:
            model = models.get((kind, " ".join(row.get("modele", "").split()).lower()))
            if model is None:
                problems.append(_unknown_model(row.get("modele", ""), kind, models.values()))
        condition = _CONDITIONS.get(_word(row.get("etat", "")))
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
            rows.append((line, serial, tag, model, condition))
    errors.extend(_already_known(session, Device.serial, serial_lines, "numéro de série {} déjà enregistré"))
    errors.extend(_already_known(session, Device.asset_tag, tag_lines, "étiquette {} déjà utilisée"))
    if errors:
        errors = _merge(errors)
        raise ImportRejected(
            f"Fichier refusé : {len(errors)} ligne(s) en erreur, aucun équipement n'a été importé.", errors
        )
    if not rows:
        raise ImportRejected("Le fichier ne contient aucun équipement.", [])
    now = utcnow()
    taken: set[str] = set(tag_lines)
    by_kind: dict[DeviceKind, int] = {}
    for _line, serial, tag, model, condition in rows:
        if tag is None:
            tag = _free_asset_tag(session, taken)
            taken.add(tag)
        add_to_stock(
            session,
            lot=lot,
            model=model,
            serial=serial,
            asset_tag=tag,
            condition=condition,
            by=by,
            now=now,
            reason=f"Import du lot {lot.reference}",
        )
        by_kind[model.kind] = by_kind.get(model.kind, 0) + 1
    session.flush()
    return StockImportReport(lot=lot, created=len(rows), by_kind=by_kind)


def _unknown_model(name: str, kind: DeviceKind, models) -> str:
    same_kind = sorted(m.name for m in models if m.kind is kind)
    if same_kind:
        return f"modèle inconnu pour ce lot : {name!r} — modèles du lot : " + ", ".join(same_kind)
    return f"modèle inconnu pour ce lot : {name!r} (le lot n'a aucun modèle de type {kind.label_lower})"


def _already_known(session: Session, column, lines: dict[str, int], message: str) -> list[RowError]:
    found: list[RowError] = []
    values = list(lines)
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        for value in session.scalars(sa.select(column).where(column.in_(chunk))):
            found.append(RowError(lines[value], message.format(value)))
    return found


def _merge(errors: list[RowError]) -> list[RowError]:
    """One entry per line, reasons joined, in file order."""
    by_line: dict[int, list[str]] = {}
    for e in errors:
        by_line.setdefault(e.line, []).append(e.message)
    return [RowError(line, " ; ".join(msgs)) for line, msgs in sorted(by_line.items())]
