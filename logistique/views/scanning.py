"""Field scanning on phones: the installable app (manifest, service worker, offline page), the scan
pages' helpers (idempotent JSON answers for the offline queue, pages the service worker may keep), and the
scan of a parcel's devices at its destination."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from ..access import public, roles
from ..api.framework import idempotent
from ..db import db
from ..domain import bulk_assign, slips
from ..models import Assignment, Role
from .boundary import Outcome, commit

bp = Blueprint("scanning", __name__)

OFFLINE_HEADER = "X-Offline-Cache"
"""Set to « page » on the pages the service worker may keep for offline use: scan pages without personal data
(a pupil's page never has it). The service worker keeps nothing else but the static files."""


def offline_page(view: Callable) -> Callable:
    """Mark a page as one the phone may keep to open without network (never a page with personal data)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.offline_page = True  # base.html marks the page: only such a page asks the worker to keep it
        response = make_response(view(*args, **kwargs))
        if request.method == "GET" and response.status_code == 200:
            response.headers[OFFLINE_HEADER] = "page"
        return response

    return wrapper


def idempotent_scan(view: Callable) -> Callable:
    """A scan sent by the offline queue carries its own Idempotency-Key: sent again (lost answer, reload),
    it gets the first answer back and changes nothing more. Without the header the view runs as before."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not request.headers.get("Idempotency-Key"):
            return view(*args, **kwargs)
        return idempotent(g.user, lambda: make_response(view(*args, **kwargs)))

    return wrapper


def wants_json() -> bool:
    """The page's script asked for a JSON answer (scan.js); a plain form wants a page."""
    return request.accept_mimetypes.best == "application/json"


def assigned_answer(done: Outcome, message: Callable[[Assignment], str]):
    """The JSON answer to an assignment by scan (pupil's page, scan after scan), or to its refusal."""
    if not done:
        if done.error.code == bulk_assign.ALREADY_ASSIGNED:  # a second scan of the same device: harmless
            return jsonify({"outcome": "already", "message": done.error.message})
        return jsonify({"outcome": "refused", "message": done.error.message}), done.status
    return jsonify({"outcome": "picked", "message": message(done.value), "serial": done.value.device.serial})


def form_refusal(form) -> tuple[Response, int]:
    """The JSON answer to a scan whose form is invalid (an empty code, say)."""
    message = "; ".join(e for errors in form.errors.values() for e in errors)
    return jsonify({"outcome": "refused", "message": message}), 400


def scan_answer(result: slips.ScanResult, **extra) -> Response:
    """The JSON answer to one scan, as scan.js reads it: 422 when refused."""
    response = jsonify(
        {
            "outcome": result.outcome,
            "message": result.message,
            "serial": result.serial,
            "done": result.picked,
            "total": result.total,
            **extra,
        }
    )
    response.status_code = 422 if result.outcome == "refused" else 200
    return response


# ---------------------------------------------------------------- destination: scan the parcel's devices


@bp.route("/bordereaux/<number>/reception/scan", methods=["POST"])
@roles(Role.COORDINATOR, Role.ADMIN)
@idempotent_scan
def reception_scan(number: str):
    """One device of the parcel scanned: reçu. JSON for scan.js; a redirect with a message without script."""
    slip = slips.get_slip(db.session, g.user, number=number)
    # a refused scan is an answer, not an error: it changes nothing and is committed like a reception
    code = request.form.get("code", "")
    result = commit(lambda: slips.receive_scan(db.session, slip, code, by=g.user), catch=()).value
    if wants_json():
        return scan_answer(result)
    flash(result.message, {"picked": "success", "already": "info", "refused": "error"}[result.outcome])
    return redirect(url_for("slips.reception", number=number))


# ---------------------------------------------------------------- the installable app


@cache
def _static_files(static_folder: str) -> tuple[tuple[str, ...], str]:
    """Every static file (the app's own code and styles, vendored libraries, icons: nothing personal) and a
    version that changes whenever one of them does, so that a deploy replaces the phones' copies."""
    root = Path(static_folder)
    digest = hashlib.sha256()
    names = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name.endswith(("LICENSE", "VERSION")):
            continue
        names.append(name)
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return tuple(names), digest.hexdigest()[:16]


def _version_and_urls() -> tuple[str, list[str]]:
    names, version = _static_files(current_app.static_folder)
    digest = hashlib.sha256(version.encode())
    digest.update(render_template("scanning/offline.html").encode())
    return digest.hexdigest()[:16], [url_for("static", filename=name) for name in names]


@bp.route("/sw.js")
@public
def service_worker():
    """The service worker, at the root so that its scope is the whole app."""
    version, urls = _version_and_urls()
    body = render_template(
        "scanning/sw.js",
        version=version,
        precache=json.dumps(urls),
        offline_url=json.dumps(url_for("scanning.offline")),
        header=json.dumps(OFFLINE_HEADER),
        logout_url=json.dumps(url_for("auth.logout")),
    )
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"  # the browser checks for a new version at each visit
    response.headers["Service-Worker-Allowed"] = "/"
    return response


def _icon(name: str, size: int) -> dict[str, str]:
    return {
        "src": url_for("static", filename=f"icons/{name}"),
        "sizes": f"{size}x{size}",
        "type": "image/png",
        "purpose": "maskable" if "maskable" in name else "any",
    }


@bp.route("/manifest.webmanifest")
@public
def manifest():
    """The web app manifest: the app installs on a phone's home screen and opens full screen."""
    body = {
        "id": "/",
        "name": "logistique — continuité éducative",
        "short_name": "logistique",
        "description": "Réception, préparation et remise des équipements numériques des élèves des QPV.",
        "lang": "fr",
        "start_url": url_for("main.home"),
        "scope": "/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": "#000091",
        "icons": [
            _icon("icon-192.png", 192),
            _icon("icon-512.png", 512),
            _icon("icon-512-maskable.png", 512),
        ],
    }
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/hors-ligne")
@public
def offline():
    """What the phone shows for a page it never kept, without network. Same for everyone: nothing personal."""
    return render_template("scanning/offline.html")
