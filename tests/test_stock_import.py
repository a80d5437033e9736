"""Stock imports (all or nothing, with a report by line) and receiving devices one by one."""

from __future__ import annotations

import html
import io
import re

import pytest
import sqlalchemy as sa

from logistique.domain import money
from logistique.domain.errors import ImportRejected, NotFound
from logistique.domain.stock_import import import_stock
from logistique.models import Device, DeviceCondition, DeviceEvent, DeviceKind, DeviceStatus, Lot

HEADER = "Numéro de série;Type;Modèle;État"


def csv_file(*rows: str, header: str = HEADER, encoding: str = "utf-8-sig", newline: str = "\r\n") -> bytes:
    """A CSV file as a French Excel saves it: BOM, CRLF and ';' unless told otherwise."""
    return "".join(line + newline for line in (header, *rows)).encode(encoding)


def device_count(session) -> int:
    return session.scalar(sa.select(sa.func.count(Device.id)))


def event_count(session) -> int:
    return session.scalar(sa.select(sa.func.count(DeviceEvent.id)))


def device(session, serial: str) -> Device | None:
    return session.scalar(sa.select(Device).where(Device.serial == serial))


def page_text(response) -> str:
    """What a person reads on the page: tags removed, entities decoded, spaces collapsed."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def rejected(session, data: bytes, lot: Lot, by) -> ImportRejected:
    """Import ``data``, expect a refusal, roll back as the callers do and return the refusal."""
    with pytest.raises(ImportRejected) as caught:
        import_stock(session, data, lot=lot, by=by)
    session.rollback()
    return caught.value


def errors_by_line(exc: ImportRejected) -> dict[int, str]:
    return {error.line: error.message for error in exc.errors}


# ---------------------------------------------------------------- files as Excel writes them


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_french_excel_file_imports_every_row(session, world, encoding):
    before_tags = set(session.scalars(sa.select(Device.asset_tag)))
    data = csv_file(
        '="0012345678";Tablette;Galaxy Tab A;Reconditionné',
        '="PF-1ABC22";Ordinateur;ThinkPad T470;Neuf',
        '="86712345";Clé 4G;Huawei E5576;Reconditionné',
        encoding=encoding,
    )
    report = import_stock(session, data, lot=world.lot, by=world.warehouse)
    session.commit()

    assert report.created == 3
    assert report.by_kind == {DeviceKind.TABLET: 1, DeviceKind.LAPTOP: 1, DeviceKind.HOTSPOT: 1}
    expected = {
        "0012345678": (world.tablet, DeviceCondition.REFURBISHED),
        "PF-1ABC22": (world.laptop, DeviceCondition.NEW),
        "86712345": (world.key, DeviceCondition.REFURBISHED),
    }
    tags = []
    for serial, (model, condition) in expected.items():
        found = device(session, serial)
        assert found is not None, f'{serial} not imported (Excel\'s ="…" wrapping kept?)'
        assert found.lot_id == world.lot.id
        assert found.warehouse_id == world.wh_lille.id
        assert found.model_id == model.id
        assert found.condition is condition
        assert found.status is DeviceStatus.IN_STOCK
        assert found.asset_tag
        tags.append(found.asset_tag)
        events = session.scalars(sa.select(DeviceEvent).where(DeviceEvent.device_id == found.id)).all()
        assert len(events) == 1
        assert events[0].from_status is None
        assert events[0].to_status is DeviceStatus.IN_STOCK
        assert events[0].actor_id == world.warehouse.id
    assert len(set(tags)) == 3
    assert not set(tags) & before_tags


def test_canonical_comma_file_with_asset_tags(session, world):
    data = csv_file(
        "tab-001,tablette,galaxy tab a,neuf,EC-000001",
        "tab-002,tablette,Galaxy  Tab A,reconditionne,",
        header="numero_serie,type,modele,etat,etiquette",
        encoding="utf-8",
        newline="\n",
    )
    report = import_stock(session, data, lot=world.lot, by=None)
    session.commit()
    assert report.created == 2
    assert device(session, "TAB-001").asset_tag == "EC-000001"
    generated = device(session, "TAB-002").asset_tag
    assert generated and generated != "EC-000001"


# ---------------------------------------------------------------- bad files import nothing


GOOD = "SN-GOOD-1;Tablette;Galaxy Tab A;Neuf"


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ("SN-LILLE-1;Tablette;Galaxy Tab A;Neuf", "SN-LILLE-1 déjà enregistré"),
        (" sn-lille-1 ;Tablette;Galaxy Tab A;Neuf", "SN-LILLE-1 déjà enregistré"),
        ("SN-NEW-9;Tablette;iPad Pro 12;Neuf", "modèle inconnu"),
        ("SN-NEW-9;Tablette;ThinkPad T470;Neuf", "modèle inconnu"),
        (";Tablette;Galaxy Tab A;Neuf", "numéro de série est vide"),
        ("SN NEW #9;Tablette;Galaxy Tab A;Neuf", "Numéro de série invalide"),
        ("SN-NEW-9;Télévision;Galaxy Tab A;Neuf", "type inconnu"),
        ("SN-NEW-9;Tablette;Galaxy Tab A;Cassé", "état inconnu"),
        ("SN-NEW-9;Tablette;Galaxy Tab A;", "état inconnu"),
    ],
)
def test_one_bad_row_refuses_the_whole_file(session, world, bad_row, reason):
    devices_before, events_before = device_count(session), event_count(session)
    exc = rejected(
        session,
        csv_file(GOOD, bad_row, "SN-GOOD-2;Ordinateur;ThinkPad T470;Neuf"),
        world.lot,
        world.warehouse,
    )
    assert list(errors_by_line(exc)) == [3]
    assert reason in exc.errors[0].message
    assert "rien" in exc.message or "aucun" in exc.message
    assert device_count(session) == devices_before
    assert event_count(session) == events_before
    assert device(session, "SN-GOOD-1") is None


def test_serial_twice_in_the_file_names_the_first_line(session, world):
    data = csv_file(
        "SN-A;Tablette;Galaxy Tab A;Neuf",
        "SN-B;Tablette;Galaxy Tab A;Neuf",
        "sn-a;Ordinateur;ThinkPad T470;Neuf",
    )
    exc = rejected(session, data, world.lot, world.warehouse)
    errors = errors_by_line(exc)
    assert 4 in errors
    assert "SN-A" in errors[4] and "double" in errors[4] and "ligne 2" in errors[4]
    assert 3 not in errors
    assert device(session, "SN-A") is None and device(session, "SN-B") is None


def test_model_of_a_kind_not_priced_in_the_lot(session, world):
    tablets_only = money.save_lot(
        session,
        money.LotData(
            reference="LOT-TABLETTES",
            supplier="Emmaüs Connect",
            envelope_id=world.envelope.id,
            warehouse_id=world.wh_lille.id,
            unit_costs={world.tablet.id: 14000},
        ),
        by=None,
    )
    session.commit()
    before = device_count(session)
    exc = rejected(
        session, csv_file(GOOD, "SN-KEY-1;Clé 4G;Huawei E5576;Neuf"), tablets_only, world.warehouse
    )
    errors = errors_by_line(exc)
    assert list(errors) == [3]
    assert "Huawei E5576" in errors[3] and "aucun modèle" in errors[3]
    assert device_count(session) == before


def test_mixed_encoding_file_reports_the_unreadable_line(session, world):
    data = (
        HEADER.encode()
        + b"\r\n"
        + "SN-M1;Tablette;Galaxy Tab A;Reconditionné\r\n".encode()
        + "SN-M2;Clé 4G;Huawei E5576;Reconditionné\r\n".encode("cp1252")
        + "SN-M3;Ordinateur;ThinkPad T470;Reconditionné\r\n".encode()
    )
    before = device_count(session)
    exc = rejected(session, data, world.lot, world.warehouse)
    errors = errors_by_line(exc)
    assert list(errors) == [3]
    assert "illisible" in errors[3]
    assert device_count(session) == before


def test_missing_required_column_is_a_file_error(session, world):
    before = device_count(session)
    exc = rejected(
        session,
        csv_file("SN-X;Tablette;Neuf", header="Numéro de série;Type;État"),
        world.lot,
        world.warehouse,
    )
    assert "Colonnes manquantes" in exc.message and "modele" in exc.message
    assert exc.errors == []
    assert device_count(session) == before


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\r\n\r\n", csv_file()])
def test_empty_file_is_refused(session, world, data):
    before = device_count(session)
    exc = rejected(session, data, world.lot, world.warehouse)
    assert "aucun" in exc.message.lower()
    assert device_count(session) == before


def test_every_bad_row_is_listed_with_its_physical_line_number(session, world):
    data = csv_file(
        "SN-1;Tablette;Galaxy Tab A;Neuf",  # 2
        "SN-LILLE-2;Ordinateur;ThinkPad T470;Neuf",  # 3: already in the database
        "",  # 4: blank line, skipped but counted
        "SN-2;Tablette;Galaxy Tab A;Neuf",  # 5
        ";Tablette;Galaxy Tab A;Neuf",  # 6: empty serial
        "SN-3;Scanner;Galaxy Tab A;Neuf",  # 7: unknown type
        "SN-4;Tablette;Galaxy Tab A;Neuf",  # 8
        "SN-1;Tablette;Galaxy Tab A;Abîmé",  # 9: duplicate of line 2 and unknown état
    )
    devices_before, events_before = device_count(session), event_count(session)
    exc = rejected(session, data, world.lot, world.warehouse)
    errors = errors_by_line(exc)
    assert sorted(errors) == [3, 6, 7, 9]
    assert "déjà enregistré" in errors[3]
    assert "vide" in errors[6]
    assert "type inconnu" in errors[7]
    assert "ligne 2" in errors[9] and "état inconnu" in errors[9]
    assert "4" in exc.message
    assert device_count(session) == devices_before
    assert event_count(session) == events_before


# ---------------------------------------------------------------- command line


def test_cli_import_stock(session, world, runner, tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(csv_file("CLI-1;Tablette;Galaxy Tab A;Neuf", "CLI-2;Clé 4G;Huawei E5576;Reconditionné"))
    result = runner.invoke(args=["import-stock", str(path), "--lot", "LOT-LILLE"])
    assert result.exit_code == 0, result.output
    assert "2 équipements ajoutés au lot LOT-LILLE" in result.output
    session.expire_all()
    for serial in ("CLI-1", "CLI-2"):
        found = device(session, serial)
        assert found is not None and found.lot_id == world.lot.id and found.status is DeviceStatus.IN_STOCK


def test_cli_bad_file_lists_the_lines_and_imports_nothing(session, world, runner, tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(
        csv_file(
            "CLI-1;Tablette;Galaxy Tab A;Neuf",
            "CLI-2;Tablette;Galaxy Tab Z;Neuf",
            "CLI-3;Tablette;Galaxy Tab A;Neuf",
            "SN-IDF-1;Tablette;Galaxy Tab A;Neuf",
        )
    )
    before = device_count(session)
    result = runner.invoke(args=["import-stock", str(path), "--lot", "LOT-LILLE"])
    assert result.exit_code != 0
    assert "ligne 3" in result.output and "Galaxy Tab Z" in result.output
    assert "ligne 5" in result.output and "SN-IDF-1" in result.output
    assert "ligne 2" not in result.output and "ligne 4" not in result.output
    session.expire_all()
    assert device_count(session) == before
    assert device(session, "CLI-1") is None


def test_cli_unknown_lot(session, world, runner, tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(csv_file("CLI-1;Tablette;Galaxy Tab A;Neuf"))
    before = device_count(session)
    result = runner.invoke(args=["import-stock", str(path), "--lot", "LOT-INCONNU"])
    assert result.exit_code != 0
    assert "introuvable" in result.output.lower()
    session.expire_all()
    assert device_count(session) == before


# ---------------------------------------------------------------- upload page


def upload(client, lot_id: int, data: bytes, filename: str = "stock.csv"):
    return client.post(
        "/stock/import",
        data={"lot": str(lot_id), "file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def test_upload_page_imports_and_redirects(session, world, login_as):
    client = login_as(world.warehouse)
    page = client.get("/stock/import")
    assert page.status_code == 200
    assert "LOT-LILLE" in page_text(page)
    response = upload(
        client,
        world.lot.id,
        csv_file(
            '="WEB-0001";Tablette;Galaxy Tab A;Reconditionné',
            '="WEB-0002";Ordinateur;ThinkPad T470;Neuf',
            encoding="cp1252",
        ),
    )
    assert response.status_code == 302, page_text(response)
    listing = client.get(response.headers["Location"])
    assert listing.status_code == 200
    text = page_text(listing)
    assert "WEB-0001" in text and "WEB-0002" in text
    assert "2 équipements ajoutés au lot LOT-LILLE" in text
    session.expire_all()
    assert device(session, "WEB-0001").lot_id == world.lot.id
    assert device(session, "WEB-0002").warehouse_id == world.wh_lille.id


def test_upload_page_bad_file_answers_422_with_the_lines(session, world, login_as):
    client = login_as(world.warehouse)
    before = device_count(session)
    response = upload(
        client,
        world.lot.id,
        csv_file(
            "WEB-1;Tablette;Galaxy Tab A;Neuf",  # 2
            "WEB-2;Tablette;Galaxy Tab A;Usé",  # 3
            "WEB-3;Tablette;Galaxy Tab A;Neuf",  # 4
            "SN-LILLE-3;Clé 4G;Huawei E5576;Neuf",  # 5
        ),
    )
    assert response.status_code == 422
    text = page_text(response)
    assert re.search(r"\b3 état inconnu", text), text
    assert re.search(r"\b5 numéro de série SN-LILLE-3 déjà enregistré", text), text
    assert "2 ligne(s) en erreur" in text
    session.expire_all()
    assert device_count(session) == before
    assert device(session, "WEB-1") is None


def test_upload_page_refuses_another_warehouse_lot(session, world, login_as):
    client = login_as(world.warehouse_amiens)
    page = client.get("/stock/import")
    assert page.status_code == 200
    text = page_text(page)
    assert "LOT-AMIENS" in text
    assert "LOT-LILLE" not in text
    before = device_count(session)
    response = upload(client, world.lot.id, csv_file("INTRUS-1;Tablette;Galaxy Tab A;Neuf"))
    assert response.status_code != 302
    assert "ajoutés" not in page_text(response)
    session.expire_all()
    assert device(session, "INTRUS-1") is None
    assert device_count(session) == before


def test_domain_refuses_another_warehouse_lot(session, world):
    with pytest.raises(NotFound):
        import_stock(
            session, csv_file("INTRUS-1;Tablette;Galaxy Tab A;Neuf"), lot=world.lot, by=world.warehouse_amiens
        )
    session.rollback()
    assert device(session, "INTRUS-1") is None


# ---------------------------------------------------------------- receiving one by one


def receive(client, world, serial: str, model=None, condition: str = "reconditionne"):
    return client.post(
        "/stock/reception",
        data={
            "lot": str(world.lot.id),
            "model": str((model or world.tablet).id),
            "condition": condition,
            "serial": serial,
        },
    )


def serial_count(session, serial: str) -> int:
    session.expire_all()
    return session.scalar(sa.select(sa.func.count(Device.id)).where(Device.serial == serial))


def test_receive_one_device(session, world, login_as):
    client = login_as(world.warehouse)
    response = receive(client, world, "R-0001", model=world.laptop, condition="neuf")
    assert response.status_code == 200
    assert "R-0001 enregistré" in page_text(response)
    session.expire_all()
    found = device(session, "R-0001")
    assert found is not None
    assert found.lot_id == world.lot.id and found.warehouse_id == world.wh_lille.id
    assert found.model_id == world.laptop.id and found.condition is DeviceCondition.NEW
    assert found.status is DeviceStatus.IN_STOCK
    assert found.asset_tag in page_text(response)
    assert len(found.events) == 1


@pytest.mark.parametrize("again", ["R-0002", " r-0002 "])
def test_receiving_the_same_serial_again_is_harmless(session, world, login_as, again):
    client = login_as(world.warehouse)
    assert receive(client, world, "R-0002").status_code == 200
    events_before = event_count(session)
    response = receive(client, world, again)
    assert response.status_code == 200
    assert "déjà enregistré" in page_text(response)
    assert serial_count(session, "R-0002") == 1
    assert event_count(session) == events_before


@pytest.mark.parametrize(
    ("serial", "message"),
    [
        ("", "Scannez ou tapez un numéro de série."),
        ("   ", "Scannez ou tapez un numéro de série."),
        ("SN 12#", "Numéro de série invalide"),
        ("É" * 3, "Numéro de série invalide"),
        ("X" * 65, "dépasse 64 caractères"),
    ],
)
def test_receiving_an_empty_or_invalid_serial_is_refused(session, world, login_as, serial, message):
    client = login_as(world.warehouse)
    before = device_count(session)
    response = receive(client, world, serial)
    assert response.status_code == 422
    assert message in page_text(response)
    session.expire_all()
    assert device_count(session) == before


def test_receiving_into_another_warehouse_lot_is_refused(session, world, login_as):
    client = login_as(world.warehouse)
    before = device_count(session)
    response = client.post(
        "/stock/reception",
        data={
            "lot": str(world.lot_amiens.id),
            "model": str(world.tablet.id),
            "condition": "neuf",
            "serial": "INTRUS-2",
        },
    )
    assert response.status_code == 422
    assert "INTRUS-2 enregistré" not in page_text(response)
    assert serial_count(session, "INTRUS-2") == 0
    assert device_count(session) == before
