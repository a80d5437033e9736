"""The referential: QPV imports (shipped files and real-world exports), organisations, base referential."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

import logistique
from logistique import codes
from logistique.domain import referential
from logistique.domain.errors import Conflict, Forbidden, ImportRejected, ValidationFailed
from logistique.domain.referential import OrganisationData, import_qpv, read_package_file
from logistique.models import CiteEducative, Commune, Department, Organisation, OrganisationKind, Qpv, Region

DATA = Path(logistique.__file__).parent / "data"
HDF = "qpv_2024_hauts_de_france.csv"
FRANCE = "qpv_2024_france.csv"
QPV_HEADER = "code_qp,lib_qp,insee_dep,lib_dep,insee_reg,lib_reg,insee_com,lib_com,nb_communes"


def count(session, column) -> int:
    return session.scalar(sa.select(sa.func.count(column)))


def qpvs_by_department(session) -> dict[str, int]:
    rows = session.execute(sa.select(Qpv.department_code, sa.func.count()).group_by(Qpv.department_code))
    return dict(rows.all())


def page_text(response) -> str:
    """What a person reads on the page: tags removed, entities decoded, spaces collapsed."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def lines(*rows: str, header: str = QPV_HEADER, newline: str = "\n", encoding: str = "utf-8") -> bytes:
    return "".join(row + newline for row in (header, *rows)).encode(encoding)


def rejected(session, data: bytes) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_qpv(session, data, by=None)
    session.rollback()
    return caught.value


# ---------------------------------------------------------------- shipped QPV files


def test_import_the_hauts_de_france_qpvs(session):
    report = import_qpv(session, read_package_file(HDF), by=None)
    session.commit()
    assert (report.created, report.updated, report.unchanged) == (204, 0, 0)
    assert count(session, Qpv.code) == 204
    assert qpvs_by_department(session) == {"02": 17, "59": 94, "60": 19, "62": 64, "80": 10}
    assert session.get(Region, "32").name == "Hauts-de-France"
    assert session.get(Department, "02").name == "Aisne"
    assert session.get(Department, "80").region_code == "32"
    europe = session.get(Qpv, "QN00201M")
    assert europe.name == "Europe"
    assert europe.department_code == "02"
    assert europe.list_year == 2024
    assert europe.commune_codes == "02571;02691"
    assert europe.commune_names == "Omissy;Saint-Quentin"


def test_importing_the_same_file_again_changes_nothing(session):
    import_qpv(session, read_package_file(HDF), by=None)
    session.commit()
    report = import_qpv(session, read_package_file(HDF), by=None)
    session.commit()
    assert (report.created, report.updated, report.unchanged) == (0, 0, 204)
    assert count(session, Qpv.code) == 204


def test_a_renamed_qpv_is_updated(session):
    import_qpv(session, read_package_file(HDF), by=None)
    session.commit()
    report = import_qpv(
        session, lines("QN00201M,Europe Nord,02,Aisne,32,Hauts-de-France,02691,Saint-Quentin,1"), by=None
    )
    session.commit()
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    europe = session.get(Qpv, "QN00201M")
    assert europe.name == "Europe Nord"
    assert europe.commune_codes == "02691"
    assert count(session, Qpv.code) == 204


def test_import_the_national_list_creates_regions_and_departments(session):
    report = import_qpv(session, read_package_file(FRANCE), by=None)
    session.commit()
    assert report.created == 1493
    assert count(session, Qpv.code) == 1493
    assert session.get(Department, "2A").region_code == "94"
    assert session.get(Department, "2A").name == "Corse-du-Sud"
    assert session.get(Department, "971").region_code == "01"
    assert session.get(Region, "01") is not None
    assert count(session, Region.code) == 18
    assert qpvs_by_department(session)["971"] == 19
    assert session.get(Qpv, "QN02A01M").commune_codes == "2A247"


def test_only_admins_import_qpvs(session, world):
    with pytest.raises(Forbidden):
        import_qpv(session, read_package_file(HDF), by=world.prefecture)
    session.rollback()
    assert count(session, Qpv.code) == 4


# ---------------------------------------------------------------- real-world exports


