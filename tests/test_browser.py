"""The phone journeys in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by the PyPI
package playwright) on a phone-sized screen, against the app served over HTTP with CSRF protection ON.

1. A warehouse volunteer opens a slip's QR link, logs in, lands on the preparation page and scans with a
   handheld scanner (typed code + Enter): picked, already, refused, then ships.
2. The same page with the camera: a fake camera films a device label's QR code; Chromium on Linux has no
   BarcodeDetector, so this proves the barcode-detector polyfill (ZXing in WebAssembly).
3. The coordinator receives the parcel and hands the devices over to the family, who signs on the screen;
   the receipt downloads as a PDF.
4. Without JavaScript, a scan is a plain POST answered by a flash message.

Without Chromium these tests FAIL with the command to install it (scripts/test installs it when absent); they
are never skipped. LOGISTIQUE_SCREENSHOTS=<dir> saves phone
screenshots of the preparation and handover pages there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.domain import paperwork, slips
from logistique.models import Device, DeviceEvent, DeviceStatus, Handover, SlipEvent, SlipStatus

from .browser_support import (
    LAUNCH_ARGS,
    PHONE,
    TIMEOUT_MS,
    LiveServer,
    fake_camera_args,
    fresh,
    issued_slip,
    live_server,
    qr_y4m,
    require_chromium,
)
from .conftest import PASSWORD

SCREENSHOTS = os.environ.get("LOGISTIQUE_SCREENSHOTS")


@pytest.fixture(scope="module")
def playwright() -> Iterator:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _launch(playwright, extra_args: list[str] = ()):
    return playwright.chromium.launch(
        executable_path=require_chromium(), headless=True, args=[*LAUNCH_ARGS, *extra_args]
    )


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator:
    browser = _launch(playwright)
    yield browser
    browser.close()


@pytest.fixture
def server(app) -> Iterator[LiveServer]:
    with live_server(app) as running:
        yield running


def _phone(browser, server: LiveServer, **options):
    context = browser.new_context(base_url=server.url, **{**PHONE, **options})
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture
def phone(browser, server) -> Iterator:
    """A fresh phone (browser context: no cookies) and its page; the page must break no security policy."""
    context = _phone(browser, server)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert blocked == [], f"the Content-Security-Policy blocked: {blocked}"


def _log_in(page, user) -> None:
    """Fill the login page the browser is on."""
    page.locator("#email").fill(user.email)
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def _open_as(page, user, path: str) -> None:
    page.goto(f"/login?next={path}")
    _log_in(page, user)
    # not the login's ?next=; a minute: the other pytest worker may be running the load test meanwhile
    page.wait_for_url(lambda url: "/login" not in url and url.endswith(path), timeout=60_000)


def _scan(page, code: str) -> dict:
    """Type a code in the page's scan field as a handheld scanner does (then Enter); wait for the answer."""
    feedback = page.locator("[data-scan-feedback]")
    before = int(feedback.get_attribute("data-answers") or 0)
    field = page.locator("[data-scan-form] [data-autofocus-scan]")
    field.fill(code)
    field.press("Enter")
    page.wait_for_selector(f'[data-scan-feedback][data-answers="{before + 1}"]')
    progress = page.locator("[data-progress]")  # the preparation page only
    return {
        "outcome": feedback.get_attribute("data-outcome"),
        "css": feedback.get_attribute("class"),
        "text": feedback.inner_text(),
        "progress": progress.get_attribute("data-progress") if progress.count() else None,
    }


def _screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def _statuses(devices: list[Device]) -> list[DeviceStatus]:
    fresh()
    return [db.session.get(Device, d.id).status for d in devices]


def _count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


# ---------------------------------------------------------------- 1. handheld scanner


