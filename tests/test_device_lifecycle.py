"""The device lifecycle: every allowed transition, every refused one, scope, journal and races."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.domain import assignments, devices, pupils
from logistique.domain.devices import TRANSITIONS
from logistique.domain.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from logistique.models import Assignment, Device, DeviceCondition, DeviceEvent, DeviceStatus, Pupil, Role

ROLE_USER = {
    Role.ADMIN: "admin",
    Role.WAREHOUSE: "warehouse",
    Role.COORDINATOR: "coordinator",
    Role.PREFECTURE: "prefecture",
}


def _force_status(session, device: Device, status: DeviceStatus) -> None:
    """Put a device in a state for the test (the only place a status is written outside the domain)."""
    session.execute(sa.update(Device).where(Device.id == device.id).values(status=status))
    session.commit()
    session.refresh(device)


def _events(session, device: Device) -> list[DeviceEvent]:
    return list(
        session.scalars(
            sa.select(DeviceEvent).where(DeviceEvent.device_id == device.id).order_by(DeviceEvent.id)
        )
    )


ACTIONS = sorted(TRANSITIONS)


def _assigned_to_roubaix(session, world, device: Device) -> None:
    """Give the device an active assignment to a pupil of the Roubaix association, if it has none."""
    active = session.scalar(
        sa.select(Assignment.id).where(Assignment.device_id == device.id, Assignment.cancelled_at.is_(None))
    )
    if active is not None:
        return
    pupil = session.scalar(sa.select(Pupil).where(Pupil.organisation_id == world.assoc_roubaix.id))
    if pupil is None:
        pupil = pupils.register_pupil(
            session,
            pupils.PupilData(
                "Léa", "Martin", "CM2", "0750654D", "QN05981M", "Sophie Martin", "0612345678", "tablette"
            ),
            by=world.coordinator,
        )
    _force_status(session, device, DeviceStatus.IN_STOCK)
    assignments.assign(session, pupil=pupil, device=device, by=world.coordinator)
    session.commit()


@pytest.mark.parametrize("action", ACTIONS)
def test_allowed_transition_changes_status_and_journals_it(session, world, action):
    """From each source state, by each role the rule allows: new state, one event with who/from/to/why."""
    rule = TRANSITIONS[action]
    device = world.device
    for source in sorted(rule.sources):
        for role in sorted(rule.roles):
            if role is Role.COORDINATOR and action != "assign":
                _assigned_to_roubaix(session, world, device)  # a coordinator acts on its own pupils' devices
            _force_status(session, device, source)
            user = getattr(world, ROLE_USER[role])
            before = len(_events(session, device))
            event_id = devices.transition(session, device, action, by=user, reason="colis abîmé")
            session.commit()
            session.expire_all()
            case = f"{action} depuis {source.value} par {role.value}"
            assert session.get(Device, device.id).status is rule.target, case
            events = _events(session, device)
            assert len(events) == before + 1, case
            assert (events[-1].id, events[-1].action, events[-1].from_status, events[-1].to_status) == (
                event_id,
                action,
                source,
                rule.target,
            ), case
            assert (events[-1].actor_id, events[-1].actor_label) == (user.id, user.email), case
            assert events[-1].reason == "colis abîmé", case


@pytest.mark.parametrize("action", ACTIONS)
def test_transition_from_a_wrong_state_is_refused_and_changes_nothing(session, world, action):
    device = world.device
    wrong = [status for status in DeviceStatus if status not in TRANSITIONS[action].sources]
    assert wrong, action
    for status in wrong:
        _force_status(session, device, status)
        before = len(_events(session, device))
        with pytest.raises(InvalidTransition) as refused:
            devices.transition(session, device, action, by=None, reason="motif")
        session.rollback()
        assert device.serial in refused.value.message and status.label in refused.value.message
        session.expire_all()
        assert session.get(Device, device.id).status is status, f"{action} depuis {status.value}"
        assert len(_events(session, device)) == before, f"{action} depuis {status.value}"


@pytest.mark.parametrize("action", ACTIONS)
def test_transition_by_a_role_without_the_right_is_forbidden(session, world, action):
    rule = TRANSITIONS[action]
    device = world.device
    source = sorted(rule.sources)[0]
    _force_status(session, device, source)
    refused_roles = [role for role in Role if role not in rule.roles]
    assert Role.PREFECTURE in refused_roles  # prefecture staff change nothing
    for role in refused_roles:
        with pytest.raises(Forbidden):
            devices.transition(session, device, action, by=getattr(world, ROLE_USER[role]), reason="motif")
        session.rollback()
        session.expire_all()
        assert session.get(Device, device.id).status is source, f"{action} par {role.value}"


@pytest.mark.parametrize(
    ("action", "user"),
    [
        ("mark_defective", "warehouse_amiens"),
        ("mark_defective", "warehouse_idf"),
        ("assign", "coordinator_idf"),
    ],
)
def test_transition_outside_the_users_scope_is_not_found(session, world, action, user):
    device = world.device
    with pytest.raises(NotFound):
        devices.transition(session, device, action, by=getattr(world, user), reason="motif")
    session.rollback()
    session.expire_all()
    assert session.get(Device, device.id).status is DeviceStatus.IN_STOCK
    assert [e.action for e in _events(session, device)] == [devices.RECEPTION_ACTION]


def test_side_exits_need_a_reason(session, world):
    with pytest.raises(ValidationFailed, match="commentaire est obligatoire"):
        devices.transition(session, world.device, "mark_defective", by=world.warehouse, reason="  ")


def test_unknown_action_is_refused(session, world):
    with pytest.raises(ValidationFailed, match="Action inconnue"):
        devices.transition(session, world.device, "teleport", by=None)


def test_every_status_is_reachable_from_stock_and_every_transition_is_tested():
    reachable, frontier = {DeviceStatus.IN_STOCK}, [DeviceStatus.IN_STOCK]
    while frontier:
        status = frontier.pop()
        for rule in TRANSITIONS.values():
            if status in rule.sources and rule.target not in reachable:
                reachable.add(rule.target)
                frontier.append(rule.target)
    assert reachable == set(DeviceStatus)


def test_a_stale_writer_loses_to_the_guarded_update(app, world):
    """Two people open the same device; the first to act wins, the second gets a conflict, not two events."""
    with db.new_session(write=True) as first, db.new_session(write=True) as second:
        mine = first.get(Device, world.device.id)
        first.commit()  # the page was rendered; the transaction is over but the object is kept
        theirs = second.get(Device, world.device.id)
        devices.transition(second, theirs, "mark_defective", by=None, reason="écran cassé")
        second.commit()
        assert mine.status is DeviceStatus.IN_STOCK  # stale in memory
        with pytest.raises(Conflict, match="vient d'être modifié"):
            devices.transition(first, mine, "mark_lost", by=None, reason="introuvable")
        first.rollback()
    db.session.expire_all()
    device = db.session.get(Device, world.device.id)
    assert device.status is DeviceStatus.DEFECTIVE
    assert [e.action for e in _events(db.session, device)] == [devices.RECEPTION_ACTION, "mark_defective"]


def test_racing_writers_exactly_one_wins(app, world):
    """Ten threads try to take the same device out of stock at once: one succeeds, nine are refused."""
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        with app.app_context(), db.new_session(write=True) as session:
            barrier.wait()
            try:
                device = session.get(Device, world.device.id)
                devices.transition(session, device, "mark_defective", by=None, reason=f"essai {n}")
                session.commit()
                result = "won"
            except (Conflict, InvalidTransition):
                session.rollback()
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused"] * 9 + ["won"]
    db.session.expire_all()
    events = _events(db.session, db.session.get(Device, world.device.id))
    assert [e.action for e in events] == [devices.RECEPTION_ACTION, "mark_defective"]


def test_receiving_a_known_serial_is_a_conflict_and_adds_nothing(session, world):
    count = session.scalar(sa.select(sa.func.count(Device.id)))
    with pytest.raises(Conflict) as refused:
        devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial=" sn-lille-1 ",
            condition=DeviceCondition.NEW,
            by=world.warehouse,
        )
    assert refused.value.code == "duplicate_serial"
    session.rollback()
    assert session.scalar(sa.select(sa.func.count(Device.id))) == count


def test_receiving_is_for_the_lots_own_warehouse(session, world):
    with pytest.raises(NotFound):
        devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial="NEW-1",
            condition=DeviceCondition.NEW,
            by=world.warehouse_amiens,
        )
    with pytest.raises(Forbidden):
        devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial="NEW-1",
            condition=DeviceCondition.NEW,
            by=world.coordinator,
        )


def test_received_device_is_in_stock_with_a_unique_tag_and_an_event(session, world):
    device = devices.receive_device(
        session,
        lot=world.lot,
        model=world.laptop,
        serial="pf-0001",
        condition=DeviceCondition.NEW,
        by=world.warehouse,
    )
    session.commit()
    assert device.serial == "PF-0001" and device.status is DeviceStatus.IN_STOCK
    assert device.warehouse_id == world.wh_lille.id
    assert device.asset_tag.startswith("EQ-") and len(device.asset_tag) == 11
    [event] = _events(session, device)
    assert (event.from_status, event.to_status, event.actor_id) == (
        None,
        DeviceStatus.IN_STOCK,
        world.warehouse.id,
    )


@pytest.mark.parametrize("serial", ["", "   ", "AB CD", "SN\x00", "É123", "x" * 65])
def test_bad_serials_are_refused(session, world, serial):
    with pytest.raises(ValidationFailed):
        devices.receive_device(
            session,
            lot=world.lot,
            model=world.tablet,
            serial=serial,
            condition=DeviceCondition.NEW,
            by=world.warehouse,
        )
