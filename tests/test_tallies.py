"""The status board's counters: kept by the domain in the transaction that changes what they count, dropped
with a rollback, detectable and repairable when they drift, rebuilt by the migration that created them."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from logistique import migrate
from logistique.db import db
from logistique.domain import accounts, assignments, census, status, tallies
from logistique.domain.errors import Conflict
from logistique.models import (
    Assignment,
    AssignmentTally,
    Device,
    DeviceStatus,
    NeedKind,
    PupilTally,
    SlipStatus,
)

from .factories import add_device, add_pupil, assign, bundle, hand_over, received_slip

ROUBAIX = "QN05981M"


def _counted(session, qpv: str = ROUBAIX) -> dict[tuple[str, bool], int]:
    """{(device status, active): devices} of a QPV's counters, zeros left out."""
    out: dict[tuple[str, bool], int] = {}
    for t in session.scalars(sa.select(AssignmentTally).where(AssignmentTally.qpv_code == qpv)):
        if t.devices:
            key = (t.device_status.value, t.active)
            out[key] = out.get(key, 0) + t.devices
    return out


def _pupils(session) -> dict[tuple[str, str], int]:
    return {(t.qpv_code, t.kind.value): t.pupils for t in session.scalars(sa.select(PupilTally))}


def test_each_step_of_a_device_moves_its_count_and_nothing_else(session, world):
    b = bundle(session, world, 1)
    session.commit()
    assert _counted(session) == {("attribue", True): 2}
    slip = received_slip(session, world, b.serials)
    session.commit()
    assert _counted(session) == {("receptionne", True): 2}
    hand_over(session, world, b.pupil, [b.tablet.serial])
    session.commit()
    assert _counted(session) == {("receptionne", True): 1, ("remis", True): 1}
    session.refresh(slip)
    assert slip.status is SlipStatus.RECEIVED  # still open: the key is not handed over yet
    total, _rows = status.board(session, status.resolve(session, None, ""), by="qpv")
    assert (total.received, total.handed_over, total.devices) == (1, 1, 2)
    assert tallies.differences(session) == []


def test_a_cancelled_assignment_leaves_the_active_counts_and_releases_its_money(session, world):
    pupil = add_pupil(session, world, "Inès", "Annulée", needs="tablette")
    device = add_device(session, world, "SN-ANNUL-1")
    assignment = assign(session, world, pupil, device)
    session.commit()
    committed = sum(e.committed_cents for e in status.money(session, status.resolve(session, None, "")))
    assert committed == assignment.unit_cost_cents
    assignments.cancel(session, assignment, by=world.coordinator)
    session.commit()
    assert _counted(session) == {("en_stock", False): 1}
    assert sum(e.committed_cents for e in status.money(session, status.resolve(session, None, ""))) == 0
    assert census.needs_by_qpv(session)[(ROUBAIX, NeedKind.TABLET)] == (1, 0)


def test_a_rolled_back_transaction_leaves_the_counters_untouched(session, world):
    pupil = add_pupil(session, world, "Adam", "Retour", needs="tablette")
    device = add_device(session, world, "SN-ROLLBACK-1")
    session.commit()
    before = _counted(session), _pupils(session)
    assign(session, world, pupil, device)
    add_pupil(session, world, "Jade", "Oubliée", needs="ordinateur")
    session.rollback()
    session.commit()  # nothing recorded before the rollback may be written by a later commit
    after = _counted(session), _pupils(session)
    assert after == before
    assert tallies.differences(session) == []


def test_what_a_rolled_back_savepoint_recorded_is_undone_and_the_rest_kept(session, world):
    first = add_pupil(session, world, "Noah", "Gardé", needs="tablette")
    tablet = add_device(session, world, "SN-GARDE-1")
    key = add_device(session, world, "SN-GARDE-CLE", "key")
    session.commit()
    assign(session, world, first, tablet)  # recorded before the savepoint: kept
    try:
        with session.begin_nested():  # assign releases a savepoint of its own inside this one
            second = add_pupil(session, world, "Léa", "Annulée", needs="connexion")
            assign(session, world, second, key)
            raise Conflict("annulé pour le test")
    except Conflict:
        pass
    session.commit()
    assert tallies.differences(session) == []
    assert _counted(session) == {("attribue", True): 1}
    kinds = {t.kind for t in session.scalars(sa.select(AssignmentTally)) if t.devices}
    assert kinds == {NeedKind.TABLET}
    assert _pupils(session) == {(ROUBAIX, "tablette"): 1}


