"""Route × role × scope: every route of the app's own URL map, requested by every kind of account.

A new route without an access rule, or with a path parameter this file cannot fill, fails the suite."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from logistique import create_app, jobs
from logistique.access import Access, access_of
from logistique.api.framework import OPERATIONS
from logistique.db import db
from logistique.domain import (
    accounts,
    allocation,
    assignments,
    devices,
    handover,
    pupils,
    return_slips,
    returns,
    slips,
)
from logistique.models import ApiToken, DeviceCondition, DeviceStatus, HandoverMode, JobStatus, ReceptionState
from logistique.views import board

from .conftest import PASSWORD

# Values of path parameters, by parameter NAME. A route whose parameter is missing here fails the matrix:
# add the parameter with an object of the world that the in-scope accounts may see.
PATH_VALUES: dict[str, Callable[[SimpleNamespace], Any]] = {
    "device_id": lambda w: w.device.id,
    "serial": lambda w: w.device.serial,
    "asset_tag": lambda w: w.device.asset_tag,
    "user_id": lambda w: w.coordinator.id,
    "organisation_id": lambda w: w.assoc_roubaix.id,
    "envelope_id": lambda w: w.envelope.id,
    "lot_id": lambda w: w.lot.id,
    "pupil_id": lambda w: w.pupil.id,
    "assignment_id": lambda w: w.assignment.id,
    "plan_id": lambda w: w.plan.id,
    "fmt": lambda w: "csv",
    "number": lambda w: w.slip.number,
    "token": lambda w: w.slip_token,
    "line_id": lambda w: w.slip.active_lines[0].id,
    "handover_id": lambda w: w.handover.id,
    "token_id": lambda w: w.api_token_id,
    "department_code": lambda w: "59",
    "qpv_code": lambda w: "QN05981M",
    "key": lambda w: w.job.key,
    "restitution_id": lambda w: w.restitution.id,
    "restitution_line_id": lambda w: w.restitution.lines[0].id,
    "return_number": lambda w: w.return_slip.number,
    "return_token": lambda w: w.return_slip_token,
}

# Parameters naming an object in someone's scope, and who may see it: world.device is in stock in the Lille
# warehouse (region 32); world.pupil was registered by the Roubaix association, world.assignment is theirs.
SEES_LILLE_DEVICE = {"admin", "warehouse", "coordinator", "prefecture", "prefecture_nord"}
SEES_ROUBAIX_PUPIL = {"admin", "coordinator"}
VISIBLE_TO = {
    "device_id": SEES_LILLE_DEVICE,
    "serial": SEES_LILLE_DEVICE,
    "asset_tag": SEES_LILLE_DEVICE,
    "pupil_id": SEES_ROUBAIX_PUPIL,
    "assignment_id": SEES_ROUBAIX_PUPIL,
    "number": SEES_LILLE_DEVICE,  # world.slip goes from the Lille warehouse to the Roubaix association
    "token": SEES_LILLE_DEVICE,
    # a family's receipt and handover page carry the guardian's name and signature: the coordinators alone
    "handover_id": {"coordinator"},
    # the boards of the Nord department and of a Roubaix QPV: admin, and the prefectures of Nord and region 32
    "department_code": {"admin", "prefecture", "prefecture_nord"},
    "qpv_code": {"admin", "prefecture", "prefecture_nord"},
    "key": {"prefecture"},  # a background job's page and file: its owner only
    # a restitution names the pupil (the family's receipt): the coordinators of the organisation alone
    "restitution_id": {"coordinator"},
    "restitution_line_id": {"coordinator"},
    # world.return_slip goes from the Roubaix association back to the Lille warehouse
    "return_number": SEES_LILLE_DEVICE,
    "return_token": SEES_LILLE_DEVICE,
}

USERS = [
    "admin",
    "warehouse",
    "coordinator",
    "prefecture",
    "prefecture_nord",
    "warehouse_amiens",
    "warehouse_idf",
    "coordinator_idf",
    "prefecture_somme",
    "prefecture_idf",
]

CONFIG_KEYS = ("TESTING", "DATABASE_URL", "SECRET_KEY", "WTF_CSRF_ENABLED", "BASE_URL", "DEMO_MODE")


def _rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint != "static"), key=lambda r: (r.rule, r.endpoint)
    )


def _methods(rule: Rule) -> list[str]:
    return sorted(m for m in rule.methods or () if m in {"GET", "POST", "DELETE"})


def _is_api(rule: Rule) -> bool:
    return rule.rule.startswith("/api/")


def _missing_parameters(rule: Rule) -> list[str]:
    return sorted(name for name in rule.arguments if name not in PATH_VALUES)


def _url(app: Flask, rule: Rule, method: str, world: SimpleNamespace) -> str:
    values = {name: PATH_VALUES[name](world) for name in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values, method=method)


def _has_body(rule: Rule) -> bool:
    endpoint = rule.endpoint.removeprefix("api.")
    return any(op.endpoint == endpoint and op.body is not None for op in OPERATIONS)


def _api_error_ok(response) -> bool:
    body = response.get_json(silent=True)
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and set(body["error"]) == {"code", "message"}
        and bool(body["error"]["code"])
        and bool(body["error"]["message"])
    )


def _check(
    rule: Rule, method: str, access: Access, who: str, role: str | None, url: str, response
) -> str | None:
    """What is wrong with ``response``, or None."""
    status = response.status_code
    api = _is_api(rule)
    if role is None:  # anonymous
        if access.is_public:
            if method == "GET" and status != 200:
                return f"expected 200 (public), got {status}"
            if status >= 500:
                return f"expected no server error (public), got {status}"
            return None
        if api:
            if status != 401:
                return f"expected 401, got {status}"
            if not _api_error_ok(response):
                return f"401 without the JSON error format: {response.get_data(as_text=True)[:200]!r}"
            return None
        location = urlsplit(response.headers.get("Location", ""))
        next_url = parse_qs(location.query).get("next", [None])[0]
        if status != 302 or location.path != "/login" or next_url != url:
            return f"expected 302 to /login?next={url}, got {status} to {response.headers.get('Location')}"
        return None
    if access.is_public:
        if status >= 500 or status == 403:
            return f"expected an answer to a public route, got {status}"
        if method == "GET" and status not in (200, 302):
            return f"expected 200 or 302, got {status}"
        return None
    if role not in {r.value for r in access.roles}:
        if status != 403:
            return f"expected 403 (role {role} not in the rule), got {status}"
        if api and not _api_error_ok(response):
            return f"403 without the JSON error format: {response.get_data(as_text=True)[:200]!r}"
        return None
    if api and method == "POST" and _has_body(rule):
        # the body is checked before anything is looked up: an empty one is refused alike in scope or out
        if status != 400:
            return f"expected 400 for a POST without its JSON body, got {status}"
        return None
    hidden = [name for name in rule.arguments if name in VISIBLE_TO and who not in VISIBLE_TO[name]]
    if hidden:
        if status != 404:
            return f"expected 404 ({', '.join(hidden)} outside {who}'s scope), got {status}"
        return None
    if method in ("POST", "DELETE"):
        if status == 403 or status >= 500:
            return f"expected neither 403 nor 5xx for an allowed role, got {status}"
        return None
    if status not in (200, 302):
        return f"expected 200 or 302, got {status}"
    return None


def _add_pupils_and_plan(world: SimpleNamespace) -> None:
    """A pupil of the Roubaix association with a tablet assigned, and an allocation plan for region 32."""
    session = db.session
    world.pupil = pupils.register_pupil(
        session,
        pupils.PupilData(
            "Léa",
            "Martin",
            "CM2",
            "0750654D",
            "QN05981M",
            "Sophie Martin",
            "06 12 34 56 78",
            "tablette+connexion",
        ),
        by=world.coordinator,
    )
    tablet = devices.receive_device(
        session,
        lot=world.lot,
        model=world.tablet,
        serial="SN-MATRICE-1",
        condition=DeviceCondition.REFURBISHED,
        by=None,
    )
    world.assignment = assignments.assign(session, pupil=world.pupil, device=tablet, by=world.coordinator)
    world.plan = allocation.compute_plan(session, "32", by=None)
    # a slip being prepared (one of its two lines picked, so that it can no longer be cancelled), and a
    # second one delivered and handed over to the family
    key = devices.receive_device(
        session,
        lot=world.lot,
        model=world.key,
        serial="SN-MATRICE-2",
        condition=DeviceCondition.REFURBISHED,
        by=None,
    )
    assignments.assign(session, pupil=world.pupil, device=key, by=world.coordinator)
    world.slip = slips.create_slip(
        session,
        destination=world.assoc_roubaix,
        serials=[tablet.serial, key.serial],
        by=world.coordinator,
        issue=True,
    )
    slips.scan_for_pick(session, world.slip, tablet.serial, by=world.warehouse)
    world.slip_token = slips.token_for(world.slip, "secret-de-test")
    other = pupils.register_pupil(
        session,
        pupils.PupilData(
            "Tom", "Petit", "6e", "0750654D", "QN05981M", "Anne Petit", "06 12 34 56 79", "tablette"
        ),
        by=world.coordinator,
    )
    laptop_pupil_device = devices.receive_device(
        session,
        lot=world.lot,
        model=world.tablet,
        serial="SN-MATRICE-3",
        condition=DeviceCondition.REFURBISHED,
        by=None,
    )
    assignments.assign(session, pupil=other, device=laptop_pupil_device, by=world.coordinator)
    delivered = slips.create_slip(
        session, destination=world.assoc_roubaix, serials=["SN-MATRICE-3"], by=world.coordinator, issue=True
    )
    slips.scan_for_pick(session, delivered, "SN-MATRICE-3", by=world.warehouse)
    slips.ship(session, delivered, by=world.warehouse)
    slips.receive(
        session,
        delivered,
        [slips.ReceptionLine("SN-MATRICE-3", ReceptionState.RECEIVED)],
        by=world.coordinator,
    )
    world.handover = handover.hand_over(
        session,
        pupil=other,
        serials=["SN-MATRICE-3"],
        receiver_name="Anne Petit",
        relation="mère",
        mode=HandoverMode.LOAN,
        signature=signature_png(),
        by=world.coordinator,
    )
    # a family brought a device back (restitution), which is on its way back to the Lille warehouse
    returning = pupils.register_pupil(
        session,
        pupils.PupilData(
            "Zoé", "Retour", "5e", "0750654D", "QN05981M", "Paul Retour", "06 12 34 56 70", "tablette"
        ),
        by=world.coordinator,
    )
    returned = devices.receive_device(
        session,
        lot=world.lot,
        model=world.tablet,
        serial="SN-MATRICE-5",
        condition=DeviceCondition.REFURBISHED,
        by=None,
    )
    assignments.assign(session, pupil=returning, device=returned, by=world.coordinator)
    back = slips.create_slip(
        session, destination=world.assoc_roubaix, serials=["SN-MATRICE-5"], by=world.coordinator, issue=True
    )
    slips.scan_for_pick(session, back, "SN-MATRICE-5", by=world.warehouse)
    slips.ship(session, back, by=world.warehouse)
    slips.receive(
        session, back, [slips.ReceptionLine("SN-MATRICE-5", ReceptionState.RECEIVED)], by=world.coordinator
    )
    handover.hand_over(
        session,
        pupil=returning,
        serials=["SN-MATRICE-5"],
        receiver_name="Paul Retour",
        relation="père",
        mode=HandoverMode.LOAN,
        signature=signature_png(),
        by=world.coordinator,
    )
    world.restitution = returns.record_return(
        session, [returns.ReturnItem("SN-MATRICE-5", DeviceStatus.RETURNED)], by=world.coordinator
    )
    world.return_slip = return_slips.create_return_slip(
        session,
        organisation=world.assoc_roubaix,
        line_ids=[world.restitution.lines[0].id],
        by=world.coordinator,
        issue=True,
    )
    return_slips.ship_return_slip(session, world.return_slip, by=world.coordinator)
    world.return_slip_token = return_slips.token_for(world.return_slip, "secret-de-test")
    # an API token of an account the matrix does not use (revoking it leaves the matrix's own tokens alone)
    accounts.create_token(session, world.warehouse_idf, "matrice")
    world.api_token_id = session.scalar(
        sa.select(ApiToken.id).where(ApiToken.user_id == world.warehouse_idf.id, ApiToken.label == "matrice")
    )
    world.job = _finished_job(session, world.prefecture)
    session.commit()


def _finished_job(session, owner):
    """A background job of ``owner`` whose file is ready."""
    path = Path(tempfile.gettempdir()) / "logistique-matrice-travail.csv"
    path.write_bytes("\ufeffN° de série\r\n".encode())
    job = jobs.submit(
        session, board.DEVICES_XLSX, by=owner, title="Export", file_name=path.name, params={}, total=1
    )
    job.status, job.file_path, job.expires_at = JobStatus.DONE, str(path), job.created_at
    return job


def signature_png() -> bytes:
    """A small PNG with a stroke, as the phone's signature pad makes."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (300, 120), (255, 255, 255, 0))
    ImageDraw.Draw(image).line([(10, 100), (80, 20), (150, 90), (290, 30)], fill=(0, 0, 0, 255), width=4)
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _run_matrix(
    app: Flask,
    world: SimpleNamespace,
    who: str,
    page_client: Callable[[], FlaskClient],
    api_client: FlaskClient,
) -> list[str]:
    role = getattr(world, who).role.value if who != "anonymous" else None
    _add_pupils_and_plan(world)
    mismatches: list[str] = []
    client = page_client()
    for rule in _rules(app):
        access = access_of(app.view_functions[rule.endpoint])
        for method in _methods(rule):
            label = f"{method} {rule.endpoint} ({rule.rule}) as {who}"
            if access is None:
                mismatches.append(f"{label}: the endpoint has no access rule")
                continue
            missing = _missing_parameters(rule)
            if missing:
                mismatches.append(
                    f"{label}: no value for path parameter(s) {missing}: add them to PATH_VALUES "
                    f"in tests/test_access_matrix.py"
                )
                continue
            url = _url(app, rule, method, world)
            used = api_client if _is_api(rule) else client
            # TESTING propagates a view's exception: record it and go on with the other routes
            try:
                response = used.open(url, method=method)
            except Exception as exc:
                mismatches.append(f"{label}: raised {type(exc).__name__}: {exc}")
                continue
            problem = _check(rule, method, access, who, role, url, response)
            if problem:
                mismatches.append(f"{label}: {problem}")
            if rule.endpoint == "auth.logout":
                client = page_client()  # log in again for the remaining routes
    return mismatches


