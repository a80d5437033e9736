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
    # the app's formatter prints a request id: the filter gives gunicorn's lines one (none)
    "filters": {"request": {"()": "logistique.observability.RequestContextFilter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "app",
            "filters": ["request"],
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    "root": {"handlers": [], "level": "WARNING"},
}


def post_worker_init(worker):
    """The application is loaded: what it made at start-up (modules, mappers, compiled statements) lives as
    long as the worker. ``gc.freeze`` takes it out of the cyclic garbage collector's passes: a full pass over
    it took ~0.1 s every few thousand requests (≈ 35 µs a request, and as many pauses in the slowest answers;
    measured with gc.callbacks around scripts/profile_api.py)."""
    import gc

    gc.collect()
    gc.freeze()
    worker.log.info(
        "worker %s : %d objets du démarrage hors du ramasse-miettes", worker.pid, gc.get_freeze_count()
    )
