"""Pupil import from an Excel workbook (.xlsx): same columns and all-or-nothing report as a CSV, rows
numbered as Excel shows them, cells typed by Excel (numbers, dates) read as the user sees them, a corrupt or
foreign file refused in French. The workbooks are real files written by openpyxl."""

from __future__ import annotations

import html
import io
import re
import zipfile
from datetime import date

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from logistique.domain import bulk, pupils
from logistique.domain.errors import ImportRejected
from logistique.models import Pupil

HEADER = ["Prénom", "Nom", "Niveau", "UAI", "QPV", "Responsable nom", "Responsable téléphone", "Besoins"]
GOOD = [
    ["Zoé", "Quintanilla", "CM2", "0750654D", "QN05981M", "Ophélie Quintanilla", "06 12 34 56 78", "tablet"],
    # a phone typed as a number: Excel keeps 712345678 (the zero is lost)
    ["Anaïs", "Bénédicte", "6ème", "0750654d", "qp059001", "Noël Bénédicte", 712345678, "Ordinateur"],
    ["Loïc", "Çelik", "Tle", "0750654D", "QN05981M", "Aïcha Çelik", 698765432, "clé 4G"],
]


def workbook(rows, *, header=HEADER, before=(), sheets=(), phone_format: str | None = None) -> bytes:
    """A real .xlsx: optional sheets before, then the pupils' sheet (``before``: rows above the header)."""
    book = Workbook()
    first = book.active
    for index, (title, content) in enumerate(sheets):
        sheet = first if index == 0 else book.create_sheet(title)
        sheet.title = title
        for row in content:
            sheet.append(row)
    sheet = book.create_sheet("Élèves") if sheets else first
    for row in (*before, header, *rows):
        sheet.append(list(row))
    if phone_format:
        for (cell,) in sheet.iter_rows(min_col=7, max_col=7, min_row=2):
            if isinstance(cell.value, int):
                cell.number_format = phone_format
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def refused(session, data: bytes, user) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        pupils.import_pupils(session, data, by=user)
    session.rollback()
    return caught.value


def stored(session) -> list[tuple]:
    session.rollback()
    session.expire_all()
    return session.execute(
        sa.select(
            Pupil.first_name, Pupil.grade, Pupil.qpv_code, Pupil.guardian_phone, Pupil.needs_laptop
        ).order_by(Pupil.id)
    ).all()


def test_a_good_workbook_imports_every_pupil_with_phones_typed_as_numbers(session, world):
    report = pupils.import_pupils(session, workbook(GOOD), by=world.coordinator)
    session.commit()
    assert report.created == 3
    assert stored(session) == [
        ("Zoé", "CM2", "QN05981M", "06 12 34 56 78", False),
        ("Anaïs", "6e", "QP059001", "07 12 34 56 78", True),
        ("Loïc", "Tle", "QN05981M", "06 98 76 54 32", False),
    ]


def test_a_zero_padded_number_format_keeps_the_zeros_excel_shows(session, world):
    rows = [[*GOOD[1][:6], 712345678, GOOD[1][7]]]
    pupils.import_pupils(session, workbook(rows, phone_format="0000000000"), by=world.coordinator)
    session.commit()
    assert [row.guardian_phone for row in stored(session)] == ["07 12 34 56 78"]


def test_bad_rows_are_reported_with_excel_row_numbers_and_nothing_is_written(session, world):
    rows = [
        GOOD[0],
        [],  # an empty row: skipped, but the numbering follows Excel's
        ["Lina", "Amrani", "CP", "0750654D", "QN05999M", "Karima Amrani", "0611111111", "tablette"],
        ["Adam", "Roux", "CM1", "0750654D", "QN05981M", "Sarah Roux", 1234, "tablette"],
        ["Noah", "Petit", date(2024, 9, 2), "0750654D", "QN05981M", "Emma Petit", 655555555, "tablette"],
        ["Zoé", "Quintanilla", "CM2", "0750654D", "QN05981M", "Ophélie Quintanilla", 612345678, "tablette"],
        ["Léo", "Garnier", "CE1", "0750654D", "QN05981M", "Julie Garnier", 666666666, "tablette", "", "note"],
    ]
    # two title rows above the header: the header is row 3, the first pupil row 4
    data = workbook(rows, before=[["Recensement 2020"], []])
    refusal = refused(session, data, world.coordinator)
    assert {e.line: e.message for e in refusal.errors} == {
        6: "QPV inconnu : QN05999M",
        7: "Numéro de téléphone invalide : 1234 (attendu 10 chiffres, par exemple 06 12 34 56 78)",
        8: "niveau inconnu : '02/09/2024' (ex. CP, CM2, 6e, 3e, 2de, Tle)",
        9: "élève en double dans le fichier (déjà ligne 4)",
        10: "valeur hors des colonnes de l'en-tête (colonne J)",
    }
    assert refusal.message == "Fichier refusé : 5 ligne(s) en erreur, aucun élève n'a été importé."
    assert stored(session) == []


