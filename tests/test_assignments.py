"""Assigning devices to pupils: scope, region, need, state, money, quota; cancelling; constraints; races."""

from __future__ import annotations

import html
import re
import threading

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.domain import accounts, allocation, assignments, devices, money, pupils
from logistique.domain.errors import BusinessRuleViolation
from logistique.models import (
    Assignment,
    AuditEvent,
    Device,
    DeviceCondition,
    DeviceEvent,
    DeviceStatus,
    Envelope,
    EnvelopeKind,
    Lot,
    NeedKind,
    Pupil,
)

FRENCH = re.compile(r"[àâçéèêëîïôûùüÿœ]|\b(le|la|les|de|du|des|une?|est|déjà|cet)\b", re.IGNORECASE)


def _pupil(session, world, first="Zoé", last="Quintanilla", needs="tablette", qpv="QN05981M", n=0, by=None):
    pupil = pupils.register_pupil(
        session,
        pupils.PupilData(
            first,
            last,
            "CM2",
            "0750654D",
            qpv,
            f"Parent {last}",
            f"06 12 34 {n // 100:02d} {n % 100:02d}",
            needs,
        ),
        by=by or world.coordinator,
    )
    session.commit()
    return pupil


def _device(session, lot, model, serial: str) -> Device:
    device = devices.receive_device(
        session, lot=lot, model=model, serial=serial, condition=DeviceCondition.REFURBISHED, by=None
    )
    session.commit()
    return device


def _state(session) -> dict:
    """Everything a refused assignment or cancellation must leave untouched, as committed."""
    session.rollback()
    session.expire_all()
    state = {
        "pupils": session.scalar(sa.select(sa.func.count(Pupil.id))),
        "assignments": session.execute(
            sa.select(Assignment.id, Assignment.device_id, Assignment.cancelled_at).order_by(Assignment.id)
        ).all(),
        "events": session.scalar(sa.select(sa.func.count(DeviceEvent.id))),
        "audit": session.scalar(sa.select(sa.func.count(AuditEvent.id))),
        "statuses": dict(session.execute(sa.select(Device.serial, Device.status)).all()),
        "committed": money.committed_by_envelope(session),
    }
    session.rollback()
    return state


def _status(session, device: Device) -> DeviceStatus:
    session.rollback()
    return session.scalar(sa.select(Device.status).where(Device.id == device.id))


def _events(session, device: Device) -> list[DeviceEvent]:
    session.rollback()
    session.expire_all()
    return list(
        session.scalars(
            sa.select(DeviceEvent).where(DeviceEvent.device_id == device.id).order_by(DeviceEvent.id)
        )
    )


def _refused(response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert FRENCH.search(error["message"]), error
    if code is not None:
        assert error["code"] == code, error
    return error["message"]


def _assert_assigned(session, world, device: Device, pupil: Pupil, cost_cents: int) -> Assignment:
    assert _status(session, device) is DeviceStatus.ASSIGNED
    last = _events(session, device)[-1]
    assert (last.action, last.from_status, last.to_status) == (
        "assign",
        DeviceStatus.IN_STOCK,
        DeviceStatus.ASSIGNED,
    )
    assert pupil.reference in last.reason
    assert pupil.first_name not in last.reason and pupil.last_name not in last.reason
    assert last.actor_label == world.coordinator.email
    assert money.committed_by_envelope(session, [world.envelope.id]) == {world.envelope.id: cost_cents}
    assignment = session.scalars(sa.select(Assignment).where(Assignment.cancelled_at.is_(None))).one()
    assert (assignment.device_id, assignment.pupil_id, assignment.unit_cost_cents) == (
        device.id,
        pupil.id,
        cost_cents,
    )
    assert assignment.envelope_id == world.envelope.id
    return assignment


# ---------------------------------------------------------------- assigning


def test_assign_by_api(session, world, api):
    pupil = _pupil(session, world, needs="tablette")
    client = api(world.coordinator)
    # a 4G key is not for a pupil who needs a tablet only
    before = _state(session)
    message = _refused(
        client.post("/api/v1/assignments", json={"serial": "SN-LILLE-3", "pupil": pupil.reference}), 422
    )
    assert pupil.reference in message and "connexion" in message
    assert _state(session) == before

    response = client.post(
        "/api/v1/assignments", json={"serial": "sn-lille-1", "pupil": pupil.reference.lower()}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["serial"], body["pupil"], body["kind"], body["unit_cost_cents"]) == (
        "SN-LILLE-1",
        pupil.reference,
        "tablette",
        15000,
    )
    assert body["cancelled_at"] is None
    assignment = _assert_assigned(session, world, world.device, pupil, 15000)
    assert body["id"] == assignment.id


def test_assign_by_page(session, world, login_as):
    pupil = _pupil(session, world, needs="ordinateur")
    client = login_as(world.coordinator)
    page = client.get(f"/eleves/{pupil.id}").get_data(as_text=True)
    assert "SN-LILLE-2" in page  # offered from the region's stock
    before = _state(session)
    refused = client.post(f"/eleves/{pupil.id}", data={"serial": "SN-LILLE-1"})  # a tablet
    assert refused.status_code == 422
    assert "n'a pas de besoin" in html.unescape(refused.get_data(as_text=True))
    assert _state(session) == before
    response = client.post(f"/eleves/{pupil.id}", data={"serial": " sn-lille-2 "})
    assert response.status_code == 302, response.get_data(as_text=True)
    _assert_assigned(session, world, world.device2, pupil, 23000)
    page = client.get(f"/eleves/{pupil.id}").get_data(as_text=True)
    assert "SN-LILLE-2" in page and "Annuler l’attribution" in page


def test_device_not_in_stock_is_refused(session, world, api):
    pupil = _pupil(session, world)
    session.execute(
        sa.update(Device).where(Device.id == world.device.id).values(status=DeviceStatus.DEFECTIVE)
    )
    session.commit()
    before = _state(session)
    message = _refused(
        api(world.coordinator).post(
            "/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": pupil.reference}
        ),
        409,
    )
    assert "SN-LILLE-1" in message
    assert _state(session) == before
    assert _status(session, world.device) is DeviceStatus.DEFECTIVE


