"""Timing of the status board's queries and pages (``scripts/bench_board.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import sqlalchemy as sa
from bench_board_data import ADMIN_EMAIL, ADMIN_PASSWORD
from sqlalchemy.orm import Session

import logistique.models  # noqa: F401  (registers every table)
from logistique import create_app
from logistique.domain import census, status

# ====================================================================== timings

# the board's aggregation, as status.py writes it
MAIN_QUERY = "FROM assignment_tallies JOIN qpvs"
# The board's numbers by hand as plain GROUP BYs over the source tables (assignments, pupils…), run back to
# back through the same engine: what the database alone costs to count them. The board reads its counters
# instead (domain/tallies.py); the goal is to stay within 2x of this.
RAW_STATEMENTS = (
    # devices by status and committed money per QPV
    "SELECT a.qpv_code, a.device_status, count(*), sum(a.unit_cost_cents) FROM assignments a "
    "WHERE (a.cancelled_at IS NULL OR a.device_status IN ('perdu', 'defectueux')){where:a.qpv_code} "
    "GROUP BY 1, 2",
    # registered pupils per organisation, QPV and need
    "SELECT p.organisation_id, p.qpv_code, sum(CASE WHEN p.needs_tablet THEN 1 ELSE 0 END), "
    "sum(CASE WHEN p.needs_laptop THEN 1 ELSE 0 END), sum(CASE WHEN p.needs_connection THEN 1 ELSE 0 END) "
    "FROM pupils p WHERE 1 = 1{where:p.qpv_code} GROUP BY 1, 2",
    # declared needs
    "SELECT n.organisation_id, n.qpv_code, n.kind, n.count FROM needs n WHERE 1 = 1{where:n.qpv_code}",
    # quotas of the applied plans
    "SELECT l.qpv_code, sum(l.quota) FROM allocation_lines l JOIN allocation_plans ap ON ap.id = l.plan_id "
    "WHERE ap.status = 'applique'{where:l.qpv_code} GROUP BY 1",
    # names of the QPVs
    "SELECT q0.code, q0.name, q0.department_code FROM qpvs q0 WHERE 1 = 1{where:q0.code}",
)
RAW_REGION = (
    " AND {column} IN (SELECT q.code FROM qpvs q JOIN departments dep ON dep.code = q.department_code "
    "WHERE dep.region_code = :region)"
)


# The board's own statements by hand (counters, needs, quotas, names): the ORM's and Python's share of (1).
OWN_STATEMENTS = (
    "SELECT t.qpv_code, t.device_status, sum(t.devices), sum(t.cost_cents) FROM assignment_tallies t "
    "WHERE (t.active OR t.device_status IN ('perdu', 'defectueux')){where:t.qpv_code} GROUP BY 1, 2",
    "SELECT t.organisation_id, t.qpv_code, t.kind, t.pupils FROM pupil_tallies t "
    "WHERE t.pupils <> 0{where:t.qpv_code}",
    *RAW_STATEMENTS[2:],
)


def raw_statements(region: str | None, statements: tuple[str, ...] = RAW_STATEMENTS) -> list[sa.TextClause]:
    """Statements by hand, filtered on a region or not."""
    import re

    def where(match: re.Match) -> str:
        return RAW_REGION.format(column=match.group(1)) if region else ""

    return [sa.text(re.sub(r"\{where:([a-z0-9_.]+)\}", where, sql)) for sql in statements]


@dataclass(frozen=True)
class Timing:
    median: float
    runs: int


def median_time(fn: Callable[[], object], runs: int, budget: float) -> Timing:
    """Median of ``runs`` runs after a warm-up. So that slow measures (before the indexes) keep the bench
    within its time: when ``runs`` runs would take more than ``budget`` seconds, 3 runs; when even 3 would
    take more than 1.5 × ``budget``, the warm-up is the only run. The table says so."""
    started = time.perf_counter()
    fn()  # warm-up
    first = time.perf_counter() - started
    if first * runs > budget:
        if first * 3 > 1.5 * budget:
            return Timing(first, 1)
        runs = min(runs, 3)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Timing(statistics.median(times), runs)


class StatementLog:
    """Records each statement an engine runs (text, parameters, duration) while active."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.active, self.items = engine, False, []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, _cursor, statement, parameters, _context, _many):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, _cursor, statement, parameters, _context, _many):
        if self.active:
            self.items.append((statement, parameters, time.perf_counter() - conn.info.pop("bench_started")))

    def capture(self, fn: Callable[[], object]) -> list[tuple[str, object, float]]:
        self.items, self.active = [], True
        try:
            fn()
        finally:
            self.active = False
        return self.items