QUIRKY_HEADER = "Code QP;Libellé QP;Département;Nom du département;Région;Nom Région;Codes communes;Communes"
QUIRKY_ROWS = (
    '="QN00201M";Europe;="2";Aisne;32;Hauts-de-France;"2571;2691";"Omissy;Saint-Quentin"',
    'qp002001;Quartier de l\'Église;2;Aisne;32;Hauts-de-France;="02691";Saint-Quentin',
    'QN05901M;Secteur Été;059;Nord;32;Hauts-de-France;59350, 59512;"Lille;Roubaix"',
    'QP059001;Quartier 2015;59;Nord;32;Hauts-de-France;="59512";Roubaix',
)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_excel_export_with_quirks(session, encoding):
    data = lines(*QUIRKY_ROWS, header=QUIRKY_HEADER, newline="\r\n", encoding=encoding)
    report = import_qpv(session, data, by=None)
    session.commit()
    assert report.created == 4
    europe = session.get(Qpv, "QN00201M")
    assert europe.department_code == "02"
    assert europe.commune_codes == "02571;02691"
    assert europe.commune_names == "Omissy;Saint-Quentin"
    assert europe.list_year == 2024
    old = session.get(Qpv, "QP002001")
    assert old is not None, "lowercase 2015 code not normalised"
    assert old.name == "Quartier de l'Église"
    assert old.department_code == "02"
    assert old.commune_codes == "02691"
    assert old.list_year == 2015
    ete = session.get(Qpv, "QN05901M")
    assert ete.name == "Secteur Été"
    assert ete.department_code == "59"
    assert ete.commune_codes == "59350;59512"
    assert ete.commune_names == "Lille;Roubaix"
    assert session.get(Qpv, "QP059001").list_year == 2015
    assert session.get(Department, "02").name == "Aisne"
    assert session.get(Department, "02").region_code == "32"
    assert {d.code for d in session.scalars(sa.select(Department))} == {"02", "59"}


# ---------------------------------------------------------------- bad QPV files


BAD_QPV_FILE = lines(
    "QN05901M,Bon quartier,59,Nord,32,Hauts-de-France,59350,Lille,1",  # 2
    "QX05901M,Code invalide,59,Nord,32,Hauts-de-France,59350,Lille,1",  # 3
    "QN05902M,Mauvais département,62,Pas-de-Calais,32,Hauts-de-France,62041,Arras,1",  # 4
    "QN05903M,Autre bon quartier,59,Nord,32,Hauts-de-France,59512,Roubaix,1",  # 5
    "qn05901m,Doublon,59,Nord,32,Hauts-de-France,59350,Lille,1",  # 6
    "QN06901M,Sans région,69,Rhône,,,69123,Lyon,1",  # 7
    "QP059004,Quartier 2015 correct,59,Nord,32,Hauts-de-France,59350,Lille,1",  # 8
)


def test_bad_qpv_rows_import_nothing_and_are_all_reported(session):
    exc = rejected(session, BAD_QPV_FILE)
    errors = {error.line: error.message for error in exc.errors}
    assert sorted(errors) == [3, 4, 6, 7]
    assert "QX05901M" in errors[3]
    assert "62" in errors[4] and "QN05902M" in errors[4]
    assert "double" in errors[6] and "ligne 2" in errors[6]
    assert "69" in errors[7] and "région" in errors[7]
    assert "rien n'a été importé" in exc.message
    assert count(session, Qpv.code) == 0
    assert count(session, Department.code) == 0
    assert count(session, Region.code) == 0


def test_qpv_file_without_code_column(session):
    exc = rejected(session, lines("Europe,02", header="nom,departement"))
    assert "code_qp" in exc.message
    assert count(session, Qpv.code) == 0


def test_empty_qpv_file(session):
    exc = rejected(session, b"")
    assert "aucune ligne" in exc.message
    assert count(session, Qpv.code) == 0


def test_cli_import_qpv(session, runner):
    result = runner.invoke(args=["import-qpv", str(DATA / HDF)])
    assert result.exit_code == 0, result.output
    assert "204 créés" in result.output
    session.expire_all()
    assert count(session, Qpv.code) == 204
    again = runner.invoke(args=["import-qpv", str(DATA / HDF)])
    assert again.exit_code == 0, again.output
    assert "0 créés" in again.output and "204 inchangés" in again.output


