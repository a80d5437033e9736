"""The referential: territories, QPV, cités éducatives and organisations, with their imports."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import codes
from ..csvfiles import RowError, read_csv
from ..models import (
    CiteEducative,
    Commune,
    Department,
    Organisation,
    OrganisationKind,
    Qpv,
    Region,
    User,
)
from . import scope
from .errors import Conflict, ImportRejected, ValidationFailed


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


QPV_COLUMNS = {
    "code_qp": {"code_qpv", "code", "qp", "code_quartier", "cod_qp"},
    "lib_qp": {"lib_qpv", "nom_qp", "nom_qpv", "libelle", "libelle_qp", "nom"},
    "insee_dep": {"dep", "departement", "code_dep", "code_departement"},
    "lib_dep": {"nom_dep", "libelle_dep", "nom_departement"},
    "insee_reg": {"reg", "region", "code_reg", "code_region"},
    "lib_reg": {"nom_reg", "libelle_reg", "nom_region"},
    "insee_com": {"com", "code_commune", "codes_communes", "insee_communes", "code_insee"},
    "lib_com": {"nom_com", "commune", "communes", "libelle_commune", "nom_commune"},
    "nb_communes": {"nombre_communes"},
}
_MULTI = re.compile(r"\s*[;|,/]\s*")
_MULTI_NAMES = re.compile(r"\s*[;|]\s*")


def read_package_file(name: str) -> bytes:
    """A data file shipped in ``logistique/data``."""
    return resources.files("logistique").joinpath("data", name).read_bytes()


def _split(value: str, pattern: re.Pattern[str]) -> list[str]:
    if not value:
        return []
    if value.isalnum():  # one commune, the usual case
        return [value]
    return [v for v in pattern.split(value) if v]


def import_qpv(session: Session, data: bytes, *, by: User | None) -> ImportReport:
    """Load or update QPVs (and their departments and regions) from a CSV; all or nothing."""
    scope.require(by, scope.Permission.MANAGE_REFERENTIAL)
    from .bulk import insert_rows, read_upload

    table = read_upload(data, columns=QPV_COLUMNS, required={"code_qp", "lib_qp"}, what="QPV")
    errors = list(table.errors)
    # a national list names ~100 departments and 18 regions: each spelling is checked once
    department = functools.cache(codes.normalize_department)
    region_of = functools.cache(codes.normalize_region)
    commune = functools.cache(codes.normalize_commune)  # QPVs of one town share its code
    seen: dict[str, int] = {}
    parsed: list[dict] = []
    for line, row in table.rows:
        try:
            code = codes.normalize_qpv(row["code_qp"])
            name = (row.get("lib_qp") or "").strip()
            if not name:
                raise ValidationFailed("nom du QPV (lib_qp) vide")
            dep = department(code[2:5])  # as codes.qpv_department, the code already checked
            if row.get("insee_dep"):
                given = department(row["insee_dep"])
                if given != dep:
                    raise ValidationFailed(f"le département {given} ne correspond pas au code {code}")
            region = region_of(row["insee_reg"]) if row.get("insee_reg") else None
            communes = [commune(c) for c in _split(row["insee_com"], _MULTI)]
            names = _split(row["lib_com"], _MULTI_NAMES)
        except (ValueError, ValidationFailed) as exc:
            errors.append(RowError(line, str(exc)))
            continue
        if code in seen:
            errors.append(RowError(line, f"QPV {code} en double (déjà ligne {seen[code]})"))
            continue
        seen[code] = line
        parsed.append(
            {
                "line": line,
                "code": code,
                "name": name,
                "dep": dep,
                "lib_dep": row.get("lib_dep", ""),
                "region": region,
                "lib_reg": row.get("lib_reg", ""),
                "communes": communes,
                "names": names,
            }
        )
    regions_in_file = {item["dep"]: item["region"] for item in parsed if item["region"]}
    known_departments = set(session.scalars(sa.select(Department.code)))
    for item in parsed:
        item["region"] = item["region"] or regions_in_file.get(item["dep"])
        if item["dep"] not in known_departments and not item["region"]:
            errors.append(
                RowError(item["line"], f"département {item['dep']} inconnu et région (insee_reg) absente")
            )
    if errors:
        raise ImportRejected(_rejected_message(errors), sorted(errors, key=lambda e: e.line))
    _add_territories(session, parsed, known_departments)
    columns = ("name", "department_code", "list_year", "commune_codes", "commune_names")
    qpvs = cast(sa.Table, Qpv.__table__)
    stored = {
        code: tuple(values)
        for code, *values in session.execute(sa.select(qpvs.c.code, *(qpvs.c[c] for c in columns)))
    }
    report = ImportReport()
    new_rows: list[tuple] = []
    changed_rows: list[dict] = []
    for item in parsed:
        code = item["code"]
        values = (
            item["name"],
            item["dep"],
            2015 if code.startswith("QP") else 2024,  # codes.qpv_list_year
            ";".join(item["communes"]),
            ";".join(item["names"]),
        )
        old = stored.get(code)
        if old is None:
            new_rows.append((code, *values))
        elif old != values:
            changed_rows.append({"b_code": code, **dict(zip(columns, values, strict=True))})
        else:
            report.unchanged += 1
    # one executemany each: the national list (~1 500 rows) is written in a few statements
    if new_rows:
        insert_rows(session, Qpv, ["code", *columns], new_rows)
    if changed_rows:
        session.execute(
            sa.update(qpvs)
            .where(qpvs.c.code == sa.bindparam("b_code"))
            .values({k: sa.bindparam(k) for k in columns}),
            changed_rows,
        )
        session.expire_all()  # QPVs already loaded in the session now read their new values
    report.created, report.updated = len(new_rows), len(changed_rows)
    return report


def _rejected_message(errors: list[RowError]) -> str:
    return f"Fichier refusé : {len(errors)} ligne(s) en erreur, rien n'a été importé."


def _add_territories(session: Session, parsed: list[dict], known_departments: set[str]) -> None:
    """The regions and departments of the file that the referential does not have yet (one insert each)."""
    from .bulk import insert_rows

    known_regions = set(session.scalars(sa.select(Region.code)))
    regions: dict[str, str] = {}
    departments: dict[str, tuple[str, str, str]] = {}
    for item in parsed:
        if item["dep"] in known_departments or item["dep"] in departments:
            continue
        if item["region"] not in known_regions and item["region"] not in regions:
            regions[item["region"]] = item["lib_reg"].strip() or f"Région {item['region']}"
        name = item["lib_dep"].strip() or f"Département {item['dep']}"
        departments[item["dep"]] = (item["dep"], name, item["region"])
    session.flush()  # what the session holds goes first
    if regions:
        insert_rows(session, Region, ["code", "name"], list(regions.items()))
    if departments:
        insert_rows(session, Department, ["code", "name", "region_code"], list(departments.values()))
    known_departments.update(departments)


def _read_shipped(name: str, *columns: str):
    return read_csv(read_package_file(name), columns={c: set() for c in columns}, required=set(columns))


def load_base_referential(session: Session) -> None:
    """Regions, departments, communes and cités éducatives of Hauts-de-France from the shipped files."""
    deps = _read_shipped("hdf_departements.csv", "insee_dep", "lib_dep", "insee_reg", "lib_reg")
    for _, row in deps.rows:
        if session.get(Region, row["insee_reg"]) is None:
            session.add(Region(code=row["insee_reg"], name=row["lib_reg"]))
            session.flush()
        if session.get(Department, row["insee_dep"]) is None:
            session.add(Department(code=row["insee_dep"], name=row["lib_dep"], region_code=row["insee_reg"]))
    session.flush()
    known = set(session.scalars(sa.select(Commune.code)))
    communes = _read_shipped("hdf_communes_cog.csv", "insee_com", "lib_com", "insee_dep", "codes_postaux")
    session.add_all(
        Commune(
            code=row["insee_com"],
            name=row["lib_com"],
            department_code=row["insee_dep"],
            postal_codes=row.get("codes_postaux", "")[:100],
        )
        for _, row in communes.rows
        if row["insee_com"] not in known
    )
    deps_known = set(session.scalars(sa.select(Department.code)))
    cites = _read_shipped("cites_educatives_anct_2024.csv", "id_cite", "lib_cite", "insee_com", "insee_dep")
    known_cites = set(session.scalars(sa.select(CiteEducative.code)))
    session.add_all(
        CiteEducative(
            code=row["id_cite"],
            name=row["lib_cite"],
            commune_codes=row["insee_com"],
            department_code=row["insee_dep"],
        )
        for _, row in cites.rows
        if row["insee_dep"] in deps_known and row["id_cite"] not in known_cites
    )
    session.flush()


# ---------------------------------------------------------------- organisations


@dataclass
class OrganisationData:
    kind: OrganisationKind
    name: str
    department_code: str
    uai: str = ""
    address: str = ""
    postal_code: str = ""
    city: str = ""
    cite_educative_code: str = ""
    qpv_codes: list[str] = field(default_factory=list)
    is_active: bool = True


def save_organisation(
    session: Session, data: OrganisationData, *, by: User | None, organisation: Organisation | None = None
) -> Organisation:
    """Create or update an organisation after validating its codes and the QPVs it serves (no commit)."""
    scope.require(by, scope.Permission.MANAGE_REFERENTIAL)
    name = data.name.strip()
    if not name:
        raise ValidationFailed("Le nom de la structure est obligatoire.")
    try:
        dep_code = codes.normalize_department(data.department_code)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    if session.get(Department, dep_code) is None:
        raise ValidationFailed(f"Département {dep_code} absent du référentiel : importez d'abord ses QPV.")
    uai = None
    if data.uai.strip():
        try:
            uai = codes.normalize_uai(data.uai)
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from exc
    if data.kind is OrganisationKind.SCHOOL and not uai:
        raise ValidationFailed("Une école ou un établissement doit avoir son code UAI.")
    if uai:
        other = session.scalar(sa.select(Organisation).where(Organisation.uai == uai))
        if other is not None and other is not organisation:
            raise Conflict(f"L'UAI {uai} est déjà celui de « {other.name} ».")
    postal = data.postal_code.strip()
    if postal and not re.fullmatch(r"\d{5}", postal):
        raise ValidationFailed(f"Code postal invalide : {postal!r} (5 chiffres).")
    qpvs = []
    if data.qpv_codes:
        if data.kind not in (OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL):
            raise ValidationFailed("Seules les associations et les écoles desservent des QPV.")
        wanted = []
        for raw in data.qpv_codes:
            try:
                wanted.append(codes.normalize_qpv(raw))
            except ValueError as exc:
                raise ValidationFailed(str(exc)) from exc
        qpvs = list(session.scalars(sa.select(Qpv).where(Qpv.code.in_(wanted))))
        missing = sorted(set(wanted) - {q.code for q in qpvs})
        if missing:
            raise ValidationFailed("QPV absents du référentiel : " + ", ".join(missing) + ".")
        region = session.get(Department, dep_code).region_code
        foreign = sorted(q.code for q in qpvs if q.department.region_code != region)
        if foreign:
            raise ValidationFailed("QPV d'une autre région que la structure : " + ", ".join(foreign) + ".")
    cite = data.cite_educative_code.strip() or None
    if cite and session.get(CiteEducative, cite) is None:
        raise ValidationFailed(f"Cité éducative inconnue : {cite}.")
    org = organisation or Organisation()
    org.kind = data.kind
    org.name = name
    org.uai = uai
    org.department_code = dep_code
    org.address = data.address.strip()
    org.postal_code = postal
    org.city = data.city.strip()
    org.cite_educative_code = cite
    org.qpvs = qpvs
    org.is_active = data.is_active
    if organisation is None:
        session.add(org)
    session.flush()
    return org
