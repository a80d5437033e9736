"""Action × account: every state-changing route of the app's URL map (web and API), tried by every account —
each role, inside and outside its scope, and anonymous — and only the allowed ones change anything.

The twin of test_access_matrix.py (which walks reads). Each write route has a CASE below that prepares what
the action needs and builds the request; the database is compared before and after each try. A new write
route without a CASE fails ``test_every_write_route_has_a_case``."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from logistique.db import Base
from logistique.domain import accounts, allocation, return_slips, returns, slips
from logistique.models import Assignment, DeviceStatus, Need, Role

from .conftest import PASSWORD, login
from .factories import (
    add_device,
    add_pupil,
    bundle,
    data_url,
    hand_over,
    issued_slip,
    pick_all,
    received_slip,
    shipped_slip,
    signature_png,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# write routes that change no shared state of the operation: the session cookie only (test_security_sessions)
EXEMPT = {("auth.login", "POST"), ("auth.logout", "POST")}

# every account of the world, and one more: a coordinator of the same region as Roubaix, another association
ACCOUNTS = [
    "admin",
    "warehouse",
    "coordinator",
    "prefecture",
    "prefecture_nord",
    "warehouse_amiens",
    "warehouse_idf",
    "coordinator_amiens",
    "coordinator_idf",
    "prefecture_somme",
    "prefecture_idf",
    "anonymous",
]

# what may differ without the action having changed anything (logins and token use)
VOLATILE = {
    "login_throttles": None,
    "users": {"last_login_at", "session_version"},
    "api_tokens": {"last_used_at"},
}


@dataclass
class Request:
    method: str
    url: str
    data: dict[str, Any] | None = None
    json: Any = None


@dataclass
class Case:
    """``build(world, session, who)`` prepares the state the action needs (fresh objects on each call) and
    returns the request ``who`` would send; ``allowed``: the accounts whose request must change the
    database."""

    build: Callable[[SimpleNamespace, Any, str], Request]
    allowed: set[str] = field(default_factory=set)
    # what the action may change, when other accounts legitimately change their own part of the same table
    watch: Callable[[SimpleNamespace, Any], Any] | None = None
    # the request depends on who sends it (else the refused accounts all try the same prepared request)
    per_account: bool = False


def _n(w: SimpleNamespace) -> int:
    w.seq = getattr(w, "seq", 0) + 1
    return w.seq


def _kit(w, s):
    """A Roubaix pupil with a Lille tablet and 4G key assigned, new on each call."""
    return bundle(s, w, 10 + _n(w))


def _commit(s, value):
    s.commit()
    return value


# ---------------------------------------------------------------- the cases


def _user_edit(w, s, who):
    target = accounts.create_user(
        s,
        email=f"cible{_n(w)}@test.fr",
        role=Role.COORDINATOR,
        password=PASSWORD,
        organisation_id=w.assoc_bobigny.id,
    )
    s.commit()
    data = {
        "email": target.email,
        "display_name": f"Nom changé {w.seq}",
        "role": "coordinator",
        "organisation": w.assoc_bobigny.id,
        "territory": "",
        "password": "",
        "is_active": "y",
    }
    return Request("POST", f"/admin/comptes/{target.id}", data)


def _user_new(w, s, who):
    data = {
        "email": f"nouveau{_n(w)}@test.fr",
        "role": "admin",
        "organisation": 0,
        "territory": "",
        "password": "",
    }
    return Request("POST", "/admin/comptes/nouveau", data)


def _envelope_form(w, label: str) -> dict:
    return {
        "region_code": "32",
        "kind": "credits_delegues",
        "label": label,
        "amount": "1000",
        "annual_amount": "",
    }


def _lot_form(w, reference: str) -> dict:
    return {
        "reference": reference,
        "supplier": "Emmaüs Connect",
        "envelope": w.envelope.id,
        "warehouse": w.wh_lille.id,
        f"cost_{w.tablet.id}": "150",
        f"cost_{w.laptop.id}": "230",
        f"cost_{w.key.id}": "65",
        "new_model_kind": "",
    }


def _organisation_form(name: str) -> dict:
    return {
        "kind": "association",
        "name": name,
        "department_code": "59",
        "address": "2 rue",
        "postal_code": "59100",
        "city": "Roubaix",
        "qpvs": "QN05981M",
        "is_active": "y",
    }


def _plan(w, s):
    _kit(w, s)  # a pupil's needs and stock for the proposal to share
    return allocation.compute_plan(s, "32", by=None)


def _token_revoke(w, s, who):
    accounts.create_token(s, w.warehouse_idf, f"jeton {_n(w)}")
    s.commit()
    from logistique.models import ApiToken

    token_id = s.scalar(sa.select(sa.func.max(ApiToken.id)))
    return Request("POST", f"/admin/jetons/{token_id}/revoquer")


def _qpv_csv(w) -> tuple:
    n = _n(w)
    text = (
        "code_qp;lib_qp;insee_dep;lib_dep;insee_reg;lib_reg;insee_com;lib_com\n"
        f"QP059{100 + n};Quartier {n};59;Nord;32;Hauts-de-France;59512;Roubaix\n"
    )
    return (text.encode(), "qpv.csv")


def _new_assignment(w, s, who):
    pupil, device = _waiting(w, s)
    return Request("POST", "/api/v1/assignments", json={"serial": device.serial, "pupil": pupil.reference})


def _waiting(w, s):
    """A Roubaix pupil waiting for a tablet and a free Lille tablet, new on each call."""
    pupil = add_pupil(s, w, "Inès", f"Sans{chr(65 + _n(w))}", needs="tablette")
    device = add_device(s, w, f"SN-LIBRE-{w.seq}", "tablet")
    s.commit()
    return pupil, device


def _pupil_to_assign(w, s, who):
    pupil, device = _waiting(w, s)
    return Request("POST", f"/eleves/{pupil.id}", {"serial": device.serial})


def _assignment_id(w, s) -> int:
    kit = _kit(w, s)
    s.commit()
    return s.scalar(sa.select(Assignment.id).where(Assignment.device_id == kit.tablet.id))


def _handover_json(w, s, who):
    kit = _kit(w, s)
    received_slip(s, w, kit.serials)
    s.commit()
    body = {
        "serials": kit.serials,
        "receiver_name": "Parent Test",
        "relation": "mère",
        "mode": "pret",
        "signature": data_url(signature_png()),
    }
    return Request("POST", "/api/v1/handovers", json=body)


def _handover_form(w, s, who):
    kit = _kit(w, s)
    received_slip(s, w, kit.serials)
    s.commit()
    data = {
        "serial": kit.serials,
        "receiver_name": "Parent Test",
        "relation": "mère",
        "mode": "pret",
        "signature": data_url(signature_png()),
    }
    return Request("POST", f"/remises/eleve/{kit.pupil.id}", data)


def _pupil_json(w):
    n = _n(w)
    return {
        "first_name": "Jade",
        "last_name": f"Nouvelle{chr(65 + n % 26)}{n}".replace("0", "o")
        .replace("1", "i")
        .rstrip("0123456789"),
        "grade": "CM1",
        "school_uai": "0750654D",
        "qpv": "QN05981M",
        "guardian_name": "Parent Nouvelle",
        "guardian_phone": f"06 00 00 00 {n:02d}",
        "needs": ["tablette"],
    }


def _pupil_form(w):
    body = _pupil_json(w)
    return {**body, "needs": body["needs"]}


def _slip_json(w, s, who):
    kit = _kit(w, s)
    s.commit()
    return Request("POST", "/api/v1/slips", json={"destination": w.assoc_roubaix.id, "serials": kit.serials})


def _issued(w, s):
    kit = _kit(w, s)
    slip = issued_slip(s, w, kit.serials)
    s.commit()
    return kit, slip


def _picked(w, s):
    kit, slip = _issued(w, s)
    pick_all(s, w, slip)
    s.commit()
    return kit, slip


def _shipped(w, s):
    kit = _kit(w, s)
    slip = shipped_slip(s, w, kit.serials)
    s.commit()
    return kit, slip


def _draft(w, s):
    kit = _kit(w, s)
    slip = slips.create_slip(s, destination=w.assoc_roubaix, serials=kit.serials, by=w.coordinator)
    s.commit()
    return kit, slip


def _api_reception(w, s, who):
    kit, slip = _shipped(w, s)
    lines = [{"serial": serial, "state": "recu"} for serial in kit.serials]
    return Request("POST", f"/api/v1/slips/{slip.number}/reception", json={"lines": lines})


def _web_reception(w, s, who):
    _kit_, slip = _shipped(w, s)
    data = {f"state_{line.id}": "recu" for line in slip.active_lines}
    return Request("POST", f"/bordereaux/{slip.number}/reception", data)


def _remove_line(w, s, who):
    _kit_, slip = _issued(w, s)
    return Request("POST", f"/bordereaux/{slip.number}/lignes/{slip.active_lines[0].id}/retirer")


def _device_side_exit(w, s, who):
    """What each role would try on the device page: a warehouse writes a device off, a coordinator records
    a family giving a received device back (the penetration test's finding), the prefecture tries either."""
    if who.startswith("coordinator"):
        kit = _kit(w, s)
        received_slip(s, w, kit.serials)
        s.commit()
        return Request("POST", f"/equipements/{kit.tablet.id}", {"action": "take_back", "reason": "rendu"})
    device = add_device(s, w, f"SN-SORTIE-{_n(w)}", "tablet")
    s.commit()
    return Request("POST", f"/equipements/{device.id}", {"action": "mark_defective", "reason": "écran cassé"})


def _handed_over(w, s):
    """A Roubaix pupil whose Lille tablet and 4G key are with the family, new on each call."""
    kit = _kit(w, s)
    received_slip(s, w, kit.serials)
    hand_over(s, w, kit.pupil, kit.serials)
    s.commit()
    return kit


def _return_draft(w, s):
    """The Roubaix coordinator's draft restitution holding one handed-over tablet (an older draft recorded
    first: one restitution per pupil)."""
    old = returns.open_draft(s, w.coordinator)
    if old is not None and old.lines:
        returns.record(s, old, by=w.coordinator)
    kit = _handed_over(w, s)
    assert (
        returns.scan(s, kit.tablet.serial, state=DeviceStatus.RETURNED, by=w.coordinator).outcome == "picked"
    )
    s.commit()
    return returns.open_draft(s, w.coordinator)


def _held_line(w, s) -> int:
    """A tablet the Roubaix family brought back, held by the association: its restitution line id."""
    kit = _handed_over(w, s)
    done = returns.record_return(
        s, [returns.ReturnItem(kit.tablet.serial, DeviceStatus.RETURNED)], by=w.coordinator
    )
    s.commit()
    return done.lines[0].id


def _return_slip(w, s, *, ship: bool = False):
    line_id = _held_line(w, s)
    rslip = return_slips.create_return_slip(
        s, organisation=w.assoc_roubaix, line_ids=[line_id], by=w.coordinator, issue=True
    )
    if ship:
        return_slips.ship_return_slip(s, rslip, by=w.coordinator)
    s.commit()
    return rslip


def _stock_csv(w) -> tuple:
    text = f"numero_serie;type;modele;etat\nSN-CSV-{_n(w)};tablette;Galaxy Tab A;neuf\n"
    return (text.encode(), "stock.csv")


def _pupils_csv(w) -> tuple:
    n = _n(w)
    text = (
        "prenom;nom;niveau;uai;qpv;responsable_nom;responsable_telephone;besoins\n"
        f"Lou;Import{chr(65 + n % 26)};CE2;0750654D;QN05981M;Parent Import;06 11 11 11 {n:02d};tablette\n"
    )
    return (text.encode(), "eleves.csv")


def _devices_export_job(w, s, who):
    """A Nord tablet assigned (the Nord and the region have devices to export), and an XLSX export of any size
    sent to the background."""
    from flask import current_app

    current_app.config["EXPORT_INLINE_MAX_ROWS"] = 0
    _kit(w, s)
    s.commit()
    return Request("POST", "/tableau/equipements.xlsx")


def _slips_batch_job(w, s, who):
    """An issued slip of the Lille warehouse, and its batch PDF sent to the background."""
    from flask import current_app

    current_app.config["SLIPS_INLINE_MAX"] = 0
    _issued(w, s)
    return Request("POST", "/bordereaux/a-preparer.pdf")


COORDINATION = {"admin", "coordinator"}
WAREHOUSE = {"admin", "warehouse"}
ADMIN = {"admin"}

CASES: dict[tuple[str, str], Case] = {
    # administration
    ("admin.user_edit", "POST"): Case(_user_edit, ADMIN),
    ("admin.user_new", "POST"): Case(_user_new, ADMIN),
    ("admin.envelope_edit", "POST"): Case(
        lambda w, s, who: Request(
            "POST", f"/admin/enveloppes/{w.envelope.id}", _envelope_form(w, f"Env {_n(w)}")
        ),
        ADMIN,
    ),
    ("admin.envelope_new", "POST"): Case(
        lambda w, s, who: Request("POST", "/admin/enveloppes/nouvelle", _envelope_form(w, f"Env {_n(w)}")),
        ADMIN,
    ),
    ("admin.lot_edit", "POST"): Case(
        lambda w, s, who: Request(
            "POST", f"/admin/lots/{w.lot.id}", {**_lot_form(w, "LOT-LILLE"), "note": f"{_n(w)}"}
        ),
        ADMIN,
    ),
    ("admin.lot_new", "POST"): Case(
        lambda w, s, who: Request("POST", "/admin/lots/nouveau", _lot_form(w, f"LOT-NOUVEAU-{_n(w)}")), ADMIN
    ),
    ("admin.organisation_edit", "POST"): Case(
        lambda w, s, who: Request(
            "POST",
            f"/admin/structures/{w.school_roubaix.id}",
            {**_organisation_form(f"Collège {_n(w)}"), "kind": "ecole", "uai": "0750654D"},
        ),
        ADMIN,
    ),
    ("admin.organisation_new", "POST"): Case(
        lambda w, s, who: Request("POST", "/admin/structures/nouvelle", _organisation_form(f"Asso {_n(w)}")),
        ADMIN,
    ),
    ("admin.qpvs", "POST"): Case(
        lambda w, s, who: Request("POST", "/admin/qpv", {"file": _qpv_csv(w)}), ADMIN
    ),
    ("tokens.token_revoke", "POST"): Case(_token_revoke, ADMIN),
    ("census.plans", "POST"): Case(
        lambda w, s, who: Request("POST", "/admin/repartition", {"region": "32"}), ADMIN
    ),
    ("census.plan_detail", "POST"): Case(
        lambda w, s, who: Request("POST", f"/admin/repartition/{_commit(s, _plan(w, s)).id}", {"apply": "y"}),
        ADMIN,
    ),
    # stock
    ("api.create_device", "POST"): Case(
        lambda w, s, who: Request(
            "POST",
            "/api/v1/devices",
            json={
                "serial": f"SN-API-{_n(w)}",
                "lot": "LOT-LILLE",
                "kind": "tablette",
                "model": "Galaxy Tab A",
                "condition": "neuf",
            },
        ),
        WAREHOUSE,
    ),
    ("stock.import_stock", "POST"): Case(
        lambda w, s, who: Request("POST", "/stock/import", {"lot": w.lot.id, "file": _stock_csv(w)}),
        WAREHOUSE,
    ),
    ("stock.receive", "POST"): Case(
        lambda w, s, who: Request(
            "POST",
            "/stock/reception",
            {"lot": w.lot.id, "model": w.tablet.id, "condition": "neuf", "serial": f"SN-RECU-{_n(w)}"},
        ),
        WAREHOUSE,
    ),
    ("stock.device_detail", "POST"): Case(
        _device_side_exit, {"admin", "warehouse", "coordinator"}, per_account=True
    ),
    # pupils, needs and assignments
    ("api.create_pupil", "POST"): Case(
        lambda w, s, who: Request("POST", "/api/v1/pupils", json=_pupil_json(w)), {"coordinator"}
    ),
    ("pupils.pupil_new", "POST"): Case(
        lambda w, s, who: Request("POST", "/eleves/nouveau", _pupil_form(w)), {"coordinator"}
    ),
    ("pupils.pupil_import", "POST"): Case(
        lambda w, s, who: Request("POST", "/eleves/import", {"file": _pupils_csv(w)}), {"coordinator"}
    ),
    # a search, POSTed so that a child's name never lands in a URL: nobody changes anything with it
    ("pupils.pupil_list", "POST"): Case(lambda w, s, who: Request("POST", "/eleves", {"q": "Martin"}), set()),
    # every coordinator declares the needs of their own organisation: only Roubaix's may move here
    ("pupils.needs", "POST"): Case(
        lambda w, s, who: Request("POST", "/besoins", {"need_QN05981M_tablette": str(_n(w))}),
        {"coordinator"},
        watch=lambda w, s: s.execute(
            sa.select(Need.qpv_code, Need.kind, Need.count).where(Need.organisation_id == w.assoc_roubaix.id)
        ).all(),
    ),
    ("api.create_assignment", "POST"): Case(_new_assignment, COORDINATION),
    ("pupils.pupil_detail", "POST"): Case(_pupil_to_assign, COORDINATION),
    ("api.delete_assignment", "DELETE"): Case(
        lambda w, s, who: Request("DELETE", f"/api/v1/assignments/{_assignment_id(w, s)}"), COORDINATION
    ),
    ("api.create_assignments", "POST"): Case(
        lambda w, s, who: (
            lambda pupil, device: Request(
                "POST",
                "/api/v1/assignments/batch",
                json={"items": [{"serial": device.serial, "pupil": pupil.reference}]},
            )
        )(*_waiting(w, s)),
        COORDINATION,
    ),
    # scan to assign and its proposal go to the sender's own organisation's pupils: an admin has none
    ("api.scan_assignment", "POST"): Case(
        lambda w, s, who: Request(
            "POST", "/api/v1/assignments/scan", json={"serial": _waiting(w, s)[1].serial}
        ),
        {"coordinator"},
    ),
    ("bulk.scan_assign", "POST"): Case(
        lambda w, s, who: Request("POST", "/attributions/scan", {"code": _waiting(w, s)[1].serial}),
        {"coordinator"},
    ),
    ("bulk.scan_undo", "POST"): Case(
        lambda w, s, who: Request("POST", f"/attributions/scan/{_assignment_id(w, s)}/annuler"),
        {"coordinator"},
    ),
    # a proposal is computed, shown and rolled back: nobody changes anything with it
    ("bulk.proposal", "POST"): Case(
        lambda w, s, who: (_waiting(w, s), Request("POST", "/attributions/proposition", {"count": "1"}))[1],
        set(),
    ),
    ("bulk.proposal_confirm", "POST"): Case(
        lambda w, s, who: (
            lambda pupil, device: Request(
                "POST", "/attributions/proposition/confirmer", {"ligne": f"{pupil.reference}|{device.serial}"}
            )
        )(*_waiting(w, s)),
        {"coordinator"},
    ),
    ("pupils.assignment_cancel", "POST"): Case(
        lambda w, s, who: Request("POST", f"/attributions/{_assignment_id(w, s)}/annuler"), COORDINATION
    ),
    # slips
    ("api.create_slip", "POST"): Case(_slip_json, COORDINATION),
    ("slips.slip_new", "POST"): Case(
        lambda w, s, who: (
            lambda kit: _commit(
                s,
                Request(
                    "POST", "/bordereaux/nouveau", {"destination": w.assoc_roubaix.id, "serial": kit.serials}
                ),
            )
        )(_kit(w, s)),
        COORDINATION,
    ),
    ("slips.slip_issue", "POST"): Case(
        lambda w, s, who: Request("POST", f"/bordereaux/{_draft(w, s)[1].number}/emettre"), COORDINATION
    ),
    ("slips.slip_cancel", "POST"): Case(
        lambda w, s, who: Request("POST", f"/bordereaux/{_issued(w, s)[1].number}/annuler"), COORDINATION
    ),
    ("slips.slip_remove_line", "POST"): Case(_remove_line, COORDINATION),
    ("api.create_pick", "POST"): Case(
        lambda w, s, who: (
            lambda kit, slip: Request(
                "POST", f"/api/v1/slips/{slip.number}/picks", json={"serial": kit.tablet.serial}
            )
        )(*_issued(w, s)),
        WAREHOUSE,
    ),
    ("slips.scan", "POST"): Case(
        lambda w, s, who: (
            lambda kit, slip: Request("POST", f"/bordereaux/{slip.number}/scan", {"code": kit.tablet.serial})
        )(*_issued(w, s)),
        WAREHOUSE,
    ),
    ("api.ship_slip", "POST"): Case(
        lambda w, s, who: Request("POST", f"/api/v1/slips/{_picked(w, s)[1].number}/ship"), WAREHOUSE
    ),
    ("slips.slip_ship", "POST"): Case(
        lambda w, s, who: Request("POST", f"/bordereaux/{_picked(w, s)[1].number}/expedier"), WAREHOUSE
    ),
    ("api.receive_slip", "POST"): Case(_api_reception, COORDINATION),
    ("slips.reception", "POST"): Case(_web_reception, COORDINATION),
    # handovers
    ("api.create_handover", "POST"): Case(_handover_json, COORDINATION),
    ("slips.handover_new", "POST"): Case(_handover_form, COORDINATION),
    # parcel reception by scanning, device by device
    ("scanning.reception_scan", "POST"): Case(
        lambda w, s, who: (
            lambda kit, slip: Request(
                "POST", f"/bordereaux/{slip.number}/reception/scan", {"code": kit.tablet.serial}
            )
        )(*_shipped(w, s)),
        COORDINATION,
    ),
    # end of loan: the family's restitution (the coordinator's own organisation), the return slip, the
    # warehouse's check
    ("returns.return_scan", "POST"): Case(
        lambda w, s, who: Request(
            "POST", "/retours/scan", {"code": _handed_over(w, s).tablet.serial, "state": "retourne"}
        ),
        {"coordinator"},
    ),
    ("returns.return_remove_line", "POST"): Case(
        lambda w, s, who: Request("POST", f"/retours/lignes/{_return_draft(w, s).lines[0].id}/retirer"),
        {"coordinator"},
    ),
    ("returns.return_record", "POST"): Case(
        lambda w, s, who: (_return_draft(w, s), Request("POST", "/retours/enregistrer"))[1], {"coordinator"}
    ),
    ("api.create_restitution", "POST"): Case(
        lambda w, s, who: Request(
            "POST",
            "/api/v1/restitutions",
            json={"lines": [{"serial": _handed_over(w, s).tablet.serial, "state": "retourne"}]},
        ),
        {"coordinator"},
    ),
    ("returns.return_slip_new", "POST"): Case(
        lambda w, s, who: Request("POST", "/retours/bordereaux/nouveau", {"line": str(_held_line(w, s))}),
        {"coordinator"},
    ),
    ("returns.return_slip_ship", "POST"): Case(
        lambda w, s, who: Request("POST", f"/retours/bordereaux/{_return_slip(w, s).number}/expedier"),
        {"coordinator"},
    ),
    ("returns.return_slip_cancel", "POST"): Case(
        lambda w, s, who: Request("POST", f"/retours/bordereaux/{_return_slip(w, s).number}/annuler"),
        {"coordinator"},
    ),
    ("returns.return_slip_check", "POST"): Case(
        lambda w, s, who: (
            lambda rslip: Request(
                "POST",
                f"/retours/bordereaux/{rslip.number}/reception/scan",
                {"code": rslip.active_lines[0].device.serial, "outcome": "en_stock"},
            )
        )(_return_slip(w, s, ship=True)),
        {"warehouse", "admin"},
    ),
    # background jobs: what is too big for a request becomes a job row (the thresholds lowered to 0 here)
    ("board.devices_export", "POST"): Case(_devices_export_job, {"admin", "prefecture", "prefecture_nord"}),
    ("slips.slips_batch_pdf", "POST"): Case(_slips_batch_job, WAREHOUSE),
    # one's own notification preferences: every account changes its own row, nobody anonymous
    ("profile.account", "POST"): Case(
        lambda w, s, who: Request("POST", "/compte", {}), set(ACCOUNTS) - {"anonymous"}
    ),
}


# ---------------------------------------------------------------- machinery


def _write_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or ())
        if method in WRITE_METHODS
    }


