"""Field-ready scanning in a real browser (issue 12): headless Chromium (Debian's) at a phone's size, against
the app over HTTP under the strict Content-Security-Policy of issue 10 (tests/browser_support.py adds it).

1. The camera without a native BarcodeDetector (an iPhone, Firefox, Windows): the vendored ZXing polyfill,
   its .wasm served by the app, reads a Code 128 label then a QR code from a fake camera; both are applied.
2. Wake lock and torch are feature-detected: missing, nothing breaks; offered, the torch button works.
3. A refused camera says so in French.
4. The offline queue: five devices scanned with the network cut, the page reloaded offline, the network back:
   each picked exactly once, the queue empty and the page says so; a device moved to another slip meanwhile
   comes back refused with its reason. Expédier only then.
5. The service worker installs, the preparation page opens offline after one visit, and nothing with a pupil's
   name is in the phone's caches.
6. Stock reception, assignment from a pupil's page and reception of a parcel, scan by scan.

LOGISTIQUE_SCREENSHOTS=<dir> saves phone screenshots (CSS pixels, small PNGs) there: docs/screenshots/ in the
README come from this file.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from flask import request
from PIL import Image

from logistique.db import db
from logistique.domain import paperwork, slips
from logistique.models import (
    Device,
    DeviceEvent,
    DeviceStatus,
    IdempotencyRecord,
    ReceptionState,
    Slip,
    SlipLine,
    SlipStatus,
)

from .browser_support import (
    TIMEOUT_MS,
    code128_image,
    fake_camera_args,
    fresh,
    issued_slip,
    qr_image,
    slip_of,
    y4m,
)
from .test_browser import _launch, _log_in, _open_as, _phone, _scan, browser, playwright, server  # noqa: F401

SCREENSHOTS = os.environ.get("LOGISTIQUE_SCREENSHOTS")
NO_NATIVE_DETECTOR = "delete window.BarcodeDetector;"  # as on an iPhone: the polyfill must do it


def _device(browser, server):  # noqa: F811
    """A phone (browser context) with more patience than the other browser tests: these start cameras,
    compile WebAssembly and install a service worker, on a machine that may be busy."""
    context = _phone(browser, server)
    context.set_default_timeout(2 * TIMEOUT_MS)
    return context


def _shot(page, name: str, at: str = "[data-scan-feedback]") -> None:
    """The phone's screen scrolled to the element ``at``, in CSS pixels, as a small PNG for the README."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.locator(at).first.evaluate(
            """(el) => {
                el.scrollIntoView({ block: "start" });
                const bar = document.querySelector(".prepare-bar");  // sticky: it would hide the element
                window.scrollBy(0, -((bar ? bar.offsetHeight : 0) + 12));
            }"""
        )
        path = Path(SCREENSHOTS) / name
        page.screenshot(path=str(path), scale="css", animations="disabled")
        Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def _errors(page) -> list[str]:
    """Uncaught errors of the page, and what the CSP refused (a console error), from now on."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text) if msg.type == "error" and "Content Security Policy" in msg.text else None
        ),
    )
    return errors


def _shipped_slip(world) -> Slip:
    """The slip of ``issued_slip``, prepared and shipped to the Roubaix association (committed)."""
    slip = issued_slip(world)
    for device in world.on_slip:
        slips.scan_for_pick(db.session, slip, device.serial, by=world.warehouse)
    slips.ship(db.session, slip, by=world.warehouse)
    db.session.commit()
    return slip


def _pick_events(device: Device) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(DeviceEvent)
        .where(DeviceEvent.device_id == device.id, DeviceEvent.action == "pick")
    )


def _until(page, script: str, arg=None, *, what: str):
    """Evaluate ``script`` in the page until it answers ``true`` (30 s), else fail with ``what`` and its
    last answer. Polled from here: Playwright's ``wait_for_function`` takes an async predicate's promise for
    a truthy answer at once, and a string predicate is an eval the pages' CSP refuses."""
    deadline = time.monotonic() + 2 * TIMEOUT_MS / 1000
    while (answer := page.evaluate(script, arg)) is not True:
        assert time.monotonic() < deadline, f"{what} (last answer: {answer})"
        page.wait_for_timeout(50)


def _wait_until_kept(page, path: str) -> None:
    """Wait until the service worker has kept the page ``path`` for offline use."""
    _until(
        page,
        """async (path) => {
            const found = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                if (name.startsWith("logistique-pages-") && (await cache.match(path))) return true;
                found.push(name);
            }
            return found;
        }""",
        path,
        what=f"{path} not kept for offline use; caches",
    )


