"""Background jobs: what cannot finish inside a web request (a national XLSX export, a batch of thousands of
slips) is prepared by a huey worker (``logistique worker``, started by ``scripts/serve`` next to gunicorn).

The queue is huey's: SQLite storage in the instance folder by default (one machine), Redis when
``LOGISTIQUE_QUEUE_URL=redis://…`` is set (workers on several machines). The ``jobs`` table says who asked,
how far the work is and where the file is; only its owner may download the file, which is deleted
``JOB_FILE_HOURS`` after it was made.

A job survives restarts: a queued job waits in the queue's storage for a worker; a job whose worker died
(no sign of life for ``JOB_STALL_SECONDS``) is queued again by the next housekeeping round, which every worker
runs when it starts and then every minute (at most ``MAX_ATTEMPTS`` tries). Running a job first claims it
with a guarded update, so that a job queued twice still runs once."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext
from huey import Huey, RedisHuey, SqliteHuey, crontab
from sqlalchemy.orm import Session

from .db import db, utcnow
from .domain import retention
from .domain.errors import NotFound
from .models import Job, JobStatus, User

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
FAILED_MESSAGE = (
    "Le fichier n'a pas pu être préparé. Relancez l'export ; si l'échec se répète, prévenez l'administration."
)
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Handler:
    """How to make the file of one kind of job: ``build(session, user, params, out, progress)``; or, for a job
    that makes no file (an uploaded file imported, ``logistique/uploads.py``), how to run it all:
    ``run(session, job, user)``, which records its own outcome."""

    build: Callable[[Session, User, dict[str, Any], IO[bytes], Progress], None] | None = None
    run: Callable[[Session, Job, User | None], None] | None = None
    failed: str = ""  # what its page says when it could not be done (FAILED_MESSAGE when empty)


HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable:
    """Register the function that makes the file of ``kind`` jobs (the modules that submit them do)."""

    def register(build: Callable) -> Callable:
        HANDLERS[kind] = Handler(build)
        return build

    return register


# ---------------------------------------------------------------- the queue


def queue(app: Flask | None = None) -> Huey:
    """The app's huey queue, built on first use (no file or connection opened by the app factory)."""
    app = app or current_app._get_current_object()
    huey = app.extensions.get("logistique.queue")
    if huey is None:
        huey = app.extensions["logistique.queue"] = _build_queue(app)
    return huey


def _build_queue(app: Flask) -> Huey:
    url, name = app.config["QUEUE_URL"], app.config["QUEUE_NAME"]
    if url:
        huey: Huey = RedisHuey(name, url=url, results=False)
    else:
        path = Path(app.config["QUEUE_FILE"] or Path(app.instance_path) / "queue.sqlite3")
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(name, filename=str(path), results=False)

    @huey.task(name="logistique.run_job")
    def run_job_task(job_id: int) -> None:
        with app.app_context():
            run(job_id)

    @huey.periodic_task(crontab(minute="*"), name="logistique.housekeeping")
    def housekeeping_task() -> None:
        with app.app_context():
            housekeeping()

    @huey.periodic_task(crontab(minute="*"), name="logistique.notifications")
    def notifications_task() -> None:
        # the e-mail outbox (logistique/mail.py): scheduled notices due, then sending with retries; nothing to
        # do without LOGISTIQUE_SMTP_URL. Safe on every worker at once: each message is claimed by one sender.
        from . import mail

        with app.app_context():
            mail.run_pass()

    @huey.on_startup()
    def take_up_interrupted_jobs() -> None:
        with app.app_context():
            housekeeping()

    app.extensions["logistique.run_job"] = run_job_task
    return huey


def enqueue(job: Job) -> None:
    """Hand a committed job to the workers."""
    _send(job.id)


def _send(job_id: int) -> None:
    queue()
    current_app.extensions["logistique.run_job"](job_id)


# ---------------------------------------------------------------- asking and reading


