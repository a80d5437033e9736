"""The status board's numbers (logistique.domain.status), checked against independent counts.

A property test pushes random pupils' devices through random lifecycle stages with the domain functions,
then checks that every row reconciles: its columns add up to the devices behind it, counted naively over
the ORM objects and predicted from the plan itself; territories are the sums of their rows; money and the
pace of handovers match a count by hand. Each example is rolled back: the next starts from the same world."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logistique.db import utcnow
from logistique.domain import assignments, census, devices, handover, money, pupils, slips, status
from logistique.domain.errors import Forbidden, NotFound
from logistique.models import (
    Assignment,
    Department,
    DeviceCondition,
    DeviceStatus,
    Envelope,
    EnvelopeKind,
    HandoverMode,
    Need,
    NeedKind,
    Pupil,
    Qpv,
    ReceptionState,
    Region,
    Role,
    Slip,
    SlipLine,
    TerritoryKind,
)

from .test_access_matrix import signature_png

# What each stage of the plan leaves behind, in the board's columns (None: the assignment was cancelled).
STAGE_COLUMN = {
    "assigned": "assigned",
    "cancelled": None,
    "removed": "assigned",  # put on a slip, then taken off it: back to attribué
    "draft": "on_slips",
    "issued": "on_slips",
    "picked": "on_slips",
    "shipped": "shipped",
    "received": "received",
    "handed_over": "handed_over",
    "missing": "missing",
    "damaged": "damaged",
}
# Devices of one organisation and warehouse in the same phase (and bucket) travel on the same slip.
PHASE = {
    "draft": "draft",
    "removed": "issuing",
    "issued": "issuing",
    "picked": "issuing",
    "shipped": "shipped",
    "received": "delivered",
    "handed_over": "delivered",
    "missing": "delivered",
    "damaged": "delivered",
}
BOARD_STATUSES = {
    DeviceStatus.ASSIGNED: "assigned",
    DeviceStatus.ON_SLIP: "on_slips",
    DeviceStatus.PREPARED: "on_slips",
    DeviceStatus.SHIPPED: "shipped",
    DeviceStatus.RECEIVED: "received",
    DeviceStatus.HANDED_OVER: "handed_over",
}
QPV_ORGS = {
    "QN05981M": ("assoc_roubaix", "school_roubaix"),
    "QP059001": ("assoc_roubaix",),
    "QN08001M": ("assoc_amiens",),
    "QN09301M": ("assoc_bobigny",),
}
KINDS = ("tablette", "ordinateur", "connexion")
FIRST_NAMES = ("Alix", "Basile", "Capucine", "Dorian", "Elsa", "Fanny", "Gaspard", "Héloïse", "Ilan")

device_plans = st.fixed_dictionaries(
    {
        "stage": st.sampled_from(sorted(STAGE_COLUMN)),
        "source": st.integers(0, 2),  # region 32: Lille, Amiens, or Lille paid by the cité éducative
        "bucket": st.integers(0, 1),
    }
)
pupil_plans = st.fixed_dictionaries(
    {
        "qpv": st.sampled_from(sorted(QPV_ORGS)),
        "org": st.integers(0, 1),
        "devices": st.dictionaries(st.sampled_from(KINDS), device_plans, max_size=3),
        "extra_needs": st.lists(st.sampled_from(KINDS), max_size=2),
        "handover_days_ago": st.integers(0, 40),
    }
)
plans = st.fixed_dictionaries(
    {
        "pupils": st.lists(pupil_plans, min_size=1, max_size=7),
        "declared": st.dictionaries(
            st.tuples(st.sampled_from(sorted(QPV_ORGS)), st.sampled_from(KINDS)),
            st.integers(0, 5),
            max_size=4,
        ),
    }
)


def _cite_lot(session, world):
    """Once per test: a cité éducative 2020 envelope (15 % of 100 000 €) and a Lille lot it pays for."""
    if not hasattr(world, "cite_lot"):
        world.cite_envelope = money.save_envelope(
            session,
            money.EnvelopeData(
                region_code="32",
                kind=EnvelopeKind.CITE_2020,
                label="Cité éducative de Roubaix 2020",
                amount_cents=12_000_00,
                annual_amount_cents=100_000_00,
                cite_educative_code="cite-064",
            ),
            by=None,
        )
        world.cite_lot = money.save_lot(
            session,
            money.LotData(
                reference="LOT-CITE",
                supplier="Emmaüs Connect",
                envelope_id=world.cite_envelope.id,
                warehouse_id=world.wh_lille.id,
                unit_costs={world.tablet.id: 14000, world.laptop.id: 21000, world.key.id: 6000},
            ),
            by=None,
        )
        session.commit()
    return world.cite_lot


def apply_plan(session, world, plan) -> dict:
    """Run the plan through the domain; return what it should leave: columns per QPV, handovers per day."""
    models = {"tablette": world.tablet, "ordinateur": world.laptop, "connexion": world.key}
    cite_lot = _cite_lot(session, world)
    today = utcnow().date()
    expected: dict[str, Counter] = defaultdict(Counter)
    handed: Counter = Counter()  # (qpv, date) -> devices handed over
    groups: dict[tuple, list] = defaultdict(list)
    to_hand_over: dict[int, tuple] = {}
    serial = 0
    for (qpv, kind), count in plan["declared"].items():
        org = getattr(world, QPV_ORGS[qpv][0])
        census.declare_needs(session, org, {(qpv, NeedKind(kind)): count}, by=None)
    for index, p in enumerate(plan["pupils"]):
        orgs = QPV_ORGS[p["qpv"]]
        org = getattr(world, orgs[p["org"] % len(orgs)])
        needs = sorted(set(p["devices"]) | set(p["extra_needs"])) or ["tablette"]
        pupil = pupils.register_pupil(
            session,
            pupils.PupilData(
                FIRST_NAMES[index % len(FIRST_NAMES)],
                "Essai",
                "CM2",
                "0750654D",
                p["qpv"],
                "Responsable Essai",
                f"06 00 00 {index // 100:02d} {index % 100:02d}",
                "+".join(needs),
            ),
            by=None,
            organisation=org,
        )
        for kind, d in sorted(p["devices"].items()):
            serial += 1
            if p["qpv"] == "QN09301M":
                lot = world.lot_idf
            else:
                lot = (world.lot, world.lot_amiens, cite_lot)[d["source"]]
            device = devices.receive_device(
                session,
                lot=lot,
                model=models[kind],
                serial=f"HYP-{serial:04d}",
                condition=DeviceCondition.REFURBISHED,
                by=None,
            )
            assignment = assignments.assign(session, pupil=pupil, device=device, by=None)
            stage = d["stage"]
            column = STAGE_COLUMN[stage]
            if column:
                expected[p["qpv"]][column] += 1
            if stage == "cancelled":
                assignments.cancel(session, assignment, by=None, reason="essai")
            elif stage in PHASE:
                groups[(org.id, lot.warehouse_id, PHASE[stage], d["bucket"])].append((device.serial, stage))
            if stage == "handed_over":
                day = today - timedelta(days=p["handover_days_ago"])
                to_hand_over.setdefault(pupil.id, (pupil, day, []))[2].append(device.serial)
                handed[(p["qpv"], day)] += 1
    destinations = {
        o.id: o for o in (world.assoc_roubaix, world.school_roubaix, world.assoc_amiens, world.assoc_bobigny)
    }
    for (org_id, _warehouse, phase, _bucket), items in sorted(groups.items()):
        slip = slips.create_slip(
            session,
            destination=destinations[org_id],
            serials=[s for s, _stage in items],
            by=None,
            issue=phase != "draft",
        )
        if phase == "draft":
            continue
        for s, stage in items:
            if stage == "removed":
                line = next(ln for ln in slip.active_lines if ln.device.serial == s)
                slips.remove_line(session, slip, line, by=None)
        for s, stage in items:
            if phase != "issuing" or stage == "picked":
                assert slips.scan_for_pick(session, slip, s, by=None).outcome == "picked"
        if phase == "issuing":
            continue
        assert slips.ship(session, slip, by=None)
        if phase == "shipped":
            continue
        state = {"missing": ReceptionState.MISSING, "damaged": ReceptionState.DAMAGED}
        slips.receive(
            session,
            slip,
            [
                slips.ReceptionLine(s, state.get(stage, ReceptionState.RECEIVED), "constaté à l'ouverture")
                for s, stage in items
            ],
            by=None,
        )
    for pupil, day, serials in to_hand_over.values():
        handover.hand_over(
            session,
            pupil=pupil,
            serials=serials,
            receiver_name="Responsable Essai",
            relation="mère",
            mode=HandoverMode.LOAN,
            signature=signature_png(),
            by=None,
            now=datetime.combine(day, time(10, 30)),
        )
    session.flush()
    return {"columns": expected, "handed": handed, "today": today}


# ---------------------------------------------------------------- naive counts over the ORM objects


def naive_counts(session) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for a in session.scalars(sa.select(Assignment)):
        if a.cancelled_at is None and a.device.status in BOARD_STATUSES:
            counts[a.qpv_code][BOARD_STATUSES[a.device.status]] += 1
    for line in session.scalars(sa.select(SlipLine)):
        if line.removed_at is None and line.reception_state is ReceptionState.MISSING:
            counts[line.assignment.qpv_code]["missing"] += 1
        elif line.removed_at is None and line.reception_state is ReceptionState.DAMAGED:
            counts[line.assignment.qpv_code]["damaged"] += 1
    return counts


def naive_committed(session) -> dict[str, int]:
    cents: dict[str, int] = defaultdict(int)
    for a in session.scalars(sa.select(Assignment)):
        if a.cancelled_at is None and a.device.status in BOARD_STATUSES:
            cents[a.qpv_code] += a.unit_cost_cents
    return cents


def naive_needs(session) -> dict[str, int]:
    """Per organisation, QPV and kind: the larger of what was declared and the pupils registered."""
    declared = {(n.organisation_id, n.qpv_code, n.kind): n.count for n in session.scalars(sa.select(Need))}
    registered: Counter = Counter()
    for p in session.scalars(sa.select(Pupil)):
        for kind in p.needs:
            registered[(p.organisation_id, p.qpv_code, kind)] += 1
    needs: dict[str, int] = defaultdict(int)
    for key in set(declared) | set(registered):
        needs[key[1]] += max(declared.get(key, 0), registered.get(key, 0))
    return needs


def territories(session) -> list[status.Territory]:
    return [status.resolve(session, None, code) for code in ("", "32", "11", "59", "80", "93")]


def qpvs_of(session, territory: status.Territory) -> set[str]:
    query = sa.select(Qpv.code).join(Department, Qpv.department_code == Department.code)
    if territory.kind is TerritoryKind.REGION:
        query = query.where(Department.region_code == territory.code)
    elif territory.kind is TerritoryKind.DEPARTMENT:
        query = query.where(Department.code == territory.code)
    return set(session.scalars(query))


def check_rows(session, expected: dict) -> None:
    counts, committed, needs = naive_counts(session), naive_committed(session), naive_needs(session)
    qpv_names = {q.code: q for q in session.scalars(sa.select(Qpv))}
    for territory in territories(session):
        total, by_qpv = status.board(session, territory, by="qpv")
        total_d, by_dep = status.board(session, territory, by="department")
        in_territory = qpvs_of(session, territory)
        with_something = {q for q in in_territory if sum(counts[q].values()) or needs[q]}
        assert with_something <= {r.code for r in by_qpv} <= in_territory, territory
        for row in by_qpv:
            q = row.code
            behind = sum(counts[q].values())
            assert sum(row.counts[c] for c in status.COLUMNS) == row.devices == behind, (territory, q)
            assert row.counts == {c: counts[q][c] for c in status.COLUMNS}, (territory, q)
            assert row.counts == {c: expected["columns"][q][c] for c in status.COLUMNS}, (territory, q)
            assert row.needs == needs[q], (territory, q)
            assert row.committed_cents == committed[q], (territory, q)
            assert (row.name, row.department) == (qpv_names[q].name, qpv_names[q].department_code)
        # the territory's total is the sum of its rows, by QPV and by department alike
        for rows, tot in ((by_qpv, total), (by_dep, total_d)):
            for c in status.COLUMNS:
                assert tot.counts[c] == sum(r.counts[c] for r in rows), (territory, c)
            assert tot.needs == sum(r.needs for r in rows)
            assert tot.committed_cents == sum(r.committed_cents for r in rows)
            assert tot.devices == sum(r.devices for r in rows)
        assert (total.counts, total.needs, total.committed_cents) == (
            total_d.counts,
            total_d.needs,
            total_d.committed_cents,
        )
        assert total.devices == sum(sum(counts[q].values()) for q in in_territory)
        # each department is the sum of its QPVs
        for dep in by_dep:
            mine = [r for r in by_qpv if r.department == dep.code]
            assert mine, dep.code
            for c in status.COLUMNS:
                assert dep.counts[c] == sum(r.counts[c] for r in mine), (dep.code, c)
            assert dep.needs == sum(r.needs for r in mine)
            assert dep.committed_cents == sum(r.committed_cents for r in mine)
            assert dep.name == session.get(Department, dep.code).name


def check_money(session) -> None:
    active = [a for a in session.scalars(sa.select(Assignment)) if a.cancelled_at is None]
    for territory in territories(session):
        rows = status.money(session, territory)
        region = None
        if territory.kind is TerritoryKind.REGION:
            region = territory.code
        elif territory.kind is TerritoryKind.DEPARTMENT:
            region = session.get(Department, territory.code).region_code
        expected_ids = {
            e.id for e in session.scalars(sa.select(Envelope)) if region is None or e.region_code == region
        }
        assert {r.envelope.id for r in rows} == expected_ids
        for r in rows:
            env = r.envelope
            mine = [a for a in active if a.envelope_id == env.id]
            assert r.committed_cents == sum(a.unit_cost_cents for a in mine)
            assert r.delivered_cents == sum(
                a.unit_cost_cents for a in mine if a.device.status is DeviceStatus.HANDED_OVER
            )
            assert r.spendable_cents == money.spendable_cents(env)
            assert r.left_cents == r.spendable_cents - r.committed_cents
            if env.kind is EnvelopeKind.CITE_2020:
                assert r.cap_cents == env.annual_amount_cents * 15 // 100
                assert r.spendable_cents == min(env.amount_cents, r.cap_cents)
            else:
                assert r.cap_cents is None


def check_pace(session, expected: dict) -> None:
    today = expected["today"]
    window = [today - timedelta(days=n) for n in range(29, -1, -1)]
    lines = [ln for ln in session.scalars(sa.select(SlipLine)) if ln.handover_id is not None]
    for territory in territories(session):
        mine = qpvs_of(session, territory)
        series = status.handovers_per_day(session, territory, days=30, today=today)
        assert [day for day, _n in series] == window
        naive = Counter(
            ln.handover.handed_over_at.date() for ln in lines if ln.handover.pupil.qpv_code in mine
        )
        assert dict(series) == {day: naive.get(day, 0) for day in window}
        planned = {
            day: sum(n for (q, d), n in expected["handed"].items() if q in mine and d == day)
            for day in window
        }
        assert dict(series) == planned
        assert sum(n for _d, n in series) == sum(
            1
            for ln in lines
            if ln.handover.pupil.qpv_code in mine and ln.handover.handed_over_at.date() in window
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans)
def test_the_board_reconciles_with_the_devices_behind_it(session, world, plan):
    try:
        expected = apply_plan(session, world, plan)
        check_rows(session, expected)
        check_money(session)
        check_pace(session, expected)
    finally:
        session.rollback()  # the example's operations were never committed: the world is as it was


# ---------------------------------------------------------------- territories and scope


def test_a_prefecture_never_leaves_its_territory(session, world):
    nord = status.resolve(session, world.prefecture_nord, None)
    assert (nord.kind, nord.code, nord.label) == (TerritoryKind.DEPARTMENT, "59", "59 — Nord")
    for code in ("80", "32", "11", "93", "region:32", "QN05981M", "99"):
        with pytest.raises(NotFound):
            status.resolve(session, world.prefecture_nord, code)
    region = status.resolve(session, world.prefecture, None)
    assert (region.kind, region.code, region.label) == (TerritoryKind.REGION, "32", "Région Hauts-de-France")
    assert status.resolve(session, world.prefecture, "80").code == "80"
    with pytest.raises(NotFound):
        status.resolve(session, world.prefecture, "93")
    assert status.resolve(session, world.admin, None).kind is None
    assert status.resolve(session, world.admin, "departement:93").code == "93"
    for user in (world.warehouse, world.coordinator):
        with pytest.raises(Forbidden):
            status.resolve(session, user, None)


def test_a_department_prefecture_whose_code_is_also_a_region_code_sees_its_department(session, world):
    """Region and department codes overlap in the INSEE referential (93 is Seine-Saint-Denis and
    Provence-Alpes-Côte d'Azur, 75 Paris and Nouvelle-Aquitaine…): a department's prefecture asking for its
    own board, without a code, must get its department."""
    session.add(Region(code="93", name="Provence-Alpes-Côte d'Azur"))
    session.flush()
    from logistique.domain import accounts

    pref_93 = accounts.create_user(
        session, email="pref.93@test.fr", role=Role.PREFECTURE, password="x" * 12, territory="departement:93"
    )
    session.flush()
    territory = status.resolve(session, pref_93, None)
    assert (territory.kind, territory.code) == (TerritoryKind.DEPARTMENT, "93")


# ---------------------------------------------------------------- stuck slips


def _issued_slip(session, world, serial: str, pupil_name: str):
    pupil = pupils.register_pupil(
        session,
        pupils.PupilData(
            pupil_name, "Bloqué", "CM1", "0750654D", "QN05981M", "Tuteur Bloqué", "06 11 22 33 44", "tablette"
        ),
        by=world.coordinator,
    )
    device = devices.receive_device(
        session, lot=world.lot, model=world.tablet, serial=serial, condition=DeviceCondition.NEW, by=None
    )
    assignments.assign(session, pupil=pupil, device=device, by=world.coordinator)
    return slips.create_slip(
        session, destination=world.assoc_roubaix, serials=[serial], by=world.coordinator, issue=True
    )


def test_stuck_slips_lists_a_slip_issued_four_days_ago_and_not_one_issued_today(session, world):
    old = _issued_slip(session, world, "SN-VIEUX-1", "Ancien")
    fresh = _issued_slip(session, world, "SN-FRAIS-1", "Récent")
    session.execute(sa.update(Slip).where(Slip.id == old.id).values(issued_at=utcnow() - timedelta(days=4)))
    session.commit()
    nord = status.resolve(session, world.prefecture_nord, None)
    stuck = status.stuck_slips(session, world.prefecture_nord, nord, days=3)
    assert stuck.total == 1 and [s.number for s in stuck.oldest] == [old.number]
    assert stuck.oldest[0].days == 4 and "pas encore expédié" in stuck.oldest[0].reason
    assert stuck.oldest[0].destination == world.assoc_roubaix.name
    assert fresh.number not in [s.number for s in stuck.oldest]
    # a longer patience hides it; the region and the admin see it; Somme's prefecture does not
    assert status.stuck_slips(session, world.prefecture_nord, nord, days=5) == status.StuckSlips(0, [])
    region = status.resolve(session, world.prefecture, None)
    assert [s.number for s in status.stuck_slips(session, world.prefecture, region).oldest] == [old.number]
    everywhere = status.resolve(session, None, "")
    assert [s.number for s in status.stuck_slips(session, world.admin, everywhere).oldest] == [old.number]
    somme = status.resolve(session, world.prefecture_somme, None)
    assert status.stuck_slips(session, world.prefecture_somme, somme).total == 0


def test_stuck_slips_are_counted_all_and_listed_oldest_first_up_to_the_limit(session, world):
    made = [
        _issued_slip(session, world, f"SN-ATTENTE-{n}", name)
        for n, name in enumerate(("Lina", "Rayan", "Emma"))
    ]
    for age, slip in zip((5, 9, 7), made, strict=True):
        session.execute(
            sa.update(Slip).where(Slip.id == slip.id).values(issued_at=utcnow() - timedelta(days=age))
        )
    session.commit()
    stuck = status.stuck_slips(session, world.admin, status.resolve(session, None, ""), days=3, limit=2)
    assert stuck.total == 3
    assert [(s.number, s.days) for s in stuck.oldest] == [(made[1].number, 9), (made[2].number, 7)]


def test_a_shipped_slip_not_received_is_stuck_too(session, world):
    slip = _issued_slip(session, world, "SN-ROUTE-1", "Voyageur")
    slips.scan_for_pick(session, slip, "SN-ROUTE-1", by=world.warehouse)
    slips.ship(session, slip, by=world.warehouse)
    session.execute(sa.update(Slip).where(Slip.id == slip.id).values(shipped_at=utcnow() - timedelta(days=6)))
    session.commit()
    stuck = status.stuck_slips(session, world.admin, status.resolve(session, None, ""), days=3)
    assert [(s.number, s.days) for s in stuck.oldest] == [(slip.number, 6)]
    assert "pas encore réceptionné" in stuck.oldest[0].reason


# ---------------------------------------------------------------- money seen twice on one page


def test_a_device_taken_back_keeps_board_and_money_in_agreement(session, world):
    """The board's committed money (per QPV) and the envelopes' committed money are shown side by side to a
    prefect: after a family gives a device back (take_back), both must still tell the same amount."""
    slip = _issued_slip(session, world, "SN-RETOUR-1", "Rendu")
    slips.scan_for_pick(session, slip, "SN-RETOUR-1", by=world.warehouse)
    slips.ship(session, slip, by=world.warehouse)
    slips.receive(
        session, slip, [slips.ReceptionLine("SN-RETOUR-1", ReceptionState.RECEIVED)], by=world.coordinator
    )
    device = slip.active_lines[0].device
    devices.transition(session, device, "take_back", by=world.coordinator, reason="la famille a déménagé")
    session.commit()
    region = status.resolve(session, world.prefecture, None)
    total, _rows = status.board(session, region)
    assert total.committed_cents == sum(e.committed_cents for e in status.money(session, region))
