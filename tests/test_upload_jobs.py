"""Uploads imported by a background job (a file of more than IMPORT_INLINE_MAX_ROWS rows; the tests lower it
to 1): the real worker (``logistique worker`` in its own process) on the real queue storages, as
tests/test_jobs.py runs it. The uploaded file lives in the jobs directory only while the job needs it."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from logistique import jobs
from logistique.db import utcnow
from logistique.models import Device, Job, JobStatus, Pupil

from . import test_jobs
from .test_jobs import job_of, wait_for
from .test_pupil_xlsx import GOOD, workbook
from .test_stock_import import page_text as raw_text

queue_env = test_jobs.queue_env  # the fixtures of the real worker on its real queue
start_worker = test_jobs.start_worker

STOCK_HEADER = "numero_serie;type;modele;etat"


def page_text(response) -> str:
    """What a person reads, French typography's no-break spaces as plain spaces."""
    return raw_text(response).replace("\xa0", " ").replace("\u202f", " ")


def stock_file(rows: list[str]) -> bytes:
    return ("\r\n".join([STOCK_HEADER, *rows]) + "\r\n").encode()


def good_stock_rows(n: int) -> list[str]:
    models = [("tablette", "Galaxy Tab A"), ("ordinateur", "ThinkPad T470"), ("cle_4g", "Huawei E5576")]
    return [f"UPLOAD-{i:05d};{models[i % 3][0]};{models[i % 3][1]};reconditionne" for i in range(n)]


@pytest.fixture
def jobs_dir(app, queue_env):
    app.config["IMPORT_INLINE_MAX_ROWS"] = 1
    return app.config["JOBS_DIR"]


