"""Personal data: who sees a pupil's names, no names in URLs, and the purge at the end."""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from logistique.domain import assignments, money, pupils
from logistique.models import Assignment, AuditEvent, Device, DeviceEvent, DeviceStatus, NeedKind, Pupil

FIRST, LAST = "Zoé", "Quintanilla"
GUARDIAN, PHONE = "Édouard Zabaleta", "07 98 76 54 32"
PERSONAL = [FIRST, LAST, "Édouard", "Zabaleta", PHONE, PHONE.replace(" ", "")]


@pytest.fixture
def zoe(session, world) -> Pupil:
    """Zoé, of the Roubaix association, needing a tablet and a connection; the Lille tablet is hers."""
    pupil = pupils.register_pupil(
        session,
        pupils.PupilData(FIRST, LAST, "CM2", "0750654D", "QN05981M", GUARDIAN, PHONE, "tablette+connexion"),
        by=world.coordinator,
    )
    assignments.assign(session, pupil=pupil, device=world.device, by=world.coordinator)
    session.commit()
    return pupil


def _text(response) -> str:
    assert response.status_code == 200, (response.status_code, response.request.path)
    body = response.get_data(as_text=True)
    if response.mimetype == "application/json":
        return body + json.dumps(response.get_json(), ensure_ascii=False)
    return body + html.unescape(body)


def _assert_anonymous(text: str, where: str) -> None:
    for value in PERSONAL:
        assert value not in text, f"{value!r} shown in {where}"


# ---------------------------------------------------------------- who sees what


def test_warehouse_and_prefecture_see_the_reference_never_the_names(world, zoe, login_as, api):
    for who in ("warehouse", "prefecture", "prefecture_nord"):
        user = getattr(world, who)
        client = login_as(user)
        for url in ["/", "/equipements", "/equipements?statut=attribue"]:
            _assert_anonymous(_text(client.get(url)), f"{url} as {who}")
        for url in [f"/equipements/{world.device.id}", f"/d/{world.device.asset_tag}"]:
            text = _text(client.get(url, follow_redirects=True))
            _assert_anonymous(text, f"{url} as {who}")
            assert zoe.reference in text, f"{url} as {who}: the pupil is named by reference"
        token_client = api(user)
        listing = _text(token_client.get("/api/v1/devices"))
        _assert_anonymous(listing, f"GET /api/v1/devices as {who}")
        assert "SN-LILLE-1" in listing
        one = _text(token_client.get("/api/v1/devices/SN-LILLE-1"))
        _assert_anonymous(one, f"GET /api/v1/devices/SN-LILLE-1 as {who}")
        assert zoe.reference in one
        # pupils themselves are not theirs to list
        assert client.get("/eleves").status_code == 403
        assert client.get(f"/eleves/{zoe.id}").status_code == 403
        assert token_client.get("/api/v1/pupils").status_code == 403


def test_admin_sees_references_not_names(world, zoe, login_as, api):
    client = login_as(world.admin)
    for url in ["/eleves", f"/eleves/{zoe.id}", "/attente", f"/equipements/{world.device.id}"]:
        text = _text(client.get(url))
        _assert_anonymous(text, f"{url} as admin")
        assert zoe.reference in text, url
    body = api(world.admin).get("/api/v1/pupils").get_json()
    (item,) = body["items"]
    assert item["reference"] == zoe.reference
    assert (item["first_name"], item["last_name"], item["guardian_name"], item["guardian_phone"]) == (
        None,
        None,
        None,
        None,
    )
    assert (item["qpv"], item["grade"], item["school_uai"]) == ("QN05981M", "CM2", "0750654D")
    _assert_anonymous(json.dumps(body, ensure_ascii=False), "GET /api/v1/pupils as admin")


def test_the_associations_coordinator_sees_the_names(world, zoe, login_as, api):
    client = login_as(world.coordinator)
    listing = _text(client.get("/eleves"))
    assert f"{FIRST} {LAST}" in listing and zoe.reference in listing
    detail = _text(client.get(f"/eleves/{zoe.id}"))
    for value in (FIRST, LAST, GUARDIAN, PHONE, zoe.reference):
        assert value in detail
    (item,) = api(world.coordinator).get("/api/v1/pupils").get_json()["items"]
    assert (item["first_name"], item["last_name"], item["guardian_name"], item["guardian_phone"]) == (
        FIRST,
        LAST,
        GUARDIAN,
        PHONE,
    )
    # another association's coordinator does not find her
    client = login_as(world.coordinator_idf)
    assert client.get(f"/eleves/{zoe.id}").status_code == 404
    _assert_anonymous(_text(client.get("/eleves")), "/eleves as coordinator_idf")
    assert api(world.coordinator_idf).get("/api/v1/pupils").get_json()["items"] == []


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action", "formaction") and value:
                self.urls.append(value)


def test_no_names_in_the_urls_of_the_coordinators_pages(world, zoe, login_as):
    client = login_as(world.coordinator)
    folded = ["zoé", "zoe", "quintanilla", "édouard", "edouard", "zabaleta"]
    for url in ["/eleves", f"/eleves/{zoe.id}", "/attente"]:
        page = client.get(url)
        assert page.status_code == 200
        parser = _Links()
        parser.feed(page.get_data(as_text=True))
        assert parser.urls, url
        for link in parser.urls:
            plain = unquote(link).lower()
            assert not any(word in plain for word in folded), f"{url}: {link}"
        # the names are on the page, just not in its links
        assert LAST in page.get_data(as_text=True)


