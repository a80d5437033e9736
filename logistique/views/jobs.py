"""Background jobs seen from the web: the confirmation before a big file, its progress page, its download."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, g, redirect, render_template, request, send_file, url_for

from .. import jobs, uploads
from ..access import any_role
from ..db import db
from ..exports import CONTENT_TYPES
from ..models import Job, JobStatus

bp = Blueprint("jobs", __name__)


def confirm(title: str, detail: str):
    """The page that offers to prepare a big file in the background (the form posts back to this URL)."""
    return render_template("jobs/confirm.html", title=title, detail=detail, action=request.full_path)


def start(job: Job):
    """Commit the new job, hand it to the workers and show its page."""
    db.session.commit()
    jobs.enqueue(job)
    return redirect(url_for("jobs.job_page", key=job.key), 303)


@bp.route("/travaux/<key>")
@any_role
def job_page(key: str):
    """How far a job of the user's is; the file once ready. Reloads itself until the job ends."""
    job = jobs.get_job(db.session, g.user, key)
    upload = uploads.UPLOADS.get(job.kind)
    if upload is not None:  # an uploaded file being imported: rows checked and written, or the refused rows
        return render_template("jobs/upload.html", job=job, upload=upload, report=uploads.report(job))
    return render_template("jobs/job.html", job=job)


@bp.route("/travaux/<key>/fichier")
@any_role
def job_file(key: str):
    """The file a job made, for its owner only, until it is deleted."""
    job = jobs.get_job(db.session, g.user, key)
    if job.status is not JobStatus.DONE or not job.file_path or not Path(job.file_path).is_file():
        abort(404)
    response = send_file(
        job.file_path,
        mimetype=CONTENT_TYPES[job.file_name.rsplit(".", 1)[-1]].split(";")[0],
        as_attachment=True,
        download_name=job.file_name,
        max_age=0,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