def test_volunteer_opens_the_qr_link_scans_and_ships(app, world, server, phone):
    slip = issued_slip(world)
    number, tablet, key, stranger = slip.number, *world.on_slip, world.off_slip
    page = phone

    # the slip's QR code, opened logged out: login first, then straight to the preparation page
    page.goto(paperwork.slip_url(slip, server.url, app.config["SECRET_KEY"]))
    page.wait_for_url(re.compile(r"/login\?next="))
    _log_in(page, world.warehouse)
    page.wait_for_url(re.compile(rf"/bordereaux/{number}/preparation$"))
    progress = page.locator("[data-progress]")
    assert progress.get_attribute("data-progress") == "0/2"
    assert page.locator("input[name=code]").evaluate("el => el === document.activeElement")

    answer = _scan(page, tablet.serial.lower())  # a scanner in lower case: still the device
    assert answer["outcome"] == "picked" and "ok" in answer["css"].split()
    assert answer["progress"] == "1/2"
    assert page.locator(f'[data-line][data-serial="{tablet.serial}"]').get_attribute("data-picked") == "true"
    assert page.locator("input[name=code]").input_value() == ""  # cleared for the next scan
    assert page.locator("[data-ship-form]").is_hidden()
    _screenshot(page, "prepare-phone.png")

    answer = _scan(page, tablet.serial)  # the same again: harmless
    assert answer["outcome"] == "already" and "dup" in answer["css"].split()
    assert "déjà" in answer["text"]
    assert answer["progress"] == "1/2"

    fresh()
    events_before = _count(DeviceEvent, DeviceEvent.device_id == stranger.id)
    slip_events_before = _count(SlipEvent, SlipEvent.slip_id == slip.id)
    fresh()
    answer = _scan(page, stranger.serial)  # not on this slip: refused loudly, nothing changes
    assert answer["outcome"] == "refused" and "ko" in answer["css"].split()
    assert "PAS sur le bordereau" in answer["text"]
    assert answer["progress"] == "1/2"
    assert _statuses([stranger, tablet, key]) == [
        DeviceStatus.IN_STOCK,
        DeviceStatus.PREPARED,
        DeviceStatus.ON_SLIP,
    ]
    assert _count(DeviceEvent, DeviceEvent.device_id == stranger.id) == events_before
    assert _count(SlipEvent, SlipEvent.slip_id == slip.id) == slip_events_before
    fresh()

    answer = _scan(page, key.asset_tag)  # the last one, by its asset tag
    assert answer["outcome"] == "picked" and answer["progress"] == "2/2"
    ship = page.get_by_role("button", name="Expédier")
    ship.wait_for(state="visible")
    assert _statuses([tablet, key]) == [DeviceStatus.PREPARED] * 2
    assert db.session.get(type(slip), slip.id).status is SlipStatus.PREPARED
    fresh()

    ship.click()
    page.wait_for_url(re.compile(rf"/bordereaux/{number}$"))
    assert "expédié" in page.locator(".flashes").inner_text()
    _screenshot(page, "slip-detail-shipped-phone.png")
    fresh()
    shipped = db.session.get(type(slip), slip.id)
    assert shipped.status is SlipStatus.SHIPPED and shipped.shipped_at is not None
    assert [d.status for d in (db.session.get(Device, tablet.id), db.session.get(Device, key.id))] == [
        DeviceStatus.SHIPPED
    ] * 2
    actions = [e.action for e in shipped.events]
    assert actions == ["create", "issue", "prepared", "ship"]
    assert all(e.actor_id == world.warehouse.id for e in shipped.events[2:])
    assert _count(DeviceEvent, DeviceEvent.device_id == tablet.id, DeviceEvent.action == "ship") == 1
    fresh()


# ---------------------------------------------------------------- 2. camera


def test_volunteer_scans_a_label_with_the_phone_camera(app, world, server, playwright, tmp_path):
    slip = issued_slip(world)
    tablet = world.on_slip[0]
    label = paperwork.label(tablet, base_url=server.url)  # what the printed label's QR code holds
    video = qr_y4m(label.url, tmp_path / "label.y4m")
    browser = _launch(playwright, fake_camera_args(video))
    try:
        context = _phone(browser, server)
        page = context.new_page()
        _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
        assert page.evaluate("'BarcodeDetector' in window") is False  # Linux Chromium: the polyfill does it

        page.get_by_role("button", name="Scanner avec la caméra").click()
        page.wait_for_selector('[data-camera][data-camera-state="running"]')
        page.wait_for_selector('[data-scan-feedback][data-outcome="picked"]')
        assert page.locator("[data-camera]").get_attribute("data-decoder") == "polyfill"
        assert page.locator("[data-scan-feedback]").get_attribute("data-serial") == tablet.serial
        assert page.locator("[data-progress]").get_attribute("data-progress") == "1/2"
        _screenshot(page, "prepare-camera-phone.png")

        # the label stays in front of the camera: sent once, not once per frame
        page.wait_for_timeout(700)
        assert page.locator("[data-scan-feedback]").get_attribute("data-answers") == "1"
        page.get_by_role("button", name="Arrêter la caméra").click()
        page.wait_for_selector('[data-camera][data-camera-state="stopped"]')
        context.close()
    finally:
        browser.close()

    fresh()
    assert db.session.get(Device, tablet.id).status is DeviceStatus.PREPARED
    assert db.session.get(Device, world.on_slip[1].id).status is DeviceStatus.ON_SLIP
    assert db.session.get(type(slip), slip.id).status is SlipStatus.ISSUED  # 1/2: still to finish
    fresh()