# ---------------------------------------------------------------- 1. camera: the polyfill


def test_the_polyfill_reads_a_code128_label_then_a_qr_code(app, world, server, playwright, tmp_path):  # noqa: F811
    slip = issued_slip(world)
    tablet, key = world.on_slip
    label_url = paperwork.label(key, base_url=server.url).url  # the QR code of the key's printed label
    video = y4m(tmp_path / "labels.y4m", [(code128_image(tablet.serial), 25), (qr_image(label_url), 25)])
    browser = _launch(playwright, fake_camera_args(video))  # noqa: F811
    try:
        context = _device(browser, server)
        context.add_init_script(NO_NATIVE_DETECTOR)
        page = context.new_page()
        errors = _errors(page)
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
        assert page.evaluate("'BarcodeDetector' in window") is False

        page.get_by_role("button", name="Scanner avec la caméra").click()
        page.wait_for_selector('[data-camera][data-camera-state="running"]')
        page.wait_for_selector('[data-progress="1/2"]', timeout=30_000)
        _shot(page, "camera-polyfill.png", at="[data-camera]")
        page.wait_for_selector('[data-progress="2/2"]', timeout=30_000)
        camera = page.locator("[data-camera]")
        assert camera.get_attribute("data-decoder") == "polyfill"
        log = page.locator("[data-scan-log] li")
        assert log.filter(has_text=tablet.serial).first.get_attribute("data-state") == "picked"  # Code 128
        assert log.filter(has_text=label_url).first.get_attribute("data-state") == "picked"  # QR code
        # the label stays in front of the camera: sent once (two labels, a few repeats of the loop at most)
        page.wait_for_timeout(700)
        assert page.locator('[data-scan-log] li[data-state="picked"]').count() == 2
        context.close()
    finally:
        browser.close()

    wasm = [url for url in asked if url.endswith(".wasm")]
    assert wasm == [f"{server.url}/static/vendor/zxing-wasm/zxing_reader.wasm"]
    assert all(url.startswith((server.url, "data:", "blob:")) for url in asked), "no CDN"
    assert errors == []
    fresh()
    assert [db.session.get(Device, d.id).status for d in (tablet, key)] == [DeviceStatus.PREPARED] * 2
    assert db.session.get(Slip, slip.id).status is SlipStatus.PREPARED
    fresh()


# ---------------------------------------------------------------- 2. wake lock and torch


TORCH_OFFERED = """
(() => {
  const capabilities = MediaStreamTrack.prototype.getCapabilities;
  MediaStreamTrack.prototype.getCapabilities = function () {
    return Object.assign({}, capabilities ? capabilities.call(this) : {}, { torch: true });
  };
  const apply = MediaStreamTrack.prototype.applyConstraints;
  MediaStreamTrack.prototype.applyConstraints = function (constraints) {
    window.torchAsked = (window.torchAsked || []).concat([constraints.advanced[0].torch]);
    return Promise.resolve();
  };
})();
"""
NOTHING_OFFERED = """
delete Navigator.prototype.wakeLock;
delete MediaStreamTrack.prototype.getCapabilities;
"""


def test_wake_lock_and_torch_are_feature_detected(app, world, server, playwright, tmp_path):  # noqa: F811
    slip = issued_slip(world)
    video = y4m(tmp_path / "blank.y4m", [(qr_image("rien"), 2)])
    browser = _launch(playwright, fake_camera_args(video))  # noqa: F811
    try:
        for script, torch, locks in (
            (NOTHING_OFFERED, "unavailable", {"unsupported"}),
            (TORCH_OFFERED, "available", {"active", "refused"}),  # headless may refuse the lock: no error
        ):
            context = _device(browser, server)
            context.add_init_script(script)
            page = context.new_page()
            errors = _errors(page)
            _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
            page.get_by_role("button", name="Scanner avec la caméra").click()
            camera = page.locator('[data-camera][data-camera-state="running"]')
            camera.wait_for()
            page.wait_for_selector("[data-camera][data-wake-lock]", state="attached")
            assert camera.get_attribute("data-torch") == torch
            assert camera.get_attribute("data-wake-lock") in locks
            button = page.locator("[data-camera-torch]")
            if torch == "available":
                button.click()
                page.wait_for_selector('[data-camera-torch][aria-pressed="true"]')
                assert button.inner_text() == "Éteindre la lampe"
                assert page.evaluate("window.torchAsked") == [True]
                _shot(page, "camera-torch.png", at="[data-camera]")
            else:
                assert button.is_hidden()
            page.get_by_role("button", name="Arrêter la caméra").click()
            page.wait_for_selector('[data-camera][data-camera-state="stopped"]')
            assert errors == []
            context.close()
    finally:
        browser.close()


