"""Background jobs with the real huey worker (``logistique worker`` in its own process) on the real queue
storages: SQLite in a file, and Redis at 127.0.0.1:6379 (started on every machine the suite runs on)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from logistique import jobs
from logistique.db import utcnow
from logistique.models import Job, JobStatus

from .factories import bundle, issued_slip, pdf_text
from .test_stock_import import page_text

REDIS_URL = os.environ.get("LOGISTIQUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["sqlite", "redis"])
def queue_env(request, app, tmp_path, database_url) -> dict[str, str]:
    """The app and its workers on one queue: a SQLite file of this test, or a Redis queue of its own name."""
    name = f"logistique-test-{uuid.uuid4().hex[:8]}"
    settings = {
        "QUEUE_URL": REDIS_URL if request.param == "redis" else "",
        "QUEUE_NAME": name,
        "QUEUE_FILE": str(tmp_path / "queue.sqlite3"),
        "JOBS_DIR": str(tmp_path / "jobs"),
        "JOB_STALL_SECONDS": 2,
        "EXPORT_INLINE_MAX_ROWS": 1,
        "SLIPS_INLINE_MAX": 1,
    }
    app.config.update(settings)
    env = {
        **os.environ,
        "LOGISTIQUE_DATABASE_URL": database_url,
        "LOGISTIQUE_SECRET_KEY": app.config["SECRET_KEY"],
        "LOGISTIQUE_BASE_URL": app.config["BASE_URL"],
        **{f"LOGISTIQUE_{key}": str(value) for key, value in settings.items()},
    }
    yield env
    jobs.queue(app).flush()  # what a test left in its queue (a Redis queue outlives the test)


class Worker:
    """``logistique worker`` in a process of its own, as scripts/serve starts it."""

    def __init__(self, env: dict[str, str]) -> None:
        command = [str(Path(sys.executable).with_name("logistique")), "worker", "--workers", "1"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)  # huey's graceful stop
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output.decode(errors="replace")


@pytest.fixture
def start_worker(queue_env):
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(queue_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.stop()


def job_of(session, key: str) -> Job:
    session.expire_all()
    return session.scalar(sa.select(Job).where(Job.key == key))


def wait_for(session, key: str, status: JobStatus, worker: Worker, seconds: float = 60) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = job_of(session, key)
        session.rollback()
        if job.status is status:
            return job
        assert worker.process.poll() is None, worker.stop()
        time.sleep(0.2)
    raise AssertionError(f"job still {job.status} after {seconds} s:\n{worker.stop()}")


def ask_for_devices_xlsx(client) -> str:
    """Open the export, confirm the background job, return its key (from the page it leads to)."""
    offer = client.get("/tableau/equipements.xlsx")
    assert offer.status_code == 200
    assert "préparé en arrière-plan" in page_text(offer)
    confirmed = client.post("/tableau/equipements.xlsx")
    assert confirmed.status_code == 303
    location = confirmed.headers["Location"]
    assert location.startswith("/travaux/")
    return location.removeprefix("/travaux/")


def test_a_jobs_life_queued_progress_done_owner_only_then_cleaned_up(
    session, world, login_as, app, start_worker
):
    for n in range(1, 4):
        bundle(session, world, n)
    session.commit()
    client = login_as(world.prefecture)
    key = ask_for_devices_xlsx(client)

    job = job_of(session, key)
    assert (job.status, job.owner_id, job.total, job.done) == (JobStatus.QUEUED, world.prefecture.id, 6, 0)
    assert "En attente" in page_text(client.get(f"/travaux/{key}"))
    assert client.get(f"/travaux/{key}/fichier").status_code == 404  # nothing to fetch yet

    worker = start_worker()
    job = wait_for(session, key, JobStatus.DONE, worker)
    assert job.done == 6 and job.attempts == 1 and job.file_size > 0
    page = page_text(client.get(f"/travaux/{key}"))
    assert "Prêt" in page and "Télécharger" in page

    download = client.get(f"/travaux/{key}/fichier")
    assert download.status_code == 200
    assert download.headers["Cache-Control"] == "no-store"
    assert download.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(download.data)).active
    serials = sorted(row[0] for row in sheet.iter_rows(min_row=2, values_only=True))
    assert serials == sorted(f"SN-{k}-{n}" for n in range(1, 4) for k in ("TAB", "CLE"))

    # anyone else, even of the same scope, does not learn that it exists
    for other in (world.prefecture_nord, world.admin):
        stranger = login_as(other)
        assert stranger.get(f"/travaux/{key}").status_code == 404
        assert stranger.get(f"/travaux/{key}/fichier").status_code == 404

    # past its time, the file is deleted by the workers' housekeeping
    path = Path(job.file_path)
    assert path.is_file()
    session.execute(sa.update(Job).where(Job.key == key).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert jobs.housekeeping()["expired"] == 1
    assert not path.exists() and not path.parent.exists()
    owner = login_as(world.prefecture)
    assert owner.get(f"/travaux/{key}/fichier").status_code == 404
    assert "supprimé" in page_text(owner.get(f"/travaux/{key}"))
    assert job_of(session, key).status is JobStatus.EXPIRED
    worker.stop()


def test_a_job_whose_worker_died_is_taken_up_when_a_worker_starts(
    session, world, login_as, app, start_worker
):
    """A worker killed while running a job leaves it « running » and its queue message gone."""
    bundle(session, world, 1)
    session.commit()
    key = ask_for_devices_xlsx(login_as(world.prefecture))
    jobs.queue(app).flush()  # the message was taken by the worker that died
    session.execute(
        sa.update(Job)
        .where(Job.key == key)
        .values(status=JobStatus.RUNNING, attempts=1, heartbeat_at=utcnow() - timedelta(minutes=5))
    )
    session.commit()

    worker = start_worker()
    job = wait_for(session, key, JobStatus.DONE, worker)
    assert job.attempts == 2
    assert login_as(world.prefecture).get(f"/travaux/{key}/fichier").status_code == 200
    worker.stop()


def test_a_big_batch_of_slips_is_printed_by_a_job(session, world, login_as, app, start_worker):
    for n in range(1, 3):
        issued_slip(session, world, bundle(session, world, n).serials)
    session.commit()
    client = login_as(world.warehouse)
    assert "préparé en arrière-plan" in page_text(client.get("/bordereaux/a-preparer.pdf"))
    key = client.post("/bordereaux/a-preparer.pdf").headers["Location"].removeprefix("/travaux/")
    worker = start_worker()
    wait_for(session, key, JobStatus.DONE, worker)
    document = client.get(f"/travaux/{key}/fichier")
    assert document.status_code == 200 and document.mimetype == "application/pdf"
    text = pdf_text(document.data)
    assert "SN-TAB-1" in text and "SN-CLE-2" in text
    worker.stop()
