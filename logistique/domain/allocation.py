"""The allocation plan: share the stock a region can pay for between its QPVs, in proportion to their needs.

Pure functions first (``apportion``, ``affordable_supply``), tested with hypothesis; then the plan's life:
compute a draft from the database, adjust it, apply it (its quotas then cap assignments)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import utcnow
from ..models import (
    AllocationLine,
    AllocationPlan,
    Department,
    Device,
    DeviceModel,
    Envelope,
    Lot,
    LotUnitCost,
    NeedKind,
    Organisation,
    PlanStatus,
    Qpv,
    User,
)
from . import audit, devices, scope
from .assignments import committed_by_envelope, spendable_cents
from .census import needs_by_qpv
from .errors import InvalidTransition, NotFound, ValidationFailed


def apportion(total: int, needs: Mapping[str, int]) -> dict[str, int]:
    """Share ``total`` units between keys in proportion to their needs, none above its need.

    Hamilton's method: exact proportional shares of min(total, sum of needs) — each at most its need, since
    the quantity shared never exceeds the needs' sum —, floors, then the units left go to the largest
    remainders; ties go to the larger need, then to the smaller key, so the result depends only on the input.
    """
    if total < 0 or any(n < 0 for n in needs.values()):
        raise ValueError("quantities must be non-negative")
    weight = sum(needs.values())
    shared = min(total, weight)
    if shared == 0:
        return {key: 0 for key in needs}
    shares = {key: Fraction(shared * need, weight) for key, need in needs.items()}
    result = {key: int(share) for key, share in shares.items()}
    left = shared - sum(result.values())
    order = sorted(needs, key=lambda k: (-(shares[k] - result[k]), -needs[k], k))
    for key in order[:left]:
        result[key] += 1
    return result


@dataclass(frozen=True)
class StockGroup:
    """Devices in stock of one kind, from one envelope, at one unit cost."""

    envelope_id: int
    kind: NeedKind
    unit_cost_cents: int
    count: int


def affordable_supply(
    groups: list[StockGroup], money_left: Mapping[int, int], wanted: Mapping[NeedKind, int]
) -> tuple[dict[NeedKind, int], dict[int, int]]:
    """How many devices of each kind the money left can pay for, up to ``wanted`` per kind.

    Kinds are served in the order of NeedKind, cheapest devices first, each envelope paying for its own lots.
    Returns the supply per kind and the money this would commit per envelope (never above what is left).
    """
    left = dict(money_left)
    spent = {envelope: 0 for envelope in left}
    supply = {kind: 0 for kind in NeedKind}
    for kind in NeedKind:
        target = wanted.get(kind, 0)
        for group in sorted(
            (g for g in groups if g.kind is kind), key=lambda g: (g.unit_cost_cents, g.envelope_id)
        ):
            if supply[kind] >= target:
                break
            budget = left.get(group.envelope_id, 0)
            affordable = (
                group.count
                if group.unit_cost_cents == 0
                else min(group.count, budget // group.unit_cost_cents)
            )
            take = min(affordable, target - supply[kind])
            supply[kind] += take
            left[group.envelope_id] = budget - take * group.unit_cost_cents
            spent[group.envelope_id] = spent.get(group.envelope_id, 0) + take * group.unit_cost_cents
    return supply, spent


# ---------------------------------------------------------------- plans in the database


def _stock_groups(session: Session, region_code: str) -> list[StockGroup]:
    rows = session.execute(
        sa.select(Lot.envelope_id, DeviceModel.kind, LotUnitCost.unit_cost_cents, sa.func.count(Device.id))
        .select_from(Device)
        .join(Lot, Device.lot_id == Lot.id)
        .join(DeviceModel, Device.model_id == DeviceModel.id)
        .join(LotUnitCost, sa.and_(LotUnitCost.lot_id == Lot.id, LotUnitCost.model_id == Device.model_id))
        .join(Organisation, Device.warehouse_id == Organisation.id)
        .join(Department, Organisation.department_code == Department.code)
        .where(Device.status.in_(devices.sources("assign")), Department.region_code == region_code)
        .group_by(Lot.envelope_id, DeviceModel.kind, LotUnitCost.unit_cost_cents)
    )
    return [StockGroup(env, NeedKind.for_device(kind), cost, count) for env, kind, cost, count in rows]


def compute_plan(session: Session, region_code: str, *, by: User | None) -> AllocationPlan:
    """A draft plan for a region from its needs, its stock and the money left in its envelopes (no commit)."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    needs = needs_by_qpv(session, region_code=region_code)  # {(qpv, kind): (need, assigned)}
    remaining = {key: max(0, need - assigned) for key, (need, assigned) in needs.items()}
    envelopes = session.scalars(sa.select(Envelope).where(Envelope.region_code == region_code)).all()
    committed = committed_by_envelope(session, [e.id for e in envelopes])
    money_left = {e.id: max(0, spendable_cents(e) - committed.get(e.id, 0)) for e in envelopes}
    wanted = {kind: sum(v for (q, k), v in remaining.items() if k is kind) for kind in NeedKind}
    supply, spent = affordable_supply(_stock_groups(session, region_code), money_left, wanted)
    plan = AllocationPlan(
        region_code=region_code,
        status=PlanStatus.DRAFT,
        created_at=utcnow(),
        created_by_id=by.id if by else None,
    )
    for kind in NeedKind:
        shares = apportion(supply[kind], {q: v for (q, k), v in remaining.items() if k is kind})
        for qpv in sorted(shares):
            need, assigned = needs[(qpv, kind)]
            quota = assigned + shares[qpv]
            plan.lines.append(AllocationLine(qpv_code=qpv, kind=kind, need=need, proposed=quota, quota=quota))
    plan.note = json.dumps(
        {
            "stock_disponible_finance": {k.value: v for k, v in supply.items()},
            "besoins_restants": {k.value: v for k, v in wanted.items()},
            "reste_par_enveloppe_cents": {str(k): v for k, v in money_left.items()},
            "engagement_prevu_cents": {str(k): v for k, v in spent.items()},
        },
        ensure_ascii=False,
    )
    session.add(plan)
    session.flush()
    audit.record(session, "plan_computed", by=by, subject=f"plan {plan.id}", detail=f"région {region_code}")
    return plan


