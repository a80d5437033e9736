"""The prefecture's status board: where the devices of a territory are, and how much of the money is spent.

Region (or everything, for an admin) → department → QPV → slip, with CSV / XLSX exports and a one-page PDF
summary. Aggregates and pupil references only: no name ever reaches these pages or files."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, g, render_template, request, url_for
from sqlalchemy.orm import aliased, joinedload

from .. import charts, pdf
from ..access import roles
from ..db import db, utcnow
from ..domain import paperwork, status
from ..domain.errors import NotFound
from ..domain.slips import slip_filter
from ..exports import EUROS, csv_bytes, download, xlsx_bytes
from ..formatting import percent_fr, to_paris
from ..models import (
    Assignment,
    Department,
    Device,
    DeviceModel,
    DeviceStatus,
    Lot,
    Organisation,
    Pupil,
    Qpv,
    ReceptionState,
    Region,
    Role,
    Slip,
    SlipLine,
    TerritoryKind,
)

bp = Blueprint("board", __name__)

PREFECTS = (Role.PREFECTURE, Role.ADMIN)
SEGMENTS = [(column, status.COLUMN_LABELS[column]) for column in status.COLUMNS]
BOARD_STATUSES = (
    DeviceStatus.ASSIGNED,
    DeviceStatus.ON_SLIP,
    DeviceStatus.PREPARED,
    DeviceStatus.SHIPPED,
    DeviceStatus.RECEIVED,
    DeviceStatus.HANDED_OVER,
)
MAX_DEVICES_ON_PAGE = 500
PACE_DAYS = 30


# ---------------------------------------------------------------- territory from the request


def territory_param(territory: status.Territory) -> str:
    """The ``?territoire=`` of a territory, with its kind: a region and a department may share a code."""
    if territory.kind is None:
        return ""
    return f"{territory.kind.value}:{territory.code}"


def _territory(raw: str | None = None) -> status.Territory:
    """The territory asked for (``?territoire=``), or the user's own; outside their scope: NotFound."""
    wanted = (request.args.get("territoire", "") if raw is None else raw).strip()
    user = g.user
    if not wanted and user.role is Role.PREFECTURE and user.territory_kind is not None:
        # say which kind: a department code may also be a region code (93, 75, 11, 32…)
        wanted = f"{user.territory_kind.value}:{user.territory_code}"
    return status.resolve(db.session, user, wanted)


def _days() -> int:
    raw = request.args.get("jours", "")
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 60 else 3


def _by(territory: status.Territory) -> str:
    wanted = request.args.get("par", "")
    if wanted in ("department", "qpv"):
        return wanted
    return "qpv" if territory.kind is TerritoryKind.DEPARTMENT else "department"


def _choices(territory: status.Territory) -> list[tuple[str, str]]:
    """The territories the user may switch to: an admin all, a regional prefecture its region's."""
    user = g.user
    if user.role is Role.PREFECTURE and user.territory_kind is TerritoryKind.DEPARTMENT:
        return []
    regions = sa.select(Region).order_by(Region.code)
    departments = sa.select(Department).order_by(Department.code)
    if user.role is Role.PREFECTURE:
        regions = regions.where(Region.code == user.territory_code)
        departments = departments.where(Department.region_code == user.territory_code)
    choices = [("", "Toutes les régions")] if user.role is Role.ADMIN else []
    for region in db.session.scalars(regions):
        choices.append((f"region:{region.code}", f"Région {region.name}"))
    for dep in db.session.scalars(departments):
        choices.append((f"departement:{dep.code}", f"{dep.code} — {dep.name}"))
    return choices


def _crumbs(territory: status.Territory, qpv: Qpv | None = None) -> list[tuple[str, str | None]]:
    """Breadcrumb (label, url) from the widest territory the user may see down to this page."""
    user = g.user
    crumbs: list[tuple[str, str | None]] = []
    if user.role is Role.ADMIN:
        crumbs.append(("Toutes les régions", url_for("board.board_page")))
    region_code = None
    if territory.kind is TerritoryKind.REGION:
        region_code = territory.code
    elif territory.kind is TerritoryKind.DEPARTMENT:
        region_code = db.session.get(Department, territory.code).region_code
    if region_code and not (user.role is Role.PREFECTURE and user.territory_kind is TerritoryKind.DEPARTMENT):
        region = db.session.get(Region, region_code)
        crumbs.append(
            (f"Région {region.name}", url_for("board.board_page", territoire=f"region:{region_code}"))
        )
    if territory.kind is TerritoryKind.DEPARTMENT:
        crumbs.append((territory.label, url_for("board.department_page", department_code=territory.code)))
    if qpv is not None:
        crumbs.append((f"{qpv.code} — {qpv.name}", None))
    if crumbs:
        crumbs[-1] = (crumbs[-1][0], None)  # the current page is not a link
    return crumbs


