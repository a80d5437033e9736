"""Pupils: registration by form and CSV (all or nothing), pseudonymous references, scope and privacy."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import codes
from ..csvfiles import RowError, fold_accents
from ..db import utcnow
from ..models import (
    Assignment,
    NeedKind,
    Organisation,
    OrganisationKind,
    Pupil,
    Qpv,
    Restitution,
    RestitutionLine,
    Role,
    User,
    organisation_qpvs,
)
from . import audit, bulk, tallies
from .errors import Conflict, Forbidden, ImportRejected, NotFound, ValidationFailed

GRADES = [
    "PS",
    "MS",
    "GS",
    "CP",
    "CE1",
    "CE2",
    "CM1",
    "CM2",
    "6e",
    "5e",
    "4e",
    "3e",
    "2de",
    "1re",
    "Tle",
    "CAP",
    "Autre",
]
_GRADE_ALIASES = {g.lower(): g for g in GRADES} | {
    "6eme": "6e",
    "5eme": "5e",
    "4eme": "4e",
    "3eme": "3e",
    "seconde": "2de",
    "2nde": "2de",
    "premiere": "1re",
    "1ere": "1re",
    "terminale": "Tle",
    "term": "Tle",
    "petite section": "PS",
    "moyenne section": "MS",
    "grande section": "GS",
    "sixieme": "6e",
    "cinquieme": "5e",
    "quatrieme": "4e",
    "troisieme": "3e",
}
_NEED_ALIASES = {
    "tablette": NeedKind.TABLET,
    "tablet": NeedKind.TABLET,
    "ordinateur": NeedKind.LAPTOP,
    "ordi": NeedKind.LAPTOP,
    "pc": NeedKind.LAPTOP,
    "ordinateur portable": NeedKind.LAPTOP,
    "connexion": NeedKind.CONNECTION,
    "cle 4g": NeedKind.CONNECTION,
    "cle_4g": NeedKind.CONNECTION,
    "4g": NeedKind.CONNECTION,
    "internet": NeedKind.CONNECTION,
}

PUPIL_COLUMNS = {
    "prenom": {"prenom_eleve", "first_name"},
    "nom": {"nom_eleve", "nom_de_famille", "last_name"},
    "niveau": {"classe", "grade"},
    "uai": {"uai_etablissement", "code_uai", "rne", "etablissement"},
    "qpv": {"code_qpv", "quartier", "code_qp"},
    "responsable_nom": {"nom_responsable", "responsable", "representant_legal", "parent"},
    "responsable_telephone": {"telephone_responsable", "telephone", "tel", "tel_responsable"},
    "besoins": {"besoin", "needs"},
}


def _fold(text: str) -> str:
    text = text or ""
    if not text.isascii():
        text = fold_accents(text)
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def parse_needs(raw: str | list[str]) -> list[NeedKind]:
    """``tablette+connexion``, ``Tablette, clé 4G`` or a list of codes → the kinds, refused when unknown."""
    parts = raw if isinstance(raw, list) else [p for p in raw.replace("+", ",").replace(";", ",").split(",")]
    kinds: list[NeedKind] = []
    for part in parts:
        folded = _fold(part)
        if not folded:
            continue
        kind = _NEED_ALIASES.get(folded)
        if kind is None:
            raise ValidationFailed(f"besoin inconnu : {part.strip()!r} (tablette, ordinateur ou connexion)")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise ValidationFailed("indiquez au moins un besoin (tablette, ordinateur ou connexion)")
    return sorted(kinds, key=list(NeedKind).index)


def parse_grade(raw: str) -> str:
    """A school grade as the census writes it (CP … Tle), refused when unknown."""
    grade = _GRADE_ALIASES.get(_fold(raw).replace("è", "e"))
    if grade is None:
        raise ValidationFailed(f"niveau inconnu : {raw.strip()!r} (ex. CP, CM2, 6e, 3e, 2de, Tle)")
    return grade


def _name(raw: str, what: str, max_length: int = 100) -> str:
    value = " ".join((raw or "").split())
    if not value:
        raise ValidationFailed(f"{what} obligatoire")
    if len(value) > max_length:
        raise ValidationFailed(f"{what} trop long ({max_length} caractères au plus)")
    # control and format characters (category C) make a string unprintable; spaces were normalised above
    if not value.isprintable() or any(map(str.isdigit, value)):
        raise ValidationFailed(f"{what} invalide : {value!r}")
    return value


@dataclass
class PupilData:
    first_name: str
    last_name: str
    grade: str
    school_uai: str
    qpv: str
    guardian_name: str
    guardian_phone: str
    needs: list[str] | str = field(default_factory=list)


@dataclass
class CleanPupil:
    first_name: str
    last_name: str
    grade: str
    school_uai: str
    qpv_code: str
    guardian_name: str
    guardian_phone: str
    needs: list[NeedKind]

    def identity(self) -> tuple[str, str, str]:
        """What makes two registrations the same child: names and guardian phone."""
        return (_fold(self.first_name), _fold(self.last_name), self.guardian_phone)


def served_qpvs(session: Session, organisation_id: int) -> set[str]:
    """Codes of the QPVs an organisation serves."""
    return set(
        session.scalars(
            sa.select(organisation_qpvs.c.qpv_code).where(
                organisation_qpvs.c.organisation_id == organisation_id
            )
        )
    )


# a file of 50 000 pupils names a few schools, QPVs, grades and needs: each distinct value is checked once
# (a refused value raises each time: exceptions are not cached)
_cached_grade = functools.lru_cache(maxsize=1024)(parse_grade)
_cached_uai = functools.lru_cache(maxsize=4096)(codes.normalize_uai)
_cached_qpv = functools.lru_cache(maxsize=4096)(codes.normalize_qpv)
_cached_department = functools.lru_cache(maxsize=4096)(codes.qpv_department)
_cached_needs = functools.lru_cache(maxsize=1024)(lambda raw: tuple(parse_needs(raw)))


def _clean(data: PupilData, served: set[str], known_qpvs: set[str]) -> CleanPupil:
    """Validate one pupil; every problem is collected into one French message."""
    problems: list[str] = []

    def check(fn, *args):
        try:
            return fn(*args)
        except (ValidationFailed, codes.CodeError) as exc:
            problems.append(exc.message if isinstance(exc, ValidationFailed) else str(exc))
            return None

    first = check(_name, data.first_name, "prénom")
    last = check(_name, data.last_name, "nom")
    grade = check(_cached_grade, data.grade)
    uai = check(_cached_uai, data.school_uai)
    qpv = check(_cached_qpv, data.qpv)
    if qpv is not None:
        if qpv not in known_qpvs:
            problems.append(f"QPV inconnu : {qpv}")
        elif qpv not in served:
            problems.append(f"le QPV {qpv} n'est pas desservi par votre structure")
    guardian = check(_name, data.guardian_name, "nom du responsable légal", 200)
    phone = check(codes.normalize_phone, data.guardian_phone)
    needs = check(_cached_needs if isinstance(data.needs, str) else parse_needs, data.needs)
    if problems:
        raise ValidationFailed(" ; ".join(problems))
    return CleanPupil(first, last, grade, uai, qpv, guardian, phone, list(needs))


def _memoized(check: Callable[[str], Any]) -> Callable[[str], tuple[Any, str]]:
    """``check`` as (value, "") or (None, the French refusal), each distinct input checked once."""
    memo: dict[str, tuple[Any, str]] = {}

    def checked(raw: str) -> tuple[Any, str]:
        hit = memo.get(raw)
        if hit is None:
            try:
                hit = (check(raw), "")
            except ValidationFailed as exc:
                hit = (None, exc.message)
            except codes.CodeError as exc:
                hit = (None, str(exc))
            memo[raw] = hit
        return hit

    return checked


def _folded_name(raw: str, what: str) -> tuple[str, str]:
    """A checked name, and its folded form (how two registrations of one child are compared)."""
    value = _name(raw, what)
    return value, _fold(value)


def _served_qpv(raw: str, served: set[str], known: set[str]) -> str:
    """A QPV code of the referential that the organisation serves."""
    qpv = codes.normalize_qpv(raw)
    if qpv not in known:
        raise ValidationFailed(f"QPV inconnu : {qpv}")
    if qpv not in served:
        raise ValidationFailed(f"le QPV {qpv} n'est pas desservi par votre structure")
    return qpv


def _require_coordinator(by: User | None) -> Organisation | None:
    """Pupils are registered by a coordinator for their organisation (or by the command line)."""
    if by is None:
        return None
    if by.role is not Role.COORDINATOR or by.organisation is None:
        raise Forbidden("Seuls les coordinateurs d'une association ou d'une école enregistrent des élèves.")
    if by.organisation.kind not in (OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL):
        raise Forbidden()
    return by.organisation


def _existing_identities(session: Session, organisation_id: int) -> dict[tuple[str, str, str], str]:
    rows = session.execute(
        sa.select(Pupil.first_name, Pupil.last_name, Pupil.guardian_phone, Pupil.reference).where(
            Pupil.organisation_id == organisation_id, Pupil.purged_at.is_(None)
        )
    )
    return {(_fold(f), _fold(la), p): ref for f, la, p, ref in rows}


def _reference(department: str, pupil_id: int) -> str:
    # derived from the row id: unique without a race, and says nothing about the child
    return f"E-{department}-{pupil_id:06d}"


def _row(clean: CleanPupil, organisation_id: int, pupil_id: int, now) -> dict:
    """The columns of a new pupil, whether registered alone or with a whole file."""
    return {
        "id": pupil_id,
        "reference": _reference(_cached_department(clean.qpv_code), pupil_id),
        "organisation_id": organisation_id,
        "qpv_code": clean.qpv_code,
        "school_uai": clean.school_uai,
        "grade": clean.grade,
        "first_name": clean.first_name,
        "last_name": clean.last_name,
        "guardian_name": clean.guardian_name,
        "guardian_phone": clean.guardian_phone,
        "needs_tablet": NeedKind.TABLET in clean.needs,
        "needs_laptop": NeedKind.LAPTOP in clean.needs,
        "needs_connection": NeedKind.CONNECTION in clean.needs,
        "created_at": now,
    }


# the columns of ``write_pupils``' rows, in their order; as ``_row`` (organisation and time are constants)
_IMPORT_COLUMNS = (  # noqa: SIM905 (a list literal takes twelve lines)
    "id reference qpv_code school_uai grade first_name last_name guardian_name guardian_phone needs_tablet "
    "needs_laptop needs_connection"
).split()


def _insert(session: Session, clean: CleanPupil, organisation_id: int) -> Pupil:
    (pupil_id,) = bulk.reserve_ids(session, Pupil, 1)
    pupil = Pupil(**_row(clean, organisation_id, pupil_id, utcnow()))
    session.add(pupil)
    session.flush()
    tallies.pupil_registered(session, organisation_id, clean.qpv_code, pupil.needs)
    return pupil


def register_pupil(
    session: Session, data: PupilData, *, by: User | None, organisation: Organisation | None = None
) -> Pupil:
    """Register one pupil for the coordinator's organisation; refuse bad fields and duplicates (no commit)."""
    org = _require_coordinator(by) or organisation
    if org is None:
        raise ValidationFailed("Structure manquante.")
    known = set(session.scalars(sa.select(Qpv.code)))
    clean = _clean(data, served_qpvs(session, org.id), known)
    existing = _existing_identities(session, org.id).get(clean.identity())
    if existing:
        raise Conflict(f"Cet élève est déjà enregistré ({existing}).", code="duplicate_pupil")
    pupil = _insert(session, clean, org.id)
    audit.record(session, "pupil_registered", by=by, subject=pupil.reference)
    return pupil


