"""The allocation plan's arithmetic, by property (hypothesis), then a plan computed and applied on a world."""

from __future__ import annotations

import html
from fractions import Fraction

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from logistique.domain import allocation, assignments, census, money, pupils
from logistique.domain.allocation import StockGroup, affordable_supply, apportion
from logistique.domain.errors import BusinessRuleViolation, InvalidTransition, ValidationFailed
from logistique.models import AllocationPlan, NeedKind, PlanStatus

needs_maps = st.dictionaries(st.from_regex(r"QN0[0-9]{5}M", fullmatch=True), st.integers(0, 500), max_size=30)


@given(total=st.integers(0, 5000), needs=needs_maps)
def test_apportion_hands_out_everything_it_can(total, needs):
    shares = apportion(total, needs)
    assert set(shares) == set(needs)
    assert sum(shares.values()) == min(total, sum(needs.values()))


@given(total=st.integers(0, 5000), needs=needs_maps)
def test_apportion_never_gives_a_qpv_more_than_its_need(total, needs):
    shares = apportion(total, needs)
    assert all(0 <= shares[k] <= needs[k] for k in needs)


@given(total=st.integers(0, 5000), needs=needs_maps)
def test_apportion_is_proportional_within_one_unit(total, needs):
    """Each QPV gets its exact proportional share of what is handed out, rounded up or down."""
    shares = apportion(total, needs)
    handed, weight = sum(shares.values()), sum(needs.values())
    for key, need in needs.items():
        exact = Fraction(handed * need, weight) if weight else 0
        assert abs(shares[key] - exact) < 1, (key, shares[key], exact)


@given(total=st.integers(0, 5000), needs=needs_maps)
def test_apportion_is_deterministic_and_ignores_input_order(total, needs):
    reversed_needs = dict(reversed(list(needs.items())))
    assert apportion(total, needs) == apportion(total, needs) == apportion(total, reversed_needs)


def test_apportion_largest_remainder_example():
    # 5 units for needs 10/6/4: exact shares 2.5/1.5/1 → floors 2/1/1, the unit left goes to the largest
    # remainder (tie 0.5/0.5 broken by the larger need)
    assert apportion(5, {"A": 10, "B": 6, "C": 4}) == {"A": 3, "B": 1, "C": 1}
    assert apportion(10, {"A": 2, "B": 30, "C": 10}) == {"A": 1, "B": 7, "C": 2}  # .48 beats .38 and .14
    assert apportion(100, {"A": 3, "B": 50}) == {"A": 3, "B": 50}  # more stock than needs: every need met


groups = st.lists(
    st.builds(
        StockGroup,
        envelope_id=st.integers(1, 4),
        kind=st.sampled_from(list(NeedKind)),
        unit_cost_cents=st.integers(0, 50_000),
        count=st.integers(0, 300),
    ),
    max_size=12,
)


@settings(max_examples=200)
@given(
    groups=groups,
    money=st.dictionaries(st.integers(1, 4), st.integers(0, 5_000_000)),
    wanted=st.dictionaries(st.sampled_from(list(NeedKind)), st.integers(0, 1000)),
)
def test_affordable_supply_never_overspends_nor_exceeds_stock_or_need(groups, money, wanted):
    supply, spent = affordable_supply(groups, money, wanted)
    for envelope, cents in spent.items():
        assert cents <= money.get(envelope, 0)
    for kind in NeedKind:
        assert supply[kind] <= wanted.get(kind, 0)
        assert supply[kind] <= sum(g.count for g in groups if g.kind is kind)
    assert affordable_supply(groups, money, wanted) == (supply, spent)


def test_affordable_supply_stops_at_the_money():
    groups = [StockGroup(1, NeedKind.TABLET, 15_000, 100)]
    supply, spent = affordable_supply(groups, {1: 100_000}, {NeedKind.TABLET: 50})
    assert supply[NeedKind.TABLET] == 6 and spent == {1: 90_000}


# ---------------------------------------------------------------- plans on a world


def _pupils(session, world, count, qpv, kind="tablette"):
    for n in range(count):
        pupils.register_pupil(
            session,
            pupils.PupilData(
                f"Prénom{chr(65 + n % 26)}",
                f"Nom{chr(65 + n // 26)}",
                "CM1",
                "0750654D",
                qpv,
                "Responsable",
                f"06 00 00 {n // 100:02d} {n % 100:02d}",
                kind,
            ),
            by=world.coordinator,
        )


