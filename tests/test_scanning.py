"""Field scanning without a browser (issue 12): a scan carrying an Idempotency-Key is applied once whatever
the number of times the phone's offline queue sends it; the parcel scanned device by device at its
destination; the JSON answers of stock reception and assignment; the manifest, the service worker and which
pages the phone may keep offline. The journeys in a real browser are in tests/test_field_scanning.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from logistique.domain import slips
from logistique.models import DeviceStatus, ReceptionState
from logistique.views import scanning

from .conftest import login
from .factories import (
    BASE,
    add_device,
    add_pupil,
    bundle,
    device_status,
    events_of,
    issued_slip,
    shipped_slip,
    snapshot,
)

JSON = {"Accept": "application/json"}


def _client(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


# ---------------------------------------------------------------- the key of each queued scan


def test_a_scan_sent_again_with_its_key_gets_its_first_answer_and_changes_nothing(app, session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    session.commit()
    phone = _client(app, world.warehouse)
    url = f"/bordereaux/{slip.number}/scan"

    def scan(code: str, key: str):
        return phone.post(url, data={"code": code}, headers={**JSON, "Idempotency-Key": key})

    first = scan(lea.tablet.serial, "k-1")
    assert first.status_code == 200 and first.get_json()["outcome"] == "picked"
    before = snapshot(session)
    again = scan(lea.tablet.serial, "k-1")  # the answer was lost: the queue sends it again
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()  # « préparé », not « déjà préparé »
    assert snapshot(session) == before
    assert events_of(session, lea.tablet.serial).count("pick") == 1

    # a new scan of the same device has a new key: it is told it is already done
    assert scan(lea.tablet.serial, "k-2").get_json()["outcome"] == "already"
    # a key is one scan: used again for another code, refused and nothing changes
    reused = scan(lea.key.serial, "k-1")
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert device_status(session, lea.key.serial) is DeviceStatus.ON_SLIP
    # a refusal is remembered too: sent again, refused again with the same reason
    refused = scan("SN-INCONNU", "k-3")
    assert refused.status_code == 422 and scan("SN-INCONNU", "k-3").get_json() == refused.get_json()


def test_a_device_moved_to_another_slip_is_refused_with_where_it_went(session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    line = next(line for line in slip.active_lines if line.device.serial == lea.key.serial)
    slips.remove_line(session, slip, line, by=world.coordinator)
    other = issued_slip(session, world, [lea.key.serial])
    result = slips.scan_for_pick(session, slip, lea.key.serial, by=world.warehouse)
    assert result.outcome == "refused"
    assert (
        f"n'est PAS sur le bordereau {slip.number} (il est maintenant sur le bordereau {other.number})"
        in (result.message)
    )
    assert slips.scan_for_pick(session, slip, "SN-INCONNU", by=world.warehouse).message == (
        f"SN-INCONNU n'est PAS sur le bordereau {slip.number} : ne le mettez pas dans le colis."
    )


# ---------------------------------------------------------------- the parcel, device by device


def test_a_parcel_is_received_device_by_device(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    slip = shipped_slip(session, world, [*lea.serials, tom.tablet.serial])
    stranger = add_device(session, world, "SN-ETRANGER")
    session.commit()
    url = f"/bordereaux/{slip.number}/reception/scan"
    phone = _client(app, world.coordinator)

    def scan(code: str, client=phone, headers=JSON):
        return client.post(url, data={"code": code}, headers=headers)

    by_tag = scan(lea.tablet.asset_tag)
    assert by_tag.status_code == 200, by_tag.get_data(as_text=True)
    assert by_tag.get_json() == {
        "outcome": "picked",
        "message": f"{lea.tablet.serial} reçu.",
        "serial": lea.tablet.serial,
        "done": 1,
        "total": 3,
    }
    assert device_status(session, lea.tablet.serial) is DeviceStatus.RECEIVED
    before = snapshot(session)
    assert scan(lea.tablet.serial).get_json()["outcome"] == "already"
    for code in (stranger.serial, "SN-INCONNU", f"{BASE}/s/abc"):
        refused = scan(code)
        assert refused.status_code == 422 and refused.get_json()["outcome"] == "refused", code
    assert scan(lea.key.serial, _client(app, world.warehouse)).status_code == 403
    assert scan(lea.key.serial, _client(app, world.coordinator_idf)).status_code == 404
    assert snapshot(session) == before

    # declared missing in the form, then scanned: refused, the declaration stands
    slips.receive(
        session, slip, [slips.ReceptionLine(lea.key.serial, ReceptionState.MISSING, "absent")], by=None
    )
    session.commit()
    missing = scan(lea.key.serial)
    assert missing.status_code == 422 and "déjà été déclaré « manquant »" in missing.get_json()["message"]
    assert device_status(session, lea.key.serial) is DeviceStatus.LOST

    # without script: a redirect to the reception page; the last device received closes the reception
    plain = scan(tom.tablet.serial, headers={})
    assert plain.status_code == 302 and plain.headers["Location"].endswith(
        f"/bordereaux/{slip.number}/reception"
    )
    assert device_status(session, tom.tablet.serial) is DeviceStatus.RECEIVED
    session.rollback()
    assert session.get(type(slip), slip.id).status.value == "receptionne"


def test_a_parcel_not_shipped_yet_cannot_be_scanned_in(app, session, world):
    lea = bundle(session, world, 1)
    slip = issued_slip(session, world, lea.serials)
    session.commit()
    refused = _client(app, world.coordinator).post(
        f"/bordereaux/{slip.number}/reception/scan", data={"code": lea.tablet.serial}, headers=JSON
    )
    assert refused.status_code == 422 and "n'a pas été expédié" in refused.get_json()["message"]
    assert device_status(session, lea.tablet.serial) is DeviceStatus.ON_SLIP


# ---------------------------------------------------------------- stock reception and assignment, in JSON


def test_stock_reception_answers_the_queue_in_json(app, session, world):
    phone = _client(app, world.warehouse)
    fields = {"lot": world.lot.id, "model": world.tablet.id, "condition": "reconditionne"}

    def scan(serial: str, **extra):
        return phone.post("/stock/reception", data={**fields, **extra, "serial": serial}, headers=JSON)

    first = scan("SN-NEUF-1")
    assert first.status_code == 200 and first.get_json()["outcome"] == "picked"
    assert first.get_json()["received"] == 4  # the three devices of the Lille lot, and this one
    assert scan("sn-neuf-1").get_json()["outcome"] == "already"
    bad = scan("SN-NEUF-2", model=999999)
    assert bad.status_code == 422 and bad.get_json()["outcome"] == "refused"
    session.rollback()
    assert device_status(session, "SN-NEUF-1") is DeviceStatus.IN_STOCK


def test_assignment_by_scan_answers_the_queue_in_json(app, session, world):
    pupil = add_pupil(session, world, "Nour", "Haddad")
    session.commit()
    phone = _client(app, world.coordinator)
    url = f"/eleves/{pupil.id}"
    far = phone.post(url, data={"serial": world.device_idf.serial}, headers=JSON)
    assert far.status_code == 404 and far.get_json()["outcome"] == "refused"
    by_label = phone.post(url, data={"serial": f"{BASE}/d/{world.device.asset_tag}"}, headers=JSON)
    assert by_label.status_code == 200, by_label.get_data(as_text=True)
    assert by_label.get_json()["outcome"] == "picked" and pupil.reference in by_label.get_json()["message"]
    assert "Haddad" not in by_label.get_data(as_text=True)
    assert device_status(session, world.device.serial) is DeviceStatus.ASSIGNED
    assert phone.post(url, data={"serial": ""}, headers=JSON).status_code == 400


# ---------------------------------------------------------------- the installable app


def test_manifest_service_worker_and_offline_page_are_public(client):
    manifest = client.get("/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest.mimetype == "application/manifest+json"
    body = manifest.get_json(force=True)
    assert (body["start_url"], body["scope"], body["display"]) == ("/", "/", "standalone")
    for icon in body["icons"]:
        with client.get(icon["src"]) as image:
            assert image.status_code == 200 and image.data.startswith(b"\x89PNG"), icon

    worker = client.get("/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/" and worker.headers["Cache-Control"] == "no-cache"
    text = worker.get_data(as_text=True)
    assert "/static/vendor/zxing-wasm/zxing_reader.wasm" in text and "/static/js/scan.js" in text
    assert "/eleves" not in text and "/api/" not in text

    offline = client.get("/hors-ligne")
    assert offline.status_code == 200 and "Pas de réseau" in offline.get_data(as_text=True)


def test_the_version_follows_the_static_files(tmp_path: Path):
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("1")
    names, first = scanning._static_files.__wrapped__(str(tmp_path))
    assert names == ("js/a.js",)
    (tmp_path / "js" / "a.js").write_text("2")  # a deploy
    assert scanning._static_files.__wrapped__(str(tmp_path))[1] != first


@pytest.mark.parametrize(
    ("who", "path", "kept"),
    [
        ("warehouse", "/bordereaux/{number}/preparation", True),
        ("warehouse", "/stock/reception", True),
        ("coordinator", "/bordereaux/{number}/reception", True),
        ("coordinator", "/eleves/{pupil}", False),  # names: never kept on the phone
        ("coordinator", "/eleves", False),
        ("warehouse", "/bordereaux/{number}", False),
    ],
)
def test_only_scan_pages_without_personal_data_may_be_kept(app, session, world, who, path, kept):
    lea = bundle(session, world, 1)
    slip = shipped_slip(session, world, lea.serials)
    session.commit()
    response = _client(app, getattr(world, who)).get(path.format(number=slip.number, pupil=lea.pupil.id))
    assert response.status_code == 200
    assert (response.headers.get(scanning.OFFLINE_HEADER) == "page") is kept