@dataclass
class PupilImportReport:
    created: int
    first_reference: str
    last_reference: str


@dataclass
class CheckedPupils:
    """A pupil file that passed every check: what ``write_pupils`` inserts."""

    organisation: Organisation
    pupils: list[CleanPupil]
    identities: list[tuple[str, str, str]]  # of each pupil, in the same order (see CleanPupil.identity)


def import_pupils(
    session: Session,
    data: bytes,
    *,
    by: User | None,
    organisation: Organisation | None = None,
    progress: bulk.Progress | None = None,
) -> PupilImportReport:
    """Register the pupils of a CSV for the coordinator's organisation; any bad row refuses the whole file."""
    checked = check_pupils(session, data, by=by, organisation=organisation)
    return write_pupils(session, checked, by=by, progress=progress)


def check_pupils(
    session: Session,
    data: bytes,
    *,
    by: User | None,
    organisation: Organisation | None = None,
    progress: bulk.Progress | None = None,
) -> CheckedPupils:
    """Read and check a pupil file (reads only; ``progress`` hears of the rows checked); ``ImportRejected``
    lists the faulty rows, duplicates of a registered pupil or of another row of the file included."""
    org = _require_coordinator(by) or organisation
    if org is None:
        raise ValidationFailed("Structure manquante.")
    table = bulk.read_upload(
        data, columns=PUPIL_COLUMNS, required=set(PUPIL_COLUMNS), what="élèves", workbook=True
    )
    errors: list[RowError] = list(table.errors)
    served = served_qpvs(session, org.id)
    known = set(session.scalars(sa.select(Qpv.code)))
    existing = _existing_identities(session, org.id)
    # one pass, each distinct value of a column checked once: a file of 50 000 pupils repeats a few schools,
    # QPVs, grades and needs, and many first names (a refused value is refused again from the memo)
    first_name = _memoized(lambda raw: _folded_name(raw, "prénom"))
    last_name = _memoized(lambda raw: _folded_name(raw, "nom"))
    guardian_name = _memoized(lambda raw: _name(raw, "nom du responsable légal", 200))
    grade_of = _memoized(parse_grade)
    uai_of = _memoized(codes.normalize_uai)
    qpv_of = _memoized(lambda raw: _served_qpv(raw, served, known))
    needs_of = _memoized(lambda raw: parse_needs(raw))
    seen: dict[tuple[str, str, str], int] = {}
    cleaned: list[CleanPupil] = []
    identities: list[tuple[str, str, str]] = []
    for line, row in bulk.counted(table.rows, progress):
        first, first_error = first_name(row["prenom"])
        last, last_error = last_name(row["nom"])
        grade, grade_error = grade_of(row["niveau"])
        uai, uai_error = uai_of(row["uai"])
        qpv, qpv_error = qpv_of(row["qpv"])
        guardian, guardian_error = guardian_name(row["responsable_nom"])
        try:
            phone, phone_error = codes.normalize_phone(row["responsable_telephone"]), ""
        except codes.CodeError as exc:
            phone, phone_error = "", str(exc)
        needs, needs_error = needs_of(row["besoins"])
        problems = (first_error, last_error, grade_error, uai_error, qpv_error, guardian_error, phone_error)
        if any(problems) or needs_error:
            errors.append(RowError(line, " ; ".join(p for p in (*problems, needs_error) if p)))
            continue
        identity = (first[1], last[1], phone)
        if identity in existing:
            errors.append(RowError(line, f"élève déjà enregistré ({existing[identity]})"))
        elif identity in seen:
            errors.append(RowError(line, f"élève en double dans le fichier (déjà ligne {seen[identity]})"))
        else:
            seen[identity] = line
            identities.append(identity)
            cleaned.append(CleanPupil(first[0], last[0], grade, uai, qpv, guardian, phone, needs))
    del table
    if errors:
        raise bulk.refuse(errors, "aucun élève")
    if not cleaned:
        raise ImportRejected("Le fichier ne contient aucun élève.", [])
    return CheckedPupils(organisation=org, pupils=cleaned, identities=identities)


