"""Home pages per role and the distribution-day list (issue 13, points 5 and 6): each figure is what a
coordinator or a volunteer would count by hand; names reach only the coordinators of the organisation."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from logistique.domain import worklists
from logistique.domain.errors import OutOfScope
from logistique.models import NeedKind, SlipStatus

from .conftest import login
from .factories import (
    add_pupil,
    bundle,
    hand_over,
    issued_slip,
    pdf_text,
    pick_all,
    received_slip,
    shipped_slip,
)


def _client(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def test_paris_midnight_is_the_local_day_in_utc():
    # 29 March 2026, the night France goes to summer time: midnight in Paris is 23:00 UTC the day before
    assert worklists.paris_midnight(datetime(2026, 3, 29, 12, 0)) == datetime(2026, 3, 28, 23, 0)
    assert worklists.paris_midnight(datetime(2026, 7, 1, 21, 59)) == datetime(2026, 6, 30, 22, 0)
    assert worklists.paris_midnight(datetime(2026, 7, 1, 22, 1)) == datetime(2026, 7, 1, 22, 0)


def test_coordinator_home_counts_waiting_arriving_and_to_hand_over(app, session, world):
    lea = bundle(session, world, 1)  # tablet + key assigned
    tom = bundle(session, world, 2, "Tom")
    add_pupil(session, world, "Inès", "Attente", needs="tablette+ordinateur")  # waits for two devices
    received_slip(session, world, lea.serials)
    shipped = shipped_slip(session, world, [tom.tablet.serial])
    session.commit()

    home = worklists.coordinator_home(session, world.coordinator, datetime.now())
    # Tom still needs his key? No: his key is assigned (bundle); Inès waits for a tablet and a laptop
    assert home.waiting == {NeedKind.TABLET: 1, NeedKind.LAPTOP: 1, NeedKind.CONNECTION: 0}
    assert [s.number for s in home.to_receive] == [shipped.number]
    assert home.to_receive[0].devices == 1 and home.to_receive[0].counterpart == "Entrepôt Lille"
    assert home.received_not_handed == 2  # Léa's tablet and key
    assert home.handovers_this_week == 0

    hand_over(session, world, lea.pupil, [lea.tablet.serial])
    session.commit()
    home = worklists.coordinator_home(session, world.coordinator, datetime.now())
    assert home.received_not_handed == 1 and home.handovers_this_week == 1

    page = _client(app, world.coordinator).get("/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert shipped.number in text and "Colis à réceptionner" in text
    assert "remise cette semaine" in text


def test_another_organisation_sees_none_of_it(session, world):
    lea = bundle(session, world, 1)
    received_slip(session, world, lea.serials)
    session.commit()
    home = worklists.coordinator_home(session, world.coordinator_idf, datetime.now())
    assert home.to_receive == [] and home.received_not_handed == 0
    assert worklists.distribution_list(session, world.coordinator_idf) == []
    for user in (world.admin, world.warehouse, world.prefecture):
        with pytest.raises(OutOfScope):
            worklists.distribution_list(session, user)


def test_warehouse_home_lists_slips_to_prepare_oldest_first_and_todays_work(app, session, world):
    lea = bundle(session, world, 1)
    tom = bundle(session, world, 2, "Tom")
    first = issued_slip(session, world, [lea.tablet.serial])
    second = issued_slip(session, world, [tom.tablet.serial])
    shipped = shipped_slip(session, world, lea.serials[1:] + tom.serials[1:])
    pick_all(session, world, first)
    session.commit()

    home = worklists.warehouse_home(session, world.warehouse, datetime.now())
    assert [s.number for s in home.to_prepare] == [first.number, second.number]
    assert {s.status for s in home.to_prepare} == {SlipStatus.PREPARED, SlipStatus.ISSUED}
    assert home.to_prepare[0].counterpart == "Association Roubaix"
    assert home.picked_today == 3  # two keys on the shipped slip, Léa's tablet
    assert home.shipped_today == 1 and shipped.number not in [s.number for s in home.to_prepare]
    assert home.stock_received_today >= 4  # the world's devices and the bundles', received today

    amiens = worklists.warehouse_home(session, world.warehouse_amiens, datetime.now())
    assert amiens.to_prepare == [] and amiens.picked_today == 0 and amiens.shipped_today == 0

    text = _client(app, world.warehouse).get("/").get_data(as_text=True)
    assert first.number in text and second.number in text and "Bordereaux à préparer" in text
    assert "Léa" not in text  # volunteers never see names


def test_distribution_list_names_the_families_to_call_in_html_csv_and_pdf(app, session, world):
    lea = bundle(session, world, 1, "Łukasz", "Wiśniewski")
    tom = bundle(session, world, 2, "Tom", "Attend")
    received_slip(session, world, lea.serials)
    shipped_slip(session, world, tom.serials)  # not arrived yet: not on the list
    session.commit()

    phone = _client(app, world.coordinator)
    page = phone.get("/distribution")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "WIŚNIEWSKI Łukasz" in text and "Parent Wiśniewski" in text and "06 12 34 56 78" in text
    assert "Attend" not in text

    response = phone.get("/distribution.csv")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Nom", "Prénom", "Référence"]
    assert sorted(r[8] for r in rows[1:]) == sorted(lea.serials)
    assert {(r[0], r[1], r[2], r[5]) for r in rows[1:]} == {
        ("Wiśniewski", "Łukasz", lea.pupil.reference, "06 12 34 56 78")
    }

    response = phone.get("/distribution.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    printed = " ".join(pdf_text(response.get_data()).split())
    assert "WIŚNIEWSKI Łukasz" in printed and "Parent Wiśniewski" in printed
    assert lea.tablet.asset_tag in printed and "Attend" not in printed

    # once handed over, the device leaves the list
    hand_over(session, world, lea.pupil, lea.serials)
    session.commit()
    assert "Aucun équipement reçu" in phone.get("/distribution").get_data(as_text=True)


@pytest.mark.parametrize("who", ["admin", "warehouse", "prefecture", "coordinator_idf"])
@pytest.mark.parametrize("path", ["/distribution", "/distribution.csv", "/distribution.pdf"])
def test_no_one_else_gets_the_names(app, session, world, who, path):
    lea = bundle(session, world, 1, "Łukasz", "Wiśniewski")
    received_slip(session, world, lea.serials)
    session.commit()
    response = _client(app, getattr(world, who)).get(path)
    if who != "coordinator_idf":
        assert response.status_code == 403
        return
    # another organisation's coordinator gets their own (empty) list, never these names
    assert response.status_code == 200
    data = response.get_data()
    text = pdf_text(data) if path.endswith(".pdf") else data.decode("utf-8-sig")
    assert "Wiśniewski" not in text and lea.pupil.reference not in text
