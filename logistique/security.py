"""What every request and response goes through: the client's real address behind trusted proxies, the
session's lifetime and version, and the security headers."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .bounds import BoundedIntConverter

# what the pages load: only the app's own files (no inline script or style), WebAssembly for the barcode
# decoder, camera frames and signatures as blob: and data: images, the service worker and its manifest
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask) -> None:
    """Trust ``TRUSTED_PROXIES`` proxies' forwarded headers, set the session lifetime and the headers."""
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is registered
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["SESSION_LIFETIME_HOURS"])
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint == "scanning.service_worker":
        # the installable app's worker, which holds no data: revalidated at each visit so that a deploy
        # reaches the phones (views/scanning.py)
        headers["Cache-Control"] = "no-cache"
    elif request.endpoint != "static":
        # pages and answers may show pupils' names: no browser or proxy keeps a copy
        headers["Cache-Control"] = "no-store"
        headers.setdefault("Pragma", "no-cache")
    return response
