"""The JSON API as an integrator sees it: tokens, error format, scope, validation, idempotent
POSTs and the OpenAPI document."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa

from logistique.domain import accounts
from logistique.domain import devices as device_domain
from logistique.models import Device, DeviceEvent, DeviceStatus

FRENCH = re.compile(
    r"[àâçéèêëîïôûùüÿœ]|\b(le|la|les|de|du|des|une?|votre|est|requête|champ)\b", re.IGNORECASE
)


def assert_error(response, status: int, code: str | None = None) -> dict[str, str]:
    """The response is exactly {"error": {"code", "message"}} with a French message, and that status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and re.fullmatch(r"[a-z_]+", body["error"]["code"])
    assert isinstance(body["error"]["message"], str) and FRENCH.search(body["error"]["message"]), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _count(session, stmt) -> int:
    """Count rows as committed by the requests, without keeping a transaction (SQLite locks on BEGIN)."""
    session.rollback()
    try:
        return session.scalar(stmt)
    finally:
        session.rollback()


NEW_DEVICE = {
    "serial": "SN-NEUF-1",
    "lot": "LOT-LILLE",
    "kind": "tablette",
    "model": "Galaxy Tab A",
    "condition": "neuf",
}


# ---------------------------------------------------------------- authentication


BAD_AUTHORIZATIONS = {
    "no header": None,
    "basic scheme": "Basic dXNlcjpwYXNz",
    "bearer without token": "Bearer",
    "bearer with blank token": "Bearer   ",
    "token without scheme": "lgq_sans_schema",
    "other scheme": "Token lgq_abc",
    "unknown token": "Bearer lgq_inconnu",
    "malformed token": "Bearer pas-un-jeton",
}


def _failures(cases: dict[str, Any], check) -> list[str]:
    """Run ``check`` on every case; the AssertionErrors of all of them, named."""
    failures = []
    for name, case in cases.items():
        try:
            check(case)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    return failures


def test_requests_without_a_valid_token_get_401(client, world):
    def check(header):
        headers = {"Authorization": header} if header is not None else {}
        for url in ("/api/v1/devices", "/api/v1/organisations", f"/api/v1/devices/{world.device.serial}"):
            assert_error(client.get(url, headers=headers), 401, "unauthenticated")
        response = client.post("/api/v1/devices", json=NEW_DEVICE, headers=headers)
        assert_error(response, 401, "unauthenticated")

    failures = _failures(BAD_AUTHORIZATIONS, check)
    assert failures == [], "\n".join(failures)


def test_a_disabled_users_token_gets_401(world, api, session):
    client = api(world.warehouse)
    assert client.get("/api/v1/devices").status_code == 200
    world.warehouse.is_active = False
    session.commit()
    assert_error(client.get("/api/v1/devices"), 401, "unauthenticated")
    body = {
        "serial": "SN-DISABLED",
        "lot": "LOT-LILLE",
        "kind": "tablette",
        "model": "Galaxy Tab A",
        "condition": "neuf",
    }
    assert_error(client.post("/api/v1/devices", json=body), 401, "unauthenticated")
    assert _count(session, sa.select(sa.func.count()).where(Device.serial == "SN-DISABLED")) == 0


def test_a_token_is_only_accepted_whole(world, api, session):
    token = accounts.create_token(session, world.admin)
    session.commit()
    client = api(world.admin)
    assert client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/v1/devices", headers={"Authorization": f"bearer  {token}  "}).status_code == 200
    assert_error(client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token[:-1]}"}), 401)


# ---------------------------------------------------------------- organisations


def _organisations(client) -> dict[int, dict[str, Any]]:
    response = client.get("/api/v1/organisations")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {item["id"]: item for item in response.get_json()["items"]}


def test_organisations_in_the_warehouses_scope(world, api):
    seen = _organisations(api(world.warehouse))
    # its own warehouse, and the associations and schools of its region (Nord and Somme)
    assert set(seen) == {
        world.wh_lille.id,
        world.assoc_roubaix.id,
        world.assoc_amiens.id,
        world.school_roubaix.id,
    }
    assert world.assoc_bobigny.id not in seen and world.wh_bobigny.id not in seen


def test_organisations_of_the_nord_prefecture_are_in_department_59(world, api):
    seen = _organisations(api(world.prefecture_nord))
    assert set(seen) == {world.wh_lille.id, world.assoc_roubaix.id, world.school_roubaix.id}
    assert {item["department"] for item in seen.values()} == {"59"}


