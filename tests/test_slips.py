"""Delivery slips: creation from assigned devices, the signed QR token, preparation by
scanning, shipping, reception, cancellation, and the printed papers. Each refusal also proves that nothing
changed: statuses, journals, lines."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pypdfium2 as pdfium
import pytest
import zxingcpp

from logistique.domain import accounts, devices, pupils, slips, tokens
from logistique.domain.errors import (
    BusinessRuleViolation,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from logistique.models import DeviceStatus, NeedKind, ReceptionState, SlipStatus

from .conftest import login
from .factories import (
    BASE,
    SECRET,
    add_device,
    add_pupil,
    assign,
    bundle,
    device_status,
    events_of,
    issued_slip,
    pdf_pages,
    shipped_slip,
    slip_events,
    slip_status,
    snapshot,
    token,
)
from .helpers import api_error as _error
from .helpers import client_as as _client
from .helpers import redirect_path as _path

NUMBER = re.compile(r"BL-59-20\d\d-\d{6}")


# ---------------------------------------------------------------- creation


def test_create_slip_in_the_domain_and_by_page(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = slips.create_slip(
        session, destination=world.assoc_roubaix, serials=lea.serials, by=world.coordinator
    )
    session.commit()
    assert NUMBER.fullmatch(slip.number), slip.number
    assert slip.status is SlipStatus.DRAFT
    assert slip.warehouse_id == world.wh_lille.id and slip.destination_id == world.assoc_roubaix.id
    assert [line.device.serial for line in slip.active_lines] == lea.serials
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.ON_SLIP
        assert events_of(session, serial) == ["reception_stock", "assign", "add_to_slip"]
    slip = slips.get_slip(session, world.coordinator, number=slip.number)
    slips.issue_slip(session, slip, by=world.coordinator)
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.ISSUED
    assert slip_events(session, slip.number) == ["create", "issue"]

    # by the page: the coordinator ticks the devices ready to go
    client = _client(app, world.coordinator)
    page = client.get("/bordereaux/nouveau")
    assert page.status_code == 200
    assert all(serial in page.get_data(as_text=True) for serial in tom.serials)
    response = client.post("/bordereaux/nouveau", data={"serial": tom.serials})
    path = _path(response)
    number = path.rsplit("/", 1)[1]
    assert path == f"/bordereaux/{number}" and NUMBER.fullmatch(number) and number != slip.number
    assert slip_status(session, number) is SlipStatus.DRAFT
    for serial in tom.serials:
        assert device_status(session, serial) is DeviceStatus.ON_SLIP
        assert events_of(session, serial) == ["reception_stock", "assign", "add_to_slip"]
    detail = client.get(path)
    assert detail.status_code == 200 and number in detail.get_data(as_text=True)
    assert _path(client.post(f"/bordereaux/{number}/emettre")) == path
    assert slip_status(session, number) is SlipStatus.ISSUED


def test_create_slip_by_api(app, session, world, api):
    lea = bundle(session, world, 1)
    session.commit()
    client = api(world.coordinator)
    payload = {"destination": world.assoc_roubaix.id, "serials": lea.serials}
    response = client.post("/api/v1/slips", json=payload, headers={"Idempotency-Key": "creation-1"})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert NUMBER.fullmatch(body["number"]), body
    assert body["status"] == "emis"
    assert re.fullmatch(re.escape(BASE) + r"/s/[0-9A-Z]+-[0-9A-Z]{10}", body["qr_url"]), body
    assert body["pdf_url"] == f"{BASE}/api/v1/slips/{body['number']}/pdf"
    qr_token = body["qr_url"].rsplit("/", 1)[1]
    assert slips.slip_from_token(session, SECRET, qr_token).number == body["number"]
    session.rollback()
    assert [ln["serial"] for ln in body["lines"]] == lea.serials
    assert {ln["pupil"] for ln in body["lines"]} == {lea.pupil.reference}
    assert {ln["device_status"] for ln in body["lines"]} == {"sur_bordereau"}
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.ON_SLIP
        assert events_of(session, serial)[-1] == "add_to_slip"
    assert slip_events(session, body["number"]) == ["create", "issue"]
    got = client.get(f"/api/v1/slips/{body['number']}")
    assert got.status_code == 200 and got.get_json() == body
    for reader in (client, api(world.warehouse)):
        pdf = reader.get(urlsplit(body["pdf_url"]).path)
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
        assert pdf.get_data().startswith(b"%PDF")
    page_pdf = _client(app, world.warehouse).get(f"/bordereaux/{body['number']}.pdf")
    assert page_pdf.status_code == 200 and page_pdf.mimetype == "application/pdf"
    assert page_pdf.get_data().startswith(b"%PDF")

    # a retry with the same Idempotency-Key: the same answer, and still one slip
    after_first = snapshot(session)
    again = client.post("/api/v1/slips", json=payload, headers={"Idempotency-Key": "creation-1"})
    assert again.status_code == 201
    assert again.get_json() == body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert snapshot(session) == after_first
    assert len(after_first["slips"]) == 1

    # the printed QR code opens the slip
    data = client.get(f"/api/v1/slips/{body['number']}/pdf").get_data()
    image = pdfium.PdfDocument(data)[0].render(scale=150 / 72).to_pil()
    found = [b.text for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert found == [body["qr_url"]], found


def test_create_slip_refusals_change_nothing(app, session, world, api):
    lea = bundle(session, world, 1)
    # a pupil of another organisation (Amiens) with a Lille tablet
    other = add_pupil(session, world, "Inès", "Autre", needs="tablette", organisation=world.assoc_amiens)
    assign(session, world, other, world.device)
    # a Roubaix pupil with a Lille laptop and an Amiens 4G key
    tom = add_pupil(session, world, "Tom", "Petit", needs="ordinateur+connexion")
    assign(session, world, tom, world.device2)
    amiens_key = add_device(session, world, "SN-CLE-AMIENS", "key", lot=world.lot_amiens)
    assign(session, world, tom, amiens_key)
    session.commit()
    before = snapshot(session)
    roubaix = world.assoc_roubaix.id
    cases = [
        # (who, body, status)
        ("coordinator", {"destination": roubaix, "serials": [lea.tablet.serial, world.device3.serial]}, 422),
        ("coordinator", {"destination": roubaix, "serials": [lea.tablet.serial, world.device.serial]}, 422),
        ("coordinator", {"destination": roubaix, "serials": [world.device2.serial, amiens_key.serial]}, 422),
        ("coordinator", {"destination": roubaix, "serials": [lea.tablet.serial, "SN-INCONNU"]}, 404),
        (
            "coordinator",
            {"destination": roubaix, "serials": [lea.tablet.serial, world.device_idf.serial]},
            404,
        ),
        ("coordinator", {"destination": world.assoc_amiens.id, "serials": [world.device.serial]}, 404),
        ("coordinator", {"destination": world.school_roubaix.id, "serials": [lea.tablet.serial]}, 404),
        ("coordinator_idf", {"destination": roubaix, "serials": lea.serials}, 404),
        ("warehouse", {"destination": roubaix, "serials": lea.serials}, 403),
    ]
    clients = {who: api(getattr(world, who)) for who in {c[0] for c in cases}}
    for who, body, status in cases:
        response = clients[who].post("/api/v1/slips", json=body)
        _error(response, status)
    assert snapshot(session) == before

    # the same refusals by the page, which shows the message and the form again
    coordinator = _client(app, world.coordinator)
    for serials, status, words in [
        ([lea.tablet.serial, world.device3.serial], 422, "attribué"),
        ([world.device.serial], 422, "autre structure"),
        ([world.device2.serial, amiens_key.serial], 422, "un seul entrepôt"),
        (["SN-INCONNU"], 404, "SN-INCONNU"),
        ([world.device_idf.serial], 404, "introuvable"),
    ]:
        response = coordinator.post("/bordereaux/nouveau", data={"serial": serials})
        assert response.status_code == status, (serials, response.status_code)
        assert words in response.get_data(as_text=True), serials
    assert (
        _client(app, world.warehouse).post("/bordereaux/nouveau", data={"serial": lea.serials}).status_code
        == 403
    )
    assert snapshot(session) == before

    # and in the domain, before anything is written
    for kwargs, error in [
        ({"destination": world.assoc_roubaix, "serials": [world.device3.serial]}, BusinessRuleViolation),
        ({"destination": world.assoc_roubaix, "serials": [world.device.serial]}, BusinessRuleViolation),
        ({"destination": world.assoc_roubaix, "serials": ["SN-INCONNU"]}, NotFound),
        ({"destination": world.assoc_amiens, "serials": [world.device.serial]}, NotFound),
    ]:
        with pytest.raises(error):
            slips.create_slip(session, by=world.coordinator, **kwargs)
        assert snapshot(session, fresh=False) == before
    with pytest.raises(Forbidden):
        slips.create_slip(session, destination=world.assoc_roubaix, serials=lea.serials, by=world.warehouse)
    assert snapshot(session, fresh=False) == before


# ---------------------------------------------------------------- the QR token


def test_slip_qr_opens_the_slip_page_for_the_users_role(app, session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    session.commit()
    url = f"/s/{token(slip)}"
    warehouse = _client(app, world.warehouse)
    assert _path(warehouse.get(url)) == f"/bordereaux/{slip.number}/preparation"
    page = warehouse.get(url, follow_redirects=True)
    assert page.status_code == 200 and slip.number in page.get_data(as_text=True)
    coordinator = _client(app, world.coordinator)
    assert _path(coordinator.get(url)) == f"/bordereaux/{slip.number}"
    assert coordinator.get(url, follow_redirects=True).status_code == 200
    prefecture = _client(app, world.prefecture_nord)
    assert _path(prefecture.get(url)) == f"/bordereaux/{slip.number}"

    # logged out: to the login page, and back to the slip once logged in
    phone = app.test_client()
    response = phone.get(url)
    assert _path(response) == "/login"
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [url]
    assert _path(login(phone, world.warehouse, next_url=url)) == url
    assert _path(phone.get(url)) == f"/bordereaux/{slip.number}/preparation"

    # a slip of another destination or warehouse: not found
    assert _client(app, world.coordinator_idf).get(url).status_code == 404
    assert _client(app, world.warehouse_amiens).get(url).status_code == 404


def _alter(text: str, index: int) -> str:
    """``text`` with the character at ``index`` replaced by another one of the token alphabet."""
    char = text[index]
    other = next(c for c in tokens._ALPHABET if c != char)
    return text[:index] + other + text[index + 1 :]


def test_tampered_unknown_foreign_or_cancelled_tokens_are_refused(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = issued_slip(session, world, lea.serials)
    other = issued_slip(session, world, tom.serials)
    good = token(slip)
    session.commit()

    # short, and nothing personal in it
    assert len(good) <= 16 and len(token(other)) <= 16
    for value in (lea.pupil.reference, "Léa", lea.pupil.last_name, slip.number, lea.tablet.serial):
        assert value.upper() not in good.upper()
    assert slips.slip_from_token(session, SECRET, good).id == slip.id

    ident, mac = good.split("-")
    other_ident = token(other).split("-")[0]
    slips.cancel_slip(session, other, by=world.coordinator)
    session.commit()
    bad = {
        "MAC altered (first)": f"{ident}-{_alter(mac, 0)}",
        "MAC altered (last)": f"{ident}-{_alter(mac, len(mac) - 1)}",
        "MAC truncated": f"{ident}-{mac[:-1]}",
        "id altered": f"{_alter(ident, len(ident) - 1)}-{mac}",
        "id of another slip": f"{other_ident}-{mac}",
        "unknown id": tokens.sign(SECRET, "slip", 987654),
        "other secret": tokens.sign("un-autre-secret", "slip", slip.id),
        "other purpose": tokens.sign(SECRET, "device", slip.id),
        "cancelled slip": token(other),
        "garbage": "pas-un-jeton",
    }
    before = snapshot(session)
    clients = [_client(app, world.warehouse), _client(app, world.coordinator)]
    for name, value in bad.items():
        with pytest.raises(NotFound):
            slips.slip_from_token(session, SECRET, value)
        for client in clients:
            response = client.get(f"/s/{value}")
            assert response.status_code == 404, (name, response.status_code)
    assert snapshot(session) == before
    # the good one still works
    assert _path(clients[0].get(f"/s/{good}")) == f"/bordereaux/{slip.number}/preparation"


# ---------------------------------------------------------------- scanning


def test_scanning_in_the_domain(session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    stranger = add_device(session, world, "SN-ETRANGER", "tablet")
    session.commit()

    first = slips.scan_for_pick(session, slip, lea.tablet.serial.lower(), by=world.warehouse)
    session.commit()
    assert (first.outcome, first.progress, first.serial) == ("picked", "1/2", lea.tablet.serial)
    assert device_status(session, lea.tablet.serial) is DeviceStatus.PREPARED
    before = snapshot(session)
    again = slips.scan_for_pick(session, slip, lea.tablet.serial, by=world.warehouse)
    session.commit()
    assert (again.outcome, again.progress) == ("already", "1/2")
    assert snapshot(session) == before
    assert events_of(session, lea.tablet.serial).count("pick") == 1

    for code in [
        "SN-INCONNU",
        stranger.serial,
        world.device_amiens.serial,
        f"{BASE}/d/{stranger.asset_tag}",
        f"{BASE}/s/{token(slip)}",
        "   ",
    ]:
        refused = slips.scan_for_pick(session, slip, code, by=world.warehouse)
        assert refused.outcome == "refused", code
        assert refused.progress == "1/2"
        assert snapshot(session, fresh=False) == before
    session.rollback()

    with pytest.raises(Forbidden):
        slips.scan_for_pick(session, slip, lea.key.serial, by=world.coordinator)
    with pytest.raises(NotFound):
        slips.scan_for_pick(session, slip, lea.key.serial, by=world.warehouse_amiens)
    assert snapshot(session, fresh=False) == before

    # by the label's URL, as a phone camera reads it: the last one prepares the slip
    last = slips.scan_for_pick(session, slip, f"{BASE}/d/{lea.key.asset_tag}", by=world.warehouse)
    session.commit()
    assert (last.outcome, last.progress) == ("picked", "2/2")
    assert slip_status(session, slip.number) is SlipStatus.PREPARED


def test_scanning_by_page(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = issued_slip(session, world, [*lea.serials, tom.tablet.serial])
    stranger = add_device(session, world, "SN-ETRANGER", "tablet")
    session.commit()
    url = f"/bordereaux/{slip.number}/scan"
    json_headers = {"Accept": "application/json"}
    phone = _client(app, world.warehouse)
    assert phone.get(f"/bordereaux/{slip.number}/preparation").status_code == 200

    def scan(code, client=phone):
        return client.post(url, data={"code": code}, headers=json_headers)

    response = scan(lea.tablet.serial)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["outcome"], body["picked"], body["total"], body["complete"]) == ("picked", 1, 3, False)
    before = snapshot(session)
    again = scan(lea.tablet.serial)
    assert again.status_code == 200 and again.get_json()["outcome"] == "already"
    assert snapshot(session) == before
    assert events_of(session, lea.tablet.serial).count("pick") == 1

    for code in ["SN-INCONNU", stranger.serial, f"{BASE}/d/{stranger.asset_tag}", f"{BASE}/s/{token(slip)}"]:
        refused = scan(code)
        assert refused.status_code == 422, code
        assert refused.get_json()["outcome"] == "refused"
        assert refused.get_json()["picked"] == 1
    assert scan("").status_code == 400
    assert scan(lea.key.serial, _client(app, world.warehouse_amiens)).status_code == 404
    assert scan(lea.key.serial, _client(app, world.coordinator)).status_code == 403
    assert snapshot(session) == before

    # by asset tag (handheld scanner typing the label), then by the label's URL
    by_tag = scan(lea.key.asset_tag)
    assert by_tag.get_json()["outcome"] == "picked" and by_tag.get_json()["serial"] == lea.key.serial
    by_url = scan(f"{BASE}/d/{tom.tablet.asset_tag}")
    assert by_url.get_json() | {"message": ""} == {
        "outcome": "picked",
        "message": "",
        "picked": 3,
        "total": 3,
        "serial": tom.tablet.serial,
        "complete": True,
    }
    assert slip_status(session, slip.number) is SlipStatus.PREPARED

    # without script: a redirect to the preparation page with the message
    plain = phone.post(url, data={"code": lea.key.serial})
    assert _path(plain) == f"/bordereaux/{slip.number}/preparation"


def test_picks_and_ship_by_api(session, world, api):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    stranger = add_device(session, world, "SN-ETRANGER", "tablet")
    session.commit()
    client = api(world.warehouse)
    picks = f"/api/v1/slips/{slip.number}/picks"
    ship = f"/api/v1/slips/{slip.number}/ship"

    first = client.post(picks, json={"serial": lea.tablet.serial})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() | {"message": ""} == {
        "outcome": "picked",
        "message": "",
        "picked": 1,
        "total": 2,
        "serial": lea.tablet.serial,
    }
    before = snapshot(session)
    again = client.post(picks, json={"serial": lea.tablet.serial})
    assert again.status_code == 200 and again.get_json()["outcome"] == "already"
    for code in ["SN-INCONNU", stranger.serial, f"{BASE}/s/{token(slip)}"]:
        _error(client.post(picks, json={"serial": code}), 422, "not_on_slip")
    _error(api(world.warehouse_amiens).post(picks, json={"serial": lea.key.serial}), 404)
    _error(api(world.coordinator).post(picks, json={"serial": lea.key.serial}), 403)

    # shipping before everything is picked: refused, with the progress
    message = _error(client.post(ship), 409)
    assert "1/2" in message
    assert snapshot(session) == before
    assert events_of(session, lea.tablet.serial).count("pick") == 1

    by_url = client.post(picks, json={"serial": f"{BASE}/d/{lea.key.asset_tag}"})
    assert by_url.get_json()["outcome"] == "picked" and by_url.get_json()["serial"] == lea.key.serial
    assert slip_status(session, slip.number) is SlipStatus.PREPARED
    _error(api(world.warehouse_amiens).post(ship), 404)
    _error(api(world.coordinator).post(ship), 403)
    shipped = client.post(ship)
    assert shipped.status_code == 200, shipped.get_data(as_text=True)
    assert shipped.get_json()["status"] == "expedie"
    assert {ln["device_status"] for ln in shipped.get_json()["lines"]} == {"expedie"}
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.SHIPPED
        assert events_of(session, serial)[-2:] == ["pick", "ship"]
    after = snapshot(session)
    twice = client.post(ship)
    assert twice.status_code == 200 and twice.get_json()["status"] == "expedie"
    assert snapshot(session) == after
    assert slip_events(session, slip.number).count("ship") == 1
    # picking a shipped slip's device again is harmless
    late = client.post(picks, json={"serial": lea.tablet.serial})
    assert late.status_code == 200 and late.get_json()["outcome"] == "already"
    assert snapshot(session) == after


def test_ship_in_the_domain_and_by_page(app, session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    slips.scan_for_pick(session, slip, lea.tablet.serial, by=world.warehouse)
    session.commit()
    before = snapshot(session)
    with pytest.raises(InvalidTransition) as refused:
        slips.ship(session, slip, by=world.warehouse)
    assert refused.value.status == 409 and "1/2" in refused.value.message
    assert snapshot(session, fresh=False) == before
    session.rollback()
    phone = _client(app, world.warehouse)
    assert _path(phone.post(f"/bordereaux/{slip.number}/expedier")) == f"/bordereaux/{slip.number}"
    assert snapshot(session) == before
    phone.post(f"/bordereaux/{slip.number}/scan", data={"code": lea.key.serial})
    assert _path(phone.post(f"/bordereaux/{slip.number}/expedier")) == f"/bordereaux/{slip.number}"
    assert slip_status(session, slip.number) is SlipStatus.SHIPPED
    assert {device_status(session, s) for s in lea.serials} == {DeviceStatus.SHIPPED}
    phone.post(f"/bordereaux/{slip.number}/expedier")
    assert slip_events(session, slip.number).count("ship") == 1
    slip = slips.get_slip(session, None, number=slip.number)
    assert slips.ship(session, slip, by=world.warehouse) is False
    session.rollback()
    assert slip_events(session, slip.number).count("ship") == 1


RACERS = 8


def _racing_picks(app, number: str, bearers: list[str], serials: list[str]) -> list[tuple[int, dict]]:
    """One thread per serial, each with its own token, all posting their pick on the slip at once."""
    barrier = threading.Barrier(len(serials))
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bearers[n]}"
        barrier.wait(30)
        response = client.post(f"/api/v1/slips/{number}/picks", json={"serial": serials[n]})
        with lock:
            results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(serials))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_racing_pickers_pick_a_device_once(app, session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    bearer = [accounts.create_token(session, world.warehouse) for _ in range(RACERS)]
    session.commit()
    number = slip.number
    session.rollback()
    results = _racing_picks(app, number, bearer, ["SN-TAB-1"] * RACERS)
    assert len(results) == RACERS
    assert sorted(status for status, _ in results) == [200] * RACERS, results
    assert sorted(body["outcome"] for _, body in results) == ["already"] * (RACERS - 1) + ["picked"], results
    assert events_of(session, "SN-TAB-1").count("pick") == 1
    assert device_status(session, "SN-TAB-1") is DeviceStatus.PREPARED
    assert slip_status(session, number) is SlipStatus.ISSUED


def test_racing_pickers_of_the_last_devices_complete_the_slip(app, session, world, monkeypatch):
    """Volunteers picking the last devices of a slip at the same moment, each a different device: whoever
    commits last sees every pick and moves the slip to « préparé » (each pick reads the progress it counts
    after the others' commits, not the progress it read before its own update)."""
    moving = devices.transition  # which counts the slip's picks in its statement on PostgreSQL

    def slow_move_and_count(*args, **kwargs):
        time.sleep(0.1)  # every racer has written its pick before any counts, unless they queue on the slip
        return moving(*args, **kwargs)

    monkeypatch.setattr(devices, "transition", slow_move_and_count)
    kits = [bundle(session, world, n) for n in range(1, RACERS // 2 + 1)]
    serials = [serial for kit in kits for serial in kit.serials]
    slip = issued_slip(session, world, serials)
    bearer = [accounts.create_token(session, world.warehouse) for _ in serials]
    session.commit()
    number = slip.number
    session.rollback()
    results = _racing_picks(app, number, bearer, serials)
    assert sorted(body["outcome"] for _, body in results) == ["picked"] * len(serials), results
    assert {device_status(session, s) for s in serials} == {DeviceStatus.PREPARED}
    assert slip_status(session, number) is SlipStatus.PREPARED
    assert slip_events(session, number).count("prepared") == 1


# ---------------------------------------------------------------- reception


def _on_waiting_list(session, world, pupil, kind: NeedKind) -> bool:
    session.rollback()
    try:
        waiting = pupils.waiting_list_query(world.coordinator)
        rows = session.execute(
            waiting.select().where(waiting.c.pupil_id == pupil.id, waiting.c.kind == kind.value)
        ).all()
        return bool(rows)
    finally:
        session.rollback()


def test_reception_by_api(session, world, api):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = shipped_slip(session, world, [*lea.serials, *tom.serials])
    session.commit()
    client = api(world.coordinator)
    url = f"/api/v1/slips/{slip.number}/reception"

    def line(serial, state, comment=""):
        return {"serial": serial, "state": state, "comment": comment}

    first = client.post(url, json={"lines": [line(s, "recu") for s in lea.serials]})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["status"] == "expedie"  # two lines still to confirm
    assert {device_status(session, s) for s in lea.serials} == {DeviceStatus.RECEIVED}
    assert events_of(session, lea.tablet.serial)[-1] == "receive"

    before = snapshot(session)
    refusals = [
        ({"lines": [line(tom.tablet.serial, "manquant")]}, 400),
        ({"lines": [line(tom.tablet.serial, "endommage", "   ")]}, 400),
        ({"lines": [line(tom.key.serial, "recu"), line(tom.tablet.serial, "manquant")]}, 400),
        ({"lines": [line(lea.tablet.serial, "manquant", "pas dans le colis")]}, 400),  # contradicts
        ({"lines": [line(world.device.serial, "recu")]}, 400),  # not on this slip
        ({"lines": [line(tom.key.serial, "perdu")]}, 400),
    ]
    for body, status in refusals:
        _error(client.post(url, json=body), status)
    _error(api(world.coordinator_idf).post(url, json={"lines": [line(tom.key.serial, "recu")]}), 404)
    _error(api(world.warehouse).post(url, json={"lines": [line(tom.key.serial, "recu")]}), 403)
    # saying again what was said is harmless
    same = client.post(url, json={"lines": [line(s, "recu") for s in lea.serials]})
    assert same.status_code == 200
    assert snapshot(session) == before
    assert slip_status(session, slip.number) is SlipStatus.SHIPPED

    # Tom's tablet is missing, his key damaged: both leave the flow, Tom waits again
    assert not _on_waiting_list(session, world, tom.pupil, NeedKind.TABLET)
    last = client.post(
        url,
        json={
            "lines": [
                line(tom.tablet.serial, "manquant", "Absent du colis"),
                line(tom.key.serial, "endommage", "Écran fissuré"),
            ]
        },
    )
    assert last.status_code == 200, last.get_data(as_text=True)
    assert last.get_json()["status"] == "receptionne"
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    assert device_status(session, tom.tablet.serial) is DeviceStatus.LOST
    assert device_status(session, tom.key.serial) is DeviceStatus.DEFECTIVE
    assert events_of(session, tom.tablet.serial)[-1] == "declare_missing"
    assert events_of(session, tom.key.serial)[-1] == "declare_damaged"
    after = snapshot(session)
    cancelled = {a[1]: a[2] for a in after["assignments"]}
    assert cancelled[tom.tablet.id] is not None and cancelled[tom.key.id] is not None
    assert cancelled[lea.tablet.id] is None and cancelled[lea.key.id] is None
    assert _on_waiting_list(session, world, tom.pupil, NeedKind.TABLET)
    assert _on_waiting_list(session, world, tom.pupil, NeedKind.CONNECTION)
    assert not _on_waiting_list(session, world, lea.pupil, NeedKind.TABLET)
    assert slip_events(session, slip.number)[-1] == "received"

    # the same reception again: harmless; contradicting it: refused
    again = client.post(
        url,
        json={
            "lines": [
                line(tom.tablet.serial, "manquant", "Absent du colis"),
                line(tom.key.serial, "endommage", "Écran fissuré"),
            ]
        },
    )
    assert again.status_code == 200
    assert client.post(url, json={"lines": [line(tom.tablet.serial, "recu")]}).status_code in (400, 409)
    assert snapshot(session) == after


def test_reception_in_the_domain(session, world):
    lea = bundle(session, world, 1)
    slip = shipped_slip(session, world, lea.serials)
    session.commit()
    before = snapshot(session)
    Line = slips.ReceptionLine
    for lines in [
        [Line(lea.tablet.serial, ReceptionState.MISSING)],
        [Line(lea.tablet.serial, ReceptionState.DAMAGED, " ")],
        [Line("SN-INCONNU", ReceptionState.RECEIVED)],
    ]:
        with pytest.raises(ValidationFailed) as refused:
            slips.receive(session, slip, lines, by=world.coordinator)
        assert refused.value.status == 400
        assert snapshot(session, fresh=False) == before
    with pytest.raises(Forbidden):
        slips.receive(session, slip, [Line(lea.tablet.serial, ReceptionState.RECEIVED)], by=world.warehouse)
    with pytest.raises(NotFound):
        slips.receive(
            session, slip, [Line(lea.tablet.serial, ReceptionState.RECEIVED)], by=world.coordinator_idf
        )
    assert snapshot(session, fresh=False) == before
    assert (
        slips.receive(session, slip, [Line(lea.tablet.serial, ReceptionState.RECEIVED)], by=world.coordinator)
        == 1
    )
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.SHIPPED
    assert (
        slips.receive(session, slip, [Line(lea.tablet.serial, ReceptionState.RECEIVED)], by=world.coordinator)
        == 0
    )
    session.commit()
    middle = snapshot(session)
    with pytest.raises((ValidationFailed, InvalidTransition)) as contradicted:
        slips.receive(
            session, slip, [Line(lea.tablet.serial, ReceptionState.DAMAGED, "rayé")], by=world.coordinator
        )
    assert contradicted.value.status in (400, 409)
    assert snapshot(session, fresh=False) == middle
    session.rollback()
    slips.receive(session, slip, [Line(lea.key.serial, ReceptionState.RECEIVED)], by=world.coordinator)
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    assert {device_status(session, s) for s in lea.serials} == {DeviceStatus.RECEIVED}


def test_reception_by_page(app, session, world):
    lea = bundle(session, world, 1)
    slip = shipped_slip(session, world, lea.serials)
    session.commit()
    tablet_line, key_line = (line.id for line in slip.active_lines)
    phone = _client(app, world.coordinator)
    url = f"/bordereaux/{slip.number}/reception"
    assert _path(phone.get(f"/s/{token(slip)}")) == url  # a shipped slip's QR opens the reception
    page = phone.get(url)
    assert page.status_code == 200 and lea.tablet.serial in page.get_data(as_text=True)
    before = snapshot(session)
    refused = phone.post(url, data={f"state_{tablet_line}": "recu", f"state_{key_line}": "endommage"})
    assert refused.status_code == 400, refused.status_code  # a comment is required
    assert "commentaire" in refused.get_data(as_text=True)
    assert snapshot(session) == before
    assert _client(app, world.warehouse).post(url, data={f"state_{tablet_line}": "recu"}).status_code == 403
    assert snapshot(session) == before
    done = phone.post(
        url,
        data={
            f"state_{tablet_line}": "recu",
            f"state_{key_line}": "endommage",
            f"comment_{key_line}": "Boîtier cassé",
        },
    )
    assert _path(done) == f"/bordereaux/{slip.number}"
    assert device_status(session, lea.tablet.serial) is DeviceStatus.RECEIVED
    assert device_status(session, lea.key.serial) is DeviceStatus.DEFECTIVE
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    after = snapshot(session)
    phone.post(
        url,
        data={
            f"state_{tablet_line}": "recu",
            f"state_{key_line}": "endommage",
            f"comment_{key_line}": "Boîtier cassé",
        },
    )
    assert snapshot(session) == after


# ---------------------------------------------------------------- cancellation


def test_cancel_a_slip_before_picking_but_not_after(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = issued_slip(session, world, lea.serials)
    started = issued_slip(session, world, tom.serials)
    slips.scan_for_pick(session, started, tom.tablet.serial, by=world.warehouse)
    session.commit()
    url = f"/s/{token(slip)}"
    warehouse = _client(app, world.warehouse)
    assert warehouse.get(url).status_code == 302
    coordinator = _client(app, world.coordinator)

    # after a pick: refused (409), nothing changes, its QR code still works
    before = snapshot(session)
    with pytest.raises(InvalidTransition) as refused:
        slips.cancel_slip(session, started, by=world.coordinator)
    assert refused.value.status == 409
    assert snapshot(session, fresh=False) == before
    session.rollback()
    assert _path(coordinator.post(f"/bordereaux/{started.number}/annuler")) == f"/bordereaux/{started.number}"
    assert _client(app, world.warehouse).post(f"/bordereaux/{slip.number}/annuler").status_code == 403
    assert snapshot(session) == before
    assert _path(warehouse.get(f"/s/{token(started)}")).endswith("/preparation")

    # before any pick: the devices stay assigned to their pupil, the QR code stops working
    assert _path(coordinator.post(f"/bordereaux/{slip.number}/annuler")) == f"/bordereaux/{slip.number}"
    assert slip_status(session, slip.number) is SlipStatus.CANCELLED
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.ASSIGNED
        assert events_of(session, serial)[-2:] == ["add_to_slip", "remove_from_slip"]
    assert slip_events(session, slip.number)[-1] == "cancel"
    before = snapshot(session)
    assert warehouse.get(url).status_code == 404
    assert coordinator.get(url).status_code == 404
    scanned = warehouse.post(
        f"/bordereaux/{slip.number}/scan",
        data={"code": lea.tablet.serial},
        headers={"Accept": "application/json"},
    )
    assert scanned.status_code == 422
    assert snapshot(session) == before
    # the devices can go on a new slip
    again = issued_slip(session, world, lea.serials)
    session.commit()
    assert slip_status(session, again.number) is SlipStatus.ISSUED


def test_remove_line_only_before_preparation_starts(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = issued_slip(session, world, [*lea.serials, *tom.serials])
    session.commit()
    line_of = {line.device.serial: line.id for line in slip.active_lines}
    coordinator = _client(app, world.coordinator)
    remove = f"/bordereaux/{slip.number}/lignes/{{}}/retirer"
    assert _client(app, world.warehouse).post(remove.format(line_of[tom.key.serial])).status_code == 403
    assert _path(coordinator.post(remove.format(line_of[tom.key.serial]))) == f"/bordereaux/{slip.number}"
    assert device_status(session, tom.key.serial) is DeviceStatus.ASSIGNED
    assert events_of(session, tom.key.serial)[-1] == "remove_from_slip"
    assert slip_events(session, slip.number)[-1] == "remove_line"

    # once a device is picked, the parcel is being prepared: no line comes off any more (else the slip
    # could end up with every remaining line picked, still « émis », impossible to ship)
    slip = slips.get_slip(session, None, number=slip.number)
    slips.scan_for_pick(session, slip, lea.tablet.serial, by=world.warehouse)
    session.commit()
    before = snapshot(session)
    for serial in (lea.key.serial, tom.tablet.serial):
        line = next(ln for ln in slip.active_lines if ln.device.serial == serial)
        with pytest.raises(InvalidTransition) as refused:
            slips.remove_line(session, slip, line, by=world.coordinator)
        assert refused.value.status == 409
        session.rollback()
        assert snapshot(session) == before, serial
        coordinator.post(remove.format(line_of[serial]))
        assert snapshot(session) == before, serial


# ---------------------------------------------------------------- papers


def test_print_slips_and_labels_from_the_command_line(runner, session, world, tmp_path):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    zoe = bundle(session, world, 3, "Zoé")
    for b in (lea, tom, zoe):
        issued_slip(session, world, b.serials)
    session.commit()
    output = tmp_path / "bordereaux.pdf"
    result = runner.invoke(args=["print-slips", "--output", str(output)])
    assert result.exit_code == 0, result.output
    data = output.read_bytes()
    assert data.startswith(b"%PDF") and pdf_pages(data) == 3
    labels = tmp_path / "etiquettes.pdf"
    result = runner.invoke(args=["print-labels", "--lot", "LOT-LILLE", "--output", str(labels)])
    assert result.exit_code == 0, result.output
    assert labels.read_bytes().startswith(b"%PDF")
    unknown = runner.invoke(
        args=["print-labels", "--lot", "LOT-INCONNU", "--output", str(tmp_path / "x.pdf")]
    )
    assert unknown.exit_code != 0
