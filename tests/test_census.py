"""The census of needs: declared per QPV by organisations, aggregated QPV → department → region, exported."""

from __future__ import annotations

import csv
import html
import io
import re
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from logistique.domain import assignments, census, pupils
from logistique.domain.errors import Forbidden, ValidationFailed
from logistique.models import AuditEvent, Need, NeedKind

T, L, C = NeedKind.TABLET, NeedKind.LAPTOP, NeedKind.CONNECTION


def _needs(session, organisation_id: int) -> dict[tuple[str, NeedKind], int]:
    session.rollback()
    session.expire_all()
    rows = session.scalars(sa.select(Need).where(Need.organisation_id == organisation_id)).all()
    session.rollback()
    return {(n.qpv_code, n.kind): n.count for n in rows}


def _all_needs(session) -> list[tuple]:
    session.rollback()
    rows = session.execute(
        sa.select(Need.organisation_id, Need.qpv_code, Need.kind, Need.count).order_by(Need.id)
    ).all()
    session.rollback()
    return rows


# ---------------------------------------------------------------- declaring needs


def test_declare_needs_by_page(session, world, login_as):
    client = login_as(world.coordinator)
    assert client.get("/besoins").status_code == 200
    response = client.post(
        "/besoins",
        data={
            "need_QN05981M_tablette": "12",
            "need_QN05981M_ordinateur": "",
            "need_QN05981M_connexion": " 3 ",
            "need_QP059001_tablette": "0",
            "need_QP059001_ordinateur": "4",
            # a QPV the association does not serve: not the association's to declare
            "need_QN08001M_tablette": "50",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/besoins")
    assert _needs(session, world.assoc_roubaix.id) == {
        ("QN05981M", T): 12,
        ("QN05981M", L): 0,
        ("QN05981M", C): 3,
        ("QP059001", T): 0,
        ("QP059001", L): 4,
        ("QP059001", C): 0,
    }
    assert session.scalar(sa.select(sa.func.count(Need.id)).where(Need.qpv_code == "QN08001M")) == 0
    assert session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "needs_declared"))
    page = client.get("/besoins").get_data(as_text=True)
    assert re.search(r'name="need_QN05981M_tablette" value="12"', page)


def _refused_by_page(session, world, client, raw: str) -> None:
    before = _all_needs(session)
    response = client.post("/besoins", data={"need_QN05981M_tablette": raw, "need_QN05981M_connexion": "8"})
    assert response.status_code == 422, (raw, response.status_code)
    assert "Besoins refusés" in html.unescape(response.get_data(as_text=True)), raw
    assert _all_needs(session) == before, raw


def test_declare_needs_by_page_refuses_what_is_not_a_count(session, world, login_as):
    census.declare_needs(session, world.assoc_roubaix, {("QN05981M", T): 5}, by=world.coordinator)
    session.commit()
    client = login_as(world.coordinator)
    for raw in ["-3", "abc", "2,5", "1e3", "100001"]:
        _refused_by_page(session, world, client, raw)


def test_declare_needs_by_page_refuses_the_superscript_two_of_a_french_keyboard(session, world, login_as):
    """« ² » is the top-left key of an AZERTY keyboard: a slip of the finger must be refused, not crash."""
    census.declare_needs(session, world.assoc_roubaix, {("QN05981M", T): 5}, by=world.coordinator)
    session.commit()
    _refused_by_page(session, world, login_as(world.coordinator), "²")


def test_declare_needs_by_domain(session, world):
    counts = {("QN05981M", T): 10, ("QP059001", C): 2}
    assert census.declare_needs(session, world.assoc_roubaix, counts, by=world.coordinator) == 2
    session.commit()
    assert _needs(session, world.assoc_roubaix.id) == counts
    # the same again changes nothing; a new value changes one line
    assert census.declare_needs(session, world.assoc_roubaix, counts, by=world.coordinator) == 0
    assert (
        census.declare_needs(session, world.assoc_roubaix, {("QN05981M", T): 11}, by=world.coordinator) == 1
    )
    session.commit()
    assert _needs(session, world.assoc_roubaix.id) == {("QN05981M", T): 11, ("QP059001", C): 2}


