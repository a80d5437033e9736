"""The prefecture's status board: where the devices of a territory are, and how much of the money is spent.

Region (or everything, for an admin) → department → QPV → slip, with CSV / XLSX exports and a one-page PDF
summary. Aggregates and pupil references only: no name ever reaches these pages or files."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for

from .. import charts, jobs, pdf
from ..access import roles
from ..db import db, utcnow
from ..domain import board, paperwork, scope, status
from ..domain.board import DEVICE_HEADERS, device_batches, device_rows
from ..domain.errors import NotFound
from ..exports import (
    EUROS,
    csv_bytes,
    csv_cell,
    csv_text_chunks,
    download,
    download_stream,
    write_xlsx,
    xlsx_bytes,
)
from ..formatting import percent_fr, to_paris
from ..models import (
    Department,
    Qpv,
    Region,
    Role,
    TerritoryKind,
)
from .jobs import confirm, start

bp = Blueprint("board", __name__)

PREFECTS = scope.OVERSIGHT
SEGMENTS = [(column, status.COLUMN_LABELS[column]) for column in status.COLUMNS]
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
        silent_label=status.SILENT,
        show_quota=any(r.allocated is not None for r in rows),
        today=to_paris(utcnow()),
        cap_note=paperwork.cap_note,
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
    slip_rows, line_counts = board.qpv_slips(session, g.user, qpv.code)
    on_page = board.qpv_devices(session, g.user, qpv.code, limit=MAX_DEVICES_ON_PAGE + 1)
    lost = board.qpv_lost_devices(session, qpv.code)
    return render_template(
        "board/qpv.html",
        qpv=qpv,
        row=row,
        territory=territory,
        slips=slip_rows,
        line_counts=line_counts,
        devices=on_page[:MAX_DEVICES_ON_PAGE],
        devices_cut=len(on_page) > MAX_DEVICES_ON_PAGE,
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
        "Signalement",
        status.COLUMN_LABELS["needs"],
        status.COLUMN_LABELS["allocated"],
        *(status.COLUMN_LABELS[c] for c in status.COLUMNS),
        status.COLUMN_LABELS["devices"],
        "Expédiés (% des besoins)",
        "Remis (% des besoins)",
        status.COLUMN_LABELS["committed_cents"],
        *(status.COLUMN_LABELS[c] for c in status.RETURN_COLUMNS),
    ]
    level = {"department": "Département", "qpv": "QPV", "total": "Total"}

    def line(row: status.StatusRow) -> list:
        shipped, handed = row.share("shipped"), row.share("handed_over")
        return [
            level.get(row.level, row.level),
            row.code,
            row.name,
            row.department,
            "" if row.level == "total" or row.has_reported else status.SILENT,
            row.needs,
            row.allocated,
            *(row.counts[c] for c in status.COLUMNS),
            row.devices,
            round(shipped * 100, 1) if shipped is not None else None,
            round(handed * 100, 1) if handed is not None else None,
            row.committed_cents / 100,
            *(row.returns[c] for c in status.RETURN_COLUMNS),
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
    money = headers.index(status.COLUMN_LABELS["committed_cents"])  # the two shares of needs, then the euros
    formats = {money - 2: "0.0", money - 1: "0.0", money: EUROS}
    return download(xlsx_bytes("Tableau de bord", headers, body, formats), name)


@bp.route("/tableau/equipements.<any(csv, xlsx):fmt>", methods=["GET", "POST"])
@roles(*PREFECTS)
def devices_export(fmt: str):
    """The devices of the territory (or of one QPV, ``?qpv=``) as CSV or XLSX, with pupil references only.
    The CSV streams whatever its size; an XLSX too big to build inside a request is offered as a background
    job (confirmed by a POST to the same URL), whose page then offers the file."""
    qpv_code = request.args.get("qpv", "").strip().upper() or None
    if qpv_code is not None:
        territory = _territory(f"departement:{_qpv(qpv_code).department_code}")
    else:
        territory = _territory()
    name = f"equipements-{qpv_code or _slug(territory)}-{_today():%Y%m%d}.{fmt}"
    if fmt == "csv":
        if request.method == "POST":
            abort(405)

        def batches():  # the session of the context that streams (the request's own is closed by then)
            yield from device_batches(db.session, territory, qpv_code, day=csv_cell)

        return download_stream(csv_text_chunks(DEVICE_HEADERS, batches()), name)
    query = board.device_query(territory, qpv_code)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    if count <= current_app.config["EXPORT_INLINE_MAX_ROWS"]:
        rows = device_rows(db.session, territory, qpv_code)
        return download(xlsx_bytes("Équipements", DEVICE_HEADERS, rows, DEVICE_FORMATS), name)
    title = f"Équipements — {territory.label}" + (f", QPV {qpv_code}" if qpv_code else "") + " (XLSX)"
    if request.method == "GET":
        return confirm(title, f"{count:,} équipements à exporter.".replace(",", "\u202f"))
    params = {"territory": territory_param(territory), "qpv": qpv_code}
    job = jobs.submit(
        db.session, DEVICES_XLSX, by=g.user, title=title, file_name=name, params=params, total=count
    )
    return start(job)


DEVICES_XLSX = "devices_xlsx"


@jobs.handler(DEVICES_XLSX)
def build_devices_xlsx(session, user, params: dict, out, progress) -> None:
    """The device export of a background job: the same rows, in the owner's scope at the time it runs."""
    territory = status.resolve(session, user, params["territory"])
    rows = device_rows(session, territory, params["qpv"])
    write_xlsx(out, "Équipements", DEVICE_HEADERS, rows, DEVICE_FORMATS, progress=progress)


DEVICE_FORMATS = {10: "DD/MM/YYYY"}


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
