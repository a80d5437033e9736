"""Equipping a class at once (issue 13, point 1): scan to assign with undo, the automatic proposal confirmed
all or nothing, the API's batch and scan endpoints, and two coordinators scanning the same device."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.domain import accounts, bulk_assign
from logistique.domain.errors import BusinessRuleViolation, Conflict, DomainError
from logistique.models import Assignment, Device, DeviceStatus, Pupil, Role

from .factories import add_device, add_pupil, assign, device_status, events_of, snapshot


def _active(session) -> dict[str, str]:
    """serial → pupil reference of the active assignments, as committed."""
    session.rollback()
    rows = session.execute(
        sa.select(Assignment.device_id, Pupil.reference)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .where(Assignment.cancelled_at.is_(None))
    ).all()
    serials = dict(session.execute(sa.select(Device.id, Device.serial)).all())
    return {serials[device_id]: reference for device_id, reference in rows}


def _pupils(session, world, n: int, needs: str = "tablette") -> list[Pupil]:
    made = [add_pupil(session, world, f"Élève{chr(65 + i)}", "Classe", needs=needs) for i in range(n)]
    for i, pupil in enumerate(made):  # registered a day apart: A waited longest
        pupil.created_at = pupil.created_at - timedelta(days=n - i)
    session.commit()
    return made


def test_each_scan_goes_to_the_pupil_who_waited_longest_and_can_be_undone(session, world, login_as):
    first, second, third = _pupils(session, world, 3)
    phone = login_as(world.coordinator)
    page = phone.get("/attributions/scan")
    assert page.status_code == 200 and "Attribuer en scannant" in page.get_data(as_text=True)

    response = phone.post("/attributions/scan", data={"code": "sn-lille-1"})
    assert response.status_code == 302
    assert _active(session) == {"SN-LILLE-1": first.reference}
    # by asset tag, or the label's URL: the next pupil
    response = phone.post(
        "/attributions/scan", data={"code": f"https://x.test/d/{world.device_amiens.asset_tag}"}
    )
    assert response.status_code == 302
    assert _active(session) == {"SN-LILLE-1": first.reference, "SN-AMIENS-1": second.reference}

    # the same device scanned again: told, nothing changes
    before = snapshot(session)
    again = phone.post("/attributions/scan", data={"code": "SN-LILLE-1"})
    assert again.status_code == 409 and "déjà attribué à " + first.reference in again.get_data(as_text=True)
    assert snapshot(session) == before
    # from the page's scan queue (JSON): an amber « already », not a refusal
    queued = phone.post(
        "/attributions/scan", data={"code": "SN-LILLE-1"}, headers={"Accept": "application/json"}
    )
    assert queued.status_code == 200 and queued.get_json()["outcome"] == "already"
    assert snapshot(session) == before

    # a laptop: nobody of the organisation waits for one
    refused = phone.post("/attributions/scan", data={"code": "SN-LILLE-2"})
    assert refused.status_code == 422 and "Aucun élève" in refused.get_data(as_text=True)
    assert snapshot(session) == before

    # the page lists the last scans with an undo; undoing sends the device back and the pupil waits again
    text = phone.get("/attributions/scan").get_data(as_text=True)
    assert first.reference in text and "SN-AMIENS-1" in text
    session.rollback()
    undone = session.scalar(sa.select(Assignment.id).where(Assignment.pupil_id == second.id))
    assert phone.post(f"/attributions/scan/{undone}/annuler").status_code == 302
    assert _active(session) == {"SN-LILLE-1": first.reference}
    assert device_status(session, "SN-AMIENS-1") is DeviceStatus.IN_STOCK
    assert events_of(session, "SN-AMIENS-1")[-2:] == ["assign", "unassign"]
    # scanned again, it goes to the second pupil again (who still waits longest), not to the third
    phone.post("/attributions/scan", data={"code": "SN-AMIENS-1"})
    active = _active(session)
    assert active["SN-AMIENS-1"] == second.reference and third.reference not in active.values()


def test_another_organisation_cannot_undo_and_a_volunteer_cannot_scan(session, world, login_as):
    (pupil,) = _pupils(session, world, 1)
    assignment = bulk_assign.assign_next(session, "SN-LILLE-1", by=world.coordinator)
    session.commit()
    other = accounts.create_user(
        session,
        email="coord.amiens@test.fr",
        role=Role.COORDINATOR,
        password="mot-de-passe-long-1",
        organisation_id=world.assoc_amiens.id,
    )
    session.commit()
    with pytest.raises(BusinessRuleViolation):  # nobody of Amiens waits for a tablet
        bulk_assign.assign_next(session, "SN-LILLE-3", by=other)
    session.rollback()
    client = login_as(world.coordinator_idf)
    assert client.post(f"/attributions/scan/{assignment.id}/annuler").status_code == 404
    assert _active(session) == {"SN-LILLE-1": pupil.reference}
    volunteer = login_as(world.warehouse)
    assert volunteer.post("/attributions/scan", data={"code": "SN-LILLE-1"}).status_code == 403


def test_the_proposal_is_reviewed_then_confirmed_all_at_once(session, world, login_as):
    pupils = _pupils(session, world, 3)
    add_device(session, world, "SN-TAB-EXTRA", "tablet")
    session.commit()
    phone = login_as(world.coordinator)
    before = snapshot(session)
    page = phone.post("/attributions/proposition", data={"count": "2"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    proposed = [line.split('"', 1)[0] for line in html.split('name="ligne" value="')[1:]]
    assert [p.split("|")[0] for p in proposed] == [pupils[0].reference, pupils[1].reference]
    assert "ÉlèveA Classe" in html  # the coordinator sees the names of their own pupils
    assert snapshot(session) == before  # proposing wrote nothing

    response = phone.post("/attributions/proposition/confirmer", data={"ligne": proposed})
    assert response.status_code == 302
    assigned = _active(session)
    assert sorted(assigned.values()) == sorted([pupils[0].reference, pupils[1].reference])
    assert {f"{ref}|{serial}" for serial, ref in assigned.items()} == set(proposed)


def test_a_proposal_whose_stock_moved_meanwhile_assigns_nothing(session, world, login_as):
    pupils = _pupils(session, world, 2)
    late = add_pupil(session, world, "Retard", "Autre", needs="tablette")
    session.commit()
    phone = login_as(world.coordinator)
    html = phone.post("/attributions/proposition", data={"count": "2"}).get_data(as_text=True)
    proposed = [line.split('"', 1)[0] for line in html.split('name="ligne" value="')[1:]]
    assert len(proposed) == 2
    # meanwhile, the second proposed tablet goes to someone else
    taken = proposed[1].split("|")[1]
    session.rollback()
    assign(session, world, late, next(d for d in (world.device, world.device_amiens) if d.serial == taken))
    session.commit()
    before = snapshot(session)
    response = phone.post(
        "/attributions/proposition/confirmer", data={"ligne": proposed}, follow_redirects=True
    )
    text = response.get_data(as_text=True)
    assert "Ligne 2" in text and ("Rien n&#39;a été attribué" in text or "Rien n'a été attribué" in text)
    assert snapshot(session) == before  # the first line was rolled back too
    assert pupils[0].reference not in _active(session).values()


def test_api_batch_answers_line_by_line_and_scan_endpoint(session, world, api):
    first, second = _pupils(session, world, 2)
    client = api(world.coordinator)
    response = client.post(
        "/api/v1/assignments/batch",
        json={
            "items": [
                {"serial": "SN-LILLE-1", "pupil": first.reference},
                {"serial": "SN-LILLE-1", "pupil": second.reference},  # taken by the line above
                {"serial": "SN-IDF-1", "pupil": second.reference},  # another region: out of scope
                {"serial": "SN-AMIENS-1", "pupil": second.reference},
            ]
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["assigned"], body["refused"]) == (2, 2)
    assert [item["status"] for item in body["items"]] == [201, 409, 404, 201]
    assert all(item["message"] for item in body["items"] if item["status"] != 201)
    assert _active(session) == {"SN-LILLE-1": first.reference, "SN-AMIENS-1": second.reference}

    third = add_pupil(session, world, "Scan", "Api", needs="connexion")
    session.commit()
    scanned = client.post("/api/v1/assignments/scan", json={"serial": world.device3.asset_tag})
    assert scanned.status_code == 201 and scanned.get_json()["pupil"] == third.reference
    again = client.post("/api/v1/assignments/scan", json={"serial": "SN-LILLE-3"})
    assert again.status_code == 409 and again.get_json()["error"]["message"]


def test_two_coordinators_scanning_the_same_device_one_wins(app, session, world):
    """Two phones of one organisation scan one tablet at the same instant: one assignment, one refusal."""
    _pupils(session, world, 4)
    tokens = [accounts.create_token(session, world.coordinator) for _ in range(2)]
    session.commit()
    session.rollback()
    barrier = threading.Barrier(2)
    results = []
    lock = threading.Lock()

    def attempt(token: str) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        barrier.wait(30)
        response = client.post("/api/v1/assignments/scan", json={"serial": "SN-LILLE-1"})
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=attempt, args=(token,)) for token in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(status for status, _ in results) == [201, 409], results
    db.session.rollback()
    assert len(_active(session)) == 1
    assert events_of(session, "SN-LILLE-1").count("assign") == 1


def test_scan_refuses_what_is_not_a_device(session, world):
    _pupils(session, world, 1)
    with pytest.raises(Conflict):
        bulk_assign.assign_next(session, "SN-LILLE-1", by=world.coordinator)
        session.flush()
        bulk_assign.assign_next(session, "SN-LILLE-1", by=world.coordinator)
    session.rollback()
    for code in ("", "   ", "https://x.test/s/ABC.DEF"):
        with pytest.raises(DomainError) as refused:
            bulk_assign.assign_next(session, code, by=world.coordinator)
        assert refused.value.message
