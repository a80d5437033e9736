"""Pupils: registration by form, page, API and CSV (all or nothing), who may register, the waiting list."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from logistique.domain import assignments, pupils
from logistique.domain.errors import Conflict, Forbidden, ImportRejected
from logistique.models import AuditEvent, NeedKind, Pupil

REFERENCE = re.compile(r"E-\d{2,3}[AB]?-\d{6}")


def _data(**changes) -> pupils.PupilData:
    fields = {
        "first_name": "Zoé",
        "last_name": "Quintanilla",
        "grade": "cm2",
        "school_uai": "0750654d",
        "qpv": "qn05981m",
        "guardian_name": "Ophélie Quintanilla",
        "guardian_phone": "+33 6 12 34 56 78",
        "needs": "tablette+connexion",
    }
    fields.update(changes)
    return pupils.PupilData(**fields)


def _counts(session) -> tuple[int, int]:
    """(pupils, audit events) as committed."""
    session.rollback()
    session.expire_all()
    result = (
        session.scalar(sa.select(sa.func.count(Pupil.id))),
        session.scalar(sa.select(sa.func.count(AuditEvent.id))),
    )
    session.rollback()
    return result


def _only_pupil(session) -> Pupil:
    session.rollback()
    session.expire_all()
    return session.scalars(sa.select(Pupil)).one()


def _assert_normalised(pupil: Pupil, *, first="Zoé", last="Quintanilla") -> None:
    assert REFERENCE.fullmatch(pupil.reference), pupil.reference
    assert pupil.reference == f"E-59-{pupil.id:06d}"
    assert (pupil.first_name, pupil.last_name) == (first, last)
    assert pupil.guardian_phone == "06 12 34 56 78"
    assert pupil.school_uai == "0750654D"
    assert pupil.qpv_code == "QN05981M"
    assert pupil.grade == "CM2"
    assert pupil.organisation.name == "Association Roubaix"


# ---------------------------------------------------------------- registering one pupil

FORM = {
    "first_name": "Zoé",
    "last_name": "Quintanilla",
    "grade": "CM2",
    "school_uai": "0750654d",
    "qpv": "QN05981M",
    "guardian_name": "Ophélie Quintanilla",
    "guardian_phone": "06.12.34.56.78",
    "needs": ["tablette", "connexion"],
}


def test_register_by_domain_gives_a_reference_and_normalises(session, world):
    pupils.register_pupil(session, _data(), by=world.coordinator)
    session.commit()
    pupil = _only_pupil(session)
    _assert_normalised(pupil)
    assert pupil.guardian_name == "Ophélie Quintanilla"
    assert pupil.needs == [NeedKind.TABLET, NeedKind.CONNECTION]
    event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "pupil_registered")).one()
    assert event.subject == pupil.reference
    assert "Zoé" not in event.subject + event.detail and "Quintanilla" not in event.subject + event.detail

    # the same child again (other spelling, same guardian phone) is a conflict that adds nothing
    before = _counts(session)
    with pytest.raises(Conflict) as refused:
        pupils.register_pupil(
            session,
            _data(first_name=" zoe ", last_name="QUINTANILLA", guardian_phone="0612345678"),
            by=world.coordinator,
        )
    session.rollback()
    assert pupil.reference in refused.value.message
    assert _counts(session) == before

    # a pupil of a 2015-list QPV gets a reference of the same form
    other = pupils.register_pupil(
        session, _data(first_name="Anna", qpv="QP059001", needs=["ordinateur"]), by=world.coordinator
    )
    session.commit()
    assert re.fullmatch(r"E-59-\d{6}", other.reference) and other.reference != pupil.reference
    assert other.needs == [NeedKind.LAPTOP]


def test_register_by_page(session, world, login_as):
    client = login_as(world.coordinator)
    assert client.get("/eleves/nouveau").status_code == 200
    # a QPV the association does not serve is not offered, and a forged answer registers nobody
    refused = client.post("/eleves/nouveau", data={**FORM, "qpv": "QN08001M"})
    assert refused.status_code in (200, 422)
    assert _counts(session)[0] == 0
    response = client.post("/eleves/nouveau", data=FORM)
    assert response.status_code == 302, response.get_data(as_text=True)
    pupil = _only_pupil(session)
    assert response.headers["Location"].endswith(f"/eleves/{pupil.id}")
    _assert_normalised(pupil)
    assert pupil.needs == [NeedKind.TABLET, NeedKind.CONNECTION]
    page = client.get(f"/eleves/{pupil.id}")
    assert page.status_code == 200
    assert pupil.reference in page.get_data(as_text=True)


def test_register_by_api(session, world, api):
    client = api(world.coordinator)
    payload = {**FORM, "guardian_phone": "+33612345678", "needs": ["tablette"]}
    before = _counts(session)
    refused = client.post("/api/v1/pupils", json={**payload, "guardian_phone": "06 12 34 5"})
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert "téléphone" in refused.get_json()["error"]["message"].lower()
    assert _counts(session) == before

    response = client.post("/api/v1/pupils", json=payload)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert REFERENCE.fullmatch(body["reference"])
    assert body["first_name"] == "Zoé"
    assert body["guardian_phone"] == "06 12 34 56 78"
    assert body["school_uai"] == "0750654D"
    assert body["needs"] == ["tablette"]
    pupil = _only_pupil(session)
    assert pupil.reference == body["reference"]
    _assert_normalised(pupil)
    listed = client.get("/api/v1/pupils").get_json()
    assert [p["reference"] for p in listed["items"]] == [body["reference"]]
    again = client.post("/api/v1/pupils", json=payload)
    assert again.status_code == 409
    assert _counts(session)[0] == 1


def test_only_coordinators_register_pupils(session, world, login_as, api):
    csv = b"prenom;nom;niveau;uai;qpv;responsable_nom;responsable_telephone;besoins\r\n"
    csv += "Zoé;Quintanilla;CM2;0750654D;QN05981M;Ophélie Q;0612345678;tablette\r\n".encode()
    before = _counts(session)
    for user in (world.admin, world.warehouse):
        with pytest.raises(Forbidden):
            pupils.register_pupil(session, _data(), by=user)
        session.rollback()
        with pytest.raises(Forbidden):
            pupils.import_pupils(session, csv, by=user)
        session.rollback()
        client = login_as(user)
        assert client.get("/eleves/nouveau").status_code == 403, user.email
        assert client.post("/eleves/nouveau", data=FORM).status_code == 403, user.email
        upload = {"file": (io.BytesIO(csv), "eleves.csv")}
        response = client.post("/eleves/import", data=upload, content_type="multipart/form-data")
        assert response.status_code == 403, user.email
        response = api(user).post("/api/v1/pupils", json=FORM)
        assert response.status_code == 403, user.email
        assert response.get_json()["error"]["code"] == "forbidden"
    after = _counts(session)
    assert after[0] == before[0] == 0
    assert after[1] == before[1]


# ---------------------------------------------------------------- CSV import

HEADER = "Prénom;Nom;Niveau;UAI;QPV;Responsable nom;Responsable téléphone;Besoins"
GOOD_ROWS = [
    "Zoé;Quintanilla;CM2;0750654D;QN05981M;Ophélie Quintanilla;06 12 34 56 78;tablette+connexion",
    "Anaïs;Bénédicte;6ème;0750654d;qp059001;Noël Bénédicte;0712345678;Ordinateur",
    "Loïc;Çelik;Tle;0750654D;QN05981M;Aïcha Çelik;+33 6 98 76 54 32;clé 4G",
]


def _csv(rows: list[str], *, encoding="utf-8", bom=True, newline="\r\n") -> bytes:
    text = newline.join([HEADER, *rows]) + newline
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)


VARIANTS = {
    "excel-utf8-bom-crlf": {"encoding": "utf-8", "bom": True, "newline": "\r\n"},
    "excel-cp1252": {"encoding": "cp1252", "bom": False, "newline": "\r\n"},
    "plain-utf8": {"encoding": "utf-8", "bom": False, "newline": "\n"},
}


def test_import_by_domain_reads_a_french_excel_file(session, world):
    for name, variant in VARIANTS.items():
        created = pupils.import_pupils(session, _csv(GOOD_ROWS, **variant), by=world.coordinator)
        assert len(created) == 3, name
        stored = session.scalars(sa.select(Pupil).order_by(Pupil.id)).all()
        assert [(p.first_name, p.last_name) for p in stored] == [
            ("Zoé", "Quintanilla"),
            ("Anaïs", "Bénédicte"),
            ("Loïc", "Çelik"),
        ], name
        assert [p.guardian_name for p in stored] == ["Ophélie Quintanilla", "Noël Bénédicte", "Aïcha Çelik"]
        assert [p.guardian_phone for p in stored] == ["06 12 34 56 78", "07 12 34 56 78", "06 98 76 54 32"]
        assert [p.grade for p in stored] == ["CM2", "6e", "Tle"]
        assert [p.qpv_code for p in stored] == ["QN05981M", "QP059001", "QN05981M"]
        assert {p.school_uai for p in stored} == {"0750654D"}
        assert [p.needs for p in stored] == [
            [NeedKind.TABLET, NeedKind.CONNECTION],
            [NeedKind.LAPTOP],
            [NeedKind.CONNECTION],
        ]
        assert all(REFERENCE.fullmatch(p.reference) for p in stored)
        assert len({p.reference for p in stored}) == 3
        event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "pupils_imported")).one()
        assert "Zoé" not in event.detail and "Quintanilla" not in event.detail
        session.rollback()  # the next variant imports the same children again


def test_import_by_page(session, world, login_as):
    client = login_as(world.coordinator)
    response = client.post(
        "/eleves/import",
        data={"file": (io.BytesIO(_csv(GOOD_ROWS, encoding="cp1252", bom=False)), "eleves.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/eleves")
    session.rollback()
    session.expire_all()
    names = session.execute(sa.select(Pupil.first_name, Pupil.guardian_name).order_by(Pupil.id)).all()
    assert names == [("Zoé", "Ophélie Quintanilla"), ("Anaïs", "Noël Bénédicte"), ("Loïc", "Aïcha Çelik")]


BAD_ROWS = [
    # line 3 onwards; line 2 is a good row
    ("Lina;Amrani;CP;0750654D;QN05999M;Karima Amrani;0611111111;tablette", "QPV inconnu"),
    ("Hugo;Dupuis;CE1;0750654D;QN08001M;Marc Dupuis;0622222222;tablette", "n'est pas desservi"),
    ("Inès;Morel;CE2;0750654A;QN05981M;Paul Morel;0633333333;tablette", "lettre de contrôle"),
    ("Adam;Roux;CM1;0750654D;QN05981M;Sarah Roux;06 12 34;tablette", "téléphone invalide"),
    ("Zoé;Quintanilla;CM2;0750654D;QN05981M;Ophélie Quintanilla;0612345678;tablette", "en double"),
    ("Jade;Déjà;5e;0750654D;QN05981M;Luc Déjà;0644444444;tablette", "déjà enregistré"),
    ("Noah;Petit;4e;0750654D;QN05981M;Emma Petit;0655555555;tablette+console", "besoin inconnu"),
    ("Léo;Garnier;CM3;0750654D;QN05981M;Julie Garnier;0666666666;tablette", "niveau inconnu"),
]


def _file_with_bad_rows() -> bytes:
    return _csv([GOOD_ROWS[0], *(row for row, _ in BAD_ROWS)])


def _preregister_jade(session, world) -> Pupil:
    jade = pupils.register_pupil(
        session,
        _data(first_name="Jade", last_name="Déjà", guardian_name="Luc Déjà", guardian_phone="0644444444"),
        by=world.coordinator,
    )
    session.commit()
    return jade


def test_import_by_domain_reports_every_bad_row_and_imports_nothing(session, world):
    jade = _preregister_jade(session, world)
    before = _counts(session)
    with pytest.raises(ImportRejected) as refused:
        pupils.import_pupils(session, _file_with_bad_rows(), by=world.coordinator)
    session.rollback()
    errors = refused.value.errors
    assert [e.line for e in errors] == list(range(3, 3 + len(BAD_ROWS)))
    for error, (_row, expected) in zip(errors, BAD_ROWS, strict=True):
        assert expected in error.message, (error.line, error.message)
    assert "ligne 2" in errors[4].message  # the duplicate names the line it repeats
    assert jade.reference in errors[5].message
    assert "aucun élève" in refused.value.message
    assert _counts(session) == before
    # a file without pupils, or without the columns, is refused too
    for data in [(HEADER + "\r\n").encode(), b"prenom;nom\r\nZoe;Q\r\n"]:
        with pytest.raises(ImportRejected):
            pupils.import_pupils(session, data, by=world.coordinator)
        session.rollback()
    assert _counts(session) == before


def test_import_by_page_reports_every_bad_row_and_imports_nothing(session, world, login_as):
    _preregister_jade(session, world)
    before = _counts(session)
    client = login_as(world.coordinator)
    response = client.post(
        "/eleves/import",
        data={"file": (io.BytesIO(_file_with_bad_rows()), "eleves.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(.*?)</td></tr>", text)
    assert [int(line) for line, _ in rows] == list(range(3, 3 + len(BAD_ROWS)))
    for (_line, message), (_row, expected) in zip(rows, BAD_ROWS, strict=True):
        assert expected in message
    assert _counts(session) == before


# ---------------------------------------------------------------- the waiting list


def _waiting(session, user) -> list[tuple[int, str]]:
    waiting = pupils.waiting_list_query(user)
    return [
        (row.pupil_id, row.kind)
        for row in session.execute(
            sa.select(waiting.c.pupil_id, waiting.c.kind).order_by(
                waiting.c.kind, waiting.c.created_at, waiting.c.pupil_id
            )
        )
    ]


def _waiting_references(client, kind: str | None = None) -> list[str]:
    response = client.get("/attente" + (f"?type={kind}" if kind else ""))
    assert response.status_code == 200
    return re.findall(r"E-59-\d{6}", response.get_data(as_text=True))


def test_waiting_list_lists_each_needed_kind_until_assigned_oldest_first(session, world, login_as):
    anna = pupils.register_pupil(
        session,
        _data(
            first_name="Anna", last_name="Vasseur", guardian_phone="0611111111", needs="tablette+connexion"
        ),
        by=world.coordinator,
    )
    bilal = pupils.register_pupil(
        session,
        _data(first_name="Bilal", last_name="Haddad", guardian_phone="0622222222", needs="tablette"),
        by=world.coordinator,
    )
    # Bilal was registered before Anna (an older registration with a larger id)
    bilal.created_at = anna.created_at - timedelta(days=2)
    session.commit()

    assert _waiting(session, world.coordinator) == [
        (anna.id, "connexion"),
        (bilal.id, "tablette"),
        (anna.id, "tablette"),
    ]
    client = login_as(world.coordinator)
    assert _waiting_references(client, "tablette") == [bilal.reference, anna.reference]
    assert _waiting_references(client, "connexion") == [anna.reference]
    assert _waiting(session, world.coordinator_idf) == []

    assignments.assign(session, pupil=anna, device=world.device, by=world.coordinator)
    session.commit()
    assert _waiting(session, world.coordinator) == [(anna.id, "connexion"), (bilal.id, "tablette")]
    assert _waiting_references(client, "tablette") == [bilal.reference]

    assignments.assign(session, pupil=anna, device=world.device3, by=world.coordinator)
    session.commit()
    assert _waiting(session, world.coordinator) == [(bilal.id, "tablette")]
    assert _waiting_references(client) == [bilal.reference]
    assert anna.reference not in client.get("/attente").get_data(as_text=True)
