"""Around the edges (issue 10, points 8, 10, 11 and 12): security headers on every response, no inline
style, identifiers and page numbers bounded (404 or 400 in French, never a 500), a French 413, and database
errors that never carry a statement's values."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.models import Pupil

from .conftest import login

DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
]


def _client(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def _csp(response) -> list[str]:
    return [d.strip() for d in response.headers.get("Content-Security-Policy", "").split(";")]


@pytest.mark.parametrize(
    ("who", "url"),
    [
        (None, "/login"),
        ("coordinator", "/eleves"),
        ("prefecture", "/tableau"),
        ("admin", "/admin/comptes"),
        (None, "/api/v1/openapi.json"),
        ("coordinator", "/inexistant"),
    ],
)
def test_every_response_carries_the_security_headers(app, world, who, url):
    client = _client(app, getattr(world, who)) if who else app.test_client()
    response = client.get(url)
    assert response.status_code in (200, 404), (url, response.status_code)
    for directive in DIRECTIVES:
        assert directive in _csp(response), (url, directive)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here


def test_hsts_over_https_and_static_files_stay_cacheable(app):
    client = app.test_client()
    secure = client.get("/login", base_url="https://logistique.test")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    css = client.get("/static/css/app.css")
    assert css.status_code == 200
    assert "no-store" not in css.headers.get("Cache-Control", "")
    assert "frame-ancestors 'none'" in _csp(css)
    css.close()


def test_pages_have_no_inline_style_or_script(app, world):
    """``style-src 'self'`` and ``script-src 'self'`` hold only if no page inlines either."""
    client = _client(app, world.prefecture)
    for url in ("/tableau", "/tableau/departement/59", "/tableau/qpv/QN05981M", "/recensement", "/"):
        page = client.get(url).get_data(as_text=True)
        assert "<style" not in page, url
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), url
        assert not re.search(r"\sstyle=", page), url
        assert not re.search(r"\son[a-z]+=", page), url


# ---------------------------------------------------------------- bounded numbers

HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "url",
    [
        f"/eleves/{HUGE}",
        f"/equipements/{HUGE}",
        f"/remises/{HUGE}",
        f"/remises/{HUGE}/recu.pdf",
        f"/remises/eleve/{HUGE}",
        f"/admin/comptes/{HUGE}",
        f"/admin/structures/{HUGE}",
        f"/admin/lots/{HUGE}",
        f"/admin/enveloppes/{HUGE}",
        f"/admin/repartition/{HUGE}",
    ],
)
def test_a_huge_identifier_in_a_path_is_not_found(app, world, url):
    user = world.coordinator if "eleve" in url or "remises" in url else world.admin
    response = _client(app, user).get(url)
    assert response.status_code == 404
    assert "Page introuvable" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "url",
    [
        f"/equipements?page={HUGE}",
        "/equipements?page=1e20",
        f"/equipements?lot={HUGE}&entrepot={HUGE}",
        f"/eleves?page={HUGE}",
        f"/stock/reception?lot={HUGE}&model={HUGE}",
        f"/stock/etiquettes.pdf?lot={HUGE}",
        f"/bordereaux/a-preparer.pdf?entrepot={HUGE}",
        f"/bordereaux/nouveau?destination={HUGE}",
    ],
)
def test_huge_numbers_in_a_query_string_are_ignored(app, world, url):
    response = _client(app, world.admin).get(url)
    assert response.status_code in (200, 302, 404), (url, response.status_code)


def test_huge_numbers_in_the_api_are_refused_in_french(app, world, api):
    coordinator = api(world.coordinator)
    for url in (f"/api/v1/devices?page={HUGE}", "/api/v1/devices?page=1e20", f"/api/v1/pupils?page={HUGE}"):
        response = coordinator.get(url)
        assert response.status_code == 400, (url, response.status_code)
        assert response.get_json()["error"]["message"].startswith("Requête invalide"), url
    for destination in (1e20, 10**20, -1):
        response = coordinator.post("/api/v1/slips", json={"destination": destination, "serials": ["SN-X"]})
        assert response.status_code == 400, (destination, response.get_data(as_text=True))
        assert "destination" in response.get_json()["error"]["message"]
    missing = coordinator.delete(f"/api/v1/assignments/{HUGE}")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "not_found"


def test_huge_counts_in_forms_are_refused_in_french(app, world):
    client = _client(app, world.coordinator)
    response = client.post("/besoins", data={"need_QN05981M_tablette": HUGE})
    assert response.status_code in (400, 422), response.status_code
    assert "n'est pas un nombre" in response.get_data(as_text=True).replace("&#39;", "'")


# ---------------------------------------------------------------- 413


def test_an_upload_over_the_limit_gets_a_french_page(app, world):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    client = _client(app, world.warehouse)
    response = client.post(
        "/stock/import",
        data={"lot": world.lot.id, "file": (__import__("io").BytesIO(b"x" * 5000), "stock.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "Fichier trop volumineux" in page and "2 Ko" in page
    assert "Request Entity Too Large" not in page


def test_an_api_body_over_the_limit_gets_french_json(app, world, api):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    response = api(world.coordinator).post("/api/v1/pupils", json={"first_name": "x" * 5000})
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_large" and "volumineux" in error["message"]


# ---------------------------------------------------------------- parameters out of the logs


def test_database_errors_do_not_carry_the_values(app, session, world):
    assert db.get_engine().hide_parameters is True
    with pytest.raises(sa.exc.IntegrityError) as failed:
        session.execute(
            sa.insert(Pupil).values(
                organisation_id=987654,  # no such organisation: the foreign key refuses the row
                qpv_code="QN05981M",
                school_uai="0750654D",
                grade="CM2",
                first_name="Zoé-Secrète",
                last_name="Quintanilla",
            )
        )
        session.flush()
    session.rollback()
    assert "Zoé-Secrète" not in str(failed.value)
    assert "Quintanilla" not in str(failed.value)