def upload(client, url: str, data: bytes, name: str, **fields):
    response = client.post(
        url, data={**fields, "file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )
    assert response.status_code == 303, page_text(response)
    location = response.headers["Location"]
    assert re.fullmatch(r"/travaux/[0-9a-f]{32}", location)
    return location.removeprefix("/travaux/")


def folder_of(jobs_dir, key: str) -> Path:
    return Path(jobs_dir) / key


def pupil_names(session) -> list[str]:
    session.rollback()
    return list(session.scalars(sa.select(Pupil.first_name).order_by(Pupil.id)))


def test_a_pupil_upload_job_queued_progress_done_owner_only_file_removed(
    session, world, login_as, jobs_dir, start_worker
):
    client = login_as(world.coordinator)
    data = workbook(GOOD)
    key = upload(client, "/eleves/import", data, "eleves.xlsx")

    # queued: the file waits in the job's folder, readable by the app's user only; nothing of it in the job
    job = job_of(session, key)
    assert (job.status, job.owner_id, job.kind) == (JobStatus.QUEUED, world.coordinator.id, "pupils_import")
    stored = folder_of(jobs_dir, key) / "upload"
    assert stored.read_bytes() == data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert not any(name in f"{job.title} {job.params} {job.file_name}" for name in ("Zoé", "Quintanilla"))
    assert "En attente" in page_text(client.get(f"/travaux/{key}"))
    assert pupil_names(session) == []

    # progress, as the worker records it: rows checked, then rows written
    session.execute(sa.update(Job).where(Job.key == key).values(status=JobStatus.RUNNING, total=6, done=4))
    session.commit()
    page = page_text(client.get(f"/travaux/{key}"))
    assert "Lignes vérifiées : 3 sur 3" in page and "Lignes écrites : 1 sur 3" in page
    session.execute(sa.update(Job).where(Job.key == key).values(status=JobStatus.QUEUED, total=6, done=0))
    session.commit()

    # nobody else learns that it exists, not even a coordinator or an admin
    for other in (world.coordinator_idf, world.admin):
        assert login_as(other).get(f"/travaux/{key}").status_code == 404

    worker = start_worker()
    job = wait_for(session, key, JobStatus.DONE, worker)
    assert (job.done, job.total, job.message) == (6, 6, "3 élèves importés.")
    assert pupil_names(session) == ["Zoé", "Anaïs", "Loïc"]
    assert not stored.exists() and not stored.parent.exists()
    page = page_text(login_as(world.coordinator).get(f"/travaux/{key}"))
    assert "3 élèves importés." in page and "Voir la liste" in page
    assert "supprimé" in page
    worker.stop()


@pytest.mark.parametrize("queue_env", ["sqlite"], indirect=True)
def test_a_refused_stock_upload_writes_nothing_and_shows_its_rows_to_its_owner(
    session, world, login_as, jobs_dir, start_worker
):
    before = session.scalar(sa.select(sa.func.count(Device.id)))
    rows = good_stock_rows(300)
    rows[9] = "UPLOAD-00009;tablette;Modèle inconnu;reconditionne"  # line 11
    rows[249] = rows[3]  # line 251: the serial of line 5
    client = login_as(world.warehouse)
    key = upload(client, "/stock/import", stock_file(rows), "stock.csv", lot=str(world.lot.id))
    assert job_of(session, key).total == 600

    worker = start_worker()
    job = wait_for(session, key, JobStatus.FAILED, worker)
    assert job.message == "Fichier refusé : 2 ligne(s) en erreur, aucun équipement n'a été importé."
    session.rollback()
    assert session.scalar(sa.select(sa.func.count(Device.id))) == before
    folder = folder_of(jobs_dir, key)
    assert not (folder / "upload").exists()
    report = folder / "report.json"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600

    response = client.get(f"/travaux/{key}")
    html = response.get_data(as_text=True)
    lines = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>(.*?)</td></tr>", html)
    assert [int(line) for line, _ in lines] == [11, 251]
    assert "modèle inconnu" in lines[0][1] and "déjà ligne 5" in lines[1][1]
    assert "Aucun équipement n’a été ajouté." in page_text(response)
    assert login_as(world.warehouse_amiens).get(f"/travaux/{key}").status_code == 404

    # the report goes with the other files past their time
    session.execute(sa.update(Job).where(Job.key == key).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert jobs.housekeeping()["expired"] == 1
    assert not folder.exists()
    page = page_text(login_as(world.warehouse).get(f"/travaux/{key}"))
    assert "Fichier refusé : 2 ligne(s)" in page and "déjà ligne 5" not in page
    worker.stop()


@pytest.mark.parametrize("queue_env", ["sqlite"], indirect=True)
def test_housekeeping_deletes_uploads_that_no_job_will_read(session, world, login_as, jobs_dir, app):
    client = login_as(world.coordinator)
    key = upload(client, "/eleves/import", workbook(GOOD), "eleves.xlsx")
    folder = folder_of(jobs_dir, key)
    # its worker died three times: the job fails and its file goes
    session.execute(
        sa.update(Job)
        .where(Job.key == key)
        .values(status=JobStatus.RUNNING, attempts=3, heartbeat_at=utcnow() - timedelta(minutes=5))
    )
    session.commit()
    # a file stored by a request whose commit failed (no job), older than the stall delay
    orphan = folder.parent / ("0" * 32)
    orphan.mkdir()
    (orphan / "upload").write_bytes(b"prenom;nom\r\n")
    old = time.time() - 600
    os.utime(orphan, (old, old))
    # a fresh folder (a submit in progress) is left alone
    fresh = folder.parent / ("1" * 32)
    fresh.mkdir()
    with app.app_context():
        done = jobs.housekeeping()
    assert done["failed"] == 1
    job = job_of(session, key)
    assert job.status is JobStatus.FAILED and job.message.startswith("L'import n'a pas pu aboutir")
    assert not folder.exists() and not orphan.exists() and fresh.exists()


@pytest.mark.parametrize("queue_env", ["sqlite"], indirect=True)
def test_purging_personal_data_deletes_waiting_pupil_uploads(session, world, login_as, jobs_dir, runner):
    key = upload(login_as(world.coordinator), "/eleves/import", workbook(GOOD), "eleves.xlsx")
    assert folder_of(jobs_dir, key).exists()
    assert runner.invoke(args=["close-operation", "--yes"]).exit_code == 0
    result = runner.invoke(args=["purge-personal-data", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Fichiers d'import d'élèves supprimés : 1." in result.output
    assert not folder_of(jobs_dir, key).exists()
    job = job_of(session, key)
    assert job.status is JobStatus.FAILED and "effacées" in job.message
