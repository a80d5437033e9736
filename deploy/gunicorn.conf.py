"""gunicorn settings of deploy/logistique.service (``--config``): gunicorn's own lines (workers booting or
killed on timeout) in the app's format, JSON with LOGISTIQUE_LOG_FORMAT=json; no access log (the app writes
one line per request itself, with the route instead of the path, and the request id)."""

import os

accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "app": {
            "()": "logistique.observability.formatter",
            "log_format": os.environ.get("LOGISTIQUE_LOG_FORMAT", "text"),
        }
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "app", "stream": "ext://sys.stderr"}
    },
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    "root": {"handlers": [], "level": "WARNING"},
}
