"""Write scope (issue 10, points 1 and 2): a coordinator acts only on the devices whose active assignment
belongs to their own organisation, and only the coordinators of the pupil's organisation see a family's
receipt and handover page. Found by a penetration test: each refusal is a 404 that changes nothing."""

from __future__ import annotations

import pytest

from logistique.domain import accounts, devices
from logistique.domain.errors import NotFound
from logistique.models import DeviceStatus, Role

from .conftest import PASSWORD, login
from .factories import bundle, device_status, hand_over, received_slip, shipped_slip, snapshot


@pytest.fixture
def rival(session, world):
    """A coordinator of the Amiens association: same region as Roubaix, another organisation."""
    user = accounts.create_user(
        session,
        email="coord.amiens@test.fr",
        role=Role.COORDINATOR,
        password=PASSWORD,
        organisation_id=world.assoc_amiens.id,
    )
    session.commit()
    return user


def _client(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def test_a_coordinator_cannot_take_back_another_organisations_device(app, session, world, rival):
    """The penetration test's finding: take_back on a device received by Roubaix, by another association."""
    kit = bundle(session, world, 1)
    received_slip(session, world, kit.serials)
    session.commit()
    before = snapshot(session)
    response = _client(app, rival).post(
        f"/equipements/{kit.tablet.id}", data={"action": "take_back", "reason": "rendu"}
    )
    assert response.status_code == 404
    assert snapshot(session) == before
    assert device_status(session, kit.tablet.serial) is DeviceStatus.RECEIVED
    # the organisation's own coordinator can
    own = _client(app, world.coordinator).post(
        f"/equipements/{kit.tablet.id}", data={"action": "take_back", "reason": "rendu"}
    )
    assert own.status_code == 302
    assert device_status(session, kit.tablet.serial) is DeviceStatus.RETURNED


# every coordinator move but ``assign`` concerns a device already assigned to a pupil
COORDINATOR_MOVES = sorted(
    name for name, rule in devices.TRANSITIONS.items() if Role.COORDINATOR in rule.roles and name != "assign"
)


@pytest.mark.parametrize("action", COORDINATOR_MOVES)
def test_every_coordinator_move_is_refused_outside_the_organisation(session, world, rival, action):
    kit = bundle(session, world, 1)
    shipped_slip(session, world, kit.serials)
    session.commit()
    rule = devices.TRANSITIONS[action]
    source = sorted(rule.sources)[0]
    device = kit.tablet
    session.execute(
        devices.sa.update(devices.Device).where(devices.Device.id == device.id).values(status=source)
    )
    session.commit()
    session.refresh(device)
    with pytest.raises(NotFound):
        devices.transition(session, device, action, by=rival, reason="motif")
    session.rollback()
    assert device_status(session, device.serial) is source
    # the organisation's own coordinator passes the scope check (and applies the move)
    devices.transition(session, device, action, by=world.coordinator, reason="motif")
    session.rollback()


def test_a_coordinator_still_assigns_from_the_regions_stock(session, world, rival):
    """Assigning is the one move on a device with no assignment yet: the region's stock stays open."""
    devices.transition(session, world.device, "assign", by=rival, reason="test")
    session.rollback()


# ---------------------------------------------------------------- receipts and handover pages


def test_only_the_pupils_coordinators_get_the_receipt_and_handover_page(app, session, world, rival):
    kit = bundle(session, world, 1, first="Léa", last="Martin")
    received_slip(session, world, kit.serials)
    done = hand_over(session, world, kit.pupil, kit.serials, receiver_name="Sophie Martin")
    session.commit()
    receipt, page = f"/remises/{done.id}/recu.pdf", f"/remises/{done.id}"
    for outsider in (world.admin, rival, world.coordinator_idf):
        client = _client(app, outsider)
        assert client.get(receipt).status_code == 404, outsider.email
        assert client.get(page).status_code == 404, outsider.email
    own = _client(app, world.coordinator)
    assert own.get(receipt).status_code == 200
    assert "Sophie Martin" in own.get(page).get_data(as_text=True)