def write_pupils(
    session: Session, checked: CheckedPupils, *, by: User | None, progress: bulk.Progress | None = None
) -> PupilImportReport:
    """Insert a checked pupil file by batches, with their references and the board's counters (no commit)."""
    org = checked.organisation
    if by is not None and _require_coordinator(by).id != org.id:
        raise Forbidden()
    cleaned = checked.pupils
    # checked on a reading session: children registered since then (another import, the form) are refused
    existing = _existing_identities(session, org.id)
    if existing and any(identity in existing for identity in checked.identities):
        raise Conflict(
            "Des élèves de ce fichier viennent d'être enregistrés par ailleurs ; rien n'a été importé. "
            "Importez à nouveau le fichier pour voir les lignes en cause.",
            code="duplicate_pupil",
        )
    ids = bulk.reserve_ids(session, Pupil, len(cleaned))
    now = utcnow()
    departments = {code: codes.qpv_department(code) for code in {clean.qpv_code for clean in cleaned}}
    tablet, laptop, connection = NeedKind.TABLET, NeedKind.LAPTOP, NeedKind.CONNECTION
    rows = [
        (
            pupil_id,
            _reference(departments[clean.qpv_code], pupil_id),
            clean.qpv_code,
            clean.school_uai,
            clean.grade,
            clean.first_name,
            clean.last_name,
            clean.guardian_name,
            clean.guardian_phone,
            tablet in clean.needs,
            laptop in clean.needs,
            connection in clean.needs,
        )
        for pupil_id, clean in zip(ids, cleaned, strict=True)
    ]
    for (qpv_code, needs), count in Counter((c.qpv_code, tuple(c.needs)) for c in cleaned).items():
        tallies.pupil_registered(session, org.id, qpv_code, list(needs), count=count)
    bulk.insert_rows(
        session,
        Pupil,
        _IMPORT_COLUMNS,
        rows,
        constants={"organisation_id": org.id, "created_at": now},
        progress=progress,
    )
    first, last = rows[0][1], rows[-1][1]
    report = PupilImportReport(len(rows), first, last)
    audit.record(
        session,
        "pupils_imported",
        by=by,
        subject=org.name,
        detail=f"{report.created} élèves : {report.first_reference} à {report.last_reference}",
    )
    return report