def test_cli_import_qpv_bad_file(session, runner, tmp_path):
    path = tmp_path / "qpv.csv"
    path.write_bytes(BAD_QPV_FILE)
    result = runner.invoke(args=["import-qpv", str(path)])
    assert result.exit_code != 0
    for line in (3, 4, 6, 7):
        assert f"ligne {line} " in result.output, result.output
    for line in (2, 5, 8):
        assert f"ligne {line} " not in result.output
    session.expire_all()
    assert count(session, Qpv.code) == 0


def test_admin_qpv_page_upload(session, world, login_as):
    client = login_as(world.admin)
    bad = client.post(
        "/admin/qpv", data={"file": (io.BytesIO(BAD_QPV_FILE), "qpv.csv")}, content_type="multipart/form-data"
    )
    assert bad.status_code == 422
    text = page_text(bad)
    for reported in ("QX05901M", "QN05902M", "QN05901M en double", "69"):
        assert reported in text
    session.expire_all()
    assert count(session, Qpv.code) == 4
    good = client.post(
        "/admin/qpv",
        data={"file": (io.BytesIO(read_package_file(HDF)), "qpv.csv")},
        content_type="multipart/form-data",
    )
    assert good.status_code == 302
    assert "202 créés, 1 mis à jour, 1 inchangés" in page_text(client.get(good.headers["Location"]))
    session.expire_all()
    assert session.get(Qpv, "QN00201M") is not None
    assert session.get(Qpv, "QN08001M").name == "Etouvie"  # the world's "Amiens Nord", renamed by the file
    assert count(session, Qpv.code) == 2 + 204  # QN05981M and QN08001M were already known


# ---------------------------------------------------------------- organisations


def org_data(**values) -> OrganisationData:
    defaults = {"kind": OrganisationKind.ASSOCIATION, "name": "Nouvelle structure", "department_code": "59"}
    return OrganisationData(**{**defaults, **values})


def refused(session, data: OrganisationData, error=ValidationFailed) -> str:
    before = count(session, Organisation.id)
    with pytest.raises(error) as caught:
        referential.save_organisation(session, data, by=None)
    session.rollback()
    assert count(session, Organisation.id) == before
    return caught.value.message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (org_data(kind=OrganisationKind.SCHOOL, uai="0750654A"), "devrait être D"),
        (org_data(kind=OrganisationKind.SCHOOL, uai="075065D"), "7 chiffres"),
        (org_data(kind=OrganisationKind.SCHOOL, uai=""), "UAI"),
        (org_data(department_code="99"), "99"),
        (org_data(department_code="ZZ"), "département"),
        (org_data(department_code="2A"), "absent du référentiel"),
        (org_data(qpv_codes=["QN09301M"]), "QN09301M"),
        (org_data(qpv_codes=["QN05999M"]), "QN05999M"),
        (org_data(qpv_codes=["QX05901M"]), "QX05901M"),
        (org_data(name="   "), "nom"),
    ],
)
def test_save_organisation_refuses_with_the_reason(session, world, data, reason):
    assert reason in refused(session, data)


def test_qpv_of_another_region_is_named_as_such(session, world):
    message = refused(session, org_data(qpv_codes=["QN05981M", "QN09301M"]))
    assert "autre région" in message and "QN09301M" in message and "QN05981M" not in message


def test_unknown_qpv_is_named(session, world):
    message = refused(session, org_data(qpv_codes=["QN05981M", "QN05999M"]))
    assert "QN05999M" in message and "QN05981M" not in message


def test_uai_already_used_is_a_conflict(session, world):
    message = refused(session, org_data(kind=OrganisationKind.SCHOOL, uai="0750654d"), error=Conflict)
    assert "Collège Roubaix" in message


def test_save_organisation_accepts_both_qpv_lists_and_normalises_codes(session, world):
    org = referential.save_organisation(
        session,
        org_data(
            kind=OrganisationKind.SCHOOL,
            name="École Jean Macé",
            uai=" 0590001f ",
            qpv_codes=["qp059001", " QN05981M "],
        ),
        by=None,
    )
    session.commit()
    saved = session.get(Organisation, org.id)
    assert saved.uai == "0590001F"
    assert [q.code for q in saved.qpvs] == ["QN05981M", "QP059001"]
    assert saved.department_code == "59"