def get_plan(session: Session, plan_id: int) -> AllocationPlan:
    """A plan by id, or NotFound."""
    plan = session.get(AllocationPlan, plan_id)
    if plan is None:
        raise NotFound("Plan de répartition introuvable.")
    return plan


def adjust(session: Session, plan: AllocationPlan, quotas: Mapping[int, int], *, by: User | None) -> None:
    """Change the quotas of a draft plan's lines (line id → quota), never below zero nor above the need."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    if plan.status is not PlanStatus.DRAFT:
        raise InvalidTransition("Seul un plan en brouillon peut être ajusté.")
    lines = {line.id: line for line in plan.lines}
    problems = []
    for line_id, quota in quotas.items():
        line = lines.get(line_id)
        if line is None:
            raise ValidationFailed("Ligne de plan inconnue.")
        if quota < 0 or quota > line.need:
            problems.append(f"{line.qpv_code} {line.kind.label_lower} : entre 0 et {line.need}")
    if problems:
        raise ValidationFailed("Quotas invalides — " + " ; ".join(problems) + ".")
    for line_id, quota in quotas.items():
        lines[line_id].quota = quota
    session.flush()


def apply(session: Session, plan: AllocationPlan, *, by: User | None) -> None:
    """Put a draft plan in force; the plan it replaces is kept as superseded."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    if plan.status is not PlanStatus.DRAFT:
        raise InvalidTransition(f"Ce plan est « {plan.status.label} » : seul un brouillon s'applique.")
    for previous in session.scalars(
        sa.select(AllocationPlan)
        .where(AllocationPlan.region_code == plan.region_code, AllocationPlan.status == PlanStatus.APPLIED)
        .with_for_update()
    ):
        previous.status = PlanStatus.SUPERSEDED
    plan.status = PlanStatus.APPLIED
    plan.applied_at = utcnow()
    plan.applied_by_id = by.id if by else None
    session.flush()
    audit.record(
        session, "plan_applied", by=by, subject=f"plan {plan.id}", detail=f"région {plan.region_code}"
    )


def plan_rows(session: Session, plan: AllocationPlan) -> list[dict]:
    """The plan as rows for pages and exports (QPV names and departments joined)."""
    qpvs = {
        q.code: q
        for q in session.scalars(sa.select(Qpv).where(Qpv.code.in_({ln.qpv_code for ln in plan.lines})))
    }
    return [
        {"line": ln, "qpv": qpvs[ln.qpv_code], "department": qpvs[ln.qpv_code].department_code}
        for ln in plan.lines
    ]
