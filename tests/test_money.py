"""Envelopes (the cité éducative 2020 cap of 15 %) and lots with their unit costs."""

from __future__ import annotations

import html
import re
import threading
import time

import pytest
import sqlalchemy as sa

from logistique.db import db
from logistique.domain import assignments, money
from logistique.domain.errors import Conflict, Forbidden, ValidationFailed
from logistique.models import (
    CiteEducative,
    Device,
    DeviceKind,
    DeviceModel,
    Envelope,
    EnvelopeKind,
    Lot,
    LotUnitCost,
    Pupil,
    User,
)

from .factories import add_pupil

ANNUAL = 500_000_00  # a cité éducative's 2020 amount: 500 000,00 €; 15 % is 75 000,00 €

CAP_MESSAGE = "Au plus 15 % de l'enveloppe 2020 peut servir au plan : 75\u202f000,00\u00a0€ au maximum."


def page_text(response) -> str:
    """What a person reads on the page: tags removed, entities decoded, spaces collapsed."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def count(session, column) -> int:
    session.expire_all()
    return session.scalar(sa.select(sa.func.count(column)))


def cite_2020(
    amount_cents: int, annual_cents: int | None = ANNUAL, cite: str = "cite-064", region: str = "32"
) -> money.EnvelopeData:
    return money.EnvelopeData(
        region_code=region,
        kind=EnvelopeKind.CITE_2020,
        label="Cité de Roubaix 2020",
        amount_cents=amount_cents,
        annual_amount_cents=annual_cents,
        cite_educative_code=cite,
    )


def refused_envelope(session, data: money.EnvelopeData, by=None) -> str:
    before = count(session, Envelope.id)
    with pytest.raises(ValidationFailed) as caught:
        money.save_envelope(session, data, by=by)
    session.rollback()
    assert count(session, Envelope.id) == before
    return caught.value.message


# ---------------------------------------------------------------- envelopes


def test_cite_2020_envelope_above_15_percent_is_refused(session, world):
    message = refused_envelope(session, cite_2020(75_000_01))
    assert message == CAP_MESSAGE


def test_cite_2020_envelope_of_exactly_15_percent_is_accepted(session, world):
    envelope = money.save_envelope(session, cite_2020(75_000_00), by=None)
    session.commit()
    saved = session.get(Envelope, envelope.id)
    assert saved.amount_cents == 75_000_00
    assert saved.annual_amount_cents == ANNUAL
    assert saved.cite_educative_code == "cite-064"


def test_cite_2020_cap_rounds_against_overspending(session, world):
    # 15 % of 100,01 € is 15,0015 €: 15,00 € is allowed, 15,01 € is not
    money.save_envelope(session, cite_2020(15_00, annual_cents=100_01), by=None)
    session.commit()
    refused_envelope(session, cite_2020(15_01, annual_cents=100_01))


def test_cite_2020_envelope_needs_its_annual_amount(session, world):
    assert "montant annuel" in refused_envelope(session, cite_2020(1_000_00, annual_cents=None))


def test_cite_2020_cap_is_also_enforced_when_an_envelope_is_edited(session, world):
    envelope = money.save_envelope(session, cite_2020(50_000_00), by=None)
    session.commit()
    with pytest.raises(ValidationFailed):
        money.save_envelope(session, cite_2020(80_000_00), by=None, envelope=envelope)
    session.rollback()
    assert session.get(Envelope, envelope.id).amount_cents == 50_000_00


@pytest.mark.parametrize("amount", [75_000_01, 100_000_00])
def test_database_refuses_a_cite_2020_envelope_above_the_cap(session, world, amount):
    session.add(
        Envelope(
            region_code="32",
            kind=EnvelopeKind.CITE_2020,
            label="Contournement",
            amount_cents=amount,
            annual_amount_cents=ANNUAL,
            cite_educative_code="cite-064",
        )
    )
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    session.rollback()
    assert session.scalar(sa.select(Envelope).where(Envelope.label == "Contournement")) is None


def test_database_accepts_a_cite_2020_envelope_at_the_cap(session, world):
    session.add(
        Envelope(
            region_code="32",
            kind=EnvelopeKind.CITE_2020,
            label="Au plafond",
            amount_cents=75_000_00,
            annual_amount_cents=ANNUAL,
            cite_educative_code="cite-064",
        )
    )
    session.commit()
    assert session.scalar(sa.select(Envelope.amount_cents).where(Envelope.label == "Au plafond")) == 75_000_00


def test_database_refuses_a_cite_2020_envelope_without_annual_amount(session, world):
    session.add(
        Envelope(
            region_code="32",
            kind=EnvelopeKind.CITE_2020,
            label="Sans montant annuel",
            amount_cents=1_00,
            annual_amount_cents=None,
            cite_educative_code="cite-064",
        )
    )
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    session.rollback()


def test_database_refuses_a_negative_amount(session, world):
    session.add(Envelope(region_code="32", kind=EnvelopeKind.DELEGATED, label="Négative", amount_cents=-1))
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
    session.rollback()


@pytest.mark.parametrize("kind", [EnvelopeKind.CITE_2019, EnvelopeKind.CITE_2020])
def test_cite_envelope_without_cite_is_refused(session, world, kind):
    data = money.EnvelopeData(
        region_code="32",
        kind=kind,
        label="Cité sans nom",
        amount_cents=1_000_00,
        annual_amount_cents=ANNUAL,
        cite_educative_code="",
    )
    assert "cité éducative" in refused_envelope(session, data)


def test_cite_of_another_region_is_refused(session, world):
    session.add(CiteEducative(code="cite-093", name="Bobigny", commune_codes="93008", department_code="93"))
    session.commit()
    assert "région" in refused_envelope(session, cite_2020(1_000_00, cite="cite-093"))
    # the same cité is fine for its own region
    money.save_envelope(session, cite_2020(1_000_00, cite="cite-093", region="11"), by=None)


def test_unknown_cite_is_refused(session, world):
    assert "cite-999" in refused_envelope(session, cite_2020(1_000_00, cite="cite-999"))


def test_delegated_envelope_naming_a_cite_is_refused(session, world):
    data = money.EnvelopeData(
        region_code="32",
        kind=EnvelopeKind.DELEGATED,
        label="Crédits",
        amount_cents=1_00,
        cite_educative_code="cite-064",
    )
    refused_envelope(session, data)


def test_negative_amount_is_refused(session, world):
    data = money.EnvelopeData(
        region_code="32", kind=EnvelopeKind.DELEGATED, label="Crédits", amount_cents=-1_00
    )
    assert "négatif" in refused_envelope(session, data)


def test_only_admins_manage_envelopes(session, world):
    with pytest.raises(Forbidden):
        money.save_envelope(session, cite_2020(1_000_00), by=world.prefecture)
    session.rollback()


def envelope_form(**values: str) -> dict[str, str]:
    return {
        "region_code": "32",
        "kind": "cite_2020",
        "label": "Cité éducative de Roubaix 2020",
        "amount": "75 000,00",
        "annual_amount": "500 000,00",
        "cite_educative": "cite-064",
        **values,
    }


def test_admin_page_refuses_an_envelope_above_15_percent(session, world, login_as):
    client = login_as(world.admin)
    before = count(session, Envelope.id)
    response = client.post("/admin/enveloppes/nouvelle", data=envelope_form(amount="75 000,01"))
    assert response.status_code == 422
    assert CAP_MESSAGE in page_text(response)
    assert count(session, Envelope.id) == before


def test_admin_page_accepts_an_envelope_of_exactly_15_percent(session, world, login_as):
    client = login_as(world.admin)
    response = client.post("/admin/enveloppes/nouvelle", data=envelope_form(amount="75\u202f000,00 €"))
    assert response.status_code == 302, page_text(response)
    saved = session.scalar(sa.select(Envelope).where(Envelope.label == "Cité éducative de Roubaix 2020"))
    assert saved.amount_cents == 75_000_00
    assert saved.annual_amount_cents == 500_000_00
    assert saved.kind is EnvelopeKind.CITE_2020


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"amount": "-10,00"}, "négatif"),
        ({"amount": "beaucoup"}, "beaucoup"),
        ({"cite_educative": ""}, "cité éducative"),
    ],
)
def test_admin_page_refuses_bad_envelopes(session, world, login_as, values, reason):
    client = login_as(world.admin)
    before = count(session, Envelope.id)
    response = client.post("/admin/enveloppes/nouvelle", data=envelope_form(**values))
    assert response.status_code == 422
    assert reason in page_text(response)
    assert count(session, Envelope.id) == before


# ---------------------------------------------------------------- lots


def lot_data(world, **values) -> money.LotData:
    defaults = {
        "reference": "LOT-NOUVEAU",
        "supplier": "Emmaüs Connect",
        "envelope_id": world.envelope.id,
        "warehouse_id": world.wh_lille.id,
        "unit_costs": {world.tablet.id: 120_00},
    }
    return money.LotData(**{**defaults, **values})


def refused_lot(session, data: money.LotData, error=ValidationFailed, lot: Lot | None = None) -> str:
    before = count(session, Lot.id)
    with pytest.raises(error) as caught:
        money.save_lot(session, data, by=None, lot=lot)
    session.rollback()
    assert count(session, Lot.id) == before
    return caught.value.message


def test_save_lot(session, world):
    lot = money.save_lot(
        session,
        lot_data(world, reference=" lot-nouveau ", unit_costs={world.tablet.id: 120_00, world.key.id: 0}),
        by=None,
    )
    session.commit()
    saved = session.get(Lot, lot.id)
    assert saved.reference == "LOT-NOUVEAU"
    assert {uc.model_id: uc.unit_cost_cents for uc in saved.unit_costs} == {
        world.tablet.id: 120_00,
        world.key.id: 0,
    }


@pytest.mark.parametrize("reference", ["LOT-LILLE", "lot-lille", " Lot-Lille "])
def test_lot_reference_is_unique(session, world, reference):
    assert "LOT-LILLE" in refused_lot(session, lot_data(world, reference=reference), error=Conflict)


def test_warehouse_and_envelope_of_the_same_region(session, world):
    message = refused_lot(session, lot_data(world, warehouse_id=world.wh_bobigny.id))
    assert "même région" in message
    refused_lot(session, lot_data(world, envelope_id=world.envelope_idf.id))


def test_lot_is_delivered_to_a_warehouse(session, world):
    assert "entrepôt" in refused_lot(session, lot_data(world, warehouse_id=world.assoc_roubaix.id))


def test_lot_needs_at_least_one_unit_cost(session, world):
    assert "au moins un modèle" in refused_lot(session, lot_data(world, unit_costs={}))


def test_negative_unit_cost_is_refused(session, world):
    refused_lot(session, lot_data(world, unit_costs={world.tablet.id: -1}))


def test_unknown_model_is_refused(session, world):
    refused_lot(session, lot_data(world, unit_costs={world.tablet.id: 100_00, 99_999: 100_00}))


def lille_costs(session, world) -> dict[int, int]:
    session.expire_all()
    return {uc.model_id: uc.unit_cost_cents for uc in session.get(Lot, world.lot.id).unit_costs}


def test_a_received_model_keeps_its_unit_cost(session, world):
    before = lille_costs(session, world)
    assert world.tablet.id in before
    data = lot_data(
        world, reference="LOT-LILLE", unit_costs={world.laptop.id: 230_00, world.key.id: 65_00}
    )  # the tablet's cost removed
    message = refused_lot(session, data, lot=world.lot)
    assert "garder son coût unitaire" in message
    assert lille_costs(session, world) == before


def test_unit_costs_can_change_and_unreceived_models_can_go(session, world):
    # LOT-AMIENS has received one tablet only: its laptop and 4G key costs may go, its tablet cost may change
    money.save_lot(
        session,
        lot_data(
            world,
            reference="LOT-AMIENS",
            warehouse_id=world.wh_amiens.id,
            unit_costs={world.tablet.id: 140_00},
        ),
        by=None,
        lot=world.lot_amiens,
    )
    session.commit()
    session.expire_all()
    costs = {uc.model_id: uc.unit_cost_cents for uc in session.get(Lot, world.lot_amiens.id).unit_costs}
    assert costs == {world.tablet.id: 140_00}
    assert count(session, LotUnitCost.lot_id) == 3 + 1 + 3


def test_warehouse_of_a_lot_with_devices_cannot_change(session, world):
    message = refused_lot(
        session,
        lot_data(
            world,
            reference="LOT-LILLE",
            warehouse_id=world.wh_amiens.id,
            unit_costs=lille_costs(session, world),
        ),
        lot=world.lot,
    )
    assert "entrepôt" in message
    session.expire_all()
    assert session.get(Lot, world.lot.id).warehouse_id == world.wh_lille.id


def test_only_admins_manage_lots(session, world):
    with pytest.raises(Forbidden):
        money.save_lot(session, lot_data(world), by=world.warehouse)
    session.rollback()


def lot_form(world, **values: str) -> dict[str, str]:
    return {
        "reference": "LOT-WEB",
        "supplier": "Emmaüs Connect",
        "envelope": str(world.envelope.id),
        "warehouse": str(world.wh_lille.id),
        "signed_on": "",
        "note": "",
        "new_model_kind": "",
        "new_model_name": "",
        "new_model_cost": "",
        **values,
    }


def test_admin_page_creates_a_lot_with_a_new_model(session, world, login_as):
    client = login_as(world.admin)
    page = client.get("/admin/lots/nouveau")
    assert page.status_code == 200
    assert f'name="cost_{world.tablet.id}"' in page.get_data(as_text=True)
    response = client.post(
        "/admin/lots/nouveau",
        data=lot_form(
            world,
            **{
                f"cost_{world.tablet.id}": "120,50",
                f"cost_{world.key.id}": "65",
                "new_model_kind": "ordinateur",
                "new_model_name": "  Latitude   5490 ",
                "new_model_cost": "199,90",
                "signed_on": "2020-04-20",
            },
        ),
    )
    assert response.status_code == 302, page_text(response)
    session.expire_all()
    lot = session.scalar(sa.select(Lot).where(Lot.reference == "LOT-WEB"))
    assert lot is not None
    assert lot.warehouse_id == world.wh_lille.id and lot.envelope_id == world.envelope.id
    assert str(lot.signed_on) == "2020-04-20"
    latitude = session.scalar(sa.select(DeviceModel).where(DeviceModel.name == "Latitude 5490"))
    assert latitude is not None and latitude.kind is DeviceKind.LAPTOP
    assert {uc.model_id: uc.unit_cost_cents for uc in lot.unit_costs} == {
        world.tablet.id: 120_50,
        world.key.id: 65_00,
        latitude.id: 199_90,
    }


def test_admin_page_refuses_a_lot_without_costs(session, world, login_as):
    client = login_as(world.admin)
    before = count(session, Lot.id)
    response = client.post("/admin/lots/nouveau", data=lot_form(world))
    assert response.status_code == 422
    assert "au moins un modèle" in page_text(response)
    assert count(session, Lot.id) == before


def test_admin_page_refuses_removing_a_received_model_cost(session, world, login_as):
    client = login_as(world.admin)
    before = lille_costs(session, world)
    response = client.post(
        f"/admin/lots/{world.lot.id}",
        data=lot_form(
            world,
            reference="LOT-LILLE",
            **{f"cost_{world.laptop.id}": "230,00", f"cost_{world.key.id}": "65,00"},
        ),
    )
    assert response.status_code == 422
    assert "garder son coût unitaire" in page_text(response)
    assert lille_costs(session, world) == before


def test_an_envelope_lowered_while_a_tablet_is_assigned_from_it_counts_that_tablet(app, session, world):
    """A prefecture lowers an envelope at the moment a coordinator assigns a tablet it pays for: the change
    waits for the assignment (the envelope's lock) and then counts it, instead of checking the money before
    the assignment commits and leaving the envelope below what it pays for."""
    pupil = add_pupil(session, world, "Zoé", "Quintanilla", needs="tablette")
    session.commit()
    ids = (pupil.id, world.device.id, world.coordinator.id, world.envelope.id)
    assigned = threading.Event()
    errors: list[BaseException] = []

    def coordinator() -> None:
        try:
            with app.app_context(), db.new_session(write=True) as other:
                assignments.assign(
                    other,
                    pupil=other.get(Pupil, ids[0]),
                    device=other.get(Device, ids[1]),
                    by=other.get(User, ids[2]),
                )
                assigned.set()
                time.sleep(0.5)  # the assignment is made, not committed: the envelope stays locked
                other.commit()
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
            assigned.set()

    thread = threading.Thread(target=coordinator)
    thread.start()
    assert assigned.wait(30)
    with db.new_session(write=True) as prefecture:
        lowered = money.EnvelopeData(
            region_code="32", kind=EnvelopeKind.DELEGATED, label="Crédits délégués HDF", amount_cents=100_00
        )
        with pytest.raises(ValidationFailed, match="déjà engagé"):
            money.save_envelope(prefecture, lowered, by=None, envelope=prefecture.get(Envelope, ids[3]))
    thread.join(30)
    assert errors == []
    session.expire_all()
    assert session.get(Envelope, ids[3]).amount_cents == 695_294_00
    assert money.committed_by_envelope(session, [ids[3]]) == {ids[3]: 150_00}
