"""Error pages and the mapping of domain errors to HTTP answers."""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..db import db
from ..domain.errors import DomainError

_API_MESSAGES = {
    400: ("invalid", "Requête invalide."),
    401: ("unauthenticated", "Authentification requise : en-tête Authorization: Bearer <jeton>."),
    403: ("forbidden", "Votre rôle ne permet pas cette action."),
    404: ("not_found", "Introuvable, ou hors de votre périmètre."),
    405: ("method_not_allowed", "Méthode non autorisée sur cette adresse."),
    409: ("conflict", "Conflit avec l'état actuel."),
    413: ("too_large", "Fichier ou requête trop volumineux."),
    429: ("too_many_requests", "Trop de requêtes : patientez un instant."),
    422: ("business_rule", "Règle de gestion non respectée."),
    500: ("internal", "Erreur interne."),
}


# the other HTTP errors, in French (Werkzeug's own pages are in English)
_PAGES = {
    400: (
        "Requête invalide",
        "La requête envoyée est invalide ou incomplète. Rechargez la page et recommencez.",
    ),
    405: ("Action impossible", "Cette adresse ne permet pas cette action."),
    413: (
        "Fichier trop volumineux",
        "Le fichier ou le formulaire envoyé dépasse la taille permise ({limit}). Découpez le fichier et "
        "envoyez-le en plusieurs fois.",
    ),
    429: ("Trop de requêtes", "Trop de requêtes en peu de temps : patientez un instant puis recommencez."),
}


def _limit() -> str:
    size = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"{size / 1024 / 1024:.0f} Mo" if size >= 1024 * 1024 else f"{size / 1024:.0f} Ko"


def api_error(status: int, message: str | None = None, code: str | None = None):
    """The API's error body: {"error": {"code", "message"}} with ``status``."""
    default_code, default_message = _API_MESSAGES.get(status, ("error", "Erreur."))
    if status == 413 and message is None:
        message = f"Fichier ou requête trop volumineux (au plus {_limit()})."
    response = jsonify({"error": {"code": code or default_code, "message": message or default_message}})
    response.status_code = status
    return response


def _is_api() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    """French pages for HTTP errors, JSON for the API, and domain errors mapped to their status."""

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        db.session.rollback()
        if _is_api():
            return api_error(exc.status, exc.message, exc.code)
        template = {403: "errors/403.html", 404: "errors/404.html"}.get(exc.status, "errors/refused.html")
        return render_template(template, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _is_api():
            return api_error(exc.code or 500)
        template = {403: "errors/403.html", 404: "errors/404.html"}.get(exc.code)
        if template is not None:
            return render_template(template), exc.code
        if exc.code in _PAGES:
            title, message = _PAGES[exc.code]
            page = render_template(
                "errors/http.html", code=exc.code, title=title, message=message.format(limit=_limit())
            )
            return page, exc.code
        return exc

    @app.errorhandler(500)
    def internal_error(exc: Exception):
        db.session.rollback()
        if _is_api():
            # the request id (also in the X-Request-ID header) finds the error in the server's log
            return api_error(500, f"Erreur interne (référence {g.get('request_id')}).")
        return render_template("errors/500.html"), 500