def fingerprint(session) -> dict[str, list[tuple]]:
    """Every row of every table but what logging in and using a token touch, as committed."""
    session.rollback()
    state = {}
    for table in Base.metadata.sorted_tables:
        skip = VOLATILE.get(table.name, set())
        if skip is None:
            continue
        columns = [c for c in table.columns if c.name not in skip]
        order = list(table.primary_key.columns) or columns
        state[table.name] = [tuple(r) for r in session.execute(sa.select(*columns).order_by(*order)).all()]
    session.rollback()
    return state


def _differences(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def _state(case: Case, world, session):
    if case.watch is None:
        return fingerprint(session)
    session.rollback()
    try:
        return {"watched": case.watch(world, session)}
    finally:
        session.rollback()


@pytest.fixture
def accounts_of(session, world):
    """Every account of ACCOUNTS (a coordinator of the Amiens association added), with an API token each."""
    world.coordinator_amiens = accounts.create_user(
        session,
        email="coord.amiens@test.fr",
        role=Role.COORDINATOR,
        password=PASSWORD,
        organisation_id=world.assoc_amiens.id,
    )
    tokens = {
        who: accounts.create_token(session, getattr(world, who)) for who in ACCOUNTS if who != "anonymous"
    }
    session.commit()
    return tokens


def _send(app: Flask, world, tokens: dict[str, str], who: str, request: Request):
    api = request.url.startswith("/api/")
    client = app.test_client()
    if who != "anonymous":
        if api:
            client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens[who]}"
        else:
            assert login(client, getattr(world, who)).status_code == 302
    kwargs: dict[str, Any] = {}
    if request.json is not None:
        kwargs["json"] = request.json
    elif request.data is not None:
        # files are (bytes, name): a fresh stream for each try of the same prepared request
        kwargs["data"] = {
            k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in request.data.items()
        }
        if any(isinstance(v, tuple) for v in request.data.values()):
            kwargs["content_type"] = "multipart/form-data"
    return client.open(request.url, method=request.method, **kwargs)


