"""What an operator reads: JSON log lines with request ids and no personal data, and Sentry events scrubbed of
any name before they leave."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
import sentry_sdk
from flask import request
from sentry_sdk.transport import Transport

from logistique import create_app, jobs, observability
from logistique.access import any_role
from logistique.domain import accounts
from logistique.models import Pupil

from .conftest import IsolatedClient, login
from .factories import data_url, signature_png

PUPIL = {
    "first_name": "Zoé",
    "last_name": "Confidentielle",
    "grade": "CM2",
    "school_uai": "0750654D",
    "qpv": "QN05981M",
    "guardian_name": "Gérard Tuteursecret",
    "guardian_phone": "06 98 76 54 32",
    "needs": ["tablette"],
}
PERSONAL = [
    "Zoé",
    "Confidentielle",
    "Gérard",
    "Tuteursecret",
    "06 98 76 54 32",
    "0698765432",
    "Receveuse",
    "@",
]
HEX_ID = re.compile(r"[0-9a-f]{32}\Z")


def _overrides(app, **more):
    return {
        **{k: app.config[k] for k in ("TESTING", "DATABASE_URL", "SECRET_KEY", "BASE_URL", "DEMO_MODE")},
        "WTF_CSRF_ENABLED": False,
        **more,
    }


@pytest.fixture
def json_app(app):
    """The app configured with LOGISTIQUE_LOG_FORMAT=json, its lines going to a buffer."""
    json_app = create_app(_overrides(app, LOG_FORMAT="json"))
    json_app.test_client_class = IsolatedClient
    buffer = io.StringIO()
    observability.log_handler().setStream(buffer)
    json_app.log_buffer = buffer
    yield json_app
    observability._configure_logging("text", sys.stderr)
    json_app.extensions["logistique.db"].engine.dispose()


def _lines(app) -> list[dict]:
    return [json.loads(line) for line in app.log_buffer.getvalue().splitlines()]


def _api(app, session, user):
    token = accounts.create_token(session, user)
    session.commit()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_a_whole_journey_logs_json_lines_without_personal_data(json_app, session, world):
    coordinator, warehouse = (
        _api(json_app, session, world.coordinator),
        _api(json_app, session, world.warehouse),
    )
    registered = coordinator.post("/api/v1/pupils", json=PUPIL)
    assert registered.status_code == 201, registered.get_data(as_text=True)
    reference = registered.get_json()["reference"]
    assigned = coordinator.post("/api/v1/assignments", json={"serial": "SN-LILLE-1", "pupil": reference})
    assert assigned.status_code == 201
    created = coordinator.post(
        "/api/v1/slips", json={"destination": world.assoc_roubaix.id, "serials": ["SN-LILLE-1"]}
    )
    number = created.get_json()["number"]
    assert warehouse.post(f"/api/v1/slips/{number}/picks", json={"serial": "SN-LILLE-1"}).status_code == 200
    shipped = warehouse.post(
        f"/api/v1/slips/{number}/ship", headers={"X-Request-ID": "expedition-0001-lille"}
    )
    assert shipped.status_code == 200 and shipped.headers["X-Request-ID"] == "expedition-0001-lille"
    reception = {"lines": [{"serial": "SN-LILLE-1", "state": "recu"}]}
    assert coordinator.post(f"/api/v1/slips/{number}/reception", json=reception).status_code == 200
    handed = coordinator.post(
        "/api/v1/handovers",
        json={
            "serial": "SN-LILLE-1",
            "receiver_name": "Nadia Receveuse",
            "relation": "mère",
            "mode": "don",
            "signature": data_url(signature_png()),
        },
    )
    assert handed.status_code == 201, handed.get_data(as_text=True)
    # and in the browser: a failed then a good login (e-mail in the form), the pupil's page (names shown)
    browser = json_app.test_client()
    assert login(browser, world.coordinator, password="pas-le-bon").status_code == 401
    assert login(browser, world.coordinator).status_code == 302
    pupil_id = session.query(Pupil.id).filter_by(reference=reference).scalar()
    page = browser.get(f"/eleves/{pupil_id}", headers={"X-Request-ID": "mauvais id\u00e9"})
    assert "Confidentielle" in page.get_data(as_text=True)
    assert HEX_ID.match(page.headers["X-Request-ID"])  # an invalid id is replaced, not echoed
    assert browser.get("/n-existe-pas").status_code == 404

    raw = json_app.log_buffer.getvalue()
    lines = _lines(json_app)
    assert len(lines) == len(raw.splitlines()) >= 12
    leaks = [(word, line) for line in raw.splitlines() for word in PERSONAL if word in line]
    assert leaks == []
    requests = [line for line in lines if line.get("event") == "request"]
    assert all(
        {"time", "level", "request_id", "route", "status", "duration_ms", "user_id", "role"} <= set(r)
        for r in requests
    )
    assert all(r["level"] == "INFO" and r["time"].endswith("+00:00") for r in requests)
    pupil_page = next(r for r in requests if r["request_id"] == page.headers["X-Request-ID"])
    assert pupil_page["route"] == "/eleves/<int:pupil_id>" and f"/eleves/{pupil_id}" not in json.dumps(
        pupil_page
    )
    assert (pupil_page["user_id"], pupil_page["role"], pupil_page["status"]) == (
        world.coordinator.id,
        "coordinator",
        200,
    )
    ship = next(r for r in requests if r["request_id"] == "expedition-0001-lille")
    assert (ship["method"], ship["route"], ship["status"]) == ("POST", "/api/v1/slips/<number>/ship", 200)
    assert (ship["user_id"], ship["role"]) == (world.warehouse.id, "warehouse")
    # the events of a request carry its id: the shipping notice written for the destination's coordinator
    queued = [line for line in lines if line.get("event") == "notification_queued"]
    assert [q["request_id"] for q in queued if "slip_shipped" in q["message"]] == ["expedition-0001-lille"]
    assert next(r for r in requests if r["status"] == 404)["route"] is None


def test_plain_text_is_the_default(app, client):
    buffer = io.StringIO()
    observability.log_handler().setStream(buffer)
    try:
        response = client.get("/healthz")
    finally:
        observability.log_handler().setStream(sys.stderr)
    (line,) = buffer.getvalue().splitlines()
    assert line.endswith(
        f"INFO logistique.request [{response.headers['X-Request-ID']}] GET /healthz 200 "
        + line.split(" 200 ")[1]
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_an_unknown_log_format_stops_the_start():
    from logistique.config import ConfigError

    with pytest.raises(ConfigError, match="LOGISTIQUE_LOG_FORMAT"):
        create_app({"TESTING": True, "LOG_FORMAT": "xml"})


# ---------------------------------------------------------------- errors


class KeptEvents(Transport):
    """A Sentry transport that keeps what would have been sent."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def events(self) -> list[dict]:
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]