# ---------------------------------------------------------------- 3. camera refused, page not secure


def test_a_refused_camera_or_an_insecure_page_is_explained(app, world, server, playwright):  # noqa: F811
    slip = issued_slip(world)
    # a camera exists, but nobody answers the permission prompt: Chromium refuses (NotAllowedError)
    browser = _launch(playwright, ["--use-fake-device-for-media-stream"])  # noqa: F811
    try:
        context = _device(browser, server)
        page = context.new_page()
        _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
        page.get_by_role("button", name="Scanner avec la caméra").click()
        page.wait_for_selector('[data-camera][data-camera-state="error"]')
        assert "Accès à la caméra refusé" in page.locator("[data-camera-status]").inner_text()
        context.close()

        context = _device(browser, server)
        context.add_init_script("Object.defineProperty(window, 'isSecureContext', { value: false });")
        page = context.new_page()
        _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
        page.wait_for_selector('[data-camera][data-camera-state="insecure"]')
        assert page.get_by_role("button", name="Scanner avec la caméra").is_hidden()
        assert "HTTPS" in page.locator("[data-camera-status]").inner_text()
        assert page.locator("input[name=code]").is_visible()  # the handheld scanner still works
        _shot(page, "camera-not-https.png")
        context.close()
    finally:
        browser.close()


# ---------------------------------------------------------------- 4. the offline queue


def test_scans_made_offline_survive_a_reload_and_are_applied_once(app, world, server, browser):  # noqa: F811
    slip, tablets = slip_of(world, 6)
    number, kept, moved = slip.number, tablets[:5], tablets[5]
    path = f"/bordereaux/{number}/preparation"
    context = _device(browser, server)
    page = context.new_page()
    errors = _errors(page)
    _open_as(page, world.warehouse, path)
    _wait_until_kept(page, path)  # one visit: the service worker keeps the page

    context.set_offline(True)
    hits = len(server.hits)
    for device in [*kept, moved]:
        answer = _scan(page, device.serial)
        assert answer["outcome"] == "queued", answer
    status = page.locator("[data-queue-status]")
    assert page.locator("[data-prepare]").get_attribute("data-queue") == "6"
    assert "6 scan(s) en attente" in status.inner_text()
    assert page.locator('[data-scan-log] li[data-state="queued"]').count() == 6
    assert page.locator("[data-ship-form]").is_hidden()
    _shot(page, "offline-queue.png")

    # meanwhile, the coordinator takes the last device off the slip and puts it on another one
    fresh()
    line = db.session.scalars(sa.select(SlipLine).where(SlipLine.device_id == moved.id)).one()
    slips.remove_line(db.session, db.session.get(Slip, slip.id), line, by=world.coordinator)
    other = slips.create_slip(
        db.session, destination=world.assoc_roubaix, serials=[moved.serial], by=world.coordinator, issue=True
    )
    other_number = other.number
    db.session.commit()
    fresh()

    # the phone reloads the page without network: it comes from the phone, with its six scans waiting
    page.reload()
    page.wait_for_selector('[data-prepare][data-scan-ready="true"][data-queue="6"]')
    assert page.locator('[data-scan-log] li[data-state="queued"]').count() == 6
    assert "en attente" in status.inner_text()
    # (Chromium's own check for a new /sw.js is not subject to the emulated offline mode: left out)
    assert [hit for hit in server.hits[hits:] if hit != "/sw.js"] == [], "nothing reached the server offline"

    # a page kept for hours carries a CSRF token the server no longer takes: the queue fetches a fresh one
    page.evaluate(
        "document.querySelectorAll('input[name=csrf_token]').forEach((i) => { i.value = 'périmé'; })"
    )
    online_at = len(server.hits)
    context.set_offline(False)
    page.wait_for_selector('[data-prepare][data-queue="0"]')
    # (the refused POST stops at the CSRF check, before the hits are noted): a fresh page, then the scans
    sent = [hit for hit in server.hits[online_at:] if hit != "/sw.js"]
    assert sent[:2] == [path, f"/bordereaux/{number}/scan"]
    page.wait_for_selector('[data-scan-log] li[data-state="refused"]')
    assert status.inner_text() == "Tous les scans sont envoyés et confirmés par le serveur."
    assert page.locator('[data-scan-log] li[data-state="picked"]').count() == 5
    refused = page.locator('[data-scan-log] li[data-state="refused"]')
    assert refused.count() == 1 and moved.serial in refused.inner_text()
    assert f"maintenant sur le bordereau {other_number}" in refused.inner_text()
    assert page.locator("[data-progress]").get_attribute("data-progress") == "5/5"
    page.get_by_role("button", name="Expédier").wait_for(state="visible")  # queue empty, all confirmed
    _shot(page, "offline-queue-sent.png")
    assert errors == []
    context.close()

    fresh()
    assert [db.session.get(Device, d.id).status for d in kept] == [DeviceStatus.PREPARED] * 5
    assert [_pick_events(d) for d in kept] == [1] * 5  # exactly once each
    assert db.session.get(Device, moved.id).status is DeviceStatus.ON_SLIP
    assert _pick_events(moved) == 0
    assert db.session.get(Slip, slip.id).status is SlipStatus.PREPARED
    records = db.session.scalars(
        sa.select(IdempotencyRecord).where(IdempotencyRecord.user_id == world.warehouse.id)
    ).all()
    assert len(records) == 6 and len({r.key for r in records}) == 6  # one key per scan
    fresh()


