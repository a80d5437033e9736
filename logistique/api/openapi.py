"""The OpenAPI 3 document, generated from the registered operations and their pydantic schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .framework import OPERATIONS
from .schemas import ErrorBody

_STATUS_TEXT = {
    200: "OK",
    201: "Créé",
    400: "Requête invalide",
    401: "Non authentifié",
    403: "Rôle insuffisant",
    404: "Introuvable ou hors périmètre",
    409: "Conflit d'état",
    422: "Règle de gestion",
}


def build(base_url: str) -> dict[str, Any]:
    """The whole document: paths, parameters, bodies, responses and components."""
    models: set[type[BaseModel]] = {ErrorBody}
    for op in OPERATIONS:
        models.update(m for m in (op.query, op.body, op.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    schemas = defs.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item: dict[str, Any] = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "tags": [op.path.split("/")[1]],
        }
        if op.description:
            item["description"] = op.description
        params = [
            {"name": n, "in": "path", "required": True, "description": d, "schema": {"type": "string"}}
            for n, d in op.path_params.items()
        ]
        if op.query is not None:
            query_schema = schemas.get(op.query.__name__, op.query.model_json_schema())
            for name, prop in query_schema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in query_schema.get("required", []),
                        "schema": prop,
                        **({"description": prop["description"]} if "description" in prop else {}),
                    }
                )
        if params:
            item["parameters"] = params
        if op.method == "post":
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Une reprise avec la même clé renvoie la première réponse et ne "
                    "change rien de plus.",
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
            item["parameters"] = params
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": ref(op.response)}}
        elif op.produces != "application/json":
            ok["content"] = {op.produces: {"schema": {"type": "string", "format": "binary"}}}
        responses[str(op.status)] = ok
        for status in sorted({401, *(() if op.roles is None else (403,)), *op.errors}):
            responses[str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": {"application/json": {"schema": ref(ErrorBody)}},
            }
        item["responses"] = responses
        item["security"] = [{"bearer": []}]
        paths.setdefault(op.path, {})[op.method] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "logistique",
            "version": "1",
            "description": "API de traçabilité des équipements du plan de continuité éducative. "
            'Erreurs : {"error": {"code", "message"}}.',
        },
        "servers": [{"url": base_url + "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
