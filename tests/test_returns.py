"""End of loan (issue 13, point 2): the family brings devices back (restitution and its receipt), the
organisation sends them back to their warehouse on a return slip (QR, ship), the warehouse checks each one by
scanning (back en_stock or defectueux); the board counts them; every step journalled, counters exact."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pypdfium2 as pdfium
import sqlalchemy as sa
import zxingcpp

from logistique.db import db
from logistique.domain import accounts, pupils, return_slips, returns
from logistique.domain.errors import Conflict, InvalidTransition, NotFound
from logistique.models import (
    Assignment,
    Device,
    DeviceStatus,
    Restitution,
    RestitutionLine,
    ReturnSlip,
    ReturnSlipEvent,
    Role,
    SlipStatus,
)

from .conftest import PASSWORD
from .factories import BASE, bundle, device_status, events_of, hand_over, pdf_text, received_slip

JSON = {"Accept": "application/json"}


def handed_over(session, world, n: int = 1, first: str = "Łukasz", last: str = "Wiśniewski"):
    """A Roubaix pupil whose tablet SN-TAB-n and 4G key SN-CLE-n are handed over to the family."""
    kit = bundle(session, world, n, first, last)
    received_slip(session, world, kit.serials)
    hand_over(session, world, kit.pupil, kit.serials)
    session.commit()
    return kit


def recount_clean(runner) -> None:
    result = runner.invoke(args=["recount", "--check"])
    assert result.exit_code == 0, result.output


def status_totals(api_client, territory: str = "59") -> dict:
    answer = api_client.get(f"/api/v1/status?territory={territory}&by=department")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["total"]


def return_slip_events(session, number: str) -> list[str]:
    session.rollback()
    return list(
        session.scalars(
            sa.select(ReturnSlipEvent.action)
            .join(ReturnSlip, ReturnSlipEvent.return_slip_id == ReturnSlip.id)
            .where(ReturnSlip.number == number)
            .order_by(ReturnSlipEvent.id)
        )
    )


def qr_codes(data: bytes) -> list[str]:
    image = pdfium.PdfDocument(data)[0].render(scale=150 / 72).to_pil()
    return [code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def test_return_flow_end_to_end(app, client, session, world, login_as, runner, api):
    kit = handed_over(session, world)
    prefect = api(world.prefecture_nord)
    before = status_totals(prefect)
    assert (before["returned"], before["restocked"], before["defective"]) == (0, 0, 0)

    # the family brings both devices back: the tablet fine, the key broken
    login_as(world.coordinator)
    page = client.get("/retours")
    assert page.status_code == 200 and 'data-scan-page="returns"' in page.get_data(as_text=True)
    ok = client.post("/retours/scan", data={"code": "SN-TAB-1", "state": "retourne"}, headers=JSON)
    assert ok.status_code == 200 and ok.get_json()["outcome"] == "picked", ok.get_json()
    again = client.post("/retours/scan", data={"code": "sn-tab-1", "state": "retourne"}, headers=JSON)
    assert again.get_json()["outcome"] == "already"
    no_reason = client.post("/retours/scan", data={"code": "SN-CLE-1", "state": "defectueux"}, headers=JSON)
    assert no_reason.status_code == 422 and "commentaire est obligatoire" in no_reason.get_json()["message"]
    broken = client.post(
        "/retours/scan", data={"code": "SN-CLE-1", "state": "defectueux", "reason": "ne s'allume plus"}
    )
    assert broken.status_code == 302
    # nothing moved yet: the draft only lists the devices
    assert device_status(session, "SN-TAB-1") is DeviceStatus.HANDED_OVER
    draft_page = client.get("/retours").get_data(as_text=True)
    assert "Łukasz Wiśniewski" in draft_page and "SN-CLE-1" in draft_page

    recorded = client.post("/retours/enregistrer")
    assert recorded.status_code == 302
    restitution = session.scalar(sa.select(Restitution).where(Restitution.number.is_not(None)))
    assert recorded.headers["Location"].endswith(f"/restitutions/{restitution.id}")
    assert restitution.number.startswith("RS-59-") and len(restitution.lines) == 2
    assert device_status(session, "SN-TAB-1") is DeviceStatus.RETURNED
    assert device_status(session, "SN-CLE-1") is DeviceStatus.DEFECTIVE
    assert events_of(session, "SN-TAB-1")[-1] == "return_by_family"
    assert events_of(session, "SN-CLE-1")[-1] == "return_defective"
    assert (
        session.scalar(
            sa.select(sa.func.count(Assignment.id)).where(
                Assignment.pupil_id == kit.pupil.id, Assignment.cancelled_at.is_(None)
            )
        )
        == 0
    )  # the loan is over: the pupil has no device any more
    waiting = pupils.waiting_list_query(world.coordinator)
    assert (
        session.scalar(sa.select(sa.func.count()).where(waiting.c.pupil_id == kit.pupil.id)) == 0
    )  # nor waits
    recount_clean(runner)
    totals = status_totals(prefect)
    assert (totals["returned"], totals["restocked"], totals["defective"]) == (2, 0, 1)

    # the family's receipt: number and the pupil's name, printed exactly
    receipt = client.get(f"/restitutions/{restitution.id}/recu.pdf")
    assert receipt.status_code == 200 and receipt.mimetype == "application/pdf"
    assert receipt.headers["Cache-Control"] == "no-store"
    text = pdf_text(receipt.data)
    assert restitution.number in text and "Łukasz Wiśniewski" in text and "ne s'allume plus" in text
    assert "/recu.pdf" in client.get(f"/restitutions/{restitution.id}").get_data(as_text=True)

    # the coordinator's home page: two devices to send back
    assert "retours à renvoyer à l’entrepôt" in client.get("/").get_data(as_text=True).lower()

    # the return slip: built from what the organisation holds, issued, QR, shipped
    new = client.get("/retours/bordereaux/nouveau").get_data(as_text=True)
    assert "SN-TAB-1" in new and "Entrepôt Lille" in new
    line_ids = [ln.id for ln in restitution.lines]
    created = client.post("/retours/bordereaux/nouveau", data={"line": [str(i) for i in line_ids]})
    assert created.status_code == 302, created.get_data(as_text=True)
    rslip = session.scalar(sa.select(ReturnSlip))
    assert rslip.number.startswith("RT-59-") and rslip.status is SlipStatus.ISSUED
    assert rslip.warehouse_id == world.wh_lille.id
    assert return_slips.held(session, world.assoc_roubaix.id) == []
    printed = client.get(f"/retours/bordereaux/{rslip.number}.pdf")
    assert printed.status_code == 200
    (url,) = qr_codes(printed.data)
    assert url == f"{BASE}/r/{return_slips.token_for(rslip, 'secret-de-test')}"
    assert "Łukasz" not in pdf_text(printed.data)  # a return slip carries references only
    assert client.post(f"/retours/bordereaux/{rslip.number}/expedier").status_code == 302
    session.rollback()
    assert session.get(ReturnSlip, rslip.id).status is SlipStatus.SHIPPED
    recount_clean(runner)

    # the warehouse: the QR opens the reception page, with references and no name
    login_as(world.warehouse)
    landing = client.get(urlsplit(url).path)
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/reception")
    reception = client.get(landing.headers["Location"]).get_data(as_text=True)
    assert kit.pupil.reference in reception and "Łukasz" not in reception and "Wiśniewski" not in reception
    assert "Łukasz" not in client.get(f"/retours/bordereaux/{rslip.number}").get_data(as_text=True)
    scan_url = f"/retours/bordereaux/{rslip.number}/reception/scan"
    fine = client.post(scan_url, data={"code": "SN-TAB-1", "outcome": "en_stock"}, headers=JSON)
    assert fine.get_json()["outcome"] == "picked", fine.get_json()
    twice = client.post(scan_url, data={"code": "SN-TAB-1", "outcome": "en_stock"}, headers=JSON)
    assert twice.get_json()["outcome"] == "already"
    stranger = client.post(scan_url, data={"code": "SN-LILLE-1", "outcome": "en_stock"}, headers=JSON)
    assert (
        stranger.status_code == 422
        and "n'est PAS sur le bordereau de retour" in stranger.get_json()["message"]
    )
    dead = client.post(
        scan_url,
        data={"code": "SN-CLE-1", "outcome": "defectueux", "comment": "batterie gonflée"},
        headers=JSON,
    )
    assert dead.get_json()["outcome"] == "picked", dead.get_json()
    assert device_status(session, "SN-TAB-1") is DeviceStatus.IN_STOCK
    assert device_status(session, "SN-CLE-1") is DeviceStatus.DEFECTIVE
    assert events_of(session, "SN-TAB-1")[-1] == "restock"
    assert events_of(session, "SN-CLE-1")[-1] == "confirm_defective"
    assert session.get(ReturnSlip, rslip.id).status is SlipStatus.RECEIVED
    assert return_slip_events(session, rslip.number) == ["create", "issue", "ship", "received"]
    recount_clean(runner)
    totals = status_totals(prefect)
    assert (totals["returned"], totals["restocked"], totals["defective"]) == (2, 1, 1)
    login_as(world.prefecture_nord)
    board = client.get("/tableau").get_data(as_text=True)
    assert 'data-returned="2" data-restocked="1" data-defective="1"' in board
    nord = board.split('data-code="QN05981M"', 1)[1].split("</tr>", 1)[0]  # the Roubaix QPV's row
    for column, value in (("returned", 2), ("restocked", 1), ("defective", 1)):
        assert f'data-col="{column}" data-value="{value}"' in nord
    # the restocked tablet can be assigned again
    session.rollback()
    assert (
        session.scalar(sa.select(Device.status).where(Device.serial == "SN-TAB-1")) is DeviceStatus.IN_STOCK
    )


def test_a_device_of_another_organisation_is_refused_and_nothing_changes(client, session, world, login_as):
    handed_over(session, world)
    login_as(world.coordinator_idf)
    refused = client.post("/retours/scan", data={"code": "SN-TAB-1", "state": "retourne"}, headers=JSON)
    assert refused.status_code == 422
    assert "n'a pas été remis par votre structure" in refused.get_json()["message"]
    assert client.post("/retours/enregistrer").status_code == 302
    assert device_status(session, "SN-TAB-1") is DeviceStatus.HANDED_OVER
    assert session.scalar(sa.select(sa.func.count(RestitutionLine.id))) == 0
    assert (
        session.scalar(sa.select(sa.func.count(Restitution.id)).where(Restitution.number.is_not(None))) == 0
    )
    # and its restitutions are not theirs to read either
    other = returns.record_return(
        session, [returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED)], by=world.coordinator
    )
    session.commit()
    assert client.get(f"/restitutions/{other.id}").status_code == 404
    assert client.get(f"/restitutions/{other.id}/recu.pdf").status_code == 404


def test_a_device_of_another_pupil_waits_for_its_own_restitution(session, world):
    handed_over(session, world, 1)
    handed_over(session, world, 2, "Şükrü", "Yılmaz")
    first = returns.scan(session, "SN-TAB-1", state=DeviceStatus.RETURNED, by=world.coordinator)
    other = returns.scan(session, "SN-TAB-2", state=DeviceStatus.RETURNED, by=world.coordinator)
    assert (first.outcome, other.outcome) == ("picked", "refused")
    assert "une restitution par élève" in other.message


def test_recording_twice_is_harmless_and_the_api_retry_gives_the_same_restitution(session, world):
    handed_over(session, world)
    items = [
        returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED),
        returns.ReturnItem("SN-CLE-1", DeviceStatus.RETURNED),
    ]
    done = returns.record_return(session, items, by=world.coordinator)
    session.commit()
    again = returns.record_return(session, items, by=world.coordinator)
    assert again.id == done.id
    assert returns.record(session, done, by=world.coordinator) is done
    session.commit()
    assert session.scalar(sa.select(sa.func.count(RestitutionLine.id))) == 2


def test_api_records_a_return_and_serves_its_receipt_to_the_same_organisation_only(session, world, api):
    handed_over(session, world)
    coordinator = api(world.coordinator)
    answer = coordinator.post(
        "/api/v1/restitutions",
        json={
            "lines": [
                {"serial": "SN-TAB-1", "state": "retourne"},
                {"serial": "SN-CLE-1", "state": "defectueux", "reason": "écran fissuré"},
            ]
        },
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["number"].startswith("RS-59-") and body["pupil"]
    assert {ln["serial"]: ln["state"] for ln in body["lines"]} == {
        "SN-TAB-1": "retourne",
        "SN-CLE-1": "defectueux",
    }
    assert body["receipt_url"] == f"{BASE}/api/v1/restitutions/{body['id']}/receipt"
    receipt = coordinator.get(urlsplit(body["receipt_url"]).path)
    assert receipt.status_code == 200 and receipt.mimetype == "application/pdf"
    assert receipt.headers["Cache-Control"] == "no-store"
    assert "Łukasz Wiśniewski" in pdf_text(receipt.data)
    assert api(world.coordinator_idf).get(urlsplit(body["receipt_url"]).path).status_code == 404
    assert api(world.warehouse).get(urlsplit(body["receipt_url"]).path).status_code in (403, 404)
    # another organisation's coordinator cannot take these devices back
    refused = api(world.coordinator_idf).post(
        "/api/v1/restitutions", json={"lines": [{"serial": "SN-TAB-1", "state": "retourne"}]}
    )
    assert refused.status_code in (404, 409)
    assert "openapi" in coordinator.get("/api/v1/openapi.json").get_data(as_text=True)
    assert (
        "/restitutions/{restitution_id}/receipt"
        in coordinator.get("/api/v1/openapi.json").get_json()["paths"]
    )


def _second_coordinator(session, world):
    user = accounts.create_user(
        session,
        email="coord2.roubaix@test.fr",
        role=Role.COORDINATOR,
        password=PASSWORD,
        organisation_id=world.assoc_roubaix.id,
    )
    session.commit()
    return user


def test_two_coordinators_recording_the_same_device_cannot_both_win(app, session, world):
    handed_over(session, world)
    other = _second_coordinator(session, world)
    drafts = []
    for user in (world.coordinator, other):
        result = returns.scan(session, "SN-TAB-1", state=DeviceStatus.RETURNED, by=user)
        assert result.outcome == "picked"
        drafts.append(returns.open_draft(session, user).id)
        session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(draft_id: int, user_id: int) -> None:
        with app.app_context(), db.new_session(write=True) as s:
            barrier.wait()
            try:
                from logistique.models import User

                returns.record(s, s.get(Restitution, draft_id), by=s.get(User, user_id))
                s.commit()
                result = "won"
            except (Conflict, InvalidTransition, NotFound):
                s.rollback()
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [
        threading.Thread(target=attempt, args=(d, u.id))
        for d, u in zip(drafts, (world.coordinator, other), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused", "won"]
    session.rollback()
    assert events_of(session, "SN-TAB-1").count("return_by_family") == 1
    assert (
        session.scalar(
            sa.select(sa.func.count(RestitutionLine.id)).where(RestitutionLine.outcome.is_not(None))
        )
        == 1
    )


def test_two_warehouse_volunteers_checking_the_same_device_cannot_both_win(app, session, world):
    handed_over(session, world)
    restitution = returns.record_return(
        session, [returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED)], by=world.coordinator
    )
    rslip = return_slips.create_return_slip(
        session,
        organisation=world.assoc_roubaix,
        line_ids=[restitution.lines[0].id],
        by=world.coordinator,
        issue=True,
    )
    return_slips.ship_return_slip(session, rslip, by=world.coordinator)
    session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(verdict: DeviceStatus) -> None:
        with app.app_context(), db.new_session(write=True) as s:
            from logistique.models import User

            barrier.wait()
            try:
                result = return_slips.check_device(
                    s,
                    s.get(ReturnSlip, rslip.id),
                    "SN-TAB-1",
                    outcome=verdict,
                    comment="rayé",
                    by=s.get(User, world.warehouse.id),
                )
                s.commit()
                outcome = result.outcome
            except (Conflict, InvalidTransition):
                s.rollback()
                outcome = "refused"
            with lock:
                outcomes.append(outcome)

    threads = [
        threading.Thread(target=attempt, args=(v,)) for v in (DeviceStatus.IN_STOCK, DeviceStatus.DEFECTIVE)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("picked") == 1, outcomes
    session.rollback()
    journal = events_of(session, "SN-TAB-1")
    assert journal.count("restock") + journal.count("mark_defective") == 1


def test_a_return_slip_is_refused_to_another_organisation_and_its_devices_stay_held(session, world):
    handed_over(session, world)
    restitution = returns.record_return(
        session, [returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED)], by=world.coordinator
    )
    session.commit()
    try:
        return_slips.create_return_slip(
            session,
            organisation=world.assoc_roubaix,
            line_ids=[restitution.lines[0].id],
            by=world.coordinator_idf,
        )
    except NotFound:
        pass
    else:  # pragma: no cover
        raise AssertionError("a coordinator of Bobigny built a return slip for Roubaix")
    session.rollback()
    assert [ln.device.serial for ln in return_slips.held(session, world.assoc_roubaix.id)] == ["SN-TAB-1"]


def test_the_returns_page_is_never_kept_offline_but_the_warehouse_check_page_is(
    client, session, world, login_as
):
    """The draft names the pupil: never kept on the phone; the warehouse page has references only."""
    handed_over(session, world)
    restitution = returns.record_return(
        session, [returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED)], by=world.coordinator
    )
    rslip = return_slips.create_return_slip(
        session, organisation=world.assoc_roubaix, line_ids=[restitution.lines[0].id], by=world.coordinator
    )
    session.commit()
    login_as(world.coordinator)
    assert "X-Offline-Cache" not in client.get("/retours").headers
    login_as(world.warehouse)
    page = client.get(f"/retours/bordereaux/{rslip.number}/reception")
    assert page.status_code == 200 and page.headers["X-Offline-Cache"] == "page"
    assert "pas encore parti" in page.get_data(as_text=True)  # a draft is not checked


def test_a_device_missing_from_the_return_parcel_is_declared_lost_and_the_slip_is_received(
    session, world, runner
):
    handed_over(session, world)
    restitution = returns.record_return(
        session,
        [
            returns.ReturnItem("SN-TAB-1", DeviceStatus.RETURNED),
            returns.ReturnItem("SN-CLE-1", DeviceStatus.RETURNED),
        ],
        by=world.coordinator,
    )
    rslip = return_slips.create_return_slip(
        session,
        organisation=world.assoc_roubaix,
        line_ids=[line.id for line in restitution.lines],
        by=world.coordinator,
        issue=True,
    )
    return_slips.ship_return_slip(session, rslip, by=world.coordinator)
    session.commit()
    check = return_slips.check_device
    assert (
        check(session, rslip, "SN-TAB-1", outcome=DeviceStatus.IN_STOCK, by=world.warehouse).outcome
        == "picked"
    )
    unexplained = check(session, rslip, "SN-CLE-1", outcome=DeviceStatus.LOST, by=world.warehouse)
    assert unexplained.outcome == "refused" and "manque" in unexplained.message
    lost = check(
        session,
        rslip,
        "SN-CLE-1",
        outcome=DeviceStatus.LOST,
        comment="pas dans le carton",
        by=world.warehouse,
    )
    assert lost.outcome == "picked" and "manquant" in lost.message
    session.commit()
    assert rslip.status is SlipStatus.RECEIVED
    assert device_status(session, "SN-CLE-1") is DeviceStatus.LOST
    assert events_of(session, "SN-CLE-1")[-1] == "mark_lost"
    recount_clean(runner)