# ---------------------------------------------------------------- pages


@bp.route("/tableau")
@roles(*PREFECTS)
def board_page():
    """A territory's board: KPIs, rows per department (per QPV in a department), money, pace, stuck slips."""
    territory = _territory()
    return _render(territory, "qpv" if territory.kind is TerritoryKind.DEPARTMENT else "department")


@bp.route("/tableau/departement/<department_code>")
@roles(*PREFECTS)
def department_page(department_code: str):
    """One department's board, with a row per QPV."""
    return _render(_territory(f"departement:{department_code}"), "qpv")


def _render(territory: status.Territory, by: str):
    session = db.session
    total, rows = status.board(session, territory, by=by)
    envelopes = status.money(session, territory)
    pace = status.handovers_per_day(session, territory, days=PACE_DAYS)
    days = _days()
    stuck = status.stuck_slips(session, g.user, territory, days=days)
    param = territory_param(territory)
    if by == "qpv":
        links = {r.code: url_for("board.qpv_page", qpv_code=r.code) for r in rows}
    else:
        links = {r.code: url_for("board.department_page", department_code=r.code) for r in rows}
    level = "QPV" if by == "qpv" else "département"
    chart_rows = sorted(rows, key=lambda r: (-r.needs, r.code))[:30] if by == "qpv" else rows
    stacked = charts.stacked_bars(
        [
            (f"{r.code} {r.name}" if by == "department" else r.name or r.code, r.counts, r.needs)
            for r in chart_rows
        ],
        segments=SEGMENTS,
        title=f"Équipements par étape et par {level}",
    )
    handovers = sum(count for _day, count in pace)
    pace_chart = charts.bar_chart(
        pace,
        width=900,
        title=f"Équipements remis aux familles par jour, sur {PACE_DAYS} jours",
    )
    return render_template(
        "board/board.html",
        territory=territory,
        param=param,
        by=by,
        level=level,
        total=total,
        rows=rows,
        links=links,
        envelopes=envelopes,
        money_totals=_money_totals(envelopes),
        gauge=_gauge,
        stacked=stacked,
        chart_rows_cut=len(chart_rows) < len(rows),
        pace_chart=pace_chart,
        handovers=handovers,
        stuck=stuck,
        days=days,
        choices=_choices(territory),
        crumbs=_crumbs(territory),
        columns=status.COLUMNS,
        labels=status.COLUMN_LABELS,
        show_quota=any(r.allocated is not None for r in rows),
        today=to_paris(utcnow()),
        cap_note=_cap_note,
    )


def _money_totals(envelopes: list[status.EnvelopeRow]) -> dict[str, int]:
    return {
        "spendable": sum(e.spendable_cents for e in envelopes),
        "committed": sum(e.committed_cents for e in envelopes),
        "delivered": sum(e.delivered_cents for e in envelopes),
        "left": sum(e.left_cents for e in envelopes),
    }


def _gauge(value: int, total: int):
    share = percent_fr(value / total if total else None)
    return charts.progress_bar(value, total, label=f"{share} engagé")


def _cap_note(env: status.EnvelopeRow) -> str:
    return paperwork.cap_note(env)