def test_plan_shares_the_stock_in_proportion_and_applied_quotas_cap_assignments(session, world):
    # needs: Roubaix QN05981M 6 tablets (4 registered + declared 6), QP059001 3 tablets; stock: 1 tablet +
    # 4 more = 5 tablets in region 32 (Lille 1 + 3 received, Amiens 1)
    _pupils(session, world, 4, "QN05981M")
    census.declare_needs(
        session,
        world.assoc_roubaix,
        {("QN05981M", NeedKind.TABLET): 6, ("QP059001", NeedKind.TABLET): 3},
        by=world.coordinator,
    )
    from logistique.domain import devices
    from logistique.models import DeviceCondition

    for n in range(3):
        devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial=f"TAB-{n}",
            condition=DeviceCondition.NEW,
            by=None,
        )
    session.commit()
    plan = allocation.compute_plan(session, "32", by=world.admin)
    quotas = {(ln.qpv_code, ln.kind): ln.quota for ln in plan.lines}
    assert quotas[("QN05981M", NeedKind.TABLET)] + quotas[("QP059001", NeedKind.TABLET)] == 5
    assert (
        quotas[("QN05981M", NeedKind.TABLET)] == 3 and quotas[("QP059001", NeedKind.TABLET)] == 2
    )  # 6:3 of 5
    assert all(ln.quota <= ln.need for ln in plan.lines)
    line = next(ln for ln in plan.lines if ln.qpv_code == "QN05981M" and ln.kind is NeedKind.TABLET)
    with pytest.raises(ValidationFailed):
        allocation.adjust(session, plan, {line.id: line.need + 1}, by=world.admin)
    allocation.adjust(session, plan, {line.id: 1}, by=world.admin)
    allocation.apply(session, plan, by=world.admin)
    session.commit()
    with pytest.raises(InvalidTransition):
        allocation.apply(session, plan, by=world.admin)
    roubaix = session.scalars(sa.select(pupils.Pupil).order_by(pupils.Pupil.id)).all()
    assignments.assign(session, pupil=roubaix[0], device=world.device, by=world.coordinator)
    session.commit()
    from logistique.models import Device

    another = session.scalar(sa.select(Device).where(Device.serial == "TAB-0"))
    with pytest.raises(BusinessRuleViolation) as refused:
        assignments.assign(session, pupil=roubaix[1], device=another, by=world.coordinator)
    assert refused.value.code == "quota_reached" and "QN05981M" in refused.value.message
    session.rollback()
    # a new plan applied supersedes the old one
    second = allocation.compute_plan(session, "32", by=world.admin)
    allocation.apply(session, second, by=world.admin)
    session.commit()
    statuses = dict(session.execute(sa.select(AllocationPlan.id, AllocationPlan.status)).all())
    assert statuses == {plan.id: PlanStatus.SUPERSEDED, second.id: PlanStatus.APPLIED}


def test_plan_never_commits_more_than_an_envelope_has_left(session, world):
    _pupils(session, world, 3, "QN05981M")
    money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="32", kind=world.envelope.kind, label=world.envelope.label, amount_cents=15_000
        ),
        by=None,
        envelope=world.envelope,
    )
    session.commit()
    plan = allocation.compute_plan(session, "32", by=None)
    tablets = sum(ln.quota for ln in plan.lines if ln.kind is NeedKind.TABLET)
    assert tablets == 1  # 150 € left pays one tablet although two are in stock


def test_plan_pages_compute_adjust_apply_and_export(session, world, login_as):
    _pupils(session, world, 2, "QN05981M")
    session.commit()
    client = login_as(world.admin)
    response = client.post("/admin/repartition", data={"region": "32"})
    assert response.status_code == 302
    plan = session.scalar(sa.select(AllocationPlan))
    line = plan.lines[0]
    bad = client.post(f"/admin/repartition/{plan.id}", data={f"quota_{line.id}": "abc", "save": "1"})
    assert bad.status_code == 422 and "n'est pas un nombre" in html.unescape(bad.get_data(as_text=True))
    ok = client.post(f"/admin/repartition/{plan.id}", data={f"quota_{line.id}": "0", "apply": "1"})
    assert ok.status_code == 302
    session.expire_all()
    assert session.get(AllocationPlan, plan.id).status is PlanStatus.APPLIED
    assert session.get(allocation.AllocationLine, line.id).quota == 0
    export = client.get(f"/admin/repartition/{plan.id}.xlsx")
    from io import BytesIO

    from openpyxl import load_workbook

    sheet = load_workbook(BytesIO(export.data)).active
    assert sheet["A1"].value == "Département" and sheet.freeze_panes == "A2"
    assert [c.value for c in sheet[2]][1] == line.qpv_code and sheet.cell(2, 7).value == 0
