"""Bulk imports of whole files (stock, pupils): exact reports on large bad files, everything written on a
good one (across several write batches), nothing on a refused one, the board's counters exact, and the caps
on what one import accepts and reports."""

from __future__ import annotations

import re
import sqlite3

import pytest
import sqlalchemy as sa

from logistique.csvfiles import read_csv
from logistique.domain import bulk, devices, pupils, tallies
from logistique.domain import stock_import as stock
from logistique.domain.errors import MAX_REPORTED_ERRORS, Conflict, ImportRejected
from logistique.models import Device, DeviceCondition, DeviceEvent, DeviceStatus, Pupil, PupilTally

from .test_stock_import import page_text, upload

STOCK_HEADER = "numero_serie;type;modele;etat;etiquette"
PUPIL_HEADER = "prenom;nom;niveau;uai;qpv;responsable_nom;responsable_telephone;besoins"
FIRST = ["Lina", "Adam", "Inès", "Mohamed", "Jade", "Noah", "Sarah", "Yanis", "Léa", "Rayan"]


def stock_csv(rows: list[str]) -> bytes:
    return ("\r\n".join([STOCK_HEADER, *rows]) + "\r\n").encode("utf-8-sig")


def good_stock_row(i: int) -> str:
    kind, model = [("tablette", "Galaxy Tab A"), ("ordinateur", "ThinkPad T470"), ("cle_4g", "Huawei E5576")][
        i % 3
    ]
    return f"BULK-{i:06d};{kind};{model};reconditionne;"


def counts(session) -> tuple[int, int]:
    return (
        session.scalar(sa.select(sa.func.count(Device.id))),
        session.scalar(sa.select(sa.func.count(DeviceEvent.id))),
    )


