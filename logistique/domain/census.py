"""The census of needs: declared by organisations per QPV, aggregated QPV → department → region."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import (
    AssignmentTally,
    Department,
    Need,
    NeedKind,
    Organisation,
    PupilTally,
    Qpv,
    Region,
    Role,
    TerritoryKind,
    User,
)
from . import audit, scope
from .errors import Forbidden, ValidationFailed
from .pupils import served_qpvs

MAX_DECLARED = 100_000


def declare_needs(
    session: Session,
    organisation: Organisation,
    counts: Mapping[tuple[str, NeedKind], int],
    *,
    by: User | None,
) -> int:
    """Set an organisation's declared needs per (QPV, kind), unregistered pupils included (no commit)."""
    if by is not None and not (by.role is Role.COORDINATOR and by.organisation_id == organisation.id):
        raise Forbidden("Seuls les coordinateurs de la structure déclarent ses besoins.")
    served = served_qpvs(session, organisation.id)
    problems = []
    for (qpv, kind), count in counts.items():
        if qpv not in served:
            problems.append(f"le QPV {qpv} n'est pas desservi par la structure")
        if not isinstance(count, int) or count < 0 or count > MAX_DECLARED:
            problems.append(f"{qpv} {kind.label_lower} : nombre entre 0 et {MAX_DECLARED} attendu")
    if problems:
        raise ValidationFailed("Besoins refusés — " + " ; ".join(problems) + ".")
    existing = {
        (n.qpv_code, n.kind): n
        for n in session.scalars(sa.select(Need).where(Need.organisation_id == organisation.id))
    }
    changed = 0
    now = utcnow()
    for (qpv, kind), count in counts.items():
        row = existing.get((qpv, kind))
        if row is None:
            session.add(
                Need(
                    organisation_id=organisation.id,
                    qpv_code=qpv,
                    kind=kind,
                    count=count,
                    updated_at=now,
                    updated_by_id=by.id if by else None,
                )
            )
            changed += 1
        elif row.count != count:
            row.count, row.updated_at, row.updated_by_id = count, now, (by.id if by else None)
            changed += 1
    session.flush()
    if changed:
        audit.record(
            session, "needs_declared", by=by, subject=organisation.name, detail=f"{changed} ligne(s)"
        )
    return changed


def need_rows(qpv_filter) -> sa.Subquery:
    """The need of each (organisation, QPV, kind), as rows ``organisation_id, qpv_code, kind, need``: the
    larger of what the organisation declared and the pupils it registered with that need (their counters,
    see ``tallies``). The one place this rule is written; callers group it by QPV, department…"""
    declared = sa.select(
        Need.organisation_id.label("organisation_id"),
        Need.qpv_code.label("qpv_code"),
        Need.kind.label("kind"),
        Need.count.label("declared"),
        sa.literal(0).label("registered"),
    ).where(qpv_filter(Need.qpv_code))
    registered = sa.select(
        PupilTally.organisation_id, PupilTally.qpv_code, PupilTally.kind, sa.literal(0), PupilTally.pupils
    ).where(qpv_filter(PupilTally.qpv_code), PupilTally.pupils != 0)
    both = sa.union_all(declared, registered).subquery()
    per_key = (
        sa.select(
            both.c.organisation_id,
            both.c.qpv_code,
            both.c.kind,
            sa.func.max(both.c.declared).label("declared"),
            sa.func.max(both.c.registered).label("registered"),
        )
        .group_by(both.c.organisation_id, both.c.qpv_code, both.c.kind)
        .subquery()
    )
    need = sa.case(
        (per_key.c.declared > per_key.c.registered, per_key.c.declared), else_=per_key.c.registered
    )
    return sa.select(
        per_key.c.organisation_id, per_key.c.qpv_code, per_key.c.kind, need.label("need")
    ).subquery()


def _qpv_filter(session: Session, *, region_code: str | None = None, department_code: str | None = None):
    if department_code:
        codes = scope.territory_qpv_codes(TerritoryKind.DEPARTMENT, department_code)
    elif region_code:
        codes = scope.territory_qpv_codes(TerritoryKind.REGION, region_code)
    else:
        return lambda column: sa.true()
    return lambda column: column.in_(codes)


