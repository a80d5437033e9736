"""What an operator sees of a running app: one log line per request and per event (plain text by default, JSON
with ``LOGISTIQUE_LOG_FORMAT=json``) carrying a request id, and errors sent to Sentry when
``LOGISTIQUE_SENTRY_DSN`` is set. Pupils are minors: log lines and Sentry events carry ids and roles, never an
e-mail, a name or a phone (DESIGN §6)."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from time import perf_counter
from typing import IO, Any
from uuid import uuid4

from flask import Flask, Response, g, has_request_context, request
from flask.logging import default_handler

from .security import REQUEST_ID_KEY

REQUEST_ID_HEADER = "X-Request-ID"
# what a proxy or a client may hand us as request id (nginx's $request_id, a UUID…); anything else is replaced
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,127}\Z")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

log = logging.getLogger("logistique.request")


def init_app(app: Flask) -> None:
    """Request ids, the request log line and the log format for ``app``; Sentry if a DSN is configured."""
    _configure_logging(app.config.get("LOG_FORMAT", "text"), sys.stderr)
    # first of the before_request functions: even a request refused by the access rules gets an id
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.context_processor(lambda: {"request_id": g.get("request_id"), "errors_reported": _sentry_on(app)})
    if app.config.get("SENTRY_DSN"):
        init_sentry(app)


# ---------------------------------------------------------------- log lines


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request) to every record, so that every line of a request carries
    it, the events logged by the domain included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def safe_traceback(exc_info) -> str:
    """A traceback without the exceptions' messages, which may quote what a user typed (a name, a phone):
    where it failed and with what type of error is what the operator needs; the request id finds the rest."""
    _type, exc, _tb = exc_info
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        stack = "".join(traceback.format_tb(exc.__traceback__))
        parts.append(
            f"Traceback (most recent call last):\n{stack}{type(exc).__module__}.{type(exc).__qualname__} "
            "(message retiré : il peut citer des données personnelles)"
        )
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return "\n\nCause :\n".join(reversed(parts))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        cached, record.exc_text = record.exc_text, None  # another handler may have cached the full text
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei) -> str:  # noqa: N802 — logging's name
        return safe_traceback(ei)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``log_format``: "json" (one JSON object per line) or "text"."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        class _JsonFormatter(JsonFormatter):
            def formatException(self, ei) -> str:  # noqa: N802 — logging's name
                return safe_traceback(ei)

        return _JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601, UTC
            json_ensure_ascii=False,
        )
    return _TextFormatter(TEXT_FORMAT)


def make_handler(log_format: str, stream: IO[str]) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestContextFilter())
    handler.logistique = True  # type: ignore[attr-defined]  # ours: replaced, never stacked
    return handler


_JSON_LINES = False  # whether the app's handler writes JSON lines, which carry a request's fields


def _configure_logging(log_format: str, stream: IO[str]) -> None:
    global _JSON_LINES
    if log_format not in ("text", "json"):
        from .config import ConfigError

        raise ConfigError(f"LOGISTIQUE_LOG_FORMAT={log_format!r} : « text » ou « json ».")
    logger = logging.getLogger("logistique")
    for old in [h for h in logger.handlers if getattr(h, "logistique", False) or h is default_handler]:
        logger.removeHandler(old)
    logger.addHandler(make_handler(log_format, stream))
    _JSON_LINES = log_format == "json"
    logger.setLevel(logging.INFO)
    logger.propagate = False


def log_handler() -> logging.Handler:
    """The handler the app's lines go through (tests point its stream elsewhere)."""
    return next(h for h in logging.getLogger("logistique").handlers if getattr(h, "logistique", False))


def _start() -> None:
    given = request.environ.get("HTTP_X_REQUEST_ID", "")
    g.request_id = request.environ[REQUEST_ID_KEY] = given if _VALID_REQUEST_ID.match(given) else uuid4().hex
    g.request_started = perf_counter()


def _user_fields() -> dict[str, Any]:
    # the user the access rules or the API loaded (never loaded here: logging must not query the database)
    user = g.get("user") or g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return {"user_id": None, "role": None}
    return {"user_id": user.id, "role": str(user.role)}