def test_what_a_released_savepoint_recorded_is_kept(session, world):
    with session.begin_nested():
        add_pupil(session, world, "Jade", "Gardée", needs="ordinateur")
    session.commit()
    assert _pupils(session) == {(ROUBAIX, "ordinateur"): 1}


def test_a_pupil_registered_in_a_rolled_back_savepoint_is_not_counted(session, world):
    try:
        with session.begin_nested():
            add_pupil(session, world, "Léa", "Annulée", needs="tablette")
            raise Conflict("annulé pour le test")
    except Conflict:
        pass
    session.commit()
    assert _pupils(session) == {}
    assert tallies.differences(session) == []


def test_an_assignment_and_a_cancellation_racing_on_one_envelope_both_commit(session, world):
    """On PostgreSQL, writing a new counter row checks its envelope's key (FOR KEY SHARE): the envelope lock
    of an assignment must not block that check, or the two transactions deadlock at commit."""
    first = add_pupil(session, world, "Noah", "Un", needs="tablette")
    second = add_pupil(session, world, "Léa", "Deux", needs="tablette")
    cancelled = assign(session, world, first, add_device(session, world, "SN-COURSE-1"))
    add_device(session, world, "SN-COURSE-2")
    session.commit()
    errors: list[str] = []
    with db.new_session(write=True) as a, db.new_session(write=True) as b:
        # A: an assignment, its envelope locked, its counter not yet written
        assignments.assign(
            a,
            pupil=a.get(type(second), second.id),
            device=a.scalar(sa.select(Device).where(Device.serial == "SN-COURSE-2")),
            by=None,
        )

        def cancel() -> None:  # B: cancels another assignment on the same envelope, a new counter row
            try:
                assignments.cancel(b, b.get(Assignment, cancelled.id), by=None)
                b.commit()
            except Exception as exc:  # noqa: BLE001 — reported below
                errors.append(repr(exc))
                b.rollback()

        racing = threading.Thread(target=cancel)
        racing.start()
        time.sleep(0.5)
        try:
            a.commit()
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(repr(exc))
            a.rollback()
        racing.join()
    assert errors == []
    session.expire_all()
    assert _counted(session) == {("attribue", True): 1, ("en_stock", False): 1}
    assert tallies.differences(session) == []


def test_reads_in_the_same_transaction_see_what_it_recorded(session, world):
    b = bundle(session, world, 2)  # not committed
    total, _rows = status.board(session, status.resolve(session, None, ""), by="qpv")
    assert total.assigned == 2
    assert census.needs_by_qpv(session)[(ROUBAIX, NeedKind.TABLET)] == (1, 1)
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).where(Device.serial.in_(b.serials))) == 0  # rolled back
    assert status.board(session, status.resolve(session, None, ""), by="qpv")[0].assigned == 0


def test_drift_is_reported_by_recount_check_and_repaired_by_recount(session, world, runner):
    bundle(session, world, 3)
    session.commit()
    # a counter changed behind the domain's back (a bulk load, a hand-made SQL fix…)
    session.execute(
        sa.update(AssignmentTally)
        .where(AssignmentTally.device_status == DeviceStatus.ASSIGNED)
        .values(devices=AssignmentTally.devices + 5)
    )
    session.commit()
    found = tallies.differences(session)
    assert found and "recompté" in found[0]
    session.rollback()
    result = runner.invoke(args=["recount", "--check"])
    assert result.exit_code == 1 and "écart" in result.output
    result = runner.invoke(args=["recount"])
    assert result.exit_code == 0, result.output
    assert "corrigé" in result.output
    assert runner.invoke(args=["recount", "--check"]).exit_code == 0
    session.expire_all()
    assert _counted(session) == {("attribue", True): 2}