def short(statement: str) -> str:
    text = " ".join(statement.split())
    return text[:150] + ("…" if len(text) > 150 else "")


@dataclass
class Scope:
    label: str
    code: str | None


def has_route(app, rule: str) -> bool:
    return any(r.rule == rule for r in app.url_map.iter_rules())


def time_engine(
    engine: sa.Engine, url: str, token: str, scopes: list[Scope], runs: int, budget: float, log: StatementLog
) -> tuple[dict, dict, dict, bool]:
    """{(scope, measure): Timing}, {scope: [(statement, parameters, seconds)] of one board call}, the same
    for one GET of the page (or of the API without the page), and whether /tableau exists."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-" + "0" * 32,
            "WTF_CSRF_ENABLED": False,
            "TESTING": True,
            "DEMO_MODE": False,
            "BASE_URL": "http://bench.invalid",
        }
    )
    page = has_route(app, "/tableau")
    client = app.test_client()
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if page:
        response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        if response.status_code != 302:
            raise click.ClickException(f"login refused: {response.status_code}")
    results, breakdown, page_breakdown = {}, {}, {}
    app_log = StatementLog(app.extensions["logistique.db"].engine)
    try:
        for scope in scopes:
            with Session(engine) as session:
                territory = status.resolve(session, None, scope.code)

            def run(fn):
                def go():
                    with Session(engine) as session:
                        return fn(session)

                return go

            def get(c, path):
                def go():
                    response = c.get(path)
                    if response.status_code != 200:
                        raise click.ClickException(f"GET {path}: {response.status_code}")
                    return response.get_data()

                return go

            raw_sqls = raw_statements(scope.code)
            own_sqls = raw_statements(scope.code, OWN_STATEMENTS)
            raw_params = {"region": scope.code} if scope.code else {}
            measures = {
                "board": run(lambda s, t=territory: status.board(s, t, by="qpv")),
                "money": run(lambda s, t=territory: status.money(s, t)),
                "needs": run(lambda s, c=scope.code: census.needs_by_qpv(s, region_code=c)),
                "api": get(
                    api, "/api/v1/status?by=qpv" + (f"&territory=region:{scope.code}" if scope.code else "")
                ),
                "raw": run(lambda s, qs=raw_sqls, p=raw_params: [s.execute(q, p).all() for q in qs]),
                "own": run(lambda s, qs=own_sqls, p=raw_params: [s.execute(q, p).all() for q in qs]),
            }
            if page:
                measures["page"] = get(
                    client, "/tableau" + (f"?territoire=region:{scope.code}" if scope.code else "")
                )
            for name, fn in measures.items():
                results[(scope.label, name)] = median_time(fn, runs, budget)
            breakdown[scope.label] = log.capture(measures["board"])
            page_breakdown[scope.label] = app_log.capture(measures["page" if page else "api"])
    finally:
        with app.app_context():
            from logistique.db import db

            db.get_engine().dispose()
    return results, breakdown, page_breakdown, page


def explain(engine: sa.Engine, statement: str, params) -> str:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            return "\n".join(r[0] for r in cur.fetchall())
        cur.execute("EXPLAIN QUERY PLAN " + statement, params)
        return "\n".join(str(r[3]) for r in cur.fetchall())
    finally:
        raw.close()
