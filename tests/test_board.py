"""The status board pages, exports and summary PDF: scope, figures that read back, drill-down, no names."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from logistique import charts
from logistique.db import utcnow
from logistique.domain import assignments, census, devices, handover, money, pupils, slips, status
from logistique.models import (
    Department,
    DeviceCondition,
    EnvelopeKind,
    HandoverMode,
    NeedKind,
    Qpv,
    ReceptionState,
    Slip,
)
from logistique.pdf import SummaryDocument, SummaryEnvelope, SummaryRow, summary_pdf
from logistique.views.board import DEVICE_HEADERS

from .conftest import PASSWORD
from .test_access_matrix import signature_png

BOM = b"\xef\xbb\xbf"

# Names nobody else uses, so that finding one anywhere is a leak and not a coincidence.
NAMES = [
    "Zéphyrine",
    "Quiblemont",
    "Barnabé",
    "Anatole",
    "Vrillecourt",
    "Ondine",
    "Philomène",
    "Crapoussin",
    "Eudoxe",
    "Séraphin",
    "Tournebroche",
    "Mélisande",
    "Cunégonde",
    "Pimprenelle",
    "Gontran",
]


def _pupil(session, world, org, qpv: str, first: str, last: str, guardian: str, phone: str, needs: str):
    return pupils.register_pupil(
        session,
        pupils.PupilData(first, last, "CM2", "0750654D", qpv, guardian, phone, needs),
        by=None,
        organisation=org,
    )


def _device(session, lot, model, serial: str):
    return devices.receive_device(
        session, lot=lot, model=model, serial=serial, condition=DeviceCondition.REFURBISHED, by=None
    )


def _deliver(session, world, org, serials: list[str], states: dict[str, ReceptionState] | None = None):
    """A slip for ``serials``, picked, shipped and received (with the given reception states)."""
    slip = slips.create_slip(session, destination=org, serials=serials, by=None, issue=True)
    for serial in serials:
        slips.scan_for_pick(session, slip, serial, by=None)
    slips.ship(session, slip, by=None)
    states = states or {}
    slips.receive(
        session,
        slip,
        [slips.ReceptionLine(s, states.get(s, ReceptionState.RECEIVED), "colis ouvert") for s in serials],
        by=None,
    )
    return slip


@pytest.fixture
def board(session, world) -> SimpleNamespace:
    """Nord: pupils at every stage (a handover, a damaged device, a shipped one); Somme: a stuck slip and a
    missing device; Seine-Saint-Denis: one assignment. A cité éducative 2020 envelope pays for some."""
    b = SimpleNamespace(world=world)
    b.cite_envelope = money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="32",
            kind=EnvelopeKind.CITE_2020,
            label="Cité éducative de Roubaix 2020",
            amount_cents=9_000_00,
            annual_amount_cents=80_000_00,
            cite_educative_code="cite-064",
        ),
        by=None,
    )
    b.cite_lot = money.save_lot(
        session,
        money.LotData(
            reference="LOT-CITE",
            supplier="Emmaüs Connect",
            envelope_id=b.cite_envelope.id,
            warehouse_id=world.wh_lille.id,
            unit_costs={world.tablet.id: 14000, world.laptop.id: 21000, world.key.id: 6000},
        ),
        by=None,
    )
    roubaix, amiens, bobigny = world.assoc_roubaix, world.assoc_amiens, world.assoc_bobigny
    zephyrine = _pupil(
        session,
        world,
        roubaix,
        "QN05981M",
        "Zéphyrine",
        "Quiblemont",
        "Barnabé Quiblemont",
        "06 10 00 00 01",
        "tablette+connexion",
    )
    anatole = _pupil(
        session,
        world,
        roubaix,
        "QN05981M",
        "Anatole",
        "Vrillecourt",
        "Ondine Vrillecourt",
        "06 10 00 00 02",
        "ordinateur+tablette",
    )
    philomene = _pupil(
        session,
        world,
        roubaix,
        "QP059001",
        "Philomène",
        "Crapoussin",
        "Eudoxe Crapoussin",
        "06 10 00 00 03",
        "tablette",
    )
    seraphin = _pupil(
        session,
        world,
        amiens,
        "QN08001M",
        "Séraphin",
        "Tournebroche",
        "Mélisande Tournebroche",
        "06 10 00 00 04",
        "tablette+ordinateur",
    )
    cunegonde = _pupil(
        session,
        world,
        bobigny,
        "QN09301M",
        "Cunégonde",
        "Pimprenelle",
        "Gontran Pimprenelle",
        "06 10 00 00 05",
        "tablette",
    )
    census.declare_needs(session, roubaix, {("QN05981M", NeedKind.TABLET): 6}, by=None)
    census.declare_needs(session, amiens, {("QN08001M", NeedKind.TABLET): 4}, by=None)

    def give(pupil, lot, model, serial):
        device = _device(session, lot, model, serial)
        assignments.assign(session, pupil=pupil, device=device, by=None)
        return device

    # Nord: Zéphyrine's tablet handed over, her key only assigned; Anatole's laptop shipped, tablet damaged
    give(zephyrine, b.cite_lot, world.tablet, "SN-NORD-TAB")
    give(zephyrine, world.lot, world.key, "SN-NORD-KEY")
    give(anatole, world.lot, world.laptop, "SN-NORD-LAP")
    give(anatole, b.cite_lot, world.tablet, "SN-NORD-TAB2")
    give(philomene, world.lot, world.tablet, "SN-NORD-TAB3")
    b.nord_slip = _deliver(
        session,
        world,
        roubaix,
        ["SN-NORD-TAB", "SN-NORD-TAB2"],
        {"SN-NORD-TAB2": ReceptionState.DAMAGED},
    )
    handover.hand_over(
        session,
        pupil=zephyrine,
        serials=["SN-NORD-TAB"],
        receiver_name="Barnabé Quiblemont",
        relation="père",
        mode=HandoverMode.GIFT,
        signature=signature_png(),
        by=None,
    )
    b.shipped_slip = slips.create_slip(
        session, destination=roubaix, serials=["SN-NORD-LAP"], by=None, issue=True
    )
    slips.scan_for_pick(session, b.shipped_slip, "SN-NORD-LAP", by=None)
    slips.ship(session, b.shipped_slip, by=None)
    b.philomene_slip = slips.create_slip(
        session, destination=roubaix, serials=["SN-NORD-TAB3"], by=None, issue=True
    )
    # Somme: a missing tablet, and a laptop whose slip was issued four days ago and never left
    give(seraphin, world.lot_amiens, world.tablet, "SN-SOMME-TAB")
    give(seraphin, world.lot_amiens, world.laptop, "SN-SOMME-LAP")
    b.somme_delivered = _deliver(
        session, world, amiens, ["SN-SOMME-TAB"], {"SN-SOMME-TAB": ReceptionState.MISSING}
    )
    b.somme_stuck = slips.create_slip(
        session, destination=amiens, serials=["SN-SOMME-LAP"], by=None, issue=True
    )
    # Seine-Saint-Denis (another region)
    give(cunegonde, world.lot_idf, world.tablet, "SN-IDF-TAB")
    session.flush()
    session.execute(
        sa.update(Slip).where(Slip.id == b.somme_stuck.id).values(issued_at=utcnow() - timedelta(days=4))
    )
    session.commit()
    b.pupils = [zephyrine, anatole, philomene, seraphin, cunegonde]
    return b


# ---------------------------------------------------------------- reading pages back


class _BoardTable(HTMLParser):
    """The figures of the board table: {row code: {column: value}}, from data-code / data-col / data-value."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, int]] = {}
        self.links: list[str] = []
        self._in_board = False
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "table" and "board-table" in (a.get("class") or ""):
            self._in_board = True
        if self._in_board and tag == "tr" and "data-code" in a:
            self._row = a["data-code"]
            self.rows[self._row] = {}
        if self._in_board and self._row and "data-col" in a and "data-value" in a:
            self.rows[self._row][a["data-col"]] = int(a["data-value"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_board = False
        if tag == "tr":
            self._row = None


def read_page(response) -> _BoardTable:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    parser = _BoardTable()
    parser.feed(response.get_data(as_text=True))
    return parser


def pdf_text(data: bytes) -> tuple[int, str]:
    document = pdfium.PdfDocument(data)
    try:
        pages = len(document)
        text = " ".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()
    return pages, " ".join(text.split())


def xlsx_rows(data: bytes):
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.active
    return sheet, [list(row) for row in sheet.iter_rows(values_only=True)]


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


COLUMN_ORDER = ["needs", "allocated", *status.COLUMNS, "devices"]


def _export_numbers(header: list, row: list) -> dict[str, int]:
    labels = {**status.COLUMN_LABELS}
    index = {key: header.index(labels[key]) for key in ("needs", *status.COLUMNS, "devices")}
    return {key: row[i] for key, i in index.items()}


# ---------------------------------------------------------------- scope


def test_nord_prefecture_sees_department_59_only(board, login_as, api):
    world = board.world
    client = login_as(world.prefecture_nord)
    page = client.get("/tableau")
    table = read_page(page)
    html = page.get_data(as_text=True)
    assert set(table.rows) == {"QN05981M", "QP059001", "total"}
    for hidden in ("QN08001M", "Amiens Nord", "Somme", "SN-SOMME", board.somme_stuck.number, "QN09301M"):
        assert hidden not in html
    assert "59 — Nord" in html
    # its exports: the same QPVs, nothing of the Somme
    _sheet, rows = xlsx_rows(client.get("/tableau.xlsx").data)
    assert {r[1] for r in rows[1:]} == {"QN05981M", "QP059001", "59"}
    listing = client.get("/tableau/equipements.csv").data.decode("utf-8-sig")
    assert "SN-NORD-TAB" in listing and "SN-SOMME" not in listing and "SN-IDF" not in listing
    _pages, text = pdf_text(client.get("/tableau/synthese.pdf").data)
    assert "Nord" in text and "Somme" not in text and "QN08001M" not in text
    # and the API says the same
    answer = api(world.prefecture_nord).get("/api/v1/status")
    assert answer.status_code == 200
    assert [r["code"] for r in answer.get_json()["rows"]] == ["59"]
    by_qpv = api(world.prefecture_nord).get("/api/v1/status?by=qpv").get_json()
    assert {r["code"] for r in by_qpv["rows"]} == {"QN05981M", "QP059001"}
    assert by_qpv["total"]["devices"] == table.rows["total"]["devices"]


@pytest.mark.parametrize(
    "url",
    [
        "/tableau?territoire=80",
        "/tableau?territoire=32",
        "/tableau?territoire=region:32",
        "/tableau.csv?territoire=80",
        "/tableau.xlsx?territoire=80&par=qpv",
        "/tableau/equipements.csv?territoire=80",
        "/tableau/equipements.xlsx?qpv=QN08001M",
        "/tableau/synthese.pdf?territoire=80",
        "/tableau/departement/80",
        "/tableau/qpv/QN08001M",
        "/tableau/qpv/QN09301M",
        "/tableau/qpv/INCONNU",
    ],
)
def test_another_department_is_not_found_for_the_nord_prefecture(board, login_as, url):
    response = login_as(board.world.prefecture_nord).get(url)
    assert response.status_code == 404
    assert "Tournebroche" not in response.get_data(as_text=True)


def test_the_api_refuses_another_department_too(board, api):
    assert api(board.world.prefecture_nord).get("/api/v1/status?territory=80").status_code == 404


def test_the_region_prefecture_sees_nord_and_somme(board, login_as):
    client = login_as(board.world.prefecture)
    table = read_page(client.get("/tableau"))
    assert set(table.rows) == {"59", "80", "total"}
    assert "/tableau/departement/59" in table.links and "/tableau/departement/80" in table.links
    somme = read_page(client.get("/tableau/departement/80"))
    assert set(somme.rows) == {"QN08001M", "total"}
    assert somme.rows["QN08001M"]["missing"] == 1 and somme.rows["QN08001M"]["on_slips"] == 1
    assert client.get("/tableau?territoire=11").status_code == 404
    assert client.get("/tableau/departement/93").status_code == 404


def test_the_admin_sees_every_department_by_default(board, login_as):
    table = read_page(login_as(board.world.admin).get("/tableau"))
    assert set(table.rows) == {"59", "80", "93", "total"}
    assert table.rows["93"]["assigned"] == 1


@pytest.mark.parametrize("who", ["warehouse", "coordinator"])
@pytest.mark.parametrize(
    "url",
    [
        "/tableau",
        "/tableau/departement/59",
        "/tableau/qpv/QN05981M",
        "/tableau.csv",
        "/tableau.xlsx",
        "/tableau/equipements.csv",
        "/tableau/synthese.pdf",
    ],
)
def test_warehouse_and_coordinators_are_refused(board, login_as, who, url):
    assert login_as(getattr(board.world, who)).get(url).status_code == 403


# ---------------------------------------------------------------- the figures


def test_the_board_figures(board, login_as):
    table = read_page(login_as(board.world.prefecture_nord).get("/tableau"))
    roubaix = table.rows["QN05981M"]
    assert roubaix == {
        "needs": 6 + 1 + 1,  # 6 tablets declared (more than the 2 registered), a connection, a laptop
        "assigned": 1,  # the 4G key
        "on_slips": 0,
        "shipped": 1,  # Anatole's laptop
        "received": 0,
        "handed_over": 1,  # Zéphyrine's tablet
        "missing": 0,
        "damaged": 1,  # Anatole's second tablet
        "devices": 4,
        "committed_cents": 6500 + 23000 + 14000,  # the damaged tablet's assignment was cancelled
        "returned": 0,  # nothing brought back by a family yet (end of loan: tests/test_returns.py)
        "restocked": 0,
        "defective": 0,
    }
    assert table.rows["QP059001"]["on_slips"] == 1
    total = table.rows["total"]
    for column in (*status.COLUMNS, "needs", "devices", "committed_cents"):
        assert total[column] == roubaix[column] + table.rows["QP059001"][column]


def test_kpis_money_and_the_cite_educative_cap(board, session, login_as):
    html = login_as(board.world.prefecture).get("/tableau").get_data(as_text=True)
    assert 'data-kpi="handed_over"' in html
    assert "plafond 15\u00a0% : 12\u202f000,00\u00a0€ sur un montant annuel de 80\u202f000,00\u00a0€" in html
    rows = status.money(session, status.resolve(session, board.world.prefecture, None))
    cite = next(r for r in rows if r.envelope.id == board.cite_envelope.id)
    assert cite.committed_cents == 14000  # the handed-over tablet; the damaged one was released
    assert cite.delivered_cents == 14000
    assert f'data-value="{cite.left_cents}"' in html


def test_the_stuck_slips_and_their_patience(board, login_as):
    client = login_as(board.world.prefecture)
    html = client.get("/tableau").get_data(as_text=True)
    assert f'href="/bordereaux/{board.somme_stuck.number}"' in html
    assert board.philomene_slip.number not in html.split('id="stuck-title"')[1]
    later = client.get("/tableau?territoire=region:32&jours=5").get_data(as_text=True)
    assert board.somme_stuck.number not in later.split('id="stuck-title"')[1]
    nord = login_as(board.world.prefecture_nord).get("/tableau").get_data(as_text=True)
    assert board.somme_stuck.number not in nord


def test_the_svg_charts_are_there_with_a_title(board, login_as):
    html = login_as(board.world.prefecture).get("/tableau").get_data(as_text=True)
    svgs = re.findall(r"<svg[^>]*role=\"img\"[^>]*>\s*<title id=\"[^\"]+\">([^<]+)</title>\s*<desc", html)
    assert any("remis aux familles par jour" in title for title in svgs)
    assert any("par étape" in title for title in svgs)
    assert "url(#stack-" in html  # the stacked bars are patterned (black-and-white print)


# ---------------------------------------------------------------- exports read back


def test_the_xlsx_reads_back_with_the_page_figures(board, login_as):
    client = login_as(board.world.prefecture)
    table = read_page(client.get("/tableau"))
    response = client.get("/tableau.xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet, rows = xlsx_rows(response.data)
    header = rows[0]
    assert header[:6] == ["Niveau", "Code", "Nom", "Département", "Signalement", "Besoins"]
    assert sheet.freeze_panes == "A2"
    by_code = {("total" if r[0] == "Total" else r[1]): r for r in rows[1:]}
    assert set(by_code) == set(table.rows)
    for code, figures in table.rows.items():
        exported = _export_numbers(header, by_code[code])
        for key, value in exported.items():
            assert isinstance(value, int) and not isinstance(value, bool), (code, key, value)
            assert value == figures[key], (code, key)
        committed = by_code[code][header.index(status.COLUMN_LABELS["committed_cents"])]
        assert round(committed * 100) == figures["committed_cents"]


def test_the_csv_reads_back_with_the_page_figures(board, login_as):
    client = login_as(board.world.prefecture)
    table = read_page(client.get("/tableau/departement/59"))
    response = client.get("/tableau.csv?territoire=departement:59&par=qpv")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = csv_rows(response.data)
    header = rows[0]
    assert all(len(r) == len(header) for r in rows)
    by_code = {("total" if r[0] == "Total" else r[1]): r for r in rows[1:]}
    assert set(by_code) == set(table.rows) == {"QN05981M", "QP059001", "total"}
    for code, figures in table.rows.items():
        for key, value in _export_numbers(header, by_code[code]).items():
            assert int(value) == figures[key], (code, key)


def test_the_device_export_lists_the_devices_behind_the_board(board, login_as):
    client = login_as(board.world.prefecture)
    table = read_page(client.get("/tableau"))
    rows = csv_rows(client.get("/tableau/equipements.csv").data)
    assert rows[0] == DEVICE_HEADERS
    assert len(rows) - 1 == table.rows["total"]["devices"]
    serials = {r[0] for r in rows[1:]}
    assert serials == {
        "SN-NORD-TAB",
        "SN-NORD-KEY",
        "SN-NORD-LAP",
        "SN-NORD-TAB2",
        "SN-NORD-TAB3",
        "SN-SOMME-TAB",
        "SN-SOMME-LAP",
    }
    tab = next(r for r in rows if r[0] == "SN-NORD-TAB")
    reference = board.pupils[0].reference
    assert tab[DEVICE_HEADERS.index("Élève (référence)")] == reference
    assert tab[DEVICE_HEADERS.index("N° de bordereau")] == board.nord_slip.number
    assert tab[DEVICE_HEADERS.index("Statut")] == "Remis"
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", tab[DEVICE_HEADERS.index("Mis à jour le")])
    sheet, xrows = xlsx_rows(client.get("/tableau/equipements.xlsx?qpv=QN05981M").data)
    assert sheet.freeze_panes == "A2" and xrows[0] == DEVICE_HEADERS
    assert {r[0] for r in xrows[1:]} == {"SN-NORD-TAB", "SN-NORD-KEY", "SN-NORD-LAP", "SN-NORD-TAB2"}
    assert all(isinstance(r[-1], date) for r in xrows[1:])


def test_the_summary_pdf_is_one_page_with_the_territory(board, login_as):
    client = login_as(board.world.prefecture)
    response = client.get("/tableau/synthese.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pages, text = pdf_text(response.data)
    assert pages == 1
    assert "Hauts-de-France" in text and "Synthèse" in text
    assert "Nord" in text and "Somme" in text
    assert "Bordereaux bloqués depuis plus de 3 jours" in text
    assert "plafond 15" in text
    pages, text = pdf_text(client.get("/tableau/synthese.pdf?territoire=departement:59").data)
    assert pages == 1 and "59 — Nord" in text and "QN05981M" in text


def test_a_crowded_summary_still_fits_on_one_page():
    counts = dict.fromkeys(status.COLUMNS, 7)
    rows = [
        SummaryRow(f"QN{n:06d}", f"Quartier au nom très long numéro {n} de la métropole", n, counts, 123_456)
        for n in range(80)
    ]
    envelopes = [
        SummaryEnvelope(f"Enveloppe {n}", 1_000_000, 500_000, 100_000, "plafond 15 % : 9 000 € sur 60 000 €")
        for n in range(20)
    ]
    data = summary_pdf(
        SummaryDocument(
            territory="Région Hauts-de-France",
            generated_at=utcnow(),
            level="QPV",
            total=SummaryRow("", "", 10_000, counts, 99_999_999),
            rows=rows,
            envelopes=envelopes,
            stuck_slips=12,
        )
    )
    pages, text = pdf_text(data)
    assert pages == 1
    assert "les 25 qui ont le plus de besoins, sur 80" in text
    assert "QN000079" in text and "QN000054" not in text  # the 25 with the most needs


# ---------------------------------------------------------------- drill-down and privacy


def _link(parser: _BoardTable, pattern: str) -> str:
    found = [href for href in parser.links if re.fullmatch(pattern, href)]
    assert found, (pattern, parser.links)
    return found[0]


def test_drill_down_from_the_region_to_a_slip(board, login_as):
    client = login_as(board.world.prefecture)
    region = read_page(client.get("/tableau"))
    department = read_page(client.get(_link(region, r"/tableau/departement/59")))
    qpv_url = _link(department, r"/tableau/qpv/QN05981M")
    qpv = client.get(qpv_url)
    html = qpv.get_data(as_text=True)
    assert board.pupils[0].reference in html  # references, not names
    qpv_page = read_page(qpv)
    assert qpv_page.rows["QN05981M"]["handed_over"] == 1
    slip_url = _link(qpv_page, rf"/bordereaux/{board.nord_slip.number}")
    slip = client.get(slip_url)
    assert slip.status_code == 200
    assert board.nord_slip.number in slip.get_data(as_text=True)
    assert f"/bordereaux/{board.shipped_slip.number}" in qpv_page.links
    assert f"/bordereaux/{board.philomene_slip.number}" not in qpv_page.links  # another QPV's


def _every_answer(board, login_as, api) -> list[tuple[str, str]]:
    answers = []
    for who in ("admin", "prefecture", "prefecture_nord"):
        user = getattr(board.world, who)
        client = login_as(user)
        for url in (
            "/tableau",
            "/tableau?jours=1",
            "/tableau/departement/59",
            "/tableau/qpv/QN05981M",
            "/tableau/qpv/QP059001",
            "/tableau.csv",
            "/tableau.csv?par=qpv",
            "/tableau/equipements.csv",
            "/tableau/equipements.csv?qpv=QN05981M",
        ):
            response = client.get(url)
            assert response.status_code == 200, (who, url)
            answers.append((f"{who} {url}", response.data.decode("utf-8-sig")))
        for url in ("/tableau.xlsx", "/tableau/equipements.xlsx"):
            _sheet, rows = xlsx_rows(client.get(url).data)
            answers.append((f"{who} {url}", " ".join(str(c) for r in rows for c in r)))
        answers.append((f"{who} pdf", pdf_text(client.get("/tableau/synthese.pdf").data)[1]))
        for url in ("/api/v1/status", "/api/v1/status?by=qpv"):
            answers.append((f"{who} {url}", api(user).get(url).get_data(as_text=True)))
    for who in ("admin", "prefecture"):
        client = login_as(getattr(board.world, who))
        for url in ("/tableau/departement/80", "/tableau/qpv/QN08001M"):
            answers.append((f"{who} {url}", client.get(url).get_data(as_text=True)))
    return answers


def test_no_name_of_a_pupil_or_guardian_anywhere(board, login_as, api):
    for where, text in _every_answer(board, login_as, api):
        for name in NAMES:
            assert name not in text, f"{name} in {where}"
            assert name.upper() not in text, f"{name.upper()} in {where}"


# ---------------------------------------------------------------- the charts themselves


def test_bar_chart_is_accessible_and_speaks_french():
    start = date(2020, 4, 6)
    series = [(start + timedelta(days=n), n % 4) for n in range(30)]
    svg = str(charts.bar_chart(series, title="Remises <par jour>"))
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert "<title id=" in svg and "Remises &lt;par jour&gt;" in svg and "<desc id=" in svg
    assert "06/04" in svg and "05/05" in svg  # French day/month labels
    assert "lun. 06/04/2020" in svg  # tooltips and description say the weekday
    assert svg.count("<rect") == 30
    assert "43" in re.search(r"<desc[^>]*>([^<]*)</desc>", svg).group(1)  # the total (0+1+2+3+…)


@pytest.mark.parametrize("peak", [1, 7, 9, 12, 33, 101, 999, 1234])
def test_bar_chart_grid_lines_carry_round_numbers_above_the_peak(peak):
    series = [(date(2020, 4, 6) + timedelta(days=n), peak if n == 3 else 1) for n in range(10)]
    svg = str(charts.bar_chart(series, title="Remises"))
    labels = re.findall(r'text-anchor="end" fill="[^"]+" aria-hidden="true">([^<]+)</text>', svg)
    ticks = [int(label.replace("\u202f", "").replace("\xa0", "").replace(" ", "")) for label in labels]
    assert len(ticks) == 5 and ticks[0] == 0 and ticks[-1] >= peak
    steps = {b - a for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1, ticks  # equal steps, hence whole numbers on every line
    assert ticks[-1] < 2 * max(peak, 4), ticks  # and not much room wasted above the peak


def test_stacked_bars_have_a_legend_and_patterns():
    svg = str(
        charts.stacked_bars(
            [("Nord", {"assigned": 3, "handed_over": 5}, 10), ("Somme", {"missing": 1}, 0)],
            segments=[(c, status.COLUMN_LABELS[c]) for c in status.COLUMNS],
            title="Équipements par étape",
        )
    )
    assert "<title id=" in svg and "Équipements par étape" in svg
    for label in ("Attribués", "Remis", "Manquants", "Endommagés"):
        assert f">{label}</text>" in svg
    assert svg.count("<pattern") == len(status.COLUMNS)
    assert "Nord — Remis : 5" in svg and "Nord — besoins : 10" in svg and "/ 10 besoins" in svg


def test_a_department_prefecture_whose_code_is_also_a_region_code_gets_its_board(board, session, login_as):
    """The page names its territory with its kind (departement:93): unlike GET /api/v1/status without a
    territory (see tests/test_status.py), it does not mistake Seine-Saint-Denis for the region coded 93."""
    from logistique.domain import accounts
    from logistique.models import Region, Role

    session.add(Region(code="93", name="Provence-Alpes-Côte d'Azur"))
    session.flush()
    user = accounts.create_user(
        session, email="pref.93@test.fr", role=Role.PREFECTURE, password=PASSWORD, territory="departement:93"
    )
    session.commit()
    table = read_page(login_as(user).get("/tableau"))
    assert set(table.rows) == {"QN09301M", "total"}


# ---------------------------------------------------------------- the demo operation


def test_a_prefecture_user_of_the_demo_sees_every_stage_drills_down_to_a_slip_and_exports(
    app, runner, client
):
    from logistique.demo import DEMO_PASSWORD, DOMAIN

    assert runner.invoke(args=["load-demo"]).exit_code == 0
    app.config["DEMO_MODE"] = True
    response = client.post("/login", data={"email": f"prefecture.region@{DOMAIN}", "password": DEMO_PASSWORD})
    assert response.status_code == 302
    region = read_page(client.get("/tableau"))
    total = region.rows["total"]
    assert all(total[column] > 0 for column in status.COLUMNS), total  # every stage has devices
    html = client.get("/tableau").get_data(as_text=True)
    stuck = html.split('id="stuck-title"')[1]
    assert "pas encore expédié" in stuck and "pas encore réceptionné" in stuck
    # region → department → QPV → slip and its journal
    department = read_page(client.get(_link(region, r"/tableau/departement/59")))
    busy = next(code for code, row in department.rows.items() if code != "total" and row.get("shipped"))
    qpv = read_page(client.get(_link(department, rf"/tableau/qpv/{busy}")))
    slip = client.get(_link(qpv, r"/bordereaux/BL-59-\d{4}-\d{6}"))
    assert slip.status_code == 200 and 'id="journal-title"' in slip.get_data(as_text=True)
    # and to Excel, with the page's figures
    _sheet, rows = xlsx_rows(client.get("/tableau.xlsx").data)
    exported = _export_numbers(rows[0], next(r for r in rows[1:] if r[0] == "Total"))
    assert {key: exported[key] for key in status.COLUMNS} == {key: total[key] for key in status.COLUMNS}


# ---------------------------------------------------------------- who has not answered


def test_every_qpv_and_department_is_listed_and_those_with_nothing_are_flagged(board, login_as, api, session):
    """A QPV of the current list where nobody declared anything, and a department with no QPV activity, show
    on the board, in its exports, in the API and in the census — flagged, never left out."""
    world = board.world
    session.add(Department(code="62", name="Pas-de-Calais", region_code="32"))
    session.flush()
    session.add_all(
        [
            Qpv(code="QN05999Z", name="Quartier silencieux", department_code="59", list_year=2024),
            Qpv(code="QN06201M", name="Quartier de Lens", department_code="62", list_year=2024),
        ]
    )
    session.commit()

    # the Nord's board by QPV: the silent QPV is there, all zeros, flagged; the QPVs with activity are not
    client = login_as(world.prefecture_nord)
    page = client.get("/tableau")
    table = read_page(page)
    html = page.get_data(as_text=True)
    assert set(table.rows) == {"QN05981M", "QP059001", "QN05999Z", "total"}
    assert table.rows["QN05999Z"]["needs"] == 0 and table.rows["QN05999Z"]["devices"] == 0
    silent_rows = re.findall(r'<tr data-code="(\w+)" class="board-silent"', html)
    assert silent_rows == ["QN05999Z"]
    assert "aucun besoin déclaré" in html and 'data-silent-count="1"' in html

    # the region's board by department: the Pas-de-Calais is listed and flagged
    client_region = login_as(world.prefecture)
    table = read_page(client_region.get("/tableau"))
    assert set(table.rows) == {"59", "62", "80", "total"}
    rows = csv_rows(client_region.get("/tableau.csv").data)
    header = rows[0]
    flags = {r[1]: r[header.index("Signalement")] for r in rows[1:]}
    assert flags == {"59": "", "62": "aucun besoin déclaré", "80": "", "32": ""}

    # the API: every QPV of the region, with nothing-yet ones reported false
    by_qpv = api(world.prefecture).get("/api/v1/status?by=qpv").get_json()
    reported = {r["code"]: r["reported"] for r in by_qpv["rows"]}
    assert reported["QN05999Z"] is False and reported["QN06201M"] is False
    assert reported["QN05981M"] is True and "QN09301M" not in reported  # Seine-Saint-Denis: other region
    silent = next(r for r in by_qpv["rows"] if r["code"] == "QN06201M")
    assert (silent["needs"], silent["devices"], silent["committed_eur"]) == (0, 0, 0)
    by_department = api(world.prefecture).get("/api/v1/status").get_json()
    assert [(r["code"], r["reported"]) for r in by_department["rows"]] == [
        ("59", True),
        ("62", False),
        ("80", True),
    ]

    # the census lists them too, flagged, in its page and its export
    rows = census.census(session, by=world.prefecture)
    by_code = {r.code: r for r in rows}
    assert by_code["QN06201M"].has_reported is False and by_code["QN05999Z"].has_reported is False
    assert by_code["62"].level == "department"
    exported = csv_rows(client_region.get("/recensement.csv").data)
    flags = {r[1]: r[exported[0].index("Signalement")] for r in exported[1:] if r[0] == "QPV"}
    assert flags["QN06201M"] == "aucun besoin déclaré" and flags["QN05981M"] == ""