def test_scope_and_region(session, world, api):
    pupil = _pupil(session, world)
    before = _state(session)
    # the Bobigny tablet is outside the Roubaix coordinator's scope: it does not exist for them
    _refused(
        api(world.coordinator).post(
            "/api/v1/assignments", json={"serial": "SN-IDF-1", "pupil": pupil.reference}
        ),
        404,
        "not_found",
    )
    # an admin sees it, but stock is regional
    message = _refused(
        api(world.admin).post("/api/v1/assignments", json={"serial": "SN-IDF-1", "pupil": pupil.reference}),
        422,
    )
    assert "autre région" in message
    with pytest.raises(BusinessRuleViolation):
        assignments.assign(session, pupil=pupil, device=world.device_idf, by=None)
    session.rollback()
    # the Roubaix pupil is outside the Bobigny coordinator's scope
    _refused(
        api(world.coordinator_idf).post(
            "/api/v1/assignments", json={"serial": "SN-IDF-1", "pupil": pupil.reference}
        ),
        404,
        "not_found",
    )
    assert _state(session) == before


def test_pupil_who_already_has_that_kind_is_a_conflict(session, world, api):
    pupil = _pupil(session, world)
    other_tablet = _device(session, world.lot, world.tablet, "SN-LILLE-9")
    client = api(world.coordinator)
    assert (
        client.post(
            "/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": pupil.reference}
        ).status_code
        == 201
    )
    before = _state(session)
    message = _refused(
        client.post("/api/v1/assignments", json={"serial": "SN-LILLE-9", "pupil": pupil.reference}),
        409,
        "pupil_served",
    )
    assert "SN-LILLE-1" in message and pupil.reference in message
    assert _state(session) == before
    assert _status(session, other_tablet) is DeviceStatus.IN_STOCK


def _cite_lot(session, world, *, amount_cents: int, annual_cents: int) -> tuple[Envelope, Lot]:
    """A cité éducative 2020 envelope of Hauts-de-France, its lot of 150-€ tablets at the Lille warehouse."""
    envelope = money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="32",
            kind=EnvelopeKind.CITE_2020,
            label="Cité éducative de Roubaix 2020",
            amount_cents=amount_cents,
            annual_amount_cents=annual_cents,
            cite_educative_code="cite-064",
        ),
        by=None,
    )
    lot = money.save_lot(
        session,
        money.LotData(
            reference="LOT-CITE",
            supplier="Emmaüs Connect",
            envelope_id=envelope.id,
            warehouse_id=world.wh_lille.id,
            unit_costs={world.tablet.id: 150_00},
        ),
        by=None,
    )
    return envelope, lot


