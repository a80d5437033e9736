"""Assertions and clients shared by the test modules (one copy of each, imported where needed)."""

from __future__ import annotations

from urllib.parse import urlsplit

from .conftest import login


def client_as(app, user):
    """A browser of its own, logged in as ``user``."""
    client = app.test_client()
    response = login(client, user)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def redirect_path(response) -> str:
    """The path a redirect answer sends to (and it must be a redirect)."""
    assert response.status_code == 302, (response.status_code, response.get_data(as_text=True)[:500])
    return urlsplit(response.headers["Location"]).path


def api_error(response, status: int, code: str | None = None) -> str:
    """The French message of an API refusal with ``status`` (and ``code``), in the API's error format."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]["message"]
