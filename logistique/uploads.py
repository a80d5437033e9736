"""Uploaded files imported by a background job: a stock or pupil file too big to be imported inside a web
request (gunicorn's timeout is 30 s; 100 000 rows take longer on a loaded machine).

The page stores the file in the job's folder of the jobs directory (``LOGISTIQUE_JOBS_DIR``, shared by every
machine; folder 0700, file 0600: a pupil file holds children's names and their guardians' phones), then
queues the job; nothing of the file goes into a URL, a log line or the job's row. The worker checks the file
on a reading session (the page shows the rows checked), writes it on a writing session (rows written) and
marks the job done **in the same transaction**, so that a job run twice (its first worker thought dead)
imports once. Whatever the outcome, the uploaded file is deleted when the job ends; a refused file leaves its
report (the first 100 faulty rows and their count) next to it, shown to the owner on the job page and
deleted after ``JOB_FILE_HOURS`` by the workers' housekeeping, which also deletes what a crash left.
``logistique purge-personal-data`` deletes every pupil upload and report at once."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from . import jobs
from .csvfiles import RowError
from .db import db, utcnow
from .domain.errors import DomainError, Forbidden, ImportRejected
from .models import Job, JobStatus, User

log = logging.getLogger(__name__)

UPLOAD_NAME = "upload"
REPORT_NAME = "report.json"
FAILED_MESSAGE = (
    "L'import n'a pas pu aboutir ; rien n'a été importé. Réessayez ; si l'échec se répète, prévenez "
    "l'administration."
)
PURGED_MESSAGE = "Import annulé : les données personnelles des élèves ont été effacées."
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Upload:
    """One kind of import run by a job: ``check(session, user, params, data, progress)`` reads and checks the
    file (reads only) and returns what ``write(session, user, checked, progress)`` inserts (no commit);
    ``write`` returns the French success message. ``rows(checked)`` counts the rows to write."""

    check: Callable[[Session, User, dict[str, Any], bytes, Progress], Any]
    write: Callable[[Session, User, Any, Progress | None], str]
    rows: Callable[[Any], int]
    nothing: str  # « Aucun élève n'a été enregistré. »: what a refusal changed
    done_endpoint: str  # the page listing what was imported
    personal: bool = False  # the file holds pupils' personal data (purged with them)


UPLOADS: dict[str, Upload] = {}


def upload_kind(kind: str, upload: Upload) -> None:
    """Register a kind of import job (the views that offer the upload do)."""
    UPLOADS[kind] = upload
    jobs.HANDLERS[kind] = jobs.Handler(run=_run, failed=FAILED_MESSAGE)


def submit(session: Session, kind: str, data: bytes, *, by: User, title: str, params: dict, rows: int) -> Job:
    """A new queued import of ``data`` by ``by``, the file stored in the job's folder (no commit: the caller
    commits, then ``jobs.enqueue``). If the commit fails, housekeeping deletes the stored file."""
    suffix = ".xlsx" if data.startswith(b"PK") else ".csv"
    job = jobs.submit(
        session, kind, by=by, title=title, file_name=f"import{suffix}", params=params, total=2 * rows
    )
    folder = jobs.job_folder(job.key)
    folder.mkdir(mode=0o700, parents=True)
    descriptor = os.open(folder / UPLOAD_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    return job


# ---------------------------------------------------------------- in the worker


def _throttled(job_id: int, offset: int = 0) -> Progress:
    """A progress callback that records ``offset`` + rows done on the job about once a second."""
    done, last = offset, time.monotonic()

    def progress(n: int) -> None:
        nonlocal done, last
        done += n
        if time.monotonic() - last >= 1:
            last = time.monotonic()
            jobs._update(job_id, done=done)  # noqa: SLF001 (the job machinery's own heartbeat)

    return progress


def _finish(job_id: int, attempt: int, **values: Any) -> None:
    """Record how a job ended, unless another run of it took over since (its worker was thought dead)."""
    now = utcnow()
    with db.new_session(write=True) as session:
        session.execute(
            sa.update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)
            .values(finished_at=now, heartbeat_at=now, **values)
        )
        session.commit()


def _run(session: Session, job: Job, user: User | None) -> None:
    """Import the job's uploaded file: check, write and mark done in one transaction; or record the refusal
    with its report. The uploaded file is deleted whatever happens."""
    upload = UPLOADS[job.kind]
    job_id, attempt, key = job.id, job.attempts, job.key
    folder = jobs.job_folder(key)
    report_path: Path | None = None
    try:
        if user is None or not user.is_active:
            raise Forbidden("Le compte qui a envoyé le fichier n'est plus actif : rien n'a été importé.")
        data = (folder / UPLOAD_NAME).read_bytes()
        checked = upload.check(session, user, json.loads(job.params), data, _throttled(job_id))
        del data
        rows = upload.rows(checked)
        jobs._update(job_id, total=2 * rows, done=rows)  # noqa: SLF001
        session.rollback()  # the check's snapshot is not needed any more
        with db.new_session(write=True) as writer:
            # on SQLite the writer holds the only write lock: progress is recorded at the end only
            sqlite = writer.get_bind().dialect.name == "sqlite"
            writing = None if sqlite else _throttled(job_id, rows)
            message = upload.write(writer, writer.get(User, user.id), checked, writing)
            now = utcnow()
            done = writer.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempts == attempt)
                .values(
                    status=JobStatus.DONE,
                    done=2 * rows,
                    message=message[:500],
                    finished_at=now,
                    heartbeat_at=now,
                )
            ).rowcount
            if done == 1:
                writer.commit()
            else:  # another run of this job took over: let it import
                writer.rollback()
    except ImportRejected as exc:
        session.rollback()
        report_path = _write_report(folder, exc)
        _finish(
            job_id,
            attempt,
            status=JobStatus.FAILED,
            message=exc.message[:500],
            file_path=str(report_path),
            expires_at=utcnow() + timedelta(hours=current_app.config["JOB_FILE_HOURS"]),
        )
        log.info("job %s: file refused (%d faulty rows)", job_id, exc.error_count)
    except DomainError as exc:
        session.rollback()
        _finish(job_id, attempt, status=JobStatus.FAILED, message=exc.message[:500])
    except Exception:
        session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        _finish(job_id, attempt, status=JobStatus.FAILED, message=FAILED_MESSAGE)
    finally:
        (folder / UPLOAD_NAME).unlink(missing_ok=True)
        if report_path is None:
            shutil.rmtree(folder, ignore_errors=True)


def _write_report(folder: Path, exc: ImportRejected) -> Path:
    """The refusal's message, its first faulty rows and their count, readable by the worker's user only."""
    path = folder / REPORT_NAME
    report = {
        "message": exc.message,
        "error_count": exc.error_count,
        "errors": [[error.line, error.message] for error in exc.errors],
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(report, out, ensure_ascii=False)
    return path


# ---------------------------------------------------------------- on the job page


@dataclass
class Report:
    """A refused file's report as the page's ``import_errors`` macro shows it."""

    message: str
    error_count: int
    errors: list[RowError]

    @property
    def unreported(self) -> int:
        return self.error_count - len(self.errors)


def report(job: Job) -> Report | None:
    """The report of a refused import, while it is kept."""
    if job.status is not JobStatus.FAILED or not job.file_path:
        return None
    try:
        stored = json.loads(Path(job.file_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    errors = [RowError(line, message) for line, message in stored["errors"]]
    return Report(stored["message"], stored["error_count"], errors)


# ---------------------------------------------------------------- purge


def discard_personal_files(session: Session) -> int:
    """Delete the uploaded files and reports of every pupil import; an import not finished is cancelled.
    Returns how many jobs had files (no commit)."""
    kinds = [kind for kind, upload in UPLOADS.items() if upload.personal]
    if not kinds:
        return 0
    now = utcnow()
    session.execute(
        sa.update(Job)
        .where(Job.kind.in_(kinds), Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .values(status=JobStatus.FAILED, message=PURGED_MESSAGE, finished_at=now, heartbeat_at=now)
    )
    count = 0
    for key in session.scalars(sa.select(Job.key).where(Job.kind.in_(kinds))):
        folder = jobs.job_folder(key)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            count += 1
    session.execute(sa.update(Job).where(Job.kind.in_(kinds)).values(file_path=None))
    return count