# ---------------------------------------------------------------- every route has a rule


def test_every_endpoint_has_an_access_rule(app):
    missing = sorted(r.endpoint for r in _rules(app) if access_of(app.view_functions[r.endpoint]) is None)
    assert missing == [], f"endpoints without an access rule (logistique.access): {missing}"


def test_every_path_parameter_has_a_value_in_the_matrix(app):
    missing = {r.rule: _missing_parameters(r) for r in _rules(app) if _missing_parameters(r)}
    assert missing == {}, (
        f"add these path parameters to PATH_VALUES in tests/test_access_matrix.py: {missing}"
    )


def test_the_matrix_covers_pages_and_api(app):
    """The URL map the matrix walks is the real one: pages, admin pages and API operations are in it."""
    endpoints = {r.endpoint for r in _rules(app)}
    assert {
        "auth.login",
        "stock.device_detail",
        "admin.users",
        "api.list_devices",
        "api.create_device",
    } <= endpoints


def test_a_route_without_access_rule_is_refused(app, world):
    fresh = create_app({key: app.config[key] for key in CONFIG_KEYS})
    fresh.add_url_rule("/sans-regle", "sans_regle", lambda: "page ouverte à tous")
    try:
        client = fresh.test_client()
        logged_in = client.post("/login", data={"email": world.admin.email, "password": PASSWORD})
        assert logged_in.status_code == 302
        assert client.get("/").status_code == 200  # logged in: the refusal below is the missing rule's
        response = client.get("/sans-regle")
        assert response.status_code == 500
        assert "page ouverte à tous" not in response.get_data(as_text=True)
        client.post("/logout")
        anonymous = fresh.test_client().get("/sans-regle")
        assert anonymous.status_code == 500
    finally:
        with fresh.app_context():
            db.get_engine().dispose()
    assert "sans_regle" not in app.view_functions


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("who", USERS)
def test_access_matrix(app, world, login_as, api, who):
    user = getattr(world, who)
    mismatches = _run_matrix(app, world, who, lambda: login_as(user), api(user))
    assert mismatches == [], f"{len(mismatches)} mismatch(es):\n" + "\n".join(mismatches)