REFUSED_COUNTS = [
    ({("QN08001M", T): 5}, "n'est pas desservi"),  # Amiens
    ({("QN09301M", T): 5}, "n'est pas desservi"),  # another region
    ({("QN05981M", L): 4, ("QN05981M", T): -1}, "entre 0"),  # one good line, one negative
    ({("QN05981M", T): "7"}, "entre 0"),
    ({("QN05981M", T): 2.5}, "entre 0"),
    ({("QN05981M", T): 100_001}, "entre 0"),
]


def test_declare_needs_by_domain_refuses_and_changes_nothing(session, world):
    census.declare_needs(session, world.assoc_roubaix, {("QN05981M", T): 5}, by=world.coordinator)
    session.commit()
    before = _all_needs(session)
    for counts, expected in REFUSED_COUNTS:
        with pytest.raises(ValidationFailed) as refused:
            census.declare_needs(session, world.assoc_roubaix, counts, by=world.coordinator)
        session.rollback()
        assert expected in refused.value.message, counts
        assert _all_needs(session) == before, counts


def test_only_the_organisations_coordinators_declare_its_needs(session, world):
    for user in (world.coordinator_idf, world.admin, world.prefecture, world.warehouse):
        with pytest.raises(Forbidden):
            census.declare_needs(session, world.assoc_roubaix, {("QN05981M", T): 5}, by=user)
        session.rollback()
    assert _all_needs(session) == []


# ---------------------------------------------------------------- aggregation


def _census_world(session, world) -> None:
    """Roubaix declares 2 tablets but registered 3 pupils needing one; the Roubaix school declares 4 more."""
    census.declare_needs(
        session,
        world.assoc_roubaix,
        {("QN05981M", T): 2, ("QN05981M", C): 5, ("QP059001", L): 4},
        by=world.coordinator,
    )
    census.declare_needs(session, world.school_roubaix, {("QN05981M", T): 4}, by=None)
    census.declare_needs(session, world.assoc_amiens, {("QN08001M", T): 7}, by=None)
    census.declare_needs(session, world.assoc_bobigny, {("QN09301M", T): 9, ("QN09301M", L): 1}, by=None)
    registered = [
        pupils.register_pupil(
            session,
            pupils.PupilData(
                first, "Recensement", "CE1", "0750654D", "QN05981M", "Parent", f"06000000{n:02d}", needs
            ),
            by=world.coordinator,
        )
        for n, (first, needs) in enumerate(
            [("Anna", "tablette+connexion"), ("Bilal", "tablette"), ("Chloé", "tablette")]
        )
    ]
    assignments.assign(session, pupil=registered[0], device=world.device, by=world.coordinator)
    session.commit()


def _table(rows: list[census.CensusRow]) -> list[tuple]:
    return [
        (r.level, r.code, r.needs[T], r.needs[L], r.needs[C], r.total_needs, r.total_assigned) for r in rows
    ]


EXPECTED_32 = [
    ("region", "32", 14, 4, 5, 23, 1),
    ("department", "59", 7, 4, 5, 16, 1),
    ("qpv", "QN05981M", 7, 0, 5, 12, 1),
    ("qpv", "QP059001", 0, 4, 0, 4, 0),
    ("department", "80", 7, 0, 0, 7, 0),
    ("qpv", "QN08001M", 7, 0, 0, 7, 0),
]
EXPECTED_11 = [
    ("region", "11", 9, 1, 0, 10, 0),
    ("department", "93", 9, 1, 0, 10, 0),
    ("qpv", "QN09301M", 9, 1, 0, 10, 0),
]


def test_census_aggregates_qpv_department_region(session, world):
    _census_world(session, world)
    # per organisation, the larger of what it declared and the pupils it registered
    data = census.needs_by_qpv(session, region_code="32")
    assert data[("QN05981M", T)] == (max(2, 3) + 4, 1)
    assert data[("QN05981M", C)] == (max(5, 1), 0)
    assert data[("QP059001", L)] == (4, 0)
    assert ("QN09301M", T) not in data

    rows = census.census(session, by=world.admin)
    assert _table(rows) == EXPECTED_11 + EXPECTED_32
    assert rows[3].assigned[T] == 1
    # each region row is the sum of its departments, each department the sum of its QPVs
    region = department = None
    sums: dict[str, dict[NeedKind, int]] = {}
    for row in rows:
        if row.level == "region":
            region = row
            sums[row.code] = {k: 0 for k in NeedKind}
        elif row.level == "department":
            department = row
            sums[row.code] = {k: 0 for k in NeedKind}
            for k in NeedKind:
                sums[region.code][k] += row.needs[k]
        else:
            for k in NeedKind:
                sums[department.code][k] += row.needs[k]
    for row in rows:
        if row.level != "qpv":
            assert sums[row.code] == row.needs, row.code
    assert census.census(session, by=world.prefecture) == rows[3:]


