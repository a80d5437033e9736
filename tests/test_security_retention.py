"""What is kept, and for how long (issue 10, point 3): stored answers of Idempotency-Key retries hold no
personal data and expire after a day; the purge deletes them and takes the erased names out of the comments
people typed."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from logistique import jobs
from logistique.db import utcnow
from logistique.domain import retention
from logistique.models import AuditEvent, DeviceEvent, IdempotencyRecord, ReceptionState, SlipLine

from .factories import bundle, shipped_slip

PUPIL = {
    "first_name": "Zoé",
    "last_name": "Quintanilla",
    "grade": "CM2",
    "school_uai": "0750654D",
    "qpv": "QN05981M",
    "guardian_name": "Édouard Zabaleta",
    "guardian_phone": "07 98 76 54 32",
    "needs": ["tablette"],
}
PERSONAL = [
    "Zoé",
    "Zo\\u00e9",
    "Quintanilla",
    "Édouard",
    "\\u00c9douard",
    "Zabaleta",
    "07 98 76 54 32",
    "0798765432",
]


def _stored(session) -> list[str]:
    session.rollback()
    rows = session.execute(
        sa.select(
            IdempotencyRecord.key,
            IdempotencyRecord.path,
            IdempotencyRecord.response_body,
            IdempotencyRecord.resource_reference,
        )
    ).all()
    session.rollback()
    return [" ".join(str(v) for v in row) for row in rows]


def _assert_no_personal_data(texts: list[str]) -> None:
    for text in texts:
        for value in PERSONAL:
            assert value not in text, f"{value!r} kept in an idempotency record: {text[:300]!r}"


def test_a_stored_pupil_answer_keeps_the_reference_not_the_names(world, api, session):
    client = api(world.coordinator)
    headers = {"Idempotency-Key": "eleve-0001"}
    first = client.post("/api/v1/pupils", json=PUPIL, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    stored = _stored(session)
    assert len(stored) == 1
    _assert_no_personal_data(stored)
    assert first.get_json()["reference"] in stored[0]
    # the retry still gets the whole first answer, names included, for the coordinator who sent it
    again = client.post("/api/v1/pupils", json=PUPIL, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert again.get_json()["first_name"] == "Zoé"


def test_a_stored_refusal_keeps_no_name_either(world, api, session):
    client = api(world.coordinator)
    headers = {"Idempotency-Key": "eleve-0002"}
    bad = {**PUPIL, "first_name": "Zoé2"}  # the refusal quotes the bad value
    first = client.post("/api/v1/pupils", json=bad, headers=headers)
    assert first.status_code == 400, first.get_data(as_text=True)
    assert "Zo" in first.get_json()["error"]["message"]
    stored = _stored(session)
    for text in stored:
        assert "Zoé2" not in text and "Zo\\u00e92" not in text, text
    again = client.post("/api/v1/pupils", json=bad, headers=headers)
    assert again.status_code == 400 and again.headers.get("Idempotent-Replayed") == "true"


def _age(session, hours: int) -> None:
    session.execute(sa.update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=hours)))
    session.commit()


def test_stored_answers_expire_after_a_day_and_are_cleaned_up(world, api, session, runner, monkeypatch):
    client = api(world.coordinator)
    assert client.post("/api/v1/pupils", json=PUPIL, headers={"Idempotency-Key": "vieux"}).status_code == 201
    _age(session, 25)
    # past a day, the same key is a new request: nothing is replayed (here the pupil now exists)
    late = client.post("/api/v1/pupils", json=PUPIL, headers={"Idempotency-Key": "vieux"})
    assert late.status_code == 409 and "Idempotent-Replayed" not in late.headers
    assert len(_stored(session)) == 1  # the expired record made way for the new one

    # a write cleans up expired records of everybody on its way, a bounded batch at most once a minute per
    # process: the first write after the minute does, the next ones within it do not
    _age(session, 25)
    monkeypatch.setattr(retention, "_next_sweep", 0.0)
    warehouse = api(world.warehouse)

    def new_device(serial: str) -> None:
        answer = warehouse.post(
            "/api/v1/devices",
            json={
                "serial": serial,
                "kind": "tablette",
                "model": "Galaxy Tab A",
                "lot": "LOT-LILLE",
                "condition": "neuf",
            },
            headers={"Idempotency-Key": serial},
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)

    new_device("SN-NEUF-9")
    assert [t.split()[0] for t in _stored(session)] == ["SN-NEUF-9"]
    _age(session, 25)
    new_device("SN-NEUF-10")
    assert sorted(t.split()[0] for t in _stored(session)) == ["SN-NEUF-10", "SN-NEUF-9"]

    # the workers' housekeeping (every minute) deletes the expired ones
    assert jobs.housekeeping()["answers"] == 1
    assert [t.split()[0] for t in _stored(session)] == ["SN-NEUF-10"]

    # and the command line deletes every expired one
    _age(session, 30)
    result = runner.invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    assert "1 réponse(s)" in result.output
    assert _stored(session) == []


def test_purge_deletes_stored_answers_and_redacts_names_from_comments(world, api, session, runner):
    client = api(world.coordinator)
    assert client.post("/api/v1/pupils", json=PUPIL, headers={"Idempotency-Key": "k1"}).status_code == 201
    kit = bundle(session, world, 1, first="Léa", last="Martin-Durand")
    slip = shipped_slip(session, world, kit.serials)
    session.commit()
    lines = [
        {"serial": kit.tablet.serial, "state": "recu", "comment": "Remis à Léa et à Mme MARTIN-DURAND"},
        {"serial": kit.key.serial, "state": "endommage", "comment": "Écran fêlé, vu avec Quintanilla"},
    ]
    response = client.post(f"/api/v1/slips/{slip.number}/reception", json={"lines": lines})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert runner.invoke(args=["close-operation", "--yes"]).exit_code == 0
    result = runner.invoke(args=["purge-personal-data", "--yes"])
    assert result.exit_code == 0, result.output

    session.rollback()
    assert session.scalar(sa.select(sa.func.count(IdempotencyRecord.id))) == 0
    texts = list(session.scalars(sa.select(SlipLine.reception_comment).where(SlipLine.slip_id == slip.id)))
    texts += list(session.scalars(sa.select(DeviceEvent.reason)))
    texts += list(session.scalars(sa.select(AuditEvent.detail)))
    joined = "\n".join(texts)
    for name in ("Léa", "MARTIN", "DURAND", "Quintanilla"):
        assert name not in joined, name
    assert "Remis à [nom effacé] et à Mme [nom effacé]" in joined
    assert "Écran fêlé, vu avec [nom effacé]" in joined
    # the rest of the journal is untouched
    assert ReceptionState.DAMAGED.value == "endommage"
