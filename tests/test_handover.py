"""Handover to the family: one signature on the phone covers a pupil's bundle, the
devices become ``remis``, the family gets a receipt, the slip closes when every line is settled; the papers
name pupils by reference only, and the purge keeps an anonymous proof. Each refusal proves nothing changed."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from logistique.domain import handover, slips
from logistique.domain.errors import BusinessRuleViolation, Conflict, NotFound, ValidationFailed
from logistique.models import DeviceStatus, Handover, HandoverMode, ReceptionState, SlipStatus

from .factories import (
    BASE,
    blank_png,
    bundle,
    data_url,
    device_status,
    events_of,
    hand_over,
    issued_slip,
    pdf_text,
    pick_all,
    received_slip,
    shipped_slip,
    signature_png,
    slip_events,
    slip_status,
    snapshot,
)
from .helpers import api_error as _error
from .helpers import client_as as _client
from .helpers import redirect_path as _path

RECEIVER = "Nadia Receveuse"
HANDOVER_NUMBER = re.compile(r"RM-59-20\d\d-\d{6}")


def _handover(session, number: str) -> Handover:
    session.rollback()
    found = session.scalar(sa.select(Handover).where(Handover.number == number))
    assert found is not None, number
    return found


def _receipt_text(client, url: str) -> str:
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF")
    return " ".join(pdf_text(data).split())


def _form(serials, png: bytes | None = None, **fields) -> dict:
    values = {
        "serial": serials,
        "receiver_name": RECEIVER,
        "relation": "mère",
        "mode": "pret",
        "signature": data_url(png if png is not None else signature_png()),
    }
    values.update(fields)
    return values


def _body(serials, png: bytes | None = None, **fields) -> dict:
    values = {
        "serials": serials,
        "receiver_name": RECEIVER,
        "relation": "mère",
        "mode": "don",
        "signature": data_url(png if png is not None else signature_png()),
    }
    values.update(fields)
    return values


# ---------------------------------------------------------------- the handover


def test_handover_by_page_one_signature_for_the_bundle_then_the_slip_closes(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = received_slip(session, world, [*lea.serials, tom.tablet.serial])
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    phone = _client(app, world.coordinator)
    url = f"/remises/eleve/{lea.pupil.id}"
    page = phone.get(url)
    assert page.status_code == 200 and all(s in page.get_data(as_text=True) for s in lea.serials)

    png = signature_png()
    response = phone.post(url, data=_form(lea.serials, png))
    path = _path(response)
    assert re.fullmatch(r"/remises/\d+", path), path
    handover_id = int(path.rsplit("/", 1)[1])
    session.rollback()
    done = session.get(Handover, handover_id)
    assert HANDOVER_NUMBER.fullmatch(done.number), done.number
    assert done.pupil_id == lea.pupil.id and done.mode is HandoverMode.LOAN
    assert (done.receiver_name, done.relation) == (RECEIVER, "mère")
    assert done.signature_png == png
    assert done.signature_sha256 == hashlib.sha256(png).hexdigest()
    assert sorted(line.device.serial for line in done.lines) == sorted(lea.serials)
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.HANDED_OVER
        assert events_of(session, serial)[-1] == "hand_over"
    page = phone.get(path)
    assert page.status_code == 200 and done.number in page.get_data(as_text=True)

    # the family's receipt: a loan agreement quoting article 1880
    text = _receipt_text(phone, f"/remises/{handover_id}/recu.pdf")
    assert "Convention de prêt" in text and "1880" in text
    assert done.number in text and lea.pupil.reference in text

    # the same form submitted twice (double tap, reload): the same handover, nothing more
    after = snapshot(session)
    assert _path(phone.post(url, data=_form(lea.serials, png))) == path
    assert snapshot(session) == after
    for serial in lea.serials:
        assert events_of(session, serial).count("hand_over") == 1

    # Tom's tablet still waits: the slip stays open until it is handed over too
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    tom_path = _path(
        phone.post(
            f"/remises/eleve/{tom.pupil.id}", data=_form([tom.tablet.serial], mode="don", relation="père")
        )
    )
    text = _receipt_text(phone, f"{tom_path}/recu.pdf")
    assert "Attestation de remise" in text and "Convention de prêt" not in text
    assert slip_status(session, slip.number) is SlipStatus.CLOSED
    assert slip_events(session, slip.number)[-1] == "close"


def test_handover_by_api(app, session, world, api):
    lea = bundle(session, world, 1)
    received_slip(session, world, lea.serials)
    session.commit()
    client = api(world.coordinator)
    png = signature_png(320, 140)
    response = client.post("/api/v1/handovers", json=_body(lea.serials, png))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert HANDOVER_NUMBER.fullmatch(body["number"]), body
    assert body["pupil"] == lea.pupil.reference and body["mode"] == "don"
    assert sorted(body["serials"]) == sorted(lea.serials)
    assert body["signature_sha256"] == hashlib.sha256(png).hexdigest()
    done = _handover(session, body["number"])
    assert body["id"] == done.id
    assert body["receipt_url"] == f"{BASE}/api/v1/handovers/{done.id}/receipt"
    assert done.signature_png == png and done.receiver_name == RECEIVER
    for serial in lea.serials:
        assert device_status(session, serial) is DeviceStatus.HANDED_OVER
        assert events_of(session, serial).count("hand_over") == 1

    # submitted twice: the first handover is given back, one event per device
    after = snapshot(session)
    again = client.post("/api/v1/handovers", json=_body(lea.serials, png))
    assert again.status_code in (200, 201), again.get_data(as_text=True)
    assert again.get_json()["number"] == body["number"]
    assert again.get_json()["receipt_url"] == body["receipt_url"]
    assert snapshot(session) == after

    # the receipt with the same bearer token (no browser session), and for nobody outside the organisation
    text = _receipt_text(client, body["receipt_url"])
    assert "Attestation de remise" in text and "Convention de prêt" not in text
    assert body["number"] in text and RECEIVER in text
    receipt = client.get(urlsplit(body["receipt_url"]).path)
    assert receipt.headers["Cache-Control"] == "no-store"
    for outsider in (world.coordinator_idf, world.warehouse, world.prefecture):
        refused = api(outsider).get(urlsplit(body["receipt_url"]).path)
        assert refused.status_code in (403, 404) and refused.mimetype == "application/json", outsider.email
        assert RECEIVER not in refused.get_data(as_text=True)
    assert _error(api(world.coordinator_idf).get(urlsplit(body["receipt_url"]).path), 404)
    assert _error(client.get("/api/v1/handovers/999999/receipt"), 404)


def test_handover_in_the_domain_closes_the_slip_with_missing_lines(session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = shipped_slip(session, world, [*lea.serials, tom.tablet.serial])
    slips.receive(
        session,
        slip,
        [
            slips.ReceptionLine(lea.tablet.serial, ReceptionState.RECEIVED),
            slips.ReceptionLine(lea.key.serial, ReceptionState.RECEIVED),
            slips.ReceptionLine(tom.tablet.serial, ReceptionState.MISSING, "Absent du colis"),
        ],
        by=world.coordinator,
    )
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    first = hand_over(session, world, lea.pupil, [lea.tablet.serial])
    session.commit()
    assert slip_status(session, slip.number) is SlipStatus.RECEIVED
    png = signature_png(280, 100)
    second = hand_over(session, world, lea.pupil, [lea.key.asset_tag], signature=png, mode=HandoverMode.GIFT)
    session.commit()
    assert second.id != first.id and second.signature_sha256 == hashlib.sha256(png).hexdigest()
    assert slip_status(session, slip.number) is SlipStatus.CLOSED
    assert device_status(session, tom.tablet.serial) is DeviceStatus.LOST
    again = hand_over(session, world, lea.pupil, [lea.key.serial], signature=png, mode=HandoverMode.GIFT)
    assert again.id == second.id
    session.commit()
    assert events_of(session, lea.key.serial).count("hand_over") == 1


# ---------------------------------------------------------------- refusals


def test_handover_refusals_by_api_change_nothing(session, world, api):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    zoe = bundle(session, world, 3, "Zoé")
    received_slip(session, world, [*lea.serials, *tom.serials])
    shipped_slip(session, world, zoe.serials)  # not received yet
    hand_over(session, world, lea.pupil, [lea.tablet.serial])  # the tablet alone, earlier
    session.commit()
    client = api(world.coordinator)
    before = snapshot(session)
    too_big = signature_png() + b"\0" * (520 * 1024)
    assert len(too_big) > 512 * 1024
    cases = {
        "already handed over, with another device": (_body(lea.serials), 409, "already_handed_over"),
        "already handed over, other signature": (
            _body([lea.tablet.serial], signature_png(310, 110)),
            409,
            "already_handed_over",
        ),
        "not received yet": (_body(zoe.serials), 422, "not_received"),
        "blank signature": (_body(tom.serials, blank_png()), 400, None),
        "not a PNG": (
            _body(
                tom.serials, signature="data:image/png;base64," + base64.b64encode(b"GIF89a" * 20).decode()
            ),
            400,
            None,
        ),
        "a JPEG data URL": (
            _body(
                tom.serials, signature="data:image/jpeg;base64," + base64.b64encode(signature_png()).decode()
            ),
            400,
            None,
        ),
        "bad base64": (
            _body(tom.serials, signature="data:image/png;base64,@@pas du base64@@" * 3),
            400,
            None,
        ),
        "over 512 KB": (_body(tom.serials, too_big), 400, None),
        "unknown relation": (_body(tom.serials, relation="voisin"), 400, None),
        "unknown mode": (_body(tom.serials, mode="vente"), 400, None),
        "blank receiver": (_body(tom.serials, receiver_name="   "), 400, None),
        "device of another pupil": (_body([tom.tablet.serial, lea.key.serial]), 404, None),
        "unknown device": (_body(["SN-INCONNU"]), 404, None),
    }
    for name, (body, status, code) in cases.items():
        response = client.post("/api/v1/handovers", json=body)
        assert response.status_code == status, (name, response.get_data(as_text=True))
        _error(response, status, code)
    _error(api(world.coordinator_idf).post("/api/v1/handovers", json=_body(tom.serials)), 404)
    _error(api(world.warehouse).post("/api/v1/handovers", json=_body(tom.serials)), 403)
    assert snapshot(session) == before
    for serial in tom.serials:
        assert device_status(session, serial) is DeviceStatus.RECEIVED


def test_handover_refusals_by_page_and_domain_change_nothing(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    received_slip(session, world, [*lea.serials, *tom.serials])
    session.commit()
    before = snapshot(session)
    phone = _client(app, world.coordinator)
    url = f"/remises/eleve/{lea.pupil.id}"
    for name, data, status in [
        ("blank signature", _form(lea.serials, blank_png()), 400),
        ("not a PNG", _form(lea.serials, signature="data:image/png;base64,bm90IGEgcG5n"), 400),
        ("device of another pupil", _form([lea.tablet.serial, tom.tablet.serial]), 404),
    ]:
        response = phone.post(url, data=data)
        assert response.status_code == status, (name, response.status_code)
    assert _client(app, world.warehouse).post(url, data=_form(lea.serials)).status_code == 403
    assert _client(app, world.coordinator_idf).post(url, data=_form(lea.serials)).status_code == 404
    assert snapshot(session) == before

    for kwargs, error in [
        ({"signature": blank_png()}, ValidationFailed),
        ({"signature": b"\x89PNG\r\n\x1a\n" + b"\0" * 40}, ValidationFailed),
        ({"signature": "data:image/png;base64,%%%"}, ValidationFailed),
        ({"signature": signature_png() + b"\0" * (513 * 1024)}, ValidationFailed),
        ({"relation": "voisin"}, ValidationFailed),
        ({"receiver_name": ""}, ValidationFailed),
    ]:
        with pytest.raises(error):
            hand_over(session, world, lea.pupil, lea.serials, **kwargs)
        assert snapshot(session, fresh=False) == before
    with pytest.raises(NotFound):
        hand_over(session, world, lea.pupil, [tom.key.serial])
    assert snapshot(session, fresh=False) == before
    # not received yet
    zoe = bundle(session, world, 3, "Zoé")
    slip = issued_slip(session, world, zoe.serials)
    pick_all(session, world, slip)
    session.commit()
    middle = snapshot(session)
    with pytest.raises(BusinessRuleViolation) as refused:
        hand_over(session, world, zoe.pupil, zoe.serials)
    assert refused.value.status == 422
    assert snapshot(session, fresh=False) == middle
    session.rollback()
    done = hand_over(session, world, lea.pupil, [lea.tablet.serial])
    session.commit()
    after = snapshot(session)
    with pytest.raises(Conflict) as taken:
        hand_over(session, world, lea.pupil, lea.serials)
    assert taken.value.status == 409
    assert snapshot(session, fresh=False) == after
    assert done.number in {h[1] for h in after["handovers"]}


# ---------------------------------------------------------------- personal data


def test_slip_papers_name_the_pupil_by_reference_only(app, session, world, api):
    lea = bundle(session, world, 1, "Philomène", "Zabaleta")
    slip = received_slip(session, world, lea.serials)
    hand_over(session, world, lea.pupil, lea.serials)
    session.commit()
    personal = ["Philomène", "Zabaleta", RECEIVER, "Receveuse", "06 12 34 56 78", "0612345678"]

    def anonymous(text: str, where: str) -> None:
        assert lea.pupil.reference in text, where
        for value in personal:
            assert value not in text, f"{value!r} in {where}"

    warehouse_api = api(world.warehouse)
    pdf = warehouse_api.get(f"/api/v1/slips/{slip.number}/pdf")
    assert pdf.status_code == 200 and pdf.get_data().startswith(b"%PDF")
    anonymous(" ".join(pdf_text(pdf.get_data()).split()), "slip PDF")
    for client in (warehouse_api, api(world.coordinator)):
        response = client.get(f"/api/v1/slips/{slip.number}")
        assert response.status_code == 200
        anonymous(response.get_data(as_text=True), "GET /api/v1/slips/<n>")
    page = _client(app, world.warehouse).get(f"/bordereaux/{slip.number}")
    assert page.status_code == 200
    anonymous(page.get_data(as_text=True), "slip page for the warehouse")


def test_purge_keeps_the_handover_proof_and_its_receipt(app, session, world, runner):
    lea = bundle(session, world, 1, "Philomène", "Zabaleta")
    received_slip(session, world, lea.serials)
    png = signature_png()
    done = hand_over(session, world, lea.pupil, lea.serials, signature=png)
    session.commit()
    number, at, digest = done.number, done.handed_over_at, done.signature_sha256
    for command in (["close-operation", "--yes"], ["purge-personal-data", "--yes"]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, result.output
    session.rollback()
    session.expire_all()
    kept = session.get(Handover, done.id)
    assert (kept.number, kept.handed_over_at, kept.signature_sha256) == (number, at, digest)
    assert digest == hashlib.sha256(png).hexdigest()
    assert kept.receiver_name is None and kept.signature_png is None
    assert kept.relation == "mère" and kept.pupil.reference == lea.pupil.reference
    assert sorted(line.device.serial for line in kept.lines) == sorted(lea.serials)
    session.rollback()
    text = _receipt_text(_client(app, world.coordinator), f"/remises/{done.id}/recu.pdf")
    assert "donnée effacée" in text and number in text
    for value in ("Philomène", "Zabaleta", RECEIVER):
        assert value not in text
    # no new handover once the operation is closed and purged
    assert {device_status(session, s) for s in lea.serials} == {DeviceStatus.HANDED_OVER}
    with pytest.raises((BusinessRuleViolation, Conflict)):
        handover.hand_over(
            session,
            pupil=kept.pupil,
            serials=lea.serials,
            receiver_name=RECEIVER,
            relation="mère",
            mode=HandoverMode.LOAN,
            signature=png,
            by=world.coordinator,
        )
    session.rollback()