def test_cite_educative_2020_envelope_cannot_pass_its_15_percent(session, world, api):
    envelope, lot = _cite_lot(session, world, amount_cents=150_00, annual_cents=1000_00)
    first_tablet = _device(session, lot, world.tablet, "SN-CITE-1")
    second_tablet = _device(session, lot, world.tablet, "SN-CITE-2")
    first, second = (
        _pupil(session, world, "Anna", "Vasseur", n=1),
        _pupil(session, world, "Bilal", "Haddad", n=2),
    )
    client = api(world.coordinator)
    assert (
        client.post("/api/v1/assignments", json={"serial": "SN-CITE-1", "pupil": first.reference}).status_code
        == 201
    )
    assert money.committed_by_envelope(session, [envelope.id]) == {envelope.id: 150_00}
    before = _state(session)
    message = _refused(
        client.post("/api/v1/assignments", json={"serial": "SN-CITE-2", "pupil": second.reference}),
        422,
        "envelope_exceeded",
    )
    assert "15 %" in message
    assert _state(session) == before
    assert _status(session, first_tablet) is DeviceStatus.ASSIGNED
    assert _status(session, second_tablet) is DeviceStatus.IN_STOCK
    # an amount past the cap cannot even be written behind save_envelope's back: a database constraint
    with pytest.raises(sa.exc.IntegrityError):
        session.execute(sa.update(Envelope).where(Envelope.id == envelope.id).values(amount_cents=1000_00))
        session.flush()
    session.rollback()
    assert _state(session) == before


def test_one_transaction_of_assignments_counts_its_own_money_and_quota(session, world):
    """A batch (the bulk assignment page) assigns pupil after pupil before one commit: each check counts the
    assignments the batch already made. The counters these checks read are written only at the commit."""
    envelope, lot = _cite_lot(session, world, amount_cents=300_00, annual_cents=2000_00)
    tablets = [_device(session, lot, world.tablet, f"SN-BATCH-{i}") for i in range(3)]
    roubaix = [_pupil(session, world, "Anna", "Vasseur", n=1), _pupil(session, world, "Bilal", "Haddad", n=2)]
    quartier = _pupil(session, world, "Chloé", "Petit", n=3, qpv="QP059001")
    session.commit()
    before = _state(session)
    # money: 300 € for 150-€ tablets, two fit, the third is refused within the same transaction
    assignments.assign(session, pupil=roubaix[0], device=tablets[0], by=world.coordinator)
    assignments.assign(session, pupil=quartier, device=tablets[1], by=world.coordinator)
    assert money.committed_by_envelope(session, [envelope.id]) == {envelope.id: 300_00}
    with pytest.raises(BusinessRuleViolation) as refused:
        assignments.assign(session, pupil=roubaix[1], device=tablets[2], by=world.coordinator)
    assert refused.value.code == "envelope_exceeded"
    session.rollback()
    assert _state(session) == before
    # quota: one tablet for the QPV QN05981M in the applied plan; the batch's first one uses it up
    plan = allocation.compute_plan(session, "32", by=None)
    line = next(ln for ln in plan.lines if (ln.qpv_code, ln.kind) == ("QN05981M", NeedKind.TABLET))
    allocation.adjust(session, plan, {line.id: 1}, by=None)
    allocation.apply(session, plan, by=None)
    session.commit()
    assignments.assign(session, pupil=roubaix[0], device=tablets[0], by=world.coordinator)
    with pytest.raises(BusinessRuleViolation) as refused:
        assignments.assign(session, pupil=roubaix[1], device=tablets[1], by=world.coordinator)
    assert refused.value.code == "quota_reached"
    session.rollback()


def test_quota_of_the_applied_plan(session, world, api):
    roubaix = _pupil(session, world, "Anna", "Vasseur", n=1, qpv="QN05981M")
    quartier = _pupil(session, world, "Bilal", "Haddad", n=2, qpv="QP059001")
    plan = allocation.compute_plan(session, "32", by=None)
    line = next(ln for ln in plan.lines if (ln.qpv_code, ln.kind) == ("QN05981M", NeedKind.TABLET))
    assert line.quota == 1
    allocation.adjust(session, plan, {line.id: 0}, by=None)
    allocation.apply(session, plan, by=None)
    session.commit()
    client = api(world.coordinator)
    before = _state(session)
    message = _refused(
        client.post("/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": roubaix.reference}),
        422,
        "quota_reached",
    )
    assert "QN05981M" in message
    assert _state(session) == before
    # the other QPV keeps its quota
    response = client.post("/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": quartier.reference})
    assert response.status_code == 201, response.get_data(as_text=True)


# ---------------------------------------------------------------- cancelling


def _assigned(session, world) -> tuple[Pupil, Assignment]:
    pupil = _pupil(session, world)
    assignment = assignments.assign(session, pupil=pupil, device=world.device, by=world.coordinator)
    session.commit()
    return pupil, assignment


def _assert_cancelled(session, world, assignment: Assignment) -> None:
    assert _status(session, world.device) is DeviceStatus.IN_STOCK
    actions = [e.action for e in _events(session, world.device)]
    assert actions[-2:] == ["assign", "unassign"]
    assert money.committed_by_envelope(session, [world.envelope.id]) == {}
    session.expire_all()
    assert session.get(Assignment, assignment.id).cancelled_at is not None