def _failing_app(app, **config):
    failing = create_app(_overrides(app, PROPAGATE_EXCEPTIONS=False, **config))

    @failing.route("/api/v1/panne", methods=["POST"], endpoint="api_broken")
    @failing.route("/panne", methods=["POST"])
    @any_role
    def broken():
        pupil_name = f"{request.form.get('first_name')} {request.args.get('nom')}"  # a variable, the message
        raise RuntimeError(f"échec de l'enregistrement de {pupil_name}")

    return failing


def test_errors_reach_sentry_without_any_name(app, world):
    transport = KeptEvents()
    failing = _failing_app(app, SENTRY_DSN="https://cle@sentry.example/1", SENTRY_TRANSPORT=transport)
    try:
        client = failing.test_client()
        login(client, world.coordinator)
        response = client.post(
            "/panne?nom=Confidentielle",
            data={"guardian_phone": "06 98 76 54 32", "first_name": "Zoé"},
            headers={"X-Request-ID": "panne-0001-test", "Cookie": "prenom=Zoe"},
        )
        assert response.status_code == 500
        page = response.get_data(as_text=True)
        assert "signalée automatiquement" in page and "panne-0001-test" in page
        sentry_sdk.flush()
    finally:
        # no DSN: nothing is sent by the next tests; and no integration left patching other libraries
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)
        failing.extensions["logistique.db"].engine.dispose()
    (event,) = transport.events()
    sent = json.dumps(event, ensure_ascii=False)
    assert [word for word in PERSONAL[:5] + [world.coordinator.email] if word in sent] == []
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "RuntimeError" and exception["stacktrace"]["frames"]
    assert event["tags"]["request_id"] == "panne-0001-test"
    assert event["user"] == {"id": str(world.coordinator.id)} and event["tags"]["role"] == "coordinator"
    assert event["request"] == {"method": "POST", "url": "http://localhost/panne"}


def test_a_job_queued_while_sentry_is_on_carries_its_job_id_alone(app, tmp_path):
    """Sentry's huey integration would add a tracing argument to every task queued, which a worker without
    Sentry cannot call: every job would fail."""
    sentried = create_app(
        _overrides(
            app,
            SENTRY_DSN="https://cle@sentry.example/1",
            SENTRY_TRANSPORT=KeptEvents(),
            QUEUE_URL="",
            QUEUE_FILE=str(tmp_path / "queue.sqlite3"),
        )
    )
    try:
        with sentried.app_context():
            jobs._send(4242)
            (task,) = jobs.queue(sentried).pending()
        assert (task.name, task.args, task.kwargs) == ("logistique.run_job", (4242,), {})
    finally:
        sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)
        sentried.extensions["logistique.db"].engine.dispose()


def test_without_sentry_the_500_page_claims_nobody_was_told(app, world):
    client = _failing_app(app).test_client()
    login(client, world.coordinator)
    buffer = io.StringIO()
    observability.log_handler().setStream(buffer)
    try:
        response = client.post("/panne?nom=Confidentielle", headers={"X-Request-ID": "panne-0002-test"})
        api_answer = client.post("/api/v1/panne", headers={"X-Request-ID": "panne-0003-test"})
    finally:
        observability.log_handler().setStream(sys.stderr)
        client.application.extensions["logistique.db"].engine.dispose()
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "prévenue" not in page and "signalée" not in page
    assert "panne-0002-test" in page  # the reference that finds the error in the server's log
    # …where the error is, with its stack, but not its message (it may quote a name)
    logged = buffer.getvalue()
    assert "[panne-0002-test] Exception on /panne [POST]" in logged
    assert "RuntimeError (message retiré" in logged and "line" in logged
    assert "Confidentielle" not in logged
    assert api_answer.status_code == 500
    assert api_answer.get_json() == {
        "error": {"code": "internal", "message": "Erreur interne (référence panne-0003-test)."}
    }