def test_the_first_sheet_with_the_columns_is_read(session, world):
    data = workbook(GOOD, sheets=[("Notes", [["À lire"], ["Import de septembre"]]), ("Vide", [])])
    assert pupils.import_pupils(session, data, by=world.coordinator).created == 3
    session.rollback()
    refusal = refused(session, workbook(GOOD, header=HEADER[:5]), world.coordinator)
    assert refusal.message == "Colonnes manquantes : responsable_nom, responsable_telephone, besoins"


def _rewrite_sheet(data: bytes, change) -> bytes:
    """The same workbook with the first sheet's XML passed through ``change``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                content = change(content)
            target.writestr(info, content)
    return out.getvalue()


def _corrupt(data: bytes) -> bytes:
    """The same workbook with its sheet's XML cut in the middle (a truncated download)."""
    return _rewrite_sheet(data, lambda xml: xml[: len(xml) // 2])


NOT_A_WORKBOOK = "Le fichier n'est pas un classeur Excel lisible (.xlsx)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: good[: len(good) // 2], NOT_A_WORKBOOK),  # truncated archive
        (_corrupt, NOT_A_WORKBOOK),  # archive fine, sheet XML broken
        (lambda good: b"PK\x03\x04" + b"\x00" * 200, NOT_A_WORKBOOK),
        (lambda good: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "Excel 97-2003 (.xls)"),
    ],
    ids=["truncated", "broken-sheet", "zip-header-only", "old-xls"],
)
def test_a_corrupt_or_foreign_file_is_refused_in_french_and_changes_nothing(session, world, make, message):
    pupils.import_pupils(session, workbook(GOOD[:1]), by=world.coordinator)
    session.commit()
    before = stored(session)
    refusal = refused(session, make(workbook(GOOD[1:])), world.coordinator)
    assert message in refusal.message
    assert refusal.errors == []
    assert stored(session) == before


def test_the_row_cap_is_read_from_the_sheet_before_its_rows(session, world, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_ROWS", 2)
    refusal = refused(session, workbook(GOOD), world.coordinator)
    assert refusal.message == (
        "Fichier refusé : 3 élèves, au-delà de la limite de 2 par import. Découpez-le en plusieurs fichiers."
    )
    # a sheet without <dimension> (written by another tool) is stopped while read
    data = workbook(GOOD)
    undeclared = _rewrite_sheet(data, lambda xml: re.sub(rb"<dimension [^>]*/>", b"", xml))
    assert b"<dimension" not in zipfile.ZipFile(io.BytesIO(undeclared)).read("xl/worksheets/sheet1.xml")
    assert "au-delà de la limite de 2" in refused(session, undeclared, world.coordinator).message
    monkeypatch.setattr(bulk, "MAX_FILE_BYTES", len(data) - 1)
    assert "au-delà de la limite" in refused(session, data, world.coordinator).message
    assert stored(session) == []


def test_the_import_page_and_the_command_take_a_workbook(session, world, login_as, runner, tmp_path):
    client = login_as(world.coordinator)
    bad = workbook([GOOD[0], ["Lina", "Amrani", "CP", "0750654D", "QN05999M", "K A", 611111111, "tablette"]])
    response = client.post(
        "/eleves/import",
        data={"file": (io.BytesIO(bad), "eleves.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(.*?)</td></tr>", text) == [
        ("3", "QPV inconnu : QN05999M")
    ]
    response = client.post(
        "/eleves/import",
        data={"file": (io.BytesIO(workbook(GOOD[:2])), "eleves.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert [row.first_name for row in stored(session)] == ["Zoé", "Anaïs"]

    path = tmp_path / "eleves.xlsx"
    path.write_bytes(workbook(GOOD[2:]))
    result = runner.invoke(args=["import-pupils", str(path), "--organisation", str(world.assoc_roubaix.id)])
    assert result.exit_code == 0, result.output
    assert "1 élèves enregistrés" in result.output
    path.write_bytes(_corrupt(workbook(GOOD)))
    result = runner.invoke(args=["import-pupils", str(path), "--organisation", str(world.assoc_roubaix.id)])
    assert result.exit_code == 1
    assert NOT_A_WORKBOOK in result.output
    assert len(stored(session)) == 3
