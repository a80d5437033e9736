"""Home page and the landing page of device labels."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, redirect, render_template, url_for

from ..access import any_role
from ..db import db, utcnow
from ..domain import scope, worklists
from ..models import Device, DeviceStatus, Role, User

bp = Blueprint("main", __name__)

_NAV: list[tuple[str, str, frozenset[Role]]] = [
    ("main.home", "Accueil", scope.ALL_ROLES),
    ("pupils.pupil_list", "Élèves", scope.COORDINATION),
    ("pupils.waiting_list", "Attente", scope.COORDINATION),
    ("bulk.scan_assign", "Attribuer", frozenset({Role.COORDINATOR})),
    ("pupils.needs", "Besoins", frozenset({Role.COORDINATOR})),
    ("distribution.distribution_page", "Distribution", frozenset({Role.COORDINATOR})),
    ("returns.returns_page", "Retours", frozenset({Role.COORDINATOR})),
    ("slips.slip_list", "Bordereaux", scope.ALL_ROLES),
    ("returns.return_slip_list", "Retours entrepôt", frozenset({Role.WAREHOUSE})),
    ("stock.device_list", "Équipements", scope.ALL_ROLES),
    ("stock.receive", "Réception", scope.WAREHOUSE),
    ("stock.import_stock", "Import de stock", scope.WAREHOUSE),
    ("board.board_page", "Tableau de bord", scope.OVERSIGHT),
    ("census.census_page", "Recensement", scope.OVERSIGHT),
    ("census.plans", "Répartition", scope.STAFF),
    ("admin.organisations", "Structures", scope.STAFF),
    ("admin.qpvs", "QPV", scope.STAFF),
    ("admin.envelopes", "Enveloppes", scope.STAFF),
    ("admin.lots", "Lots", scope.STAFF),
    ("admin.users", "Comptes", scope.STAFF),
    ("tokens.token_list", "Jetons d'API", scope.STAFF),
]


def nav_items_for(user: User | None) -> list[tuple[str, str]]:
    """The navigation links a user's role may follow."""
    if user is None:
        return []
    return [(endpoint, label) for endpoint, label, allowed in _NAV if user.role in allowed]


@bp.route("/")
@any_role
def home():
    """What the user has to do next: coordinators' and warehouses' work lists, others' devices by status."""
    from flask import g

    if g.user.role is Role.COORDINATOR and g.user.organisation_id:
        home = worklists.coordinator_home(db.session, g.user, utcnow())
        return render_template("main/home_coordinator.html", home=home)
    if g.user.role is Role.WAREHOUSE and g.user.organisation_id:
        home = worklists.warehouse_home(db.session, g.user, utcnow())
        return render_template("main/home_warehouse.html", home=home)
    counts = dict(
        db.session.execute(
            sa.select(Device.status, sa.func.count())
            .where(scope.device_filter(g.user))
            .group_by(Device.status)
        ).all()
    )
    tiles = [(status, counts.get(status, 0)) for status in DeviceStatus]
    return render_template("main/home.html", tiles=tiles, total=sum(counts.values()))


@bp.route("/d/<asset_tag>")
@any_role
def device_label(asset_tag: str):
    """What a device label's QR opens: that device's page, if the user may see it."""
    from flask import g

    device = scope.get_device(db.session, g.user, asset_tag=asset_tag.strip().upper())
    return redirect(url_for("stock.device_detail", device_id=device.id))
