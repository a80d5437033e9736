"""Spreadsheet exports: no text ever becomes a formula in an XLSX file, and the device CSV streams."""

from __future__ import annotations

import contextvars
import csv
import io
import random
from datetime import date, datetime

import sqlalchemy as sa
from flask.testing import FlaskClient
from openpyxl import load_workbook

from logistique.exports import csv_bytes, csv_text_chunks, xlsx_bytes
from logistique.models import Device

from .conftest import login
from .factories import bundle

HYPERLINK = '=HYPERLINK("http://x","y")'


def cells(data: bytes) -> list[list]:
    sheet = load_workbook(io.BytesIO(data)).active
    return [list(row) for row in sheet.iter_rows()]


def test_text_that_looks_like_a_formula_is_written_as_text():
    texts = [HYPERLINK, "=1+1", "@SUM(A1)", "+33 6 12", "-x", "#N/A", "#REF!"]
    data = xlsx_bytes("Feuille", ["texte", "nombre", "date"], [[t, 12, date(2020, 5, 4)] for t in texts])
    rows = cells(data)
    assert [c.value for c in rows[0]] == ["texte", "nombre", "date"]
    for text, (cell, number, day) in zip(texts, rows[1:], strict=True):
        assert (cell.value, cell.data_type) == (text, "s")
        assert (number.value, number.data_type) == (12, "n")
        assert day.value.date() == date(2020, 5, 4)


def test_an_organisation_named_like_a_formula_comes_out_as_text(session, world, login_as):
    world.wh_lille.name = HYPERLINK
    bundle(session, world, 1)
    session.commit()
    client = login_as(world.prefecture)

    rows = cells(client.get("/tableau/equipements.xlsx").data)
    header = [c.value for c in rows[0]]
    warehouse = [row[header.index("Entrepôt")] for row in rows[1:]]
    assert len(warehouse) == 2
    assert {(c.value, c.data_type) for c in warehouse} == {(HYPERLINK, "s")}

    listing = client.get("/tableau/equipements.csv").data.decode("utf-8-sig")
    exported = list(csv.reader(io.StringIO(listing), delimiter=";"))
    assert {row[header.index("Entrepôt")] for row in exported[1:]} == {"'" + HYPERLINK}


def test_the_device_csv_is_streamed_from_the_database(session, world, app):
    for n in range(1, 4):
        bundle(session, world, n)
    session.commit()
    client = FlaskClient(app, app.response_class, use_cookies=True)  # not buffered: as a server sends it
    assert login(client, world.prefecture).status_code == 302

    def download():  # a context of its own, as a server's request: its session closes with the response
        response = client.get("/tableau/equipements.csv")
        body = b"".join(response.response)
        response.close()
        return response, body

    response, body = contextvars.Context().run(download)
    assert response.status_code == 200 and response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "Content-Length" not in response.headers
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert sorted(r[0] for r in rows[1:]) == sorted(
        f"SN-{k}-{n}" for n in range(1, 4) for k in ("TAB", "CLE")
    )
    assert body.startswith("\ufeff".encode()) and body.endswith(b"\r\n")


def test_text_batches_come_out_as_the_csv_writer_and_formula_guard_write_them():
    """The fast CSV path (batches joined as they are) gives the bytes of the cell-by-cell path, whatever
    the cells hold: separators, quotes, line breaks, formula starts, numbers with a sign, nothing."""
    tricky = ["SN-1", "-12AB", "-1,5", "+33 6 12", "@SUM(A1)", HYPERLINK, "a;b", 'dit "oui"',
              "deux\r\nlignes", "", None, "Clé 4G / routeur", "x-y", "-", "=", "'déjà"]  # fmt: skip
    rng = random.Random(11)
    headers = ["A", "B", "C"]
    plain = [[f"SN-{i}", f"EQ-{i}", "23/11/2026"] for i in range(30)]
    batches = [plain[:10], [*plain[10:20], ["SN-X", "=1+1", "01/01/2026"]], plain[20:]]
    batches += [[[rng.choice(tricky) for _ in headers] for _ in range(20)] for _ in range(30)]
    batches += (
        [[[t, "x", "y"]] for t in tricky]
        + [[["x", t, "y"]] for t in tricky]
        + [[["x", "y", t]] for t in tricky]
    )
    rows = [row for batch in batches for row in batch]

    fast = b"".join(csv_text_chunks(headers, batches))
    assert fast == csv_bytes(headers, rows)
    back = list(csv.reader(io.StringIO(fast.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert back[21] == ["SN-X", "'=1+1", "01/01/2026"]
    assert not [cell for row in back for cell in row if cell[:1] in ("=", "+", "@")]


def test_the_device_csv_gives_each_device_its_paris_day_and_guards_its_serial(session, world, app):
    """Days of the last change on both sides of the daylight-saving changes and of midnight in Paris, on
    the engine under test; a serial that would start a formula is written as text."""
    moments = {  # UTC → day in Paris
        "SN-TAB-1": (datetime(2026, 3, 29, 0, 30), "29/03/2026"),  # 01:30 in Paris, winter time
        "SN-CLE-1": (datetime(2026, 3, 28, 23, 30), "29/03/2026"),  # 00:30 in Paris
        "SN-TAB-2": (datetime(2026, 10, 24, 22, 30), "25/10/2026"),  # 00:30 summer time
        "SN-CLE-2": (datetime(2026, 10, 24, 21, 59, 59, 999999), "24/10/2026"),  # 23:59:59 summer time
        "SN-TAB-3": (datetime(2026, 12, 31, 23, 0), "01/01/2027"),
        "SN-CLE-3": (datetime(2026, 7, 31, 21, 59), "31/07/2026"),
    }
    for n in range(1, 4):
        bundle(session, world, n)
    session.flush()
    for serial, (moment, _day) in moments.items():
        session.execute(sa.update(Device).where(Device.serial == serial).values(updated_at=moment))
    session.execute(sa.update(Device).where(Device.serial == "SN-CLE-3").values(serial="-12AB"))
    session.commit()
    client = FlaskClient(app, app.response_class, use_cookies=True)
    assert login(client, world.prefecture).status_code == 302

    def download():
        response = client.get("/tableau/equipements.csv")
        body = b"".join(response.response)
        response.close()
        return body

    rows = list(
        csv.reader(io.StringIO(contextvars.Context().run(download).decode("utf-8-sig")), delimiter=";")
    )
    days = {row[0]: row[-1] for row in rows[1:]}
    expected = {serial: day for serial, (_moment, day) in moments.items()}
    expected["'-12AB"] = expected.pop("SN-CLE-3")
    assert days == expected
    sheet = cells(client.get("/tableau/equipements.xlsx").data)
    assert {row[0].value: row[-1].value.strftime("%d/%m/%Y") for row in sheet[1:]} == {
        serial: day for serial, (_moment, day) in moments.items() if serial != "SN-CLE-3"
    } | {"-12AB": "31/07/2026"}


def test_the_board_xlsx_formats_the_euros_and_the_shares_of_needs_and_nothing_else(session, world, login_as):
    bundle(session, world, 1)
    session.commit()
    sheet = cells(login_as(world.prefecture).get("/tableau.xlsx").data)
    header = [c.value for c in sheet[0]]
    formats = {title: cell.number_format for title, cell in zip(header, sheet[-1], strict=True)}
    assert formats["Engagé (€)"] == '#,##0.00 "€"'
    assert formats["Expédiés (% des besoins)"] == formats["Remis (% des besoins)"] == "0.0"
    after = header[header.index("Engagé (€)") + 1 :]  # the returns' counts, since the return slips
    assert after and {formats[title] for title in after} == {"General"}
