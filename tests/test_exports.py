"""Spreadsheet exports: no text ever becomes a formula in an XLSX file, and the device CSV streams."""

from __future__ import annotations

import contextvars
import csv
import io
from datetime import date

from flask.testing import FlaskClient
from openpyxl import load_workbook

from logistique.exports import xlsx_bytes

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
