"""Web uploads of whole files (stock, pupils): a small file is checked without holding the database's write
lock, then written at once, inside the request; a file of more than ``IMPORT_INLINE_MAX_ROWS`` rows (5 000 by
default) is stored and imported by a background job (``logistique/uploads.py``) whose page shows the rows
checked and written, then the outcome or the refused rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import current_app, g, redirect, url_for
from sqlalchemy.orm import Session

from .. import jobs, uploads
from ..db import db
from ..domain import bulk, pupils, scope, stock_import
from ..domain.errors import ImportRejected
from ..models import User
from .boundary import Outcome, commit

Checked = TypeVar("Checked")
Result = TypeVar("Result")

PUPILS_IMPORT = "pupils_import"
STOCK_IMPORT = "stock_import"


def check_then_write(
    check: Callable[[Session, User], Checked], write: Callable[[Session, Checked], Result]
) -> Result:
    """Run ``check(session, user)`` on a reading session, then ``write(session, checked)`` on the request's.

    Reading and checking a file of 100 000 rows takes seconds: on SQLite, a writing request holds the
    database's only write lock from its first statement (loading the user), so that transaction is ended
    first and the check runs in a session that locks nothing. Only a file that passed goes on to the write.
    ``ImportRejected`` and other domain errors propagate; the caller commits or rolls back."""
    user_id = g.user.id
    db.session.commit()  # the request's transaction has only read the user: end it, and its lock
    with db.new_session() as reader:
        checked = check(reader, reader.get(User, user_id))
    return write(db.session, checked)


def in_background(data: bytes) -> bool:
    """Whether an uploaded file is imported by a background job rather than inside the request."""
    rows = bulk.estimated_rows(data)
    return rows is None or rows > current_app.config["IMPORT_INLINE_MAX_ROWS"]


def queue(kind: str, data: bytes, *, title: str, params: dict, what: str) -> Outcome:
    """Store the file and queue its import; a file over the caps is refused at once (``Outcome.error``)."""

    def submit():
        bulk.check_upload(data, what=what)
        rows = bulk.estimated_rows(data) or 0
        return uploads.submit(db.session, kind, data, by=g.user, title=title, params=params, rows=rows)

    done = commit(submit, catch=ImportRejected, flash_error=False)
    if done:
        jobs.enqueue(done.value)
    return done


def job_page(job):
    """Where a queued import's progress shows."""
    return redirect(url_for("jobs.job_page", key=job.key), 303)


def stock_message(report: stock_import.StockImportReport) -> str:
    """What a stock import says when it is done."""
    return (
        f"{report.created} équipements ajoutés au lot {report.lot.reference} ("
        + ", ".join(f"{n} {k.label_lower}{'s' if n > 1 else ''}" for k, n in report.by_kind.items())
        + ")."
    )


def pupils_message(report: pupils.PupilImportReport) -> str:
    """What a pupil import says when it is done."""
    return f"{report.created} élèves importés."


uploads.upload_kind(
    PUPILS_IMPORT,
    uploads.Upload(
        check=lambda session, user, params, data, progress: pupils.check_pupils(
            session, data, by=user, progress=progress
        ),
        write=lambda session, user, checked, progress: pupils_message(
            pupils.write_pupils(session, checked, by=user, progress=progress)
        ),
        rows=lambda checked: len(checked.pupils),
        nothing="Aucun élève n’a été enregistré.",
        done_endpoint="pupils.pupil_list",
        personal=True,
    ),
)
uploads.upload_kind(
    STOCK_IMPORT,
    uploads.Upload(
        check=lambda session, user, params, data, progress: stock_import.check_stock(
            session, data, lot=scope.get_lot(session, user, lot_id=params["lot"]), by=user, progress=progress
        ),
        write=lambda session, user, checked, progress: stock_message(
            stock_import.write_stock(session, checked, by=user, progress=progress)
        ),
        rows=lambda checked: len(checked.devices),
        nothing="Aucun équipement n’a été ajouté.",
        done_endpoint="stock.device_list",
    ),
)