def test_a_department_prefecture_sees_its_department_only(session, world, login_as):
    _census_world(session, world)
    rows = census.census(session, by=world.prefecture_nord)
    assert [r.code for r in rows if r.level != "region"] == ["59", "QN05981M", "QP059001"]
    assert all(r.department == "59" for r in rows if r.level != "region")
    for region_row in (r for r in rows if r.level == "region"):
        assert region_row.needs == rows[1].needs  # nothing of the Somme leaks through the region's total
    page = login_as(world.prefecture_nord).get("/recensement")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "QN05981M" in text and "QP059001" in text
    for other in ("QN08001M", "Amiens Nord", "Somme", "QN09301M", "Bobigny"):
        assert other not in text
    export = login_as(world.prefecture_nord).get("/recensement.csv").get_data().decode("utf-8-sig")
    assert "QN05981M" in export and "QN08001M" not in export and "QN09301M" not in export


class _Rows(HTMLParser):
    """Text of the cells of each row of the page's table body."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._body = self._cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.rows.append([])
        elif tag in ("td", "th") and self._body:
            self._cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._body = False
        elif tag in ("td", "th"):
            self._cell = False

    def handle_data(self, data):
        if self._cell:
            self.rows[-1][-1] += data


def _number(text: str) -> int:
    return int(re.sub(r"\s", "", text))


def _page_rows(client) -> dict[str, list[int]]:
    """code → [needs tablet, laptop, connection, total, assigned tablet, laptop, connection, total]."""
    response = client.get("/recensement")
    assert response.status_code == 200
    parser = _Rows()
    parser.feed(response.get_data(as_text=True))
    rows = {}
    for cells in parser.rows:
        code, numbers = cells[0].strip(), [_number(c) for c in cells[2:]]
        rows[code] = numbers[0:6:2] + [numbers[6]] + numbers[1:6:2] + [numbers[7]]
    return rows


def test_csv_export_reads_back_to_the_numbers_of_the_page(session, world, login_as):
    _census_world(session, world)
    client = login_as(world.prefecture)
    response = client.get("/recensement.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    header, *body = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert header[:5] == ["Niveau", "Code", "Nom", "Département", "Signalement"]
    assert "Besoins tablette" in header and "Attribués total" in header
    exported = {row[1]: [int(v) for v in row[5:]] for row in body}
    assert [row[1] for row in body] == [code for _level, code, *_ in EXPECTED_32]
    assert exported == _page_rows(client)
    assert exported["32"] == [14, 4, 5, 23, 1, 0, 0, 1]
    assert exported["QN05981M"] == [7, 0, 5, 12, 1, 0, 0, 1]
    assert dict(zip(header, body[0], strict=True))["Nom"] == "Hauts-de-France"


def test_xlsx_export_is_typed_with_a_frozen_header(session, world, login_as):
    _census_world(session, world)
    client = login_as(world.prefecture)
    csv_rows = list(
        csv.reader(io.StringIO(client.get("/recensement.csv").get_data().decode("utf-8-sig")), delimiter=";")
    )
    response = client.get("/recensement.xlsx")
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    assert sheet.freeze_panes == "A2"
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == csv_rows[0]
    assert len(values) == len(csv_rows) == 1 + len(EXPECTED_32)
    for row, csv_row in zip(values[1:], csv_rows[1:], strict=True):
        assert all(type(v) is int for v in row[5:]), row
        assert row[5:] == [int(v) for v in csv_row[5:]]
        assert row[1] == csv_row[1]


def test_the_census_is_for_prefecture_and_admin(session, world, login_as):
    for who in ("coordinator", "warehouse"):
        client = login_as(getattr(world, who))
        for url in ("/recensement", "/recensement.csv", "/recensement.xlsx"):
            assert client.get(url).status_code == 403, (who, url)
        with pytest.raises(Forbidden):
            census.census(session, by=getattr(world, who))