def submit(
    session: Session, kind: str, *, by: User, title: str, file_name: str, params: dict, total: int
) -> Job:
    """A new queued job of ``by`` (no commit: the caller commits, then ``enqueue``)."""
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    job = Job(
        key=secrets.token_hex(16),
        kind=kind,
        owner_id=by.id,
        title=title[:200],
        file_name=file_name[:200],
        params=json.dumps(params),
        total=total,
        status=JobStatus.QUEUED,
        heartbeat_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, user: User, key: str) -> Job:
    """One of the user's jobs; anybody else's is NotFound (its file holds what its owner may see)."""
    job = session.scalar(sa.select(Job).where(Job.key == key[:32], Job.owner_id == user.id))
    if job is None:
        raise NotFound("Travail introuvable.")
    return job


# ---------------------------------------------------------------- running


def _jobs_dir() -> Path:
    return Path(current_app.config["JOBS_DIR"] or Path(current_app.instance_path) / "jobs")


def job_folder(key: str) -> Path:
    """The folder of one job's files in the jobs directory (shared by every machine)."""
    return _jobs_dir() / key


def _claim(job_id: int) -> bool:
    """Mark the job running if it is queued, or running without a sign of life (its worker died)."""
    now = utcnow()
    stalled = now - timedelta(seconds=current_app.config["JOB_STALL_SECONDS"])
    with db.new_session(write=True) as session:
        claimed = session.execute(
            sa.update(Job)
            .where(
                Job.id == job_id,
                sa.or_(
                    Job.status == JobStatus.QUEUED,
                    sa.and_(Job.status == JobStatus.RUNNING, Job.heartbeat_at < stalled),
                ),
            )
            .values(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=Job.attempts + 1)
        ).rowcount
        session.commit()
    return claimed == 1


def _update(job_id: int, **values: Any) -> None:
    with db.new_session(write=True) as session:
        session.execute(sa.update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow(), **values))
        session.commit()


def run(job_id: int) -> None:
    """Make the job's file (in the worker), reporting progress about once a second."""
    if not _claim(job_id):
        return  # done, failed, or running elsewhere
    with db.new_session() as session:
        job = session.get(Job, job_id)
        user = session.get(User, job.owner_id)
        custom = HANDLERS[job.kind].run
        if custom is not None:
            custom(session, job, user)
            return
        folder = job_folder(job.key)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / (Path(job.file_name).name + ".part")
        done = 0
        last = time.monotonic()

        def progress(n: int) -> None:
            nonlocal done, last
            done += n
            if time.monotonic() - last >= 1:
                last = time.monotonic()
                _update(job_id, done=done)

        try:
            if user is None or not user.is_active:
                raise PermissionError("the owner's account is gone or disabled")
            build = HANDLERS[job.kind].build
            assert build is not None
            with partial.open("wb") as out:
                build(session, user, json.loads(job.params), out, progress)
            final = partial.with_name(Path(job.file_name).name)
            partial.replace(final)
        except Exception:
            log.exception("job %s (%s) failed", job_id, job.kind)
            shutil.rmtree(folder, ignore_errors=True)
            _update(job_id, status=JobStatus.FAILED, message=FAILED_MESSAGE, finished_at=utcnow())
            return
        now = utcnow()
        _update(
            job_id,
            status=JobStatus.DONE,
            done=max(done, job.total),
            file_path=str(final),
            file_size=final.stat().st_size,
            finished_at=now,
            expires_at=now + timedelta(hours=current_app.config["JOB_FILE_HOURS"]),
        )


