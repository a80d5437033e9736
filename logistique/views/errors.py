"""Error pages and the mapping of domain errors to HTTP answers."""

from __future__ import annotations

from flask import Flask, g, jsonify, render_template, request
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
    422: ("business_rule", "Règle de gestion non respectée."),
    500: ("internal", "Erreur interne."),
}


def api_error(status: int, message: str | None = None, code: str | None = None):
    """The API's error body: {"error": {"code", "message"}} with ``status``."""
    default_code, default_message = _API_MESSAGES.get(status, ("error", "Erreur."))
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
        if template is None:
            return exc
        return render_template(template), exc.code

    @app.errorhandler(500)
    def internal_error(exc: Exception):
        db.session.rollback()
        if _is_api():
            # the request id (also in the X-Request-ID header) finds the error in the server's log
            return api_error(500, f"Erreur interne (référence {g.get('request_id')}).")
        return render_template("errors/500.html"), 500