def test_a_scan_sent_again_with_its_key_is_not_applied_twice(app, world, server, browser):  # noqa: F811
    """The answer was lost (the network dropped after the server applied the scan): the phone sends the
    same scan again with the same key, and gets the first answer back."""
    slip = issued_slip(world)
    tablet = world.on_slip[0]
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.warehouse, f"/bordereaux/{slip.number}/preparation")
    page.wait_for_selector("[data-scan-ready]")
    # the first answer never reaches the page: the route lets the request through, then drops the answer
    dropped = []

    def drop_answer(route):
        response = route.fetch()
        dropped.append(response.status)
        route.abort("internetdisconnected")

    page.route("**/scan", drop_answer, times=1)
    field = page.locator("input[name=code]")
    field.fill(tablet.serial)
    field.press("Enter")
    # the queue reads 0 before the scan enters it as well: first the lost answer, then the queue emptied
    for _ in range(100):
        if dropped:
            break
        page.wait_for_timeout(100)
    page.wait_for_selector('[data-prepare][data-queue="0"]', timeout=20_000)  # sent again after 5 s
    assert dropped == [200]
    feedback = page.locator("[data-scan-feedback]")
    # the queue counts the scan as sent before the answer box is drawn: wait for the box, then read it
    page.wait_for_selector("[data-scan-feedback][data-outcome]:not([data-outcome=''])", timeout=10_000)
    assert feedback.get_attribute("data-outcome") == "picked"  # the first answer, replayed
    assert page.locator('[data-scan-log] li[data-state="picked"]').count() == 1
    context.close()
    fresh()
    assert _pick_events(tablet) == 1
    fresh()


# ---------------------------------------------------------------- 5. the installable app


def test_the_app_installs_and_keeps_no_personal_data(app, world, server, browser):  # noqa: F811
    slip = _shipped_slip(world)
    number, pupil_id = slip.number, world.pupil.id

    # a coordinator: the pupil's page (names) and the parcel's reception page (a scan page)
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.coordinator, f"/eleves/{pupil_id}")
    assert "Martin" in page.locator("main").inner_text()
    manifest = page.evaluate("fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json())")
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/"
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # an active worker: it sees what follows
    page.goto(f"/eleves/{pupil_id}")
    assert page.evaluate("() => performance.getEntriesByType('navigation')[0].workerStart") > 0  # seen
    page.goto(f"/bordereaux/{number}/reception")
    _wait_until_kept(page, f"/bordereaux/{number}/reception")
    kept = page.evaluate(
        """async () => {
            const found = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) {
                    const response = await cache.match(request);
                    const type = response.headers.get("Content-Type") || "";
                    const text = /text|javascript|json/.test(type) ? await response.text() : "";
                    found.push({ cache: name, url: new URL(request.url).pathname, text: text });
                }
            }
            return found;
        }"""
    )
    urls = {entry["url"] for entry in kept}
    assert f"/bordereaux/{number}/reception" in urls
    assert "/static/vendor/zxing-wasm/zxing_reader.wasm" in urls and "/static/js/scan.js" in urls
    assert f"/eleves/{pupil_id}" not in urls
    assert not any(url.startswith("/api/") for url in urls)
    for word in ("Léa", "Martin", "Sophie", "06 12 34 56 78"):
        assert not [entry["url"] for entry in kept if word in entry["text"]], word

    # logging out empties the pages kept (the static files stay: nothing personal in them)
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(re.compile(r"/login"))
    names = page.evaluate("caches.keys()")
    assert not [name for name in names if name.startswith("logistique-pages-")], names
    assert [name for name in names if name.startswith("logistique-static-")]
    context.close()