def test_recount_check_compares_the_assignment_status_with_the_device_status(session, world, runner):
    b = bundle(session, world, 5)
    session.commit()
    assert runner.invoke(args=["recount", "--check"]).exit_code == 0
    # the assignment's copy of its device's status changed behind the domain's back
    session.execute(
        sa.update(Assignment)
        .where(Assignment.device_id == b.tablet.id)
        .values(device_status=DeviceStatus.RECEIVED)
    )
    session.commit()
    result = runner.invoke(args=["recount", "--check"])
    assert result.exit_code == 1
    assert (
        f"l'équipement {b.tablet.serial} est « attribue », l'attribution dit « receptionne »" in result.output
    )
    session.execute(
        sa.update(Assignment)
        .where(Assignment.device_id == b.tablet.id)
        .values(device_status=DeviceStatus.ASSIGNED)
    )
    session.commit()
    assert runner.invoke(args=["recount", "--check"]).exit_code == 0


def test_counters_follow_the_app_sessions_only(app, session, world):
    """Importing the counters changes no session but the application's: a bare SQLAlchemy session records
    nothing at commit, the application's session writes its counters."""
    assert not event.contains(Session, "before_commit", tallies._before_commit)
    with Session(db.get_engine()) as bare:
        tallies.pupil_registered(bare, world.assoc_roubaix.id, ROUBAIX, [NeedKind.TABLET])
        bare.commit()
    assert _pupils(session) == {}
    add_pupil(session, world, "Ada", "Compteur", needs="tablette")
    session.commit()
    assert _pupils(session) == {(ROUBAIX, "tablette"): 1}


def test_the_migration_counts_existing_rows_and_dates_past_handovers(app, session, world):
    b = bundle(session, world, 4)
    received_slip(session, world, b.serials)
    done = hand_over(session, world, b.pupil, b.serials)
    session.commit()
    handed_at = done.handed_over_at
    engine = db.get_engine()
    session.close()
    engine.dispose()
    previous = "8b75733f6b58"  # before the counters
    migrate.downgrade(engine, previous)
    try:
        assert "assignment_tallies" not in sa.inspect(engine).get_table_names()
    finally:
        migrate.upgrade(engine)
    assert tallies.differences(session) == []
    assert _counted(session) == {("remis", True): 2}
    dates = session.scalars(
        sa.select(Assignment.handed_over_at).where(Assignment.pupil_id == b.pupil.id)
    ).all()
    assert dates == [handed_at, handed_at]
    pace = status.handovers_per_day(session, status.resolve(session, None, ""), days=3)
    assert sum(n for _day, n in pace) == 2


def test_ten_assignments_at_the_same_instant_are_all_counted(app, session, world):
    """Ten coordinators assign ten tablets of one envelope at once (one QPV, one counter): none is lost."""
    names = ["Adam", "Inès", "Jade", "Noah", "Lina", "Rayan", "Emma", "Yanis", "Sarah", "Nolan"]
    racers = [add_pupil(session, world, first, "Simultané", needs="tablette") for first in names]
    serials = [add_device(session, world, f"SN-SIMUL-{n}").serial for n in range(len(names))]
    tokens = [accounts.create_token(session, world.coordinator) for _ in names]
    session.commit()
    references = [p.reference for p in racers]
    barrier = threading.Barrier(len(names))
    codes: list[int] = []

    def attempt(n: int) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens[n]}"
        barrier.wait(30)
        response = client.post("/api/v1/assignments", json={"serial": serials[n], "pupil": references[n]})
        codes.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [201] * len(names)
    session.rollback()
    session.expire_all()
    total, _rows = status.board(session, status.resolve(session, None, ""), by="qpv")
    assert total.assigned == len(names)
    cost = session.scalar(sa.select(Assignment.unit_cost_cents).limit(1))
    assert total.committed_cents == len(names) * cost
    assert tallies.differences(session) == []