def test_access_matrix_anonymous(app, world):
    mismatches = _run_matrix(app, world, "anonymous", app.test_client, app.test_client())
    assert mismatches == [], f"{len(mismatches)} mismatch(es):\n" + "\n".join(mismatches)


# ---------------------------------------------------------------- scope, explicitly


def _serials_listed(client: FlaskClient, url: str = "/equipements") -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_amiens_warehouse_lists_none_of_lille_devices(world, login_as):
    page = _serials_listed(login_as(world.warehouse_amiens))
    assert world.device_amiens.serial in page
    for device in (world.device, world.device2, world.device3):
        assert device.serial not in page
    # a search by serial does not reveal it either (the search box echoes the serial: look for the row)
    found = _serials_listed(login_as(world.warehouse_amiens), f"/equipements?q={world.device.serial}")
    assert f'href="/equipements/{world.device.id}"' not in found
    assert world.device.asset_tag not in found
    lille = _serials_listed(login_as(world.warehouse))
    assert world.device.serial in lille and world.device_amiens.serial not in lille


def test_idf_coordinator_cannot_open_a_lille_device(world, login_as):
    client = login_as(world.coordinator_idf)
    assert client.get(f"/equipements/{world.device.id}").status_code == 404
    assert client.get(f"/d/{world.device.asset_tag}").status_code == 404
    assert client.post(f"/equipements/{world.device.id}", data={"action": "mark_lost"}).status_code == 404
    # same answer as an id or a tag that does not exist: existence is not leaked
    assert client.get("/equipements/999999").status_code == 404
    assert client.get("/d/INCONNU-000").status_code == 404
    # the region's own coordinator does reach it
    own = login_as(world.coordinator)
    assert own.get(f"/equipements/{world.device.id}").status_code == 200
    label = own.get(f"/d/{world.device.asset_tag}")
    assert label.status_code == 302
    assert urlsplit(label.headers["Location"]).path == f"/equipements/{world.device.id}"


def test_nord_prefecture_sees_lille_but_not_amiens(world, login_as, api):
    page = _serials_listed(login_as(world.prefecture_nord))
    assert world.device.serial in page
    assert world.device_amiens.serial not in page
    assert world.device_idf.serial not in page

    response = api(world.prefecture_nord).get("/api/v1/devices")
    assert response.status_code == 200
    serials = {item["serial"] for item in response.get_json()["items"]}
    assert serials == {world.device.serial, world.device2.serial, world.device3.serial}