# ---------------------------------------------------------------- 3. reception and handover


def test_coordinator_receives_and_hands_over_with_a_signature(app, world, server, phone):
    slip = issued_slip(world)
    for device in world.on_slip:
        slips.scan_for_pick(db.session, slip, device.serial, by=world.warehouse)
    slips.ship(db.session, slip, by=world.warehouse)
    db.session.commit()
    number, pupil_id = slip.number, world.pupil.id
    page = phone

    _open_as(page, world.coordinator, f"/bordereaux/{number}")
    page.get_by_role("link", name="Réceptionner").click()
    page.wait_for_url(re.compile(rf"/bordereaux/{number}/reception$"))
    page.get_by_role("button", name="Tout est reçu").click()
    assert page.locator('input[type=radio][value="recu"]:checked').count() == 2
    _screenshot(page, "reception-phone.png")
    page.get_by_role("button", name="Enregistrer la réception").click()
    page.wait_for_url(re.compile(rf"/bordereaux/{number}$"))
    assert "Réception enregistrée" in page.locator(".flashes").inner_text()
    _screenshot(page, "slip-detail-received-phone.png")

    page.get_by_role("link", name=re.compile("Remettre à la famille")).click()
    page.wait_for_url(re.compile(rf"/remises/eleve/{pupil_id}$"))
    assert page.locator("input[type=checkbox][name=serial]:checked").count() == 2

    page.get_by_label("Nom de la personne qui reçoit").fill("Sophie Martin")
    page.get_by_label("Lien avec l'élève").select_option("mère")
    page.get_by_label("Don (attestation de remise)").check()

    # no signature yet: the page refuses to send
    page.get_by_role("button", name="Valider la remise").click()
    page.wait_for_selector("[data-signature-error]:visible")
    assert page.url.endswith(f"/remises/eleve/{pupil_id}")
    fresh()
    assert _count(Handover) == 0
    fresh()

    canvas = page.locator("[data-signature-canvas]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.1 * w, y + 0.7 * h)
    page.mouse.down()
    for i in range(1, 25):  # a looping scribble
        page.mouse.move(x + (0.1 + 0.03 * i) * w, y + (0.5 + 0.25 * (-1) ** i) * h, steps=2)
    page.mouse.up()
    page.wait_for_selector('[data-signature-pad][data-signed="true"]')
    _screenshot(page, "handover-phone.png")

    page.get_by_role("button", name="Valider la remise").click()
    page.wait_for_url(re.compile(r"/remises/\d+$"))
    digest = page.locator("[data-signature-sha256]").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    _screenshot(page, "handover-done-phone.png")

    fresh()
    handover = db.session.scalars(sa.select(Handover)).one()
    assert handover.signature_sha256 == digest
    assert handover.receiver_name == "Sophie Martin" and handover.relation == "mère"
    assert handover.mode.value == "don"
    assert handover.signature_png.startswith(b"\x89PNG")
    assert _statuses(world.on_slip) == [DeviceStatus.HANDED_OVER] * 2
    assert db.session.get(type(slip), slip.id).status is SlipStatus.CLOSED
    fresh()

    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le reçu (PDF)").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF"), pdf[:200]
    assert download.value.suggested_filename == f"{handover.number}.pdf"
    if SCREENSHOTS:
        page.goto("/bordereaux")
        _screenshot(page, "slip-list-phone.png")