# ---------------------------------------------------------------- purge


def _invoke(runner, *args):
    result = runner.invoke(args=list(args))
    return result.exit_code, result.output + (getattr(result, "stderr", "") or "")


def _journal(session) -> list[tuple]:
    return session.execute(
        sa.select(DeviceEvent.device_id, DeviceEvent.action, DeviceEvent.reason).order_by(DeviceEvent.id)
    ).all()


def test_purge_only_after_closing_and_keeps_anonymous_proofs(runner, session, world, zoe, api):
    other = pupils.register_pupil(
        session,
        pupils.PupilData(
            "Bilal", "Haddad", "6e", "0750654D", "QP059001", "Nadia Haddad", "0611223344", "ordinateur"
        ),
        by=world.coordinator,
    )
    session.commit()
    journal_before = _journal(session)
    committed_before = money.committed_by_envelope(session)
    audit_before = session.scalar(sa.select(sa.func.count(AuditEvent.id)))
    session.rollback()

    # refused while the operation is open
    code, output = _invoke(runner, "purge-personal-data", "--yes")
    assert code != 0
    assert "n'est pas close" in output
    session.rollback()
    session.expire_all()
    pupil = session.get(Pupil, zoe.id)
    assert (pupil.first_name, pupil.last_name, pupil.guardian_name, pupil.guardian_phone) == (
        FIRST,
        LAST,
        GUARDIAN,
        PHONE,
    )
    assert pupil.purged_at is None
    assert session.scalar(sa.select(sa.func.count(AuditEvent.id))) == audit_before

    code, output = _invoke(runner, "close-operation", "--yes")
    assert code == 0, output
    code, output = _invoke(runner, "purge-personal-data", "--yes")
    assert code == 0, output
    assert "2 élève(s)" in output

    session.rollback()
    session.expire_all()
    for pupil_id, reference, qpv, grade in [
        (zoe.id, zoe.reference, "QN05981M", "CM2"),
        (other.id, other.reference, "QP059001", "6e"),
    ]:
        pupil = session.get(Pupil, pupil_id)
        assert (pupil.first_name, pupil.last_name, pupil.guardian_name, pupil.guardian_phone) == (
            None,
            None,
            None,
            None,
        )
        assert pupil.purged_at is not None
        assert (pupil.reference, pupil.qpv_code, pupil.grade, pupil.school_uai) == (
            reference,
            qpv,
            grade,
            "0750654D",
        )
    assert session.get(Pupil, zoe.id).needs == [NeedKind.TABLET, NeedKind.CONNECTION]
    active = session.scalars(sa.select(Assignment).where(Assignment.cancelled_at.is_(None))).one()
    assert (active.pupil_id, active.device_id) == (zoe.id, world.device.id)
    assert (
        session.scalar(sa.select(Device.status).where(Device.id == world.device.id)) is DeviceStatus.ASSIGNED
    )
    assert _journal(session) == journal_before
    assert money.committed_by_envelope(session) == committed_before
    (event,) = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "personal_data_purged")).all()
    _assert_anonymous(event.subject + event.detail, "the purge's audit event")

    # twice is harmless
    code, output = _invoke(runner, "purge-personal-data", "--yes")
    assert code == 0, output
    session.rollback()
    session.expire_all()
    pupil = session.get(Pupil, zoe.id)
    assert (pupil.reference, pupil.first_name, pupil.qpv_code) == (zoe.reference, None, "QN05981M")
    assert _journal(session) == journal_before

    # nothing is assigned to a pupil whose data are gone
    journal = _journal(session)
    session.rollback()
    response = api(world.coordinator).post(
        "/api/v1/assignments", json={"serial": "SN-LILLE-3", "pupil": zoe.reference}
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "effacées" in response.get_json()["error"]["message"]
    session.rollback()
    session.expire_all()
    assert (
        session.scalar(sa.select(Device.status).where(Device.id == world.device3.id)) is DeviceStatus.IN_STOCK
    )
    assert _journal(session) == journal
    assert session.scalar(sa.select(sa.func.count(Assignment.id))) == 1
    # and nobody sees a name any more, not even the coordinator
    (item, _) = api(world.coordinator).get("/api/v1/pupils").get_json()["items"]
    assert (item["reference"], item["first_name"], item["guardian_phone"]) == (zoe.reference, None, None)


def test_a_search_by_name_is_posted_and_leaves_no_name_in_any_url(world, zoe, login_as):
    client = login_as(world.coordinator)
    found = client.post("/eleves", data={"q": "Quintanilla"})
    page = html.unescape(found.get_data(as_text=True))
    assert found.status_code == 200 and zoe.reference in page
    assert "q=" not in page and "Quintanilla" not in unquote(found.request.url)
    # a name typed in the address bar is not a search: the list is not filtered by it
    ignored = html.unescape(client.get("/eleves?q=Personne").get_data(as_text=True))
    assert zoe.reference in ignored