# ---------------------------------------------------------------- scope and privacy


def pupil_filter(user: User | None):
    """Pupils a user may see: a coordinator their organisation's; admins all (references only)."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.role is Role.COORDINATOR and user.organisation_id:
        return Pupil.organisation_id == user.organisation_id
    return sa.false()


def may_see_names(user: User | None, pupil: Pupil) -> bool:
    """Only the coordinators of the pupil's organisation see names; everyone else sees the reference."""
    return (
        user is not None and user.role is Role.COORDINATOR and user.organisation_id == pupil.organisation_id
    )


def get_pupil(
    session: Session, user: User | None, *, pupil_id: int | None = None, reference: str | None = None
) -> Pupil:
    """One pupil in the user's scope, or NotFound."""
    query = sa.select(Pupil).where(pupil_filter(user))
    query = (
        query.where(Pupil.id == pupil_id)
        if pupil_id is not None
        else query.where(Pupil.reference == (reference or "").strip().upper())
    )
    pupil = session.scalar(query)
    if pupil is None:
        raise NotFound("Élève introuvable, ou hors de votre périmètre.")
    return pupil


def active_assignment(pupil: Pupil, kind: NeedKind) -> Assignment | None:
    """The pupil's active assignment of that kind, if any."""
    return next((a for a in pupil.assignments if a.kind is kind and a.cancelled_at is None), None)


def waiting_list_query(user: User | None):
    """(pupil, kind) pairs still without a device, oldest registration first."""
    rows = []
    for kind, flag in (
        (NeedKind.TABLET, Pupil.needs_tablet),
        (NeedKind.LAPTOP, Pupil.needs_laptop),
        (NeedKind.CONNECTION, Pupil.needs_connection),
    ):
        taken = sa.exists().where(
            Assignment.pupil_id == Pupil.id, Assignment.kind == kind, Assignment.cancelled_at.is_(None)
        )
        # a loan that ended with the family's restitution (domain/returns.py) met the need: not waiting again
        returned = sa.exists().where(
            Restitution.pupil_id == Pupil.id,
            RestitutionLine.restitution_id == Restitution.id,
            RestitutionLine.kind == kind,
            RestitutionLine.outcome.is_not(None),
        )
        rows.append(
            sa.select(
                Pupil.id.label("pupil_id"),
                sa.literal(kind.value).label("kind"),
                Pupil.qpv_code,
                Pupil.created_at,
            ).where(pupil_filter(user), flag.is_(True), ~taken, ~returned, Pupil.purged_at.is_(None))
        )
    return sa.union_all(*rows).subquery()