@bp.route("/tableau/qpv/<qpv_code>")
@roles(*PREFECTS)
def qpv_page(qpv_code: str):
    """One QPV: its row, the slips carrying its pupils' devices, and those devices (pupil references only)."""
    session = db.session
    qpv = _qpv(qpv_code)
    territory = _territory(f"departement:{qpv.department_code}")
    row = status.rows(session, territory, "qpv").get(qpv.code) or status.StatusRow(
        "qpv", qpv.code, qpv.name, qpv.department_code
    )
    in_qpv = (
        sa.select(SlipLine.slip_id)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .where(Assignment.qpv_code == qpv.code, SlipLine.removed_at.is_(None))
    )
    slip_rows = (
        session.scalars(
            sa.select(Slip)
            .where(slip_filter(g.user), Slip.id.in_(in_qpv))
            .options(joinedload(Slip.destination), joinedload(Slip.warehouse))
            .order_by(Slip.id.desc())
        )
        .unique()
        .all()
    )
    line_counts = dict(
        session.execute(
            sa.select(SlipLine.slip_id, sa.func.count())
            .join(Assignment, Assignment.id == SlipLine.assignment_id)
            .where(
                Assignment.qpv_code == qpv.code,
                SlipLine.removed_at.is_(None),
                SlipLine.slip_id.in_([s.id for s in slip_rows]),
            )
            .group_by(SlipLine.slip_id)
        ).all()
    )
    query = (
        status.qpv_devices_query(g.user, qpv.code)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .outerjoin(SlipLine, sa.and_(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None)))
        .outerjoin(Slip, Slip.id == SlipLine.slip_id)
        .add_columns(Pupil.reference, Slip.number)
        .options(joinedload(Device.model))
        .limit(MAX_DEVICES_ON_PAGE + 1)
    )
    device_rows = session.execute(query).all()
    lost = session.execute(
        sa.select(Device, SlipLine.reception_state, Pupil.reference, Slip.number)
        .join(SlipLine, SlipLine.device_id == Device.id)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .join(Slip, Slip.id == SlipLine.slip_id)
        .where(
            Assignment.qpv_code == qpv.code,
            SlipLine.removed_at.is_(None),
            SlipLine.reception_state.in_([ReceptionState.MISSING, ReceptionState.DAMAGED]),
        )
        .options(joinedload(Device.model))
        .order_by(SlipLine.id)
    ).all()
    return render_template(
        "board/qpv.html",
        qpv=qpv,
        row=row,
        territory=territory,
        slips=slip_rows,
        line_counts=line_counts,
        devices=device_rows[:MAX_DEVICES_ON_PAGE],
        devices_cut=len(device_rows) > MAX_DEVICES_ON_PAGE,
        lost=lost,
        crumbs=_crumbs(territory, qpv),
        columns=status.COLUMNS,
        labels=status.COLUMN_LABELS,
        stacked=charts.stacked_bars(
            [(qpv.code, row.counts, row.needs)], segments=SEGMENTS, title=f"Équipements du QPV {qpv.name}"
        ),
        today=to_paris(utcnow()),
    )


def _qpv(code: str) -> Qpv:
    qpv = db.session.get(Qpv, (code or "").strip().upper())
    if qpv is None:
        raise NotFound("QPV introuvable, ou hors de votre périmètre.")
    return qpv


# ---------------------------------------------------------------- exports


def board_table(total: status.StatusRow, rows: list[status.StatusRow]) -> tuple[list[str], list[list]]:
    """Headers and rows of the board export: one line per row, then the total."""
    headers = [
        "Niveau",
        "Code",
        "Nom",
        "Département",
        status.COLUMN_LABELS["needs"],
        status.COLUMN_LABELS["allocated"],
        *(status.COLUMN_LABELS[c] for c in status.COLUMNS),
        status.COLUMN_LABELS["devices"],
        "Expédiés (% des besoins)",
        "Remis (% des besoins)",
        status.COLUMN_LABELS["committed_cents"],
    ]
    level = {"department": "Département", "qpv": "QPV", "total": "Total"}

    def line(row: status.StatusRow) -> list:
        shipped, handed = row.share("shipped"), row.share("handed_over")
        return [
            level.get(row.level, row.level),
            row.code,
            row.name,
            row.department,
            row.needs,
            row.allocated,
            *(row.counts[c] for c in status.COLUMNS),
            row.devices,
            round(shipped * 100, 1) if shipped is not None else None,
            round(handed * 100, 1) if handed is not None else None,
            row.committed_cents / 100,
        ]

    return headers, [*(line(r) for r in rows), line(total)]


@bp.route("/tableau.<any(csv, xlsx):fmt>")
@roles(*PREFECTS)
def board_export(fmt: str):
    """The board's rows and total as CSV (;, UTF-8 BOM) or XLSX; ``?territoire=&par=department|qpv``."""
    territory = _territory()
    by = _by(territory)
    total, rows = status.board(db.session, territory, by=by)
    headers, body = board_table(total, rows)
    name = f"tableau-de-bord-{_slug(territory)}-{by}-{_today():%Y%m%d}.{fmt}"
    if fmt == "csv":
        return download(csv_bytes(headers, body), name)
    formats = {len(headers) - 3: "0.0", len(headers) - 2: "0.0", len(headers) - 1: EUROS}
    return download(xlsx_bytes("Tableau de bord", headers, body, formats), name)