def test_cancel_by_api_then_twice(session, world, api):
    pupil, assignment = _assigned(session, world)
    before = _state(session)
    _refused(api(world.coordinator_idf).delete(f"/api/v1/assignments/{assignment.id}"), 404)
    assert api(world.warehouse).delete(f"/api/v1/assignments/{assignment.id}").status_code == 403
    assert _state(session) == before
    client = api(world.coordinator)
    response = client.delete(f"/api/v1/assignments/{assignment.id}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["cancelled_at"] is not None
    _assert_cancelled(session, world, assignment)
    before = _state(session)
    _refused(client.delete(f"/api/v1/assignments/{assignment.id}"), 409)
    assert _state(session) == before
    # the device and the pupil are free again
    response = client.post("/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": pupil.reference})
    assert response.status_code == 201, response.get_data(as_text=True)


def test_cancel_by_page(session, world, login_as):
    pupil, assignment = _assigned(session, world)
    client = login_as(world.coordinator)
    response = client.post(f"/attributions/{assignment.id}/annuler")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/eleves/{pupil.id}")
    _assert_cancelled(session, world, assignment)


def test_cancel_after_the_device_is_on_a_slip_is_refused(session, world, api, login_as):
    _pupil_, assignment = _assigned(session, world)
    session.execute(sa.update(Device).where(Device.id == world.device.id).values(status=DeviceStatus.ON_SLIP))
    session.commit()
    before = _state(session)
    _refused(api(world.coordinator).delete(f"/api/v1/assignments/{assignment.id}"), 409)
    assert _state(session) == before
    login_as(world.coordinator).post(f"/attributions/{assignment.id}/annuler")
    assert _state(session) == before
    assert _status(session, world.device) is DeviceStatus.ON_SLIP
    assert money.committed_by_envelope(session, [world.envelope.id]) == {world.envelope.id: 15000}


# ---------------------------------------------------------------- database constraints


def _row(world, assignment: Assignment, **changes) -> Assignment:
    fields = {
        "device_id": assignment.device_id,
        "pupil_id": assignment.pupil_id,
        "kind": assignment.kind,
        "qpv_code": assignment.qpv_code,
        "organisation_id": assignment.organisation_id,
        "envelope_id": assignment.envelope_id,
        "unit_cost_cents": assignment.unit_cost_cents,
        "device_status": assignment.device_status,
    }
    fields.update(changes)
    return Assignment(**fields)


def test_one_active_assignment_per_device_and_per_pupil_and_kind_are_database_constraints(session, world):
    _pupil_, assignment = _assigned(session, world)
    other = _pupil(session, world, "Bilal", "Haddad", n=2)
    other_tablet = _device(session, world.lot, world.tablet, "SN-LILLE-9")
    count = session.scalar(sa.select(sa.func.count(Assignment.id)))
    for changes in ({"pupil_id": other.id}, {"device_id": other_tablet.id}):
        session.add(_row(world, assignment, **changes))
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
        session.rollback()
        # a cancelled row is allowed: the unique indexes are partial
        session.add(_row(world, assignment, **changes, cancelled_at=assignment.created_at))
        session.flush()
        session.rollback()
    assert session.scalar(sa.select(sa.func.count(Assignment.id))) == count


# ---------------------------------------------------------------- the race

RACERS = 20


def test_twenty_coordinators_race_for_the_last_tablet(app, session, world):
    """20 requests at the same instant for one tablet, each for its own pupil: one wins, 19 get a 409."""
    racers = [_pupil(session, world, f"Élève{chr(65 + n)}", "Course", n=n) for n in range(RACERS)]
    tokens = [accounts.create_token(session, world.coordinator) for _ in range(RACERS)]
    session.commit()
    references = [p.reference for p in racers]
    session.rollback()
    barrier = threading.Barrier(RACERS)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens[n]}"
        barrier.wait(30)
        response = client.post("/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": references[n]})
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == RACERS
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (RACERS - 1), results
    for status, body in results:
        if status == 409:
            assert FRENCH.search(body["error"]["message"]), body
    db.session.rollback()
    db.session.expire_all()
    active = session.scalars(sa.select(Assignment).where(Assignment.cancelled_at.is_(None))).all()
    assert len(active) == 1 and active[0].device_id == world.device.id
    winner = next(body for status, body in results if status == 201)
    assert active[0].id == winner["id"]
    assigns = [e for e in _events(session, world.device) if e.action == "assign"]
    assert len(assigns) == 1
    assert winner["pupil"] in assigns[0].reason
    assert _status(session, world.device) is DeviceStatus.ASSIGNED
    assert money.committed_by_envelope(session, [world.envelope.id]) == {world.envelope.id: 15000}