def test_every_write_route_has_a_case(app):
    routes = _write_routes(app)
    missing = sorted(routes - EXEMPT - set(CASES))
    assert missing == [], f"write routes without a case in tests/test_action_matrix.py CASES: {missing}"
    stale = sorted(set(CASES) - routes)
    assert stale == [], f"cases of routes that no longer exist: {stale}"


def test_only_the_allowed_roles_of_a_rule_are_allowed_here(app):
    """An account allowed to change something holds a role the route's access rule admits."""
    from logistique.access import access_of

    roles = {who: who.split("_")[0] for who in ACCOUNTS}
    for (endpoint, _method), case in CASES.items():
        rule = access_of(app.view_functions[endpoint])
        for who in case.allowed:
            assert rule.roles is None or Role(roles[who]) in rule.roles, (endpoint, who)


@pytest.mark.parametrize(("endpoint", "method"), sorted(CASES))
def test_action_matrix(app, session, world, accounts_of, endpoint, method):
    case = CASES[(endpoint, method)]
    problems = []
    # the refused accounts first, all on one prepared state: none may change anything
    shared = None
    for who in [a for a in ACCOUNTS if a not in case.allowed]:
        if shared is None or case.per_account:
            shared = case.build(world, session, who)
        request = shared
        before = _state(case, world, session)
        response = _send(app, world, accounts_of, who, request)
        changed = _differences(before, _state(case, world, session))
        if response.status_code >= 500 or changed:
            problems.append(
                f"{who}: {request.method} {request.url} → {response.status_code}, changed {changed}"
            )
    # then each allowed account, on a state prepared for it: its request changes the database
    for who in sorted(case.allowed):
        request = case.build(world, session, who)
        before = _state(case, world, session)
        response = _send(app, world, accounts_of, who, request)
        if response.status_code >= 400 or not _differences(before, _state(case, world, session)):
            problems.append(
                f"{who} (allowed): {request.method} {request.url} → {response.status_code}, changed nothing: "
                f"{response.get_data(as_text=True)[:300]!r}"
            )
    assert problems == [], f"{endpoint} {method}:\n" + "\n".join(problems)
