"""Configuration: defaults, then ``LOGISTIQUE_*`` environment variables, then explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENV_PREFIX = "LOGISTIQUE_"

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # default: SQLite file in the instance folder
    "SECRET_KEY": None,
    "BASE_URL": "http://127.0.0.1:5000",
    "DEMO_MODE": False,
    "TESTING": False,
    "PAGE_SIZE": 50,
    "LOGIN_MAX_FAILURES": 5,  # failures before an account or address is slowed down
    "LOGIN_LOCK_SECONDS": 60,  # first delay; doubles with each further failure
    "TRUSTED_PROXIES": 0,  # reverse proxies in front whose X-Forwarded-For / -Proto entries are believed
    "SESSION_LIFETIME_HOURS": 12,  # a session cookie is refused after this long, even if copied
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    # background jobs (logistique/jobs.py): huey on SQLite in the instance folder unless a Redis URL is given
    "QUEUE_URL": "",  # e.g. redis://127.0.0.1:6379/0
    "QUEUE_NAME": "logistique",
    "QUEUE_FILE": "",  # default: instance/queue.sqlite3
    "JOBS_DIR": "",  # where workers write the files; shared by every machine (default: instance/jobs)
    "JOB_FILE_HOURS": 24,
    "JOB_STALL_SECONDS": 120,
    "EXPORT_INLINE_MAX_ROWS": 20_000,  # a bigger XLSX export is a background job (CSV always streams)
    "SLIPS_INLINE_MAX": 200,  # a bigger batch of slips to print is a background job
    "IMPORT_INLINE_MAX_ROWS": 5_000,  # a bigger uploaded stock or pupil file is imported by a background job
    "WTF_CSRF_TIME_LIMIT": None,
    "WTF_I18N_ENABLED": False,  # forms carry French messages through their Meta locales
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_HTTPONLY": True,
    # operations (README « Production »)
    "LOG_FORMAT": "text",  # or "json": one JSON object per line
    "SENTRY_DSN": None,
    "SMTP_URL": None,  # smtp://[user:password@]host[:port], smtps://… or smtp+starttls://…; unset: no e-mail
    "MAIL_FROM": "logistique <ne-pas-repondre@localhost>",
    "STUCK_DAYS": 3,  # a slip waiting longer than this is reported to the administrators
}

_BOOLEAN = {"DEMO_MODE", "TESTING", "SESSION_COOKIE_SECURE"}
_INTEGER = {
    "PAGE_SIZE",
    "LOGIN_MAX_FAILURES",
    "LOGIN_LOCK_SECONDS",
    "MAX_CONTENT_LENGTH",
    "TRUSTED_PROXIES",
    "SESSION_LIFETIME_HOURS",
    "JOB_FILE_HOURS",
    "JOB_STALL_SECONDS",
    "EXPORT_INLINE_MAX_ROWS",
    "SLIPS_INLINE_MAX",
    "IMPORT_INLINE_MAX_ROWS",
    "STUCK_DAYS",
}


class ConfigError(RuntimeError):
    """The configuration cannot run the application."""


def _coerce(key: str, raw: str) -> Any:
    if key in _BOOLEAN:
        return raw.strip().lower() in {"1", "true", "yes", "oui", "on"}
    if key in _INTEGER:
        return int(raw)
    return raw


def load(instance_path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration mapping and check that it can run."""
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = os.environ.get(ENV_PREFIX + key)
        if raw is not None and raw != "":
            config[key] = _coerce(key, raw)
    config.update(overrides or {})
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///" + str(Path(instance_path) / "logistique.sqlite3")
    if not config["SECRET_KEY"]:
        if config["TESTING"]:
            config["SECRET_KEY"] = os.urandom(32).hex()
        else:
            raise ConfigError(
                "LOGISTIQUE_SECRET_KEY n'est pas défini : l'application refuse de démarrer sans clé secrète "
                "(elle signe les sessions et les QR codes). Générez-en une, par exemple avec "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`, et exportez-la."
            )
    config["BASE_URL"] = config["BASE_URL"].rstrip("/")
    return config
