"""JSON API under /api/v1: one module per resource (docs/architecture.md, « Où ajouter quoi »)."""

from __future__ import annotations

from flask import current_app, jsonify

from . import endpoints  # noqa: F401  (registers the operations on the blueprint)
from .framework import bp, public_view
from .openapi import build


@bp.route("/openapi.json")
@public_view
def openapi_document():
    """The OpenAPI 3 document of this API."""
    return jsonify(build(current_app.config["BASE_URL"]))


__all__ = ["bp"]
