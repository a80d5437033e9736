"""The demonstration that `scripts/serve` loads, walked through in a real browser as the README tells it:

1. a coordinator equips a class by scanning devices one after the other (handheld scanner: code + Enter),
   each going to the pupil of the association who has waited longest;
2. the warehouse volunteer opens the QR link of the return slip on its way back (families' returns of the
   demo), scans a device the family gave back in working order: it is back in stock;
3. the prefecture of region opens its board: devices returned by families and back in stock, and the QPVs
   that have declared nothing, flagged.

Same Chromium as tests/test_browser.py (Debian's, headless, phone-sized, under the CSP). Demo accounts log in
only in demo mode, which this module's server turns on. LOGISTIQUE_SCREENSHOTS=<dir> saves the pages.
"""

from __future__ import annotations

import sqlalchemy as sa

from logistique.db import db
from logistique.demo import DEMO_PASSWORD
from logistique.domain import bulk_assign, return_slips, status
from logistique.models import Assignment, Device, DeviceStatus, ReturnSlip, SlipStatus, User

from .browser_support import fresh, live_server
from .test_browser import _phone, _scan, _screenshot, browser, playwright  # noqa: F401 — fixtures

COORDINATOR = "coordination.horizon-roubaix@demo.logistique.fr"
PREFECTURE = "prefecture.region@demo.logistique.fr"


def _demo_user(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def _log_in(page, email: str, path: str) -> None:
    page.goto(f"/login?next={path}")
    page.locator("#email").fill(email)
    page.locator("#password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(lambda url: "/login" not in url and url.endswith(path), timeout=60_000)


def _scan_and_reload(page, code: str) -> dict:
    """A scan on a page that reloads itself once the answer is read (« Attribuer en scannant », so that « Vos
    dernières attributions » lists it; a return slip's check): the answer, then the reloaded page."""
    page.evaluate("window.__beforeReload = true")
    answer = _scan(page, code)
    page.wait_for_function("() => window.__beforeReload === undefined", timeout=30_000)
    page.wait_for_load_state()
    return answer


def _load_demo(app) -> None:
    result = app.test_cli_runner().invoke(args=["load-demo"])
    assert result.exit_code == 0, result.output
    app.config["DEMO_MODE"] = True  # the live server copies it: demo accounts may log in


def test_demo_coordinator_equips_a_class_by_scanning_and_the_board_lists_silent_qpvs(app, browser):  # noqa: F811
    _load_demo(app)
    coordinator = _demo_user(COORDINATOR)
    # three devices of the regional stock that would go to pupils of the association (proposal, not applied)
    pairs = bulk_assign.propose(db.session, by=coordinator, count=3)
    db.session.rollback()
    assert len(pairs) == 3, "the demo must leave stock and waiting pupils for scan-to-assign"
    serials = [p.serial for p in pairs]

    with live_server(app) as server:
        context = _phone(browser, server)
        page = context.new_page()
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)

        _log_in(page, COORDINATOR, "/attributions/scan")
        for serial in serials:
            answer = _scan_and_reload(page, serial)
            assert answer["outcome"] == "picked" and "ok" in answer["css"], answer
            assert serial in answer["text"]
        again = _scan(
            page, serials[0]
        )  # nothing changed: no reload  # the same label scanned twice is assigned once
        assert again["outcome"] == "already" and "déjà attribué" in again["text"], again
        recent = page.locator("#recent-title + ul li").all_inner_texts()
        assert [serial for serial in serials if any(serial in r for r in recent)] == serials
        _screenshot(page, "demo-scan-to-assign.png")

        fresh()
        assigned = db.session.execute(
            sa.select(Device.serial, Assignment.pupil_id, Assignment.created_by_id)
            .join(Assignment, Assignment.device_id == Device.id)
            .where(Device.serial.in_(serials), Assignment.cancelled_at.is_(None))
        ).all()
        assert sorted(s for s, _, _ in assigned) == sorted(serials)
        assert {by for _, _, by in assigned} == {coordinator.id}
        assert len({pupil for _, pupil, _ in assigned}) == 3  # one device per pupil, each a different pupil
        statuses = db.session.scalars(sa.select(Device.status).where(Device.serial.in_(serials))).all()
        assert statuses == [DeviceStatus.ASSIGNED] * 3

        # the return slip the demo left on the road: the warehouse scans a device back into stock
        rslip = db.session.scalar(sa.select(ReturnSlip).where(ReturnSlip.status == SlipStatus.SHIPPED))
        assert rslip is not None, "the demo must leave a return slip on its way to the warehouse"
        working = next(line for line in rslip.active_lines if line.device.status is DeviceStatus.RETURNED)
        volunteer = db.session.scalar(
            sa.select(User).where(User.organisation_id == rslip.warehouse_id, User.email.like("entrepot.%"))
        )
        token = return_slips.token_for(rslip, app.config["SECRET_KEY"])
        serial, device_id = working.device.serial, working.device_id
        fresh()
        page.context.clear_cookies()
        page.goto(f"/login?next=/r/{token}")  # what the phone's camera opens
        page.locator("#email").fill(volunteer.email)
        page.locator("#password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url(lambda url: url.endswith("/reception"), timeout=60_000)
        answer = _scan_and_reload(page, serial)  # the page reloads with the slip's progress
        assert answer["outcome"] == "picked" and serial in answer["text"], answer
        assert page.locator("[data-progress]").get_attribute("data-progress").startswith("1/")
        _screenshot(page, "demo-return-slip-reception.png")
        fresh()
        assert db.session.get(Device, device_id).status is DeviceStatus.IN_STOCK

        # the prefecture of region: the devices back from families, then the Nord's board per QPV
        page.context.clear_cookies()
        _log_in(page, PREFECTURE, "/tableau")
        returned = page.locator('[data-kpi="returned"]')
        total, _ = status.board(
            db.session, status.resolve(db.session, _demo_user(PREFECTURE), "region:32"), by="department"
        )
        assert int(returned.get_attribute("data-restocked")) == total.restocked >= 2  # the demo's + this one
        assert int(returned.get_attribute("data-returned")) == total.returned
        page.goto("/tableau/departement/59")
        silent_rows = page.locator('tr[data-silent="1"]')
        _, rows = status.board(
            db.session, status.resolve(db.session, _demo_user(PREFECTURE), "departement:59"), by="qpv"
        )
        expected = [r.code for r in rows if r.level == "qpv" and not r.has_reported]
        assert expected, "the demo must leave QPVs of the Nord with nothing declared"
        assert silent_rows.count() == len(expected)
        assert sorted(silent_rows.evaluate_all("rows => rows.map(r => r.dataset.code)")) == sorted(expected)
        assert status.SILENT in silent_rows.first.inner_text()
        assert page.locator("[data-silent-count]").get_attribute("data-silent-count") == str(len(expected))
        _screenshot(page, "demo-board-silent-qpvs.png")
        context.close()
        assert blocked == [], f"the Content-Security-Policy blocked: {blocked}"