def needs_by_qpv(
    session: Session,
    *,
    region_code: str | None = None,
    department_code: str | None = None,
) -> dict[tuple[str, NeedKind], tuple[int, int]]:
    """{(qpv, kind): (need, assigned)}. A need is, per organisation, the larger of what it declared and the
    pupils it registered with that need (``need_rows``); assigned counts the active assignments."""
    qpv_filter = _qpv_filter(session, region_code=region_code, department_code=department_code)
    rows = need_rows(qpv_filter)
    needs = {
        (qpv, NeedKind(kind)): int(n)
        for qpv, kind, n in session.execute(
            sa.select(rows.c.qpv_code, rows.c.kind, sa.func.sum(rows.c.need)).group_by(
                rows.c.qpv_code, rows.c.kind
            )
        )
        if n
    }
    assigned = {
        (qpv, kind): int(n)
        for qpv, kind, n in session.execute(
            sa.select(AssignmentTally.qpv_code, AssignmentTally.kind, sa.func.sum(AssignmentTally.devices))
            .where(AssignmentTally.active.is_(True), qpv_filter(AssignmentTally.qpv_code))
            .group_by(AssignmentTally.qpv_code, AssignmentTally.kind)
        )
        if n
    }
    keys = set(needs) | set(assigned)
    return {key: (needs.get(key, 0), assigned.get(key, 0)) for key in keys}


@dataclass
class CensusRow:
    level: str  # "region", "department", "qpv"
    code: str
    name: str
    department: str = ""
    needs: dict[NeedKind, int] = field(default_factory=lambda: {k: 0 for k in NeedKind})
    assigned: dict[NeedKind, int] = field(default_factory=lambda: {k: 0 for k in NeedKind})

    @property
    def total_needs(self) -> int:
        return sum(self.needs.values())

    @property
    def total_assigned(self) -> int:
        return sum(self.assigned.values())

    @property
    def has_reported(self) -> bool:
        """False where nobody has declared a need nor been assigned a device yet: a QPV to chase."""
        return bool(self.total_needs or self.total_assigned)


def territory_of(session: Session, user: User | None) -> tuple[str | None, str | None]:
    """(region, department) a census is limited to for this user: prefecture's territory, admin everything."""
    if user is None or user.role is Role.ADMIN:
        return None, None
    if user.role is Role.PREFECTURE:
        if user.territory_kind is TerritoryKind.DEPARTMENT:
            return None, user.territory_code
        return user.territory_code, None
    raise Forbidden()


def census(session: Session, *, by: User | None, region_code: str | None = None) -> list[CensusRow]:
    """Rows in report order: each region, then each of its departments followed by every one of its QPVs —
    those where nothing is declared yet included (``has_reported`` False), so that a prefect sees whom to
    chase."""
    scope_region, scope_department = territory_of(session, by)
    region_code = scope_region or region_code
    data = needs_by_qpv(session, region_code=region_code, department_code=scope_department)
    if scope_department:
        territory: tuple[TerritoryKind | None, str | None] = (TerritoryKind.DEPARTMENT, scope_department)
    else:
        territory = (TerritoryKind.REGION, region_code) if region_code else (None, None)
    silent = {code for code, _name, _dep in session.execute(scope.territory_qpvs(*territory))}
    codes = {q for q, _ in data} | silent
    qpvs = {q.code: q for q in session.scalars(sa.select(Qpv).where(Qpv.code.in_(codes)))}
    departments = {d.code: d for d in session.scalars(sa.select(Department))}
    regions = {r.code: r for r in session.scalars(sa.select(Region))}
    tree: dict[str, dict[str, list[CensusRow]]] = defaultdict(lambda: defaultdict(list))
    by_qpv: dict[str, CensusRow] = {}
    for (code, kind), (need, assigned) in data.items():
        row = by_qpv.get(code)
        if row is None:
            qpv = qpvs[code]
            row = by_qpv[code] = CensusRow("qpv", code, qpv.name, qpv.department_code)
            tree[departments[qpv.department_code].region_code][qpv.department_code].append(row)
        row.needs[kind] += need
        row.assigned[kind] += assigned
    for code in sorted(silent - set(by_qpv)):
        qpv = qpvs[code]
        by_qpv[code] = CensusRow("qpv", code, qpv.name, qpv.department_code)
        tree[departments[qpv.department_code].region_code][qpv.department_code].append(by_qpv[code])
    rows: list[CensusRow] = []
    for region in sorted(tree):
        region_row = CensusRow("region", region, regions[region].name)
        block: list[CensusRow] = []
        for dep in sorted(tree[region]):
            dep_row = CensusRow("department", dep, departments[dep].name, dep)
            for qpv_row in sorted(tree[region][dep], key=lambda r: r.code):
                for kind in NeedKind:
                    dep_row.needs[kind] += qpv_row.needs[kind]
                    dep_row.assigned[kind] += qpv_row.assigned[kind]
            for kind in NeedKind:
                region_row.needs[kind] += dep_row.needs[kind]
                region_row.assigned[kind] += dep_row.assigned[kind]
            block += [dep_row, *sorted(tree[region][dep], key=lambda r: r.code)]
        # a department's prefecture sees its department, not a region row that would only hold its part
        rows += block if scope_department else [region_row, *block]
    return rows
