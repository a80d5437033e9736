"""What every request and response goes through: the client's real address behind trusted proxies, the
session's lifetime and version, and the security headers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
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
    app.wsgi_app = SecurityHeaders(app.wsgi_app, app.static_url_path or "/static")  # type: ignore[method-assign]
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies > 0:  # outside: the headers above see the client's scheme (HSTS over HTTPS only)
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["SESSION_LIFETIME_HOURS"])
    # a session ends SESSION_LIFETIME_HOURS after its login whatever its cookie says (extensions.py): signing
    # the cookie again at every request would extend nothing
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    app.session_interface = CookieSessions()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer made once per key (Flask builds it at every
    request) and not at all for a request without a session cookie (an API call)."""

    _made: tuple[tuple, URLSafeTimedSerializer | None] = ((), None)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made_for, serializer = self._made
        if made_for != keys:
            serializer = super().get_signing_serializer(app)
            self._made = (keys, serializer)
        return serializer

    # Cookies this process verified, with their signing time and their data, when that data holds plain values
    # only (a copy of the dictionary is then a copy of the session): a volunteer's phone sends the same cookie
    # with every scan, and checking its signature and decoding it again cost a measurable share of a scan.
    # The cookie's age is checked at every request, as the serializer checks it; another key, another cache.
    _VERIFIED_MAX = 1024

    def __init__(self) -> None:
        super().__init__()
        self._verified: dict[str, tuple[URLSafeTimedSerializer, int, dict]] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        if app.secret_key and not value:
            return self.session_class()
        serializer = self.get_signing_serializer(app)
        if serializer is None or not value:
            return super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        verified = self._verified
        known = verified.get(value)
        if known is not None and known[0] is serializer:
            age = int(time.time()) - known[1]
            if 0 <= age <= max_age:
                return self.session_class(known[2])
        try:
            data, signed_at = serializer.loads(value, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(data, dict) and all(type(v) in _PLAIN for v in data.values()):
            if len(verified) >= self._VERIFIED_MAX:
                verified.clear()
            verified[value] = (serializer, int(signed_at.timestamp()), dict(data))
        return self.session_class(data)


_PLAIN = frozenset({str, int, float, bool, type(None)})


_ALWAYS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]
REQUEST_ID_KEY = "logistique.request_id"  # the request id, in the WSGI environ, sent back as X-Request-ID
SERVICE_WORKER_PATH = "/sw.js"  # views/scanning.py


class SecurityHeaders:
    """Every answer's security headers, its cache policy and its request id, appended to the WSGI header list
    as precomputed pairs (an after_request hook setting them one by one cost a measurable share of a fast
    request). A header the view set itself is kept, except the cache policy, which is decided here."""

    def __init__(self, wsgi_app: Callable, static_path: str) -> None:
        self.wsgi_app = wsgi_app
        self.static_prefix = static_path.rstrip("/") + "/"

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            present = {name.lower() for name, _value in headers}
            headers.extend(pair for pair in _ALWAYS if pair[0].lower() not in present)
            if environ.get("wsgi.url_scheme") == "https" and "strict-transport-security" not in present:
                headers.append(("Strict-Transport-Security", HSTS))
            path = environ.get("PATH_INFO", "")
            if not path.startswith(self.static_prefix):
                # the installable app's worker, which holds no data, is revalidated at each visit so that a
                # deploy reaches the phones (views/scanning.py); pages and answers may show pupils' names: no
                # browser or proxy keeps a copy
                policy = "no-cache" if path == SERVICE_WORKER_PATH else "no-store"
                if "cache-control" in present:
                    headers[:] = [pair for pair in headers if pair[0].lower() != "cache-control"]
                headers.append(("Cache-Control", policy))
                if policy == "no-store" and "pragma" not in present:
                    headers.append(("Pragma", "no-cache"))
            request_id = environ.get(REQUEST_ID_KEY)
            if request_id is not None:
                headers.append(("X-Request-ID", request_id))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)