def _finish(response: Response) -> Response:
    # X-Request-ID goes out with the security headers (security.SecurityHeaders)
    duration_ms = round((perf_counter() - g.request_started) * 1000, 1)
    # the URL rule, not the path: ids and tokens stay out of the logs
    rule = request.url_rule
    route = rule.rule if rule is not None else None
    status = response.status_code
    extra = {"request_id": g.request_id}
    if _JSON_LINES:  # the fields of a JSON line (a text line prints the message only)
        extra.update(
            event="request",
            method=request.method,
            route=route,
            endpoint=request.endpoint,
            status=status,
            duration_ms=duration_ms,
            **_user_fields(),
        )
    log.info("%s %s %s %.1f ms", request.method, route or "(aucune route)", status, duration_ms, extra=extra)
    return response


# ---------------------------------------------------------------- Sentry

_SAFE_CONTEXTS = {"runtime", "os", "trace", "app", "device", "culture"}
_SAFE_BREADCRUMB = {"timestamp", "category", "level", "type"}


def _sentry_on(app: Flask) -> bool:
    return bool(app.config.get("SENTRY_DSN"))


def init_sentry(app: Flask) -> None:
    """Send unhandled errors to Sentry, scrubbed of personal data by ``scrub_event``."""
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.huey import HueyIntegration

    sentry_sdk.init(
        dsn=app.config["SENTRY_DSN"],
        integrations=[FlaskIntegration()],
        # Sentry's huey integration adds a « sentry_headers » argument to every task queued, which a worker
        # without it (no DSN there, or another version) cannot call: every job would fail. A job's failure
        # reaches Sentry anyway, through the error it logs.
        disabled_integrations=[HueyIntegration()],
        # send_default_pii stays off (its default): no cookies, client addresses or user e-mails
        include_local_variables=False,  # a frame's variables may hold a pupil
        max_request_body_size="never",  # forms carry names and phones
        before_send=scrub_event,
        before_breadcrumb=_scrub_breadcrumb,
        traces_sample_rate=0,
        transport=app.config.get("SENTRY_TRANSPORT"),  # tests only: a transport that keeps the events
    )


def _scrub_breadcrumb(crumb: dict[str, Any], _hint: Any) -> dict[str, Any]:
    # a breadcrumb's message may be an SQL statement or a log line with its arguments: keep only its kind
    return {key: value for key, value in crumb.items() if key in _SAFE_BREADCRUMB}


def _scrub_frames(holder: dict[str, Any]) -> None:
    for frame in (holder.get("stacktrace") or {}).get("frames", []):
        frame.pop("vars", None)


def scrub_event(event: dict[str, Any], _hint: Any = None) -> dict[str, Any]:
    """Keep what locates an error (type, stack, route, request id, user id and role) and nothing that could
    name a person: no exception message, request body, query string, headers, cookies or variables."""
    request_data = event.get("request") or {}
    event["request"] = {
        "method": request_data.get("method"),
        "url": (request_data.get("url") or "").split("?", 1)[0],
    }
    for exception in (event.get("exception") or {}).get("values", []):
        if exception.get("value"):
            exception["value"] = "(message retiré : il peut citer des données personnelles)"
        _scrub_frames(exception)
    for thread in (event.get("threads") or {}).get("values", []):
        _scrub_frames(thread)
    entry = event.get("logentry")
    if entry:
        event["logentry"] = {"message": entry.get("message", "")}
    event.pop("extra", None)
    event["contexts"] = {k: v for k, v in (event.get("contexts") or {}).items() if k in _SAFE_CONTEXTS}
    crumbs = event.get("breadcrumbs")
    if isinstance(crumbs, dict):
        crumbs["values"] = [_scrub_breadcrumb(c, None) for c in crumbs.get("values", [])]
    tags = dict(event.get("tags") or {})
    event["user"] = {}
    if has_request_context():
        fields = _user_fields()
        tags["request_id"] = g.get("request_id")
        if fields["user_id"] is not None:
            event["user"] = {"id": str(fields["user_id"])}
            tags["role"] = fields["role"]
    event["tags"] = tags
    return event