def plain(text: str) -> str:
    """French typography (narrow no-break spaces between thousands) as plain spaces."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def rejected(session, call) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        call()
    session.rollback()
    return caught.value


# ---------------------------------------------------------------- stock


def test_a_large_good_stock_file_is_written_whole_with_one_first_event_per_device(session, world):
    n = 2 * bulk.BATCH_ROWS + 7  # three write batches
    rows = [good_stock_row(i) for i in range(n)]
    rows[10] = rows[10] + "INV-0010"  # one asset tag given by the supplier, the others generated
    before = counts(session)
    written: list[int] = []
    report = stock.import_stock(
        session, stock_csv(rows), lot=world.lot, by=world.warehouse, progress=written.append
    )
    session.commit()

    assert report.created == n and sum(written) == n
    assert sum(report.by_kind.values()) == n
    assert counts(session) == (before[0] + n, before[1] + n)
    imported = session.execute(
        sa.select(Device.serial, Device.asset_tag, Device.status, Device.lot_id, Device.warehouse_id).where(
            Device.serial.like("BULK-%")
        )
    ).all()
    assert len(imported) == n
    assert {r.status for r in imported} == {DeviceStatus.IN_STOCK}
    assert {(r.lot_id, r.warehouse_id) for r in imported} == {(world.lot.id, world.wh_lille.id)}
    tags = {r.serial: r.asset_tag for r in imported}
    assert tags["BULK-000010"] == "INV-0010"
    generated = [t for s, t in tags.items() if s != "BULK-000010"]
    assert all(re.fullmatch(r"EQ-[0-9A-HJKMNP-TV-Z]{8}", t) for t in generated)
    assert len(set(tags.values())) == n
    # each device's journal starts with its reception, by whom and why
    events = session.execute(
        sa.select(
            DeviceEvent.action,
            DeviceEvent.actor_id,
            DeviceEvent.to_status,
            DeviceEvent.reason,
            sa.func.count(),
        )
        .join(Device, Device.id == DeviceEvent.device_id)
        .where(Device.serial.like("BULK-%"))
        .group_by(DeviceEvent.action, DeviceEvent.actor_id, DeviceEvent.to_status, DeviceEvent.reason)
    ).all()
    assert events == [
        ("reception_stock", world.warehouse.id, DeviceStatus.IN_STOCK, "Import du lot LOT-LILLE", n)
    ]
    one = session.scalar(sa.select(Device).where(Device.serial == "BULK-000123"))
    assert [e.action for e in one.events] == ["reception_stock"]


def test_a_large_bad_stock_file_reports_every_fault_exactly_and_writes_nothing(session, world):
    rows = [good_stock_row(i) for i in range(3000)]
    expected: dict[int, str] = {}  # physical line -> reason (line 1 is the header)

    def bad(index: int, row: str, reason: str) -> None:
        rows[index] = row
        expected[index + 2] = reason

    bad(
        4,
        "BULK-000001;tablette;Galaxy Tab A;reconditionne;",
        "numéro de série BULK-000001 en double dans le fichier (déjà ligne 3)",
    )
    bad(99, "SN-LILLE-1;tablette;Galaxy Tab A;neuf;", "numéro de série SN-LILLE-1 déjà enregistré")
    bad(
        500,
        f"BULK-000500;tablette;Galaxy Tab A;neuf;{world.device2.asset_tag}",
        f"étiquette {world.device2.asset_tag} déjà utilisée",
    )
    bad(700, "BULK-000700;tablette;Galaxy Tab A;neuf;TAG-X", "")
    bad(
        701,
        "BULK-000701;tablette;Galaxy Tab A;neuf;TAG-X",
        "étiquette TAG-X en double dans le fichier (déjà ligne 702)",
    )
    del expected[702]
    bad(
        1500,
        "BULK-001500;frigo;Galaxy Tab A;neuf;",
        "type inconnu : 'frigo' (tablette, ordinateur ou cle_4g)",
    )
    bad(2999, "BULK-002999;tablette;Galaxy Tab A;cassé;", "état inconnu : 'cassé' (neuf ou reconditionne)")
    before = counts(session)

    refusal = rejected(
        session, lambda: stock.import_stock(session, stock_csv(rows), lot=world.lot, by=world.warehouse)
    )

    assert {e.line: e.message for e in refusal.errors} == expected
    assert refusal.error_count == len(expected) == 6
    assert refusal.message == "Fichier refusé : 6 ligne(s) en erreur, aucun équipement n'a été importé."
    assert counts(session) == before


def test_only_the_first_hundred_faults_are_listed_with_the_count_of_all(session, world):
    rows = [f"BAD-{i:05d};frigo;Galaxy Tab A;neuf;" for i in range(1234)]
    refusal = rejected(session, lambda: stock.import_stock(session, stock_csv(rows), lot=world.lot, by=None))
    assert refusal.error_count == 1234
    assert len(refusal.errors) == MAX_REPORTED_ERRORS == 100
    assert [e.line for e in refusal.errors] == list(range(2, 102))
    assert refusal.unreported == 1134
    assert "1 234 ligne(s) en erreur" in plain(refusal.message)


def test_the_upload_page_lists_a_hundred_bad_rows_and_counts_the_others(session, world, login_as):
    client = login_as(world.warehouse)
    rows = [f"BAD-{i:05d};tablette;Galaxy Tab A;usé;" for i in range(5000)]
    response = upload(client, world.lot.id, stock_csv(rows))
    assert response.status_code == 422
    text = plain(page_text(response))
    assert "Fichier refusé : 5 000 problèmes" in text
    assert "Seules les 100 premières lignes en erreur sont listées ; 4 900 autres ne le sont pas." in text
    body = response.get_data(as_text=True)
    assert body.count("état inconnu") == 100
    assert len(body) < 100_000
    assert counts(session)[0] == 5  # the world's devices only


def test_a_file_over_the_row_cap_is_refused_before_being_read(session, world, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_ROWS", 1000)
    rows = [good_stock_row(i) for i in range(1001)]
    refusal = rejected(session, lambda: stock.import_stock(session, stock_csv(rows), lot=world.lot, by=None))
    assert plain(refusal.message) == (
        "Fichier refusé : 1 001 équipements, au-delà de la limite de 1 000 par import. "
        "Découpez-le en plusieurs fichiers."
    )
    assert refusal.errors == []
    assert stock.import_stock(session, stock_csv(rows[:1000]), lot=world.lot, by=None).created == 1000
    session.rollback()


def test_a_file_over_the_size_cap_is_refused_with_a_french_message(session, world, login_as):
    data = stock_csv([good_stock_row(0)]) + b" " * bulk.MAX_FILE_BYTES
    refusal = rejected(session, lambda: stock.import_stock(session, data, lot=world.lot, by=None))
    assert plain(refusal.message).startswith(
        "Fichier refusé : 16,0 Mo, au-delà de la limite de 16 Mo par import."
    )
    refusal = rejected(session, lambda: pupils.import_pupils(session, data, by=world.coordinator))
    assert "au-delà de la limite de 16 Mo" in refusal.message


def test_a_web_upload_is_read_and_checked_without_holding_the_write_lock(
    session, world, login_as, monkeypatch, backend, database_url
):
    """While the file is parsed, another writer can still write (SQLite has a single write lock)."""
    others_could_write: list[bool] = []

    def parse_while_someone_writes(*args, **kwargs):
        if backend == "sqlite":
            other = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                others_could_write.append(True)
            except sqlite3.OperationalError:  # database is locked
                others_could_write.append(False)
            finally:
                other.close()
        else:  # PostgreSQL locks rows, not the database: the request's transaction holds no lock on devices
            engine = sa.create_engine(database_url)
            try:
                with engine.connect() as other:
                    other.exec_driver_sql("SET lock_timeout = '100ms'")
                    other.exec_driver_sql("LOCK TABLE devices IN EXCLUSIVE MODE")
                    others_could_write.append(True)
                    other.rollback()
            finally:
                engine.dispose()
        return read_csv(*args, **kwargs)

    monkeypatch.setattr(stock, "read_csv", parse_while_someone_writes)
    client = login_as(world.warehouse)
    response = upload(
        client, world.lot.id, stock_csv([f"BAD-{i};tablette;Galaxy Tab A;usé;" for i in range(50)])
    )
    assert response.status_code == 422
    assert others_could_write == [True]


# ---------------------------------------------------------------- pupils


def pupil_csv(rows: list[str]) -> bytes:
    return ("\r\n".join([PUPIL_HEADER, *rows]) + "\r\n").encode("utf-8-sig")


def pupil_row(i: int, qpv: str = "QN05981M", needs: str = "tablette+connexion") -> str:
    first = FIRST[i % len(FIRST)]
    return f"{first};Nom{chr(65 + i % 26)};6e;0750654D;{qpv};Parent {first};06{i:08d};{needs}"


def test_a_large_pupil_file_is_written_with_references_and_exact_counters(session, world):
    n = bulk.BATCH_ROWS + 321
    rows = [
        pupil_row(i, "QN05981M" if i % 3 else "QP059001", ["tablette", "ordinateur+connexion"][i % 2])
        for i in range(n)
    ]
    written: list[int] = []
    report = pupils.import_pupils(session, pupil_csv(rows), by=world.coordinator, progress=written.append)
    session.commit()

    assert report.created == n and sum(written) == n
    stored = session.execute(
        sa.select(Pupil.id, Pupil.reference, Pupil.guardian_phone).order_by(Pupil.id)
    ).all()
    assert len(stored) == n
    assert all(ref == f"E-59-{pid:06d}" for pid, ref, _phone in stored)
    assert stored[0].guardian_phone == "06 00 00 00 00"
    assert (report.first_reference, report.last_reference) == (stored[0].reference, stored[-1].reference)
    assert tallies.differences(session) == []
    by_qpv = dict(
        session.execute(
            sa.select(PupilTally.qpv_code, sa.func.sum(PupilTally.pupils))
            .where(PupilTally.kind == "tablette")
            .group_by(PupilTally.qpv_code)
        ).all()
    )
    tablets = [i for i in range(n) if i % 2 == 0]
    assert by_qpv == {
        "QN05981M": sum(1 for i in tablets if i % 3),
        "QP059001": sum(1 for i in tablets if not i % 3),
    }


def test_a_large_bad_pupil_file_reports_duplicates_in_the_file_and_in_the_database(session, world):
    pupils.import_pupils(session, pupil_csv([pupil_row(0)]), by=world.coordinator)
    session.commit()
    registered = session.scalar(sa.select(Pupil.reference))
    rows = [pupil_row(i) for i in range(1, 2001)]
    rows[0] = pupil_row(0)  # line 2: already registered
    rows[1500] = pupil_row(7)  # line 1502: same child as line 8
    rows[1800] = pupil_row(1801, qpv="QN09301M")  # line 1802: a QPV the association does not serve
    before = session.scalar(sa.select(sa.func.count(Pupil.id)))

    refusal = rejected(session, lambda: pupils.import_pupils(session, pupil_csv(rows), by=world.coordinator))

    assert {e.line: e.message for e in refusal.errors} == {
        2: f"élève déjà enregistré ({registered})",
        1502: "élève en double dans le fichier (déjà ligne 8)",
        1802: "le QPV QN09301M n'est pas desservi par votre structure",
    }
    assert refusal.error_count == 3
    assert session.scalar(sa.select(sa.func.count(Pupil.id))) == before == 1
    assert tallies.differences(session) == []


# ---------------------------------------------------------------- between the check and the write


def test_a_device_registered_between_the_check_and_the_write_refuses_the_whole_file(session, world):
    rows = [good_stock_row(i) for i in range(50)]
    checked = stock.check_stock(session, stock_csv(rows), lot=world.lot, by=world.warehouse)
    session.rollback()
    devices.receive_device(
        session,
        lot=world.lot,
        model=world.tablet,
        serial="BULK-000030",
        condition=DeviceCondition.NEW,
        by=None,
    )
    session.commit()
    before = counts(session)
    with pytest.raises(Conflict, match="viennent d'être enregistrés"):
        stock.write_stock(session, checked, by=world.warehouse)
    session.rollback()
    assert counts(session) == before


def test_a_pupil_registered_between_the_check_and_the_write_refuses_the_whole_file(session, world):
    rows = [pupil_row(i) for i in range(40)]
    checked = pupils.check_pupils(session, pupil_csv(rows), by=world.coordinator)
    session.rollback()
    pupils.import_pupils(session, pupil_csv(rows[25:26]), by=world.coordinator)
    session.commit()
    with pytest.raises(Conflict, match="viennent d'être enregistrés"):
        pupils.write_pupils(session, checked, by=world.coordinator)
    session.rollback()
    assert session.scalar(sa.select(sa.func.count(Pupil.id))) == 1


def test_checking_a_file_reports_the_rows_checked_as_it_goes(session, world):
    """What a background import's page shows as « lignes vérifiées »."""
    n = 2 * bulk.BATCH_ROWS + 3
    checked: list[int] = []
    result = pupils.check_pupils(
        session, pupil_csv([pupil_row(i) for i in range(n)]), by=world.coordinator, progress=checked.append
    )
    assert len(result.pupils) == n and checked == [bulk.BATCH_ROWS, bulk.BATCH_ROWS, 3]
    checked.clear()
    rows = [good_stock_row(i) for i in range(bulk.BATCH_ROWS + 1)]
    stock.check_stock(session, stock_csv(rows), lot=world.lot, by=None, progress=checked.append)
    assert checked == [bulk.BATCH_ROWS, 1]
    session.rollback()