def test_the_worker_fetches_again_only_the_pages_it_may_keep(app, world, server, browser):  # noqa: F811
    """On a first visit the worker fetches the page again to keep it, for a page the server marks only: the
    login page fetched again while its form is being sent could answer after the login with the cookie of
    before, and the user would land on the login page again (seen on a loaded machine)."""
    context = _device(browser, server)
    page = context.new_page()
    page.goto("/login")
    assert page.locator("html").get_attribute("data-keep-offline") is None
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.wait_for_timeout(500)  # time for a message to the worker and its fetch
    assert server.hits.count("/login") == 1, server.hits
    context.close()

    slip = issued_slip(world)
    path = f"/bordereaux/{slip.number}/preparation"
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.warehouse, path)
    assert page.locator("html").get_attribute("data-keep-offline") is not None
    _wait_until_kept(page, path)
    context.close()


def test_the_preparation_page_opens_offline_after_one_visit(app, world, server, browser):  # noqa: F811
    slip = issued_slip(world)
    path = f"/bordereaux/{slip.number}/preparation"
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.warehouse, path)  # the one visit
    _wait_until_kept(page, path)
    page.close()

    context.set_offline(True)
    hits = len(server.hits)
    page = context.new_page()
    page.goto(path)
    page.wait_for_selector('[data-prepare][data-scan-ready="true"]')
    assert page.locator("[data-progress]").get_attribute("data-progress") == "0/2"
    assert page.locator("[data-queue-status]").inner_text().startswith("Hors ligne")
    _shot(page, "prepare-offline.png")

    page.goto("/bordereaux")  # never opened: the offline page, not an error of the browser
    page.wait_for_selector("[data-offline-page]")
    # (Chromium's own check for a new /sw.js is not subject to the emulated offline mode: left out)
    assert [hit for hit in server.hits[hits:] if hit != "/sw.js"] == []
    context.close()