def test_admin_sees_every_organisation_with_its_fields(world, api):
    seen = _organisations(api(world.admin))
    everyone = [
        world.wh_lille,
        world.wh_amiens,
        world.wh_bobigny,
        world.assoc_roubaix,
        world.assoc_amiens,
        world.assoc_bobigny,
        world.school_roubaix,
    ]
    assert set(seen) == {o.id for o in everyone}
    for item in seen.values():
        assert {"id", "kind", "name", "department", "qpvs"} <= set(item)
    roubaix = seen[world.assoc_roubaix.id]
    assert roubaix["kind"] == "association"
    assert roubaix["name"] == "Association Roubaix"
    assert roubaix["department"] == "59"
    assert sorted(roubaix["qpvs"]) == ["QN05981M", "QP059001"]
    assert seen[world.school_roubaix.id]["qpvs"] == ["QN05981M"]
    assert seen[world.wh_lille.id]["qpvs"] == []
    assert seen[world.wh_bobigny.id]["department"] == "93"


# ---------------------------------------------------------------- device list


def _serials(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["serial"] for item in response.get_json()["items"]]


def test_devices_are_paginated(world, api):
    client = api(world.admin)
    everything = {"SN-LILLE-1", "SN-LILLE-2", "SN-LILLE-3", "SN-AMIENS-1", "SN-IDF-1"}
    first = client.get("/api/v1/devices?per_page=2").get_json()
    assert (first["page"], first["per_page"], first["total"], len(first["items"])) == (1, 2, 5, 2)
    second = client.get("/api/v1/devices?per_page=2&page=2").get_json()
    third = client.get("/api/v1/devices?per_page=2&page=3").get_json()
    assert (second["page"], second["total"], len(second["items"])) == (2, 5, 2)
    assert (third["page"], third["total"], len(third["items"])) == (3, 5, 1)
    pages = [[i["serial"] for i in p["items"]] for p in (first, second, third)]
    assert sorted(sum(pages, [])) == sorted(everything)  # no device twice, none forgotten
    beyond = client.get("/api/v1/devices?per_page=2&page=4").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5
    default = client.get("/api/v1/devices").get_json()
    assert default["page"] == 1 and default["total"] == 5 and len(default["items"]) == 5
    item = next(i for i in default["items"] if i["serial"] == "SN-LILLE-1")
    assert item["asset_tag"] == world.device.asset_tag
    assert (item["kind"], item["model"], item["status"], item["lot"]) == (
        "tablette",
        "Galaxy Tab A",
        "en_stock",
        "LOT-LILLE",
    )
    assert item["warehouse_id"] == world.wh_lille.id


def test_devices_total_counts_the_scope_only(world, api):
    page = api(world.warehouse).get("/api/v1/devices?per_page=1").get_json()
    assert page["total"] == 3 and len(page["items"]) == 1


def test_devices_filters(world, api, session):
    device_domain.transition(
        session, world.device2, "mark_defective", by=world.warehouse, reason="écran cassé"
    )
    session.commit()
    client = api(world.admin)
    assert _serials(client.get("/api/v1/devices?status=defectueux")) == ["SN-LILLE-2"]
    assert "SN-LILLE-2" not in _serials(client.get("/api/v1/devices?status=en_stock"))
    assert set(_serials(client.get("/api/v1/devices?kind=tablette"))) == {
        "SN-LILLE-1",
        "SN-AMIENS-1",
        "SN-IDF-1",
    }
    assert _serials(client.get("/api/v1/devices?kind=cle_4g")) == ["SN-LILLE-3"]
    assert _serials(client.get("/api/v1/devices?lot=LOT-AMIENS")) == ["SN-AMIENS-1"]
    assert _serials(client.get("/api/v1/devices?lot=lot-amiens")) == ["SN-AMIENS-1"]
    assert _serials(client.get("/api/v1/devices?lot=LOT-INCONNU")) == []
    assert _serials(client.get("/api/v1/devices?kind=tablette&lot=LOT-LILLE&status=en_stock")) == [
        "SN-LILLE-1"
    ]
    # filters never widen the scope
    assert _serials(api(world.warehouse_amiens).get("/api/v1/devices?lot=LOT-LILLE")) == []
    total = api(world.warehouse).get("/api/v1/devices?kind=tablette").get_json()["total"]
    assert total == 1


