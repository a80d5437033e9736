"""A thin layer over Flask for the JSON API: bearer tokens, validation by pydantic schemas, idempotent POSTs,
the error format, and a registry from which the OpenAPI document is generated."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, ValidationError

from ..access import Access, public
from ..db import db, utcnow
from ..domain import accounts, retention
from ..domain.errors import DomainError
from ..models import IdempotencyRecord, Role, User
from ..statements import Prepared
from ..views.errors import api_error
from . import token_use

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@dataclass
class Operation:
    """One endpoint as the OpenAPI document describes it."""

    path: str
    method: str
    summary: str
    endpoint: str
    roles: frozenset[Role] | None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)
    description: str = ""
    produces: str = "application/json"


OPERATIONS: list[Operation] = []

_FR_ERRORS = {
    "missing": "champ obligatoire",
    "extra_forbidden": "champ inconnu",
    "string_too_short": "valeur vide",
    "string_too_long": "valeur trop longue",
    "int_parsing": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "string_type": "texte attendu",
    "list_type": "liste attendue",
    "greater_than_equal": "valeur trop petite",
    "less_than_equal": "valeur trop grande",
    "enum": "valeur non permise",
    "literal_error": "valeur non permise",
    "model_type": "objet JSON attendu",
    "bool_parsing": "booléen attendu",
    "date_from_datetime_parsing": "date AAAA-MM-JJ attendue",
    "string_pattern_mismatch": "format invalide",
}


def french_validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one French sentence naming each field."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "corps"
        reason = _FR_ERRORS.get(err["type"], "valeur invalide")
        if err["type"] in ("enum", "literal_error") and "expected" in err.get("ctx", {}):
            reason += f" (attendu : {err['ctx']['expected']})"
        if err["type"] == "value_error":
            reason = str(err.get("ctx", {}).get("error", reason))
        parts.append(f"« {where} » : {reason}")
    return "Requête invalide — " + " ; ".join(parts) + "."


_RECORDS = IdempotencyRecord.__table__
_STORED_COLUMNS = (
    _RECORDS.c.request_hash,
    _RECORDS.c.status_code,
    _RECORDS.c.response_body,
    _RECORDS.c.resource_reference,
    _RECORDS.c.created_at,
)


@dataclass(frozen=True)
class StoredAnswer:
    """What a request with an Idempotency-Key left for its retries (``IdempotencyRecord``'s columns)."""

    request_hash: str
    status_code: int
    response_body: str
    resource_reference: str | None
    created_at: datetime


# the holder of a bearer token and, for a POST, the answer stored for its Idempotency-Key: one statement
_HOLDER_AND_KEY = Prepared(
    accounts.TOKEN_HOLDER_QUERY.add_columns(
        *(column.label(f"stored_{column.key}") for column in _STORED_COLUMNS)
    ).outerjoin(
        _RECORDS,
        sa.and_(_RECORDS.c.user_id == User.id, _RECORDS.c.key == sa.bindparam("idempotency_key")),
    )
)


def _bearer_user(key: str | None = None) -> tuple[User | None, StoredAnswer | None]:
    """The account behind the request's bearer token, and the answer it stored for ``key`` (an expired one
    included: ``_idempotent`` tells them apart)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None, None
    now = utcnow()
    lookup = accounts.token_lookup(token.strip(), now)
    if lookup is None:
        return None, None
    # on SQLite, a writing request takes the write lock after this, not for it
    if key is None:
        row = accounts.TOKEN_HOLDER.mapping(db.read_first(accounts.TOKEN_HOLDER, lookup))
    else:
        row = _HOLDER_AND_KEY.mapping(db.read_first(_HOLDER_AND_KEY, {**lookup, "idempotency_key": key}))
    if row is None:
        return None, None
    user = accounts.token_holder(db.session, row, demo_mode=current_app.config["DEMO_MODE"], now=now)
    stored = None
    if key is not None and row["stored_request_hash"] is not None:
        stored = StoredAnswer(*(row[f"stored_{column.key}"] for column in _STORED_COLUMNS))
    return user, stored


def _json(payload: Any, status: int) -> Response:
    return current_app.response_class(
        json.dumps(payload, ensure_ascii=False, default=str), status=status, mimetype="application/json"
    )


def _dump(result: Any, response: type[BaseModel] | None) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if response is not None:
        return response.model_validate(result).model_dump(mode="json")
    return result


def operation(
    path: str,
    method: str,
    *,
    summary: str,
    roles: frozenset[Role] | set[Role] | None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    path_params: dict[str, str] | None = None,
    description: str = "",
    raw: bool = False,
    personal: tuple[str, ...] = (),
    replay: Callable[[User, str], Any] | None = None,
) -> Callable:
    """Declare an API endpoint: ``handler(user, *, query=, body=, **path)`` returns data for ``response``.

    ``personal`` names the body fields holding personal data: a stored answer (Idempotency-Key) never keeps
    their values. ``replay(user, reference)`` rebuilds a successful answer from the ``reference`` it returned,
    so that nothing of it is stored but that reference."""

    def decorate(handler: Callable) -> Callable:
        endpoint = handler.__name__
        allowed = frozenset(roles) if roles is not None else None

        def view(**path_values: Any) -> Response:
            response = answer(**path_values)
            token_use.record_after(response)
            return response

        def answer(**path_values: Any) -> Response:
            key = _idempotency_key() if method == "POST" else None
            user, record = _bearer_user(key or None)
            if user is None:
                return api_error(401)
            if allowed is not None and user.role not in allowed:
                return api_error(403)
            g.user = user
            try:
                kwargs: dict[str, Any] = dict(path_values)
                if query is not None:
                    kwargs["query"] = query.model_validate(request.args.to_dict())
                if method == "POST":
                    return _idempotent(
                        user,
                        lambda: _run(handler, user, kwargs),
                        personal=personal,
                        replay=replay,
                        dump=_out,
                        stored=record,
                    )
                response = _run(handler, user, kwargs)
                if method != "GET":
                    _finish(response)
                return response
            except ValidationError as exc:
                db.session.rollback()
                return api_error(400, french_validation_message(exc))

        def _run(handler: Callable, user: User, kwargs: dict[str, Any]) -> Response:
            if body is not None:
                payload = request.get_json(silent=True)
                if payload is None:
                    return api_error(
                        400,
                        "Le corps de la requête doit être un objet JSON (Content-Type: application/json).",
                    )
                kwargs["body"] = body.model_validate(payload)
            try:
                result = handler(user, **kwargs)
            except DomainError as exc:
                db.session.rollback()
                return api_error(exc.status, exc.message, exc.code)
            db.session.flush()
            if isinstance(result, Response):  # a file (PDF): sent as it is
                return result
            return _json(_dump(result, response), status)

        def _out(result: Any) -> Response:
            return _json(_dump(result, response), status)

        view.__name__ = endpoint
        view.access = Access(allowed)  # type: ignore[attr-defined]
        bp.add_url_rule(path, endpoint, view, methods=[method])
        flask_path = path
        for name in path_params or {}:
            flask_path = flask_path.replace(f"<{name}>", "{" + name + "}").replace(
                f"<int:{name}>", "{" + name + "}"
            )
        OPERATIONS.append(
            Operation(
                flask_path,
                method.lower(),
                summary,
                endpoint,
                allowed,
                query,
                body,
                response,
                status,
                errors,
                path_params or {},
                description,
                "application/pdf" if raw else "application/json",
            )
        )
        return handler

    return decorate


# ---------------------------------------------------------------- idempotency


def _request_hash() -> str:
    # a web form's body was consumed by its parsing (CSRF check): hash its fields instead
    body = request.get_data() or urlencode(sorted(request.form.items(multi=True))).encode()
    return hashlib.sha256(request.method.encode() + request.path.encode() + b"\0" + body).hexdigest()


_LOOK_UP = object()  # ``_idempotent``'s default: the stored record is not known yet
_STORE = Prepared(
    sa.insert(_RECORDS),
    columns=[
        "user_id",
        "key",
        "method",
        "path",
        "request_hash",
        "status_code",
        "response_body",
        "resource_reference",
        "created_at",
    ],
)


def _idempotency_key() -> str:
    return request.headers.get("Idempotency-Key", "").strip()


def _idempotent(
    user: User,
    run: Callable[[], Response],
    *,
    personal: tuple[str, ...] = (),
    replay: Callable[[User, str], Any] | None = None,
    dump: Callable[[Any], Response] | None = None,
    stored: Any = _LOOK_UP,
) -> Response:
    """Commit the change with the stored answer; a retry with the same key (within a day) gets that answer
    again. What is stored keeps no personal data: a reference to read again, or the answer redacted.
    ``stored``: the record of this key, when the caller already read it (None: there is none)."""
    key = _idempotency_key()
    if not key:
        response = run()
        _finish(response)
        return response
    if len(key) > 200:
        return api_error(400, "L'en-tête Idempotency-Key dépasse 200 caractères.")
    digest = _request_hash()
    # Looked up first: a retry must not run its action again (a web scan view commits its own change before
    # its key is stored). Two requests racing with one key still meet on the unique key at commit below.
    if stored is _LOOK_UP:
        stored = _stored(user, key)
    expired = stored is not None and stored.created_at < retention.idempotency_cutoff()
    if stored is not None and not expired:
        return _replay(user, stored, digest, replay, dump)
    response = run()
    if response.status_code >= 500:
        db.session.rollback()
        return response
    if response.status_code >= 400:
        db.session.rollback()  # the refused change is undone; the refusal itself is remembered
    reference, body = _storable(response, personal, replay)
    try:
        # the expired record of a reused key, and a bounded batch of the others, go on the way
        retention.delete_expired_on_the_way(
            db.session, user_id=user.id, key=key if expired else None, now=utcnow()
        )
        _STORE.run(
            db.session,
            {
                "user_id": user.id,
                "key": key,
                "method": request.method,
                "path": request.path,
                "request_hash": digest,
                "status_code": response.status_code,
                "response_body": body,
                "resource_reference": reference,
                "created_at": utcnow(),
            },
        )
        db.session.commit()
    except sa.exc.IntegrityError:
        # a request with the same key committed first: answer what it answered
        db.session.rollback()
        stored = _stored(user, key)
        if stored is None:
            raise
        return _replay(user, stored, digest, replay, dump)
    return response


def _storable(
    response: Response, personal: tuple[str, ...], replay: Callable[[User, str], Any] | None
) -> tuple[str | None, str]:
    """(reference, body) to keep for a replay: the reference alone when it can rebuild the answer, else the
    body with the values of the request's personal fields blanked out."""
    text = response.get_data(as_text=True)
    if replay is not None and response.status_code < 400:
        reference = (json.loads(text) or {}).get("reference")
        if reference:
            return str(reference), ""
    payload = request.get_json(silent=True)
    if personal and isinstance(payload, dict):
        for name in personal:
            value = payload.get(name)
            if isinstance(value, str) and value.strip():
                stripped = value.strip()
                forms = {
                    value,
                    stripped,
                    json.dumps(stripped)[1:-1],
                    json.dumps(stripped, ensure_ascii=False)[1:-1],
                }
                for form in sorted(forms, key=len, reverse=True):
                    text = text.replace(form, retention.REDACTED)
    return None, text


def _finish(response: Response) -> None:
    if response.status_code < 400:
        db.session.commit()
    else:
        db.session.rollback()


_RECORD = Prepared(
    sa.select(*_STORED_COLUMNS).where(
        _RECORDS.c.user_id == sa.bindparam("for_user"), _RECORDS.c.key == sa.bindparam("for_key")
    )
)


def _stored(user: User, key: str) -> StoredAnswer | None:
    """The answer ``user`` stored for ``key``, expired or not."""
    row = _RECORD.first(db.session, {"for_user": user.id, "for_key": key})
    return None if row is None else StoredAnswer(*row)


def _replay(
    user: User,
    stored: StoredAnswer,
    digest: str,
    replay: Callable[[User, str], Any] | None = None,
    dump: Callable[[Any], Response] | None = None,
) -> Response:
    if stored.request_hash != digest:
        return api_error(
            422, "Cette clé Idempotency-Key a déjà servi pour une autre requête.", "idempotency_key_reused"
        )
    if stored.resource_reference and replay is not None and dump is not None:
        try:
            response = dump(replay(user, stored.resource_reference))
        except DomainError as exc:
            return api_error(exc.status, exc.message, exc.code)
        response.status_code = stored.status_code
    else:
        response = current_app.response_class(
            stored.response_body, status=stored.status_code, mimetype="application/json"
        )
    response.headers["Idempotent-Replayed"] = "true"
    return response


public_view = public
idempotent = _idempotent  # also used by the web scan pages (views/scanning.py)