def test_a_scan_page_the_worker_takes_over_while_it_loads_is_kept(app, world, server, browser):  # noqa: F811
    """The worker installed on the login page finishes while the first scan page is still loading: it takes
    control of the page (clients.claim) without having seen it pass. The page must still be kept: it was
    not while app.js asked at "load" whether a worker controlled the page (a CI run: the page opened once did
    not open offline). Made certain here: the worker's install waits until the page has started to arrive,
    and the rest of the page waits until the worker has taken it over."""
    slip = issued_slip(world)
    path = f"/bordereaux/{slip.number}/preparation"
    page_started, page_may_finish = threading.Event(), threading.Event()

    @server.app.before_request
    def hold_install() -> None:
        if request.path.endswith(".wasm"):  # one of the files the worker keeps at install
            page_started.wait(30)

    @server.app.after_request
    def page_in_two_parts(response):
        if request.path != path or page_started.is_set():
            return response
        body = response.get_data()

        def parts():
            yield body[: len(body) // 2]
            page_started.set()
            page_may_finish.wait(30)
            yield body[len(body) // 2 :]

        response.response = parts()
        return response

    context = _device(browser, server)
    page = context.new_page()
    page.goto(f"/login?next={path}")
    _log_in(page, world.warehouse)
    page.wait_for_url(lambda url: url.endswith(path), wait_until="commit", timeout=60_000)
    taken_over = "() => navigator.serviceWorker.controller !== null"
    _until(page, taken_over, what="the worker never took control of the page")
    assert page.evaluate("() => document.readyState") == "loading"
    assert page.evaluate("() => performance.getEntriesByType('navigation')[0].workerStart") == 0
    page_may_finish.set()
    page.wait_for_load_state("load")
    _wait_until_kept(page, path)
    assert server.hits.count(path) == 2  # the visit, then the worker's own fetch to keep the page
    page.close()

    context.set_offline(True)
    page = context.new_page()
    page.goto(path)
    page.wait_for_selector('[data-prepare][data-scan-ready="true"]')
    context.close()


# ---------------------------------------------------------------- 6. the other scan pages


def test_stock_reception_scan_by_scan(app, world, server, browser):  # noqa: F811
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.warehouse, f"/stock/reception?lot={world.lot.id}")
    page.get_by_label("Modèle").select_option(value=str(world.tablet.id))
    count = page.locator("[data-received-count]")
    before = int(count.inner_text())
    answer = _scan(page, "SN-NEW-001")
    assert answer["outcome"] == "picked", answer
    assert _scan(page, "SN-NEW-001")["outcome"] == "already"
    assert int(count.inner_text()) == before + 1
    _shot(page, "stock-reception.png")
    context.close()
    fresh()
    device = db.session.scalars(sa.select(Device).where(Device.serial == "SN-NEW-001")).one()
    assert device.model_id == world.tablet.id and device.lot_id == world.lot.id
    fresh()


def test_assignment_by_scan_from_the_pupils_page(app, world, server, browser):  # noqa: F811
    from logistique.domain import pupils

    pupil = pupils.register_pupil(
        db.session,
        pupils.PupilData(
            "Nour", "Haddad", "5E", "0750654D", "QN05981M", "Amel Haddad", "0611111111", "tablette"
        ),
        by=world.coordinator,
    )
    db.session.commit()
    pupil_id, tablet = pupil.id, world.device
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.coordinator, f"/eleves/{pupil_id}")
    assert _scan(page, world.device_idf.serial)["outcome"] == "refused"  # another region's stock
    answer = _scan(page, f"{server.url}/d/{tablet.asset_tag}")  # the label's QR code
    assert answer["outcome"] == "picked", answer
    # reloaded once the queue is empty: the device is listed among the pupil's assigned devices
    page.wait_for_selector(f"section[aria-labelledby=active-title] >> text={tablet.serial}")
    context.close()
    fresh()
    assert db.session.get(Device, tablet.id).status is DeviceStatus.ASSIGNED
    fresh()


def test_parcel_reception_device_by_device(app, world, server, browser):  # noqa: F811
    slip = _shipped_slip(world)
    tablet, key = world.on_slip
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.coordinator, f"/bordereaux/{slip.number}/reception")
    answer = _scan(page, tablet.asset_tag)
    assert answer["outcome"] == "picked" and "reçu" in answer["text"], answer
    assert _scan(page, tablet.serial)["outcome"] == "already"
    assert _scan(page, world.off_slip.serial)["outcome"] == "refused"
    line = page.locator(f'[data-reception-line][data-serial="{tablet.serial}"]')
    assert line.get_attribute("data-received") == "true"
    assert (
        page.locator(f'[data-reception-line][data-serial="{key.serial}"]').get_attribute("data-received")
        is None
    )
    _shot(page, "parcel-reception.png")
    page.reload()  # what was not scanned stays to decide
    assert page.locator("[data-reception-line]").count() == 1
    assert page.locator(f'.reception-done-line[data-serial="{tablet.serial}"]').count() == 1
    context.close()
    fresh()
    lines = {line.device_id: line for line in db.session.get(Slip, slip.id).active_lines}
    assert lines[tablet.id].reception_state is ReceptionState.RECEIVED
    assert lines[key.id].reception_state is None
    assert db.session.get(Slip, slip.id).status is SlipStatus.SHIPPED
    fresh()


def test_scan_after_scan_assignment_by_camera_page(app, world, server, browser):  # noqa: F811
    from logistique.domain import pupils

    pupils.register_pupil(
        db.session,
        pupils.PupilData("Inès", "Roux", "4E", "0750654D", "QN05981M", "Marc Roux", "0622222222", "tablette"),
        by=world.coordinator,
    )
    db.session.commit()
    tablet = world.device
    context = _device(browser, server)
    page = context.new_page()
    _open_as(page, world.coordinator, "/attributions/scan")
    assert page.locator("[data-camera]").is_visible()  # the camera is offered here too
    assert _scan(page, "SN-INCONNU")["outcome"] == "refused"
    answer = _scan(page, tablet.serial)
    assert answer["outcome"] == "picked" and "attribué à E-" in answer["text"], answer
    page.wait_for_selector(f".worklist >> text={tablet.serial}")  # reloaded: « Vos dernières attributions »
    context.close()
    fresh()
    assert db.session.get(Device, tablet.id).status is DeviceStatus.ASSIGNED
    fresh()