def housekeeping() -> dict[str, int]:
    """Queue again the jobs whose worker died; delete the files past their time. Safe to run anywhere,
    any number of times at once: each change is a guarded update."""
    now = utcnow()
    stalled = now - timedelta(seconds=current_app.config["JOB_STALL_SECONDS"])
    requeued = expired = failed = 0
    with db.new_session(write=True) as session:
        # a job queued long ago and never started was lost with its message (e.g. a Redis restarted empty)
        lost = session.execute(
            sa.select(Job.id, Job.key, Job.kind).where(
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), Job.heartbeat_at < stalled
            )
        ).all()
        for job_id, key, kind in lost:
            known = HANDLERS.get(kind)
            message = (known.failed if known else "") or FAILED_MESSAGE
            row = session.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.heartbeat_at < stalled, Job.attempts >= MAX_ATTEMPTS)
                .values(status=JobStatus.FAILED, message=message, finished_at=now)
            )
            if row.rowcount:
                session.commit()
                shutil.rmtree(job_folder(key), ignore_errors=True)  # an upload it was importing included
                failed += 1
                continue
            row = session.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.heartbeat_at < stalled)
                .values(status=JobStatus.QUEUED, heartbeat_at=now)
            )
            if row.rowcount:
                requeued += 1
                session.commit()
                _send(job_id)
        # files past their time: a made file (the job then says so), or the report of a refused import
        old = session.scalars(
            sa.select(Job).where(
                sa.or_(
                    Job.status == JobStatus.DONE,
                    sa.and_(Job.status == JobStatus.FAILED, Job.file_path.is_not(None)),
                ),
                Job.expires_at < now,
            )
        ).all()
        for job in old:
            if job.file_path:
                shutil.rmtree(Path(job.file_path).parent, ignore_errors=True)
            if job.status is JobStatus.DONE:
                job.status = JobStatus.EXPIRED
            job.file_path = None
            expired += 1
        session.commit()
        expired += _sweep(session, now - timedelta(seconds=current_app.config["JOB_STALL_SECONDS"]))
        # the stored answers of idempotent requests past their day (writes delete them only now and then)
        answers = retention.delete_expired_idempotency(session, now=now)
        session.commit()
    if requeued or expired or failed or answers:
        log.info(
            "jobs: %d queued again, %d failed, %d files deleted, %d stored answers expired",
            requeued,
            failed,
            expired,
            answers,
        )
    return {"requeued": requeued, "failed": failed, "expired": expired, "answers": answers}


def _sweep(session: Session, before: datetime) -> int:
    """Delete the folders of the jobs directory that no waiting or running job, nor a kept file, needs: what
    a crash left (an upload stored by a request whose commit failed, a worker killed mid-way). Only folders
    untouched since ``before``, so that a job being submitted right now keeps its file."""
    root = _jobs_dir()
    if not root.is_dir():
        return 0
    limit = before.replace(tzinfo=UTC).timestamp()  # stored times are naive UTC
    folders = {p.name: p for p in root.iterdir() if p.is_dir() and p.stat().st_mtime < limit}
    if not folders:
        return 0
    jobs = session.execute(
        sa.select(Job.key, Job.status, Job.file_path).where(Job.key.in_(list(folders)))
    ).all()
    needed = {
        key
        for key, status, file_path in jobs
        if status in (JobStatus.QUEUED, JobStatus.RUNNING)
        or (file_path and Path(file_path).parent == folders[key])
    }
    for key in folders.keys() - needed:
        shutil.rmtree(folders[key], ignore_errors=True)
    return len(folders.keys() - needed)


# ---------------------------------------------------------------- the worker command


@click.command("worker")
@click.option("--workers", default=2, show_default=True, help="Travaux menés en parallèle (threads).")
@with_appcontext
def worker_command(workers: int) -> None:
    """Run the background worker (huey consumer): exports and PDF batches asked from the web pages."""
    huey = queue()
    where = "Redis" if current_app.config["QUEUE_URL"] else "SQLite dans le dossier instance"
    click.echo(f"Travaux en arrière-plan : file « {huey.name} » ({where}), {workers} en parallèle.")
    # an idle worker looks at the queue at least every 2 s (huey backs off to 10 s by default)
    huey.create_consumer(workers=workers, worker_type="thread", periodic=True, max_delay=2.0).run()