INVALID_QUERIES = {
    "status=foo": "status",
    "kind=velo": "kind",
    "per_page=0": "per_page",
    "per_page=501": "per_page",
    "page=0": "page",
    "page=deux": "page",
    "lot=" + "L" * 41: "lot",
}


def test_invalid_filter_values_are_refused_naming_the_field(world, api):
    client = api(world.admin)

    def check(query):
        error = assert_error(client.get(f"/api/v1/devices?{query}"), 400, "invalid")
        assert f"« {INVALID_QUERIES[query]} »" in error["message"], error["message"]

    failures = _failures({q: q for q in INVALID_QUERIES}, check)
    assert failures == [], "\n".join(failures)


def test_unknown_query_parameters_are_refused(world, api):
    error = assert_error(api(world.admin).get("/api/v1/devices?statut=en_stock"), 400, "invalid")
    assert "statut" in error["message"]


# ---------------------------------------------------------------- one device


def test_device_with_its_history(world, api):
    response = api(world.coordinator).get(f"/api/v1/devices/{world.device.serial}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["serial"] == "SN-LILLE-1" and body["asset_tag"] == world.device.asset_tag
    assert body["status"] == "en_stock"
    assert len(body["history"]) == 1
    event = body["history"][0]
    assert event["action"] == device_domain.RECEPTION_ACTION
    assert event["from_status"] is None and event["to_status"] == "en_stock"
    assert "LOT-LILLE" in event["reason"]
    assert event["at"]
    # serials are matched as scanned: case and spaces do not matter
    assert api(world.warehouse).get("/api/v1/devices/sn-lille-1").status_code == 200


def test_a_device_out_of_scope_looks_like_an_unknown_one(world, api):
    for who in ("warehouse_amiens", "coordinator_idf", "prefecture_somme", "prefecture_idf", "warehouse_idf"):
        client = api(getattr(world, who))
        hidden = client.get(f"/api/v1/devices/{world.device.serial}")
        unknown = client.get("/api/v1/devices/SN-QUI-N-EXISTE-PAS")
        assert_error(hidden, 404, "not_found")
        assert hidden.get_json() == unknown.get_json(), who
        assert hidden.status_code == unknown.status_code


# ---------------------------------------------------------------- receiving a device


def _devices_and_events(session, serial: str) -> tuple[int, int]:
    devices = _count(session, sa.select(sa.func.count()).select_from(Device).where(Device.serial == serial))
    events = _count(
        session,
        sa.select(sa.func.count()).select_from(DeviceEvent).join(Device).where(Device.serial == serial),
    )
    return devices, events


def test_warehouse_receives_a_device(world, api, session):
    client = api(world.warehouse)
    response = client.post("/api/v1/devices", json=NEW_DEVICE)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["serial"] == "SN-NEUF-1" and body["status"] == "en_stock" and body["lot"] == "LOT-LILLE"
    assert body["warehouse_id"] == world.wh_lille.id and body["asset_tag"]
    assert _devices_and_events(session, "SN-NEUF-1") == (1, 1)
    detail = client.get("/api/v1/devices/SN-NEUF-1").get_json()
    assert [e["action"] for e in detail["history"]] == [device_domain.RECEPTION_ACTION]
    assert detail["history"][0]["actor"] == world.warehouse.email


def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer(world, api, session):
    client = api(world.warehouse)
    headers = {"Idempotency-Key": "reception-0001"}
    first = client.post("/api/v1/devices", json=NEW_DEVICE, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert "Idempotent-Replayed" not in first.headers
    again = client.post("/api/v1/devices", json=NEW_DEVICE, headers=headers)
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _devices_and_events(session, "SN-NEUF-1") == (1, 1)

    reused = client.post("/api/v1/devices", json={**NEW_DEVICE, "serial": "SN-NEUF-2"}, headers=headers)
    assert_error(reused, 422, "idempotency_key_reused")
    assert _devices_and_events(session, "SN-NEUF-2") == (0, 0)

    # another key is another request: the serial is now known
    other = client.post("/api/v1/devices", json=NEW_DEVICE, headers={"Idempotency-Key": "reception-0002"})
    assert_error(other, 409, "duplicate_serial")
    assert _devices_and_events(session, "SN-NEUF-1") == (1, 1)


def test_a_refusal_is_replayed_too(world, api, session):
    client = api(world.warehouse)
    headers = {"Idempotency-Key": "refus-0001"}
    body = {**NEW_DEVICE, "serial": world.device.serial}
    first = client.post("/api/v1/devices", json=body, headers=headers)
    assert_error(first, 409, "duplicate_serial")
    again = client.post("/api/v1/devices", json=body, headers=headers)
    assert again.status_code == 409 and again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_idempotency_keys_belong_to_their_user(world, api, session):
    headers = {"Idempotency-Key": "meme-cle"}
    lille = api(world.warehouse).post("/api/v1/devices", json=NEW_DEVICE, headers=headers)
    assert lille.status_code == 201
    amiens = api(world.warehouse_amiens).post(
        "/api/v1/devices", json={**NEW_DEVICE, "serial": "SN-AMIENS-9", "lot": "LOT-AMIENS"}, headers=headers
    )
    assert amiens.status_code == 201, amiens.get_data(as_text=True)
    assert "Idempotent-Replayed" not in amiens.headers
    assert amiens.get_json()["serial"] == "SN-AMIENS-9"


def test_a_duplicate_serial_without_key_is_a_conflict(world, api, session):
    client = api(world.warehouse)
    assert client.post("/api/v1/devices", json=NEW_DEVICE).status_code == 201
    assert_error(client.post("/api/v1/devices", json=NEW_DEVICE), 409, "duplicate_serial")
    lower = {**NEW_DEVICE, "serial": " sn-neuf-1 "}
    assert_error(client.post("/api/v1/devices", json=lower), 409, "duplicate_serial")
    assert _devices_and_events(session, "SN-NEUF-1") == (1, 1)


def test_a_coordinator_may_not_receive_stock(world, api, session):
    assert_error(api(world.coordinator).post("/api/v1/devices", json=NEW_DEVICE), 403, "forbidden")
    assert_error(api(world.prefecture).post("/api/v1/devices", json=NEW_DEVICE), 403, "forbidden")
    assert _devices_and_events(session, "SN-NEUF-1") == (0, 0)


def test_a_warehouse_cannot_receive_into_another_warehouses_lot(world, api, session):
    hidden = api(world.warehouse_amiens).post("/api/v1/devices", json=NEW_DEVICE)
    unknown = api(world.warehouse_amiens).post("/api/v1/devices", json={**NEW_DEVICE, "lot": "LOT-INCONNU"})
    assert_error(hidden, 404, "not_found")
    assert hidden.get_json() == unknown.get_json()
    assert _devices_and_events(session, "SN-NEUF-1") == (0, 0)


INVALID_BODIES = {
    "unknown model": ({**NEW_DEVICE, "model": "Modèle inconnu"}, None),
    "bad kind": ({**NEW_DEVICE, "kind": "velo"}, "kind"),
    "bad condition": ({**NEW_DEVICE, "condition": "abime"}, "condition"),
    "extra field": ({**NEW_DEVICE, "colour": "noir"}, "colour"),
    "missing serial": ({k: v for k, v in NEW_DEVICE.items() if k != "serial"}, "serial"),
    "empty serial": ({**NEW_DEVICE, "serial": ""}, "serial"),
    "serial as a number": ({**NEW_DEVICE, "serial": 123}, "serial"),
    "a list": ([NEW_DEVICE], None),
}


def test_invalid_bodies_are_refused(world, api, session):
    client = api(world.warehouse)

    def check(case):
        body, field = case
        error = assert_error(client.post("/api/v1/devices", json=body), 400, "invalid")
        if field is not None:
            assert f"« {field} »" in error["message"], error["message"]

    failures = _failures(INVALID_BODIES, check)
    assert failures == [], "\n".join(failures)
    assert _count(session, sa.select(sa.func.count()).select_from(Device)) == 5


def test_unknown_model_is_named(world, api):
    error = assert_error(
        api(world.warehouse).post("/api/v1/devices", json={**NEW_DEVICE, "model": "iPad 12"}), 400, "invalid"
    )
    assert "iPad 12" in error["message"]


def test_invalid_json_is_refused(world, api, session):
    client = api(world.warehouse)

    def check(raw):
        response = client.post("/api/v1/devices", data=raw, content_type="application/json")
        assert_error(response, 400, "invalid")

    failures = _failures({"truncated": '{"serial": "SN-X",', "text": "pas du json", "empty": ""}, check)
    assert failures == [], "\n".join(failures)
    assert _count(session, sa.select(sa.func.count()).select_from(Device)) == 5


def test_a_json_body_needs_the_json_content_type(world, api, session):
    response = api(world.warehouse).post(
        "/api/v1/devices", data=json.dumps(NEW_DEVICE), content_type="text/plain"
    )
    assert_error(response, 400, "invalid")
    assert _devices_and_events(session, "SN-NEUF-1") == (0, 0)


# ---------------------------------------------------------------- OpenAPI document


def _resolve(document: dict, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"$ref {ref} does not resolve"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + sum(
            (_refs(v) for v in node.values()), []
        )
    if isinstance(node, list):
        return sum((_refs(v) for v in node), [])
    return []


def _enum(document: dict, schema: dict) -> list[str] | None:
    """The enum of a (possibly optional, possibly referenced) schema."""
    if "enum" in schema:
        return schema["enum"]
    if "$ref" in schema:
        return _enum(document, _resolve(document, schema["$ref"]))
    for option in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found = _enum(document, option)
        if found is not None:
            return found
    return None


@pytest.fixture
def openapi(client) -> dict:
    response = client.get("/api/v1/openapi.json")  # no token
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _api_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((path, method.lower()))
    return operations


def test_openapi_document_describes_every_api_route(app, openapi):
    assert re.fullmatch(r"3\.\d+\.\d+", openapi["openapi"])
    assert openapi["info"]["title"] and openapi["info"]["version"]
    assert openapi["servers"][0]["url"] == "https://logistique.test/api/v1"
    routes = _api_operations(app)
    assert ("/devices/{serial}", "get") in routes and ("/devices", "post") in routes
    documented = {(path, method) for path, item in openapi["paths"].items() for method in item}
    assert routes - documented == set(), f"routes missing from the OpenAPI document: {routes - documented}"
    assert documented - routes == set(), f"documented operations that do not exist: {documented - routes}"


def test_openapi_references_resolve(openapi):
    schemas = openapi["components"]["schemas"]
    with_body = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (path, method)
            body = operation.get("requestBody")
            if body is None:
                continue
            with_body.append((path, method))
            ref = body["content"]["application/json"]["schema"]["$ref"]
            assert ref.startswith("#/components/schemas/")
            assert ref.removeprefix("#/components/schemas/") in schemas
    assert ("/devices", "post") in with_body
    for ref in _refs(openapi):
        _resolve(openapi, ref)
    post = openapi["paths"]["/devices"]["post"]
    device_in = _resolve(openapi, post["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(device_in["required"]) == {"serial", "lot", "kind", "model", "condition"}
    assert device_in.get("additionalProperties") is False
    assert {"201", "400", "401", "403", "404", "409"} <= set(post["responses"])
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"] if p["in"] == "header"}
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_openapi_lists_the_device_query_parameters_from_the_schemas(openapi):
    get = openapi["paths"]["/devices"]["get"]
    params = {p["name"]: p for p in get["parameters"] if p["in"] == "query"}
    assert {"page", "per_page", "status", "kind", "lot"} <= set(params)
    assert _enum(openapi, params["status"]["schema"]) == [s.value for s in DeviceStatus]
    assert _enum(openapi, params["kind"]["schema"]) == ["tablette", "ordinateur", "cle_4g"]
    assert not any(p["required"] for p in params.values())
    serial = [p for p in openapi["paths"]["/devices/{serial}"]["get"]["parameters"] if p["in"] == "path"]
    assert [(p["name"], p["required"]) for p in serial] == [("serial", True)]


def test_openapi_document_is_generated_from_the_registered_schemas(client, monkeypatch):
    """Not written by hand: a field added to the query schema of an operation shows in the document."""
    from pydantic import Field

    from logistique.api import schemas
    from logistique.api.framework import OPERATIONS

    class ProbeQuery(schemas.DeviceQuery):
        sonde: str | None = Field(None, description="Paramètre ajouté par le test.")

    operation = next(op for op in OPERATIONS if op.endpoint == "list_devices")
    monkeypatch.setattr(operation, "query", ProbeQuery)
    document = client.get("/api/v1/openapi.json").get_json()
    params = {p["name"]: p for p in document["paths"]["/devices"]["get"]["parameters"]}
    assert params["sonde"]["description"] == "Paramètre ajouté par le test."
    assert {"page", "per_page", "status", "kind", "lot"} <= set(params)