def test_save_organisation_restores_a_lost_department_zero(session, world):
    session.add(Department(code="02", name="Aisne", region_code="32"))
    session.commit()
    org = referential.save_organisation(session, org_data(department_code="2"), by=None)
    assert org.department_code == "02"


def test_organisations_are_managed_by_admins_only(session, world):
    before = count(session, Organisation.id)
    with pytest.raises(Forbidden):
        referential.save_organisation(session, org_data(), by=world.coordinator)
    session.rollback()
    assert count(session, Organisation.id) == before


def organisation_form(**values) -> dict[str, str]:
    return {
        "kind": "ecole",
        "name": "Collège Test",
        "department_code": "59",
        "uai": "",
        "address": "",
        "postal_code": "",
        "city": "",
        "cite_educative": "",
        "qpvs": "",
        "is_active": "y",
        **values,
    }


def test_admin_page_refuses_a_bad_uai(session, world, login_as):
    client = login_as(world.admin)
    before = count(session, Organisation.id)
    response = client.post("/admin/structures/nouvelle", data=organisation_form(uai="0750654A"))
    assert response.status_code == 422
    assert "la lettre de contrôle de 0750654A devrait être D" in page_text(response)
    session.expire_all()
    assert count(session, Organisation.id) == before
    assert session.scalar(sa.select(Organisation).where(Organisation.name == "Collège Test")) is None


def test_admin_page_creates_a_school(session, world, login_as):
    client = login_as(world.admin)
    response = client.post(
        "/admin/structures/nouvelle", data=organisation_form(uai="0590001F", qpvs="QN05981M, qp059001")
    )
    assert response.status_code == 302, page_text(response)
    session.expire_all()
    school = session.scalar(sa.select(Organisation).where(Organisation.name == "Collège Test"))
    assert school.uai == "0590001F"
    assert [q.code for q in school.qpvs] == ["QN05981M", "QP059001"]


# ---------------------------------------------------------------- base referential


def base_counts(session) -> tuple[int, int, int, int]:
    return (
        count(session, Region.code),
        count(session, Department.code),
        count(session, Commune.code),
        count(session, CiteEducative.code),
    )


def test_load_base_referential(session):
    referential.load_base_referential(session)
    session.commit()
    assert {d.code for d in session.scalars(sa.select(Department))} == {"02", "59", "60", "62", "80"}
    assert {d.region_code for d in session.scalars(sa.select(Department))} == {"32"}
    assert session.get(Department, "60").name == "Oise"
    assert session.get(Region, "32").name == "Hauts-de-France"
    assert count(session, Commune.code) == 3782
    assert session.get(Commune, "02691").name == "Saint-Quentin"
    assert session.get(Commune, "02691").department_code == "02"
    cites = dict(
        session.execute(
            sa.select(CiteEducative.department_code, sa.func.count()).group_by(CiteEducative.department_code)
        ).all()
    )
    assert cites == {"02": 3, "59": 15, "60": 4, "62": 8, "80": 2}
    assert session.get(CiteEducative, "cite-002").name == "Amiens Nord"
    # « Valenciennes / Anzin » spans two communes: both are kept, as valid commune codes
    assert session.get(CiteEducative, "cite-076").commune_codes.split(";") == ["59014", "59606"]
    for cite in session.scalars(sa.select(CiteEducative)):
        for commune in cite.commune_codes.split(";"):
            assert codes.normalize_commune(commune) == commune
    first = base_counts(session)
    assert first == (1, 5, 3782, 32)

    referential.load_base_referential(session)
    session.commit()
    assert base_counts(session) == first


def test_load_base_referential_next_to_existing_data(session, world):
    referential.load_base_referential(session)
    session.commit()
    assert count(session, Commune.code) == 3782
    assert {d.code for d in session.scalars(sa.select(Department).where(Department.region_code == "32"))} == {
        "02",
        "59",
        "60",
        "62",
        "80",
    }
    assert session.get(Department, "93").region_code == "11"
    # the world's own cité éducative is kept, and the region has its 32
    assert session.get(CiteEducative, "cite-064").name == "Roubaix"
    hdf_cites = sa.select(sa.func.count(CiteEducative.code)).where(
        CiteEducative.department_code.in_(["02", "59", "60", "62", "80"])
    )
    assert session.scalar(hdf_cites) == 32