DEVICE_HEADERS = [
    "N° de série",
    "Étiquette",
    "Type",
    "Modèle",
    "Statut",
    "Lot",
    "Entrepôt",
    "QPV",
    "Élève (référence)",
    "N° de bordereau",
    "Mis à jour le",
]


def device_rows(territory: status.Territory, qpv_code: str | None = None) -> list[list]:
    """The devices behind the board of a territory: actively assigned ones (by their pupil's QPV) and those
    reported missing or damaged at reception — the same devices the board counts. References, never names."""
    session = db.session
    warehouse = aliased(Organisation)
    qpvs = sa.select(Qpv.code)
    if territory.kind is TerritoryKind.DEPARTMENT:
        qpvs = qpvs.where(Qpv.department_code == territory.code)
    elif territory.kind is TerritoryKind.REGION:
        qpvs = qpvs.join(Department, Qpv.department_code == Department.code).where(
            Department.region_code == territory.code
        )
    if qpv_code is not None:
        qpvs = qpvs.where(Qpv.code == qpv_code)
    columns = (
        Device.serial,
        Device.asset_tag,
        DeviceModel.kind,
        DeviceModel.name,
        Device.status,
        Lot.reference,
        warehouse.name,
        Assignment.qpv_code,
        Pupil.reference,
        Slip.number,
        Device.updated_at,
    )

    def base(query):
        return (
            query.join(Device, Device.id == Assignment.device_id)
            .join(DeviceModel, DeviceModel.id == Device.model_id)
            .join(Lot, Lot.id == Device.lot_id)
            .join(warehouse, warehouse.id == Device.warehouse_id)
            .join(Pupil, Pupil.id == Assignment.pupil_id)
            .where(Assignment.qpv_code.in_(qpvs))
        )

    active = base(
        sa.select(*columns)
        .select_from(Assignment)
        .outerjoin(SlipLine, sa.and_(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None)))
        .outerjoin(Slip, Slip.id == SlipLine.slip_id)
    ).where(Assignment.cancelled_at.is_(None), Device.status.in_(BOARD_STATUSES))
    lost = base(
        sa.select(*columns)
        .select_from(SlipLine)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .join(Slip, Slip.id == SlipLine.slip_id)
    ).where(
        SlipLine.removed_at.is_(None),
        SlipLine.reception_state.in_([ReceptionState.MISSING, ReceptionState.DAMAGED]),
    )
    rows = [*session.execute(active), *session.execute(lost)]
    rows.sort(key=lambda r: (r.qpv_code, r[4].value, r.serial))
    return [
        [
            serial,
            tag,
            kind.label,
            model,
            device_status.label,
            lot,
            warehouse_name,
            qpv,
            reference,
            number or "",
            to_paris(updated).date(),
        ]
        for serial, tag, kind, model, device_status, lot, warehouse_name, qpv, reference, number, updated in (
            rows
        )
    ]


@bp.route("/tableau/equipements.<any(csv, xlsx):fmt>")
@roles(*PREFECTS)
def devices_export(fmt: str):
    """The devices of the territory (or of one QPV, ``?qpv=``) as CSV or XLSX, with pupil references only."""
    qpv_code = request.args.get("qpv", "").strip().upper() or None
    if qpv_code is not None:
        territory = _territory(f"departement:{_qpv(qpv_code).department_code}")
    else:
        territory = _territory()
    body = device_rows(territory, qpv_code)
    name = f"equipements-{qpv_code or _slug(territory)}-{_today():%Y%m%d}.{fmt}"
    if fmt == "csv":
        return download(csv_bytes(DEVICE_HEADERS, body), name)
    return download(xlsx_bytes("Équipements", DEVICE_HEADERS, body, {10: "DD/MM/YYYY"}), name)


@bp.route("/tableau/synthese.pdf")
@roles(*PREFECTS)
def summary_pdf():
    """A one-page A4 summary for a prefect's meeting: KPIs, rows, money, stuck slips."""
    territory = _territory()
    document = paperwork.summary_document(db.session, g.user, territory, days=_days())
    response = Response(pdf.summary_pdf(document), mimetype="application/pdf")
    filename = f"synthese-{_slug(territory)}-{_today():%Y%m%d}.pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _today():
    return to_paris(utcnow()).date()


def _slug(territory: status.Territory) -> str:
    if territory.kind is TerritoryKind.REGION:
        return f"region-{territory.code}"
    if territory.kind is TerritoryKind.DEPARTMENT:
        return f"departement-{territory.code}"
    return "toutes-regions"