def test_a_burst_of_handheld_scans_is_queued_and_none_is_lost(app, world, server, phone):
    slip = issued_slip(world)
    tablet, key = world.on_slip
    page = phone
    _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
    page.locator("input[name=code]").focus()
    for code in (tablet.serial, key.serial, tablet.serial):  # typed faster than the server answers
        page.keyboard.type(code)
        page.keyboard.press("Enter")
    page.wait_for_selector('[data-scan-feedback][data-answers="3"]')
    page.wait_for_selector('[data-prepare][data-queue="0"]')
    assert page.locator("[data-progress]").get_attribute("data-progress") == "2/2"
    assert page.locator("[data-scan-feedback]").get_attribute("data-outcome") == "already"
    assert page.locator('[data-line][data-picked="true"]').count() == 2
    assert page.get_by_role("button", name="Expédier").is_visible()
    assert _statuses([tablet, key]) == [DeviceStatus.PREPARED] * 2
    fresh()


# ---------------------------------------------------------------- 4. no JavaScript


def test_a_scan_works_without_javascript(app, world, server, browser):
    slip = issued_slip(world)
    tablet = world.on_slip[0]
    context = _phone(browser, server, java_script_enabled=False)
    try:
        page = context.new_page()
        _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
        assert page.get_by_role("button", name="Scanner avec la caméra").is_hidden()
        page.locator("input[name=code]").fill(tablet.serial)
        page.get_by_role("button", name="Valider").click()
        page.wait_for_url(re.compile(rf"/bordereaux/{slip.number}/preparation$"))
        assert f"{tablet.serial} préparé" in page.locator(".flashes").inner_text()
        assert page.locator("[data-progress]").get_attribute("data-progress") == "1/2"
    finally:
        context.close()
    fresh()
    assert db.session.get(Device, tablet.id).status is DeviceStatus.PREPARED
    fresh()


# ---------------------------------------------------------------- 5. end of loan


def test_a_familys_return_is_scanned_recorded_and_checked_back_into_stock(app, world, server, phone):
    """The coordinator scans what the family brings back with the handheld (each scan through the offline
    queue), records the restitution; the warehouse opens the return slip's QR link and scans the device back
    into stock."""
    from logistique.domain import return_slips

    from .factories import bundle, hand_over, received_slip

    kit = bundle(db.session, world, 7, "Ștefan", "Țurcanu")
    received_slip(db.session, world, kit.serials)
    hand_over(db.session, world, kit.pupil, kit.serials)
    db.session.commit()
    page = phone
    _open_as(page, world.coordinator, "/retours")
    answer = _scan(page, kit.tablet.serial)
    assert answer["outcome"] == "picked", answer
    page.wait_for_selector(f'[data-draft] [data-line][data-serial="{kit.tablet.serial}"]')  # reloaded
    assert "Ștefan Țurcanu" in page.locator("[data-draft]").inner_text()
    assert _scan(page, kit.tablet.serial)["outcome"] == "already"
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Enregistrer la restitution").click()
    page.wait_for_url(re.compile(r"/restitutions/\d+$"))
    assert _statuses([kit.tablet, kit.key]) == [DeviceStatus.RETURNED, DeviceStatus.HANDED_OVER]

    fresh()
    lines = return_slips.held(db.session, world.assoc_roubaix.id)
    rslip = return_slips.create_return_slip(
        db.session, organisation=world.assoc_roubaix, line_ids=[lines[0].id], by=world.coordinator, issue=True
    )
    return_slips.ship_return_slip(db.session, rslip, by=world.coordinator)
    token = return_slips.token_for(rslip, app.config["SECRET_KEY"])
    db.session.commit()
    page.context.clear_cookies()
    page.goto(f"/login?next=/r/{token}")  # what the phone's camera opens, then the login
    _log_in(page, world.warehouse)
    page.wait_for_url(re.compile(r"/reception$"), timeout=60_000)
    assert "Ștefan" not in page.content()
    answer = _scan(page, kit.tablet.serial)
    assert answer["outcome"] == "picked", answer
    assert _statuses([kit.tablet]) == [DeviceStatus.IN_STOCK]
    fresh()
