"""Where one request of ``scripts/bench api`` spends its time, in-process (no server, no load generator).

Seeds an operation once (tests/load_scenario.py, cached in ``bench-results/profile-api.sqlite3`` for SQLite),
copies it, then sends ``--requests`` requests of one scenario through Flask's test client (pick: ``POST
/api/v1/slips/<n>/picks`` with a token and an Idempotency-Key; scan: ``POST /bordereaux/<n>/scan`` with a
session and CSRF; get: ``GET /api/v1/devices/<serial>``) and prints: microseconds per request, SQL statements
per request (and the distinct ones), Python function calls per request, and the top of cProfile.

    .venv/bin/python scripts/profile_api.py pick --requests 2000
    .venv/bin/python scripts/profile_api.py get --engine postgresql --sql"""

from __future__ import annotations

import cProfile
import pstats
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import click
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from logistique import create_app, migrate  # noqa: E402
from logistique.db import db, make_engine  # noqa: E402
from logistique.statements import Prepared  # noqa: E402
from tests import load_scenario  # noqa: E402

CACHE = ROOT / "bench-results"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _seeded(engine_name: str, devices: int) -> tuple[str, load_scenario.Scenario]:
    """A database with the scenario; SQLite's is seeded once and copied."""
    import pickle

    if engine_name == "sqlite":
        CACHE.mkdir(exist_ok=True)
        master = CACHE / f"profile-api-{devices}.sqlite3"
        meta = master.with_suffix(".pickle")
        work = CACHE / "profile-api-work.sqlite3"
        if not master.exists() or not meta.exists():
            url = f"sqlite:///{master}"
            master.unlink(missing_ok=True)
            scenario = _seed(url, devices)
            meta.write_bytes(pickle.dumps(scenario))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copy(master, work)
        return f"sqlite:///{work}", pickle.loads(meta.read_bytes())  # noqa: S301 — our own file
    from bench_api import on_server

    on_server(
        'DROP DATABASE IF EXISTS "logistique_profile_api" WITH (FORCE)',
        'CREATE DATABASE "logistique_profile_api"',
    )
    url = f"{PG_SERVER}/logistique_profile_api"
    return url, _seed(url, devices)


def _seed(url: str, devices: int) -> load_scenario.Scenario:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "profile-api"})
    with app.app_context(), db.new_session(write=True) as session:
        scenario = load_scenario.seed(session, picks=devices, scans=devices, free=0, progress=print)
    load_scenario.analyze(url)
    return scenario


@click.command()
@click.argument("scenario", type=click.Choice(["pick", "scan", "get"]))
@click.option("--engine", "engine_name", default="sqlite", type=click.Choice(["sqlite", "postgresql"]))
@click.option("--requests", "count", default=2000, show_default=True)
@click.option("--devices", default=3000, show_default=True, help="Équipements semés par scénario.")
@click.option("--top", default=35, show_default=True, help="Lignes de cProfile (temps propre).")
@click.option("--sql", is_flag=True, help="Afficher les instructions SQL distinctes d'une requête.")
@click.option("--no-profile", is_flag=True, help="Mesurer le temps sans cProfile.")
@click.option("--bare", is_flag=True, help="L'équivalent nu (scripts/bench_bare.py), pas l'application.")
def main(  # noqa: PLR0913 — one per option
    scenario: str,
    engine_name: str,
    count: int,
    devices: int,
    top: int,
    sql: bool,
    no_profile: bool,
    bare: bool,
):
    """Profile ``count`` requests of SCENARIO in-process."""
    url, sc = _seeded(engine_name, devices)
    if bare:
        import os

        import bench_bare
        from bench_api import fill_bare

        fill_bare(url, count + 100)
        os.environ["LOGISTIQUE_DATABASE_URL"] = url
        bare_app = bench_bare.create_app()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "profile-api", "BASE_URL": "http://b"})
    statements: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    clock: dict[str, float] = {}

    def before(_conn, _cursor, stmt, *_args):
        statements[stmt] += 1
        clock["start"] = time.perf_counter()

    def after(_conn, _cursor, stmt, *_args):
        spent[stmt] += time.perf_counter() - clock["start"]

    sa.event.listen(db_engine(app), "before_cursor_execute", before)
    sa.event.listen(db_engine(app), "after_cursor_execute", after)
    run_prepared = Prepared._cursor

    def counted(self, session, values, many):  # statements run on the DBAPI cursor, counted as well
        form = self._form(session.get_bind().dialect)
        before(None, None, form.sql)
        try:
            return run_prepared(self, session, values, many)
        finally:
            after(None, None, form.sql)

    Prepared._cursor = counted  # type: ignore[method-assign]
    client = app.test_client()
    token = sc.tokens["warehouse"]
    if scenario == "scan":
        login = load_scenario._CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
        response = client.post(
            "/login",
            data={"csrf_token": login, "email": sc.warehouse_email, "password": load_scenario.PASSWORD},
        )
        assert response.status_code == 302, response.status_code
        page = client.get(f"/bordereaux/{sc.scan_slips[0][0]}/preparation").get_data(as_text=True)
        csrf = load_scenario._CSRF.search(page).group(1)
        work = [(n, s) for n, serials in sc.scan_slips for s in serials]
    elif scenario == "pick":
        work = [(n, s) for n, serials in sc.pick_slips for s in serials]
    else:
        work = [("-", s) for s in sc.read_serials]
    work = (work * (count // len(work) + 1))[:count]

    if bare:
        bare_client = bare_app.test_client()

    def one(i: int, number: str, serial: str):
        if bare:
            row = i + 30
            if scenario == "get":
                return bare_client.get(f"/bare/device/BARE-{row:07d}")
            if scenario == "pick":
                return bare_client.post(f"/bare/pick/{row}", json={"serial": serial})
            return bare_client.post(f"/bare/scan/{row}", data={"csrf_token": "x", "code": serial})
        if scenario == "pick":
            return client.post(
                f"/api/v1/slips/{number}/picks",
                json={"serial": serial},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"profile-{i}"},
            )
        if scenario == "scan":
            return client.post(
                f"/bordereaux/{number}/scan",
                data={"csrf_token": csrf, "code": serial},
                headers={"Accept": "application/json", "X-CSRFToken": csrf},
            )
        return client.get(f"/api/v1/devices/{serial}", headers={"Authorization": f"Bearer {token}"})

    for i, (number, serial) in enumerate(work[:20]):  # warm up (and show one request's SQL)
        statements.clear()
        response = one(-i - 1, number, serial)
        assert response.status_code == 200, (response.status_code, response.get_data(as_text=True)[:300])
    if sql:
        for stmt, n in statements.items():
            click.echo(f"-- ×{n}\n{stmt}\n")
    statements.clear()
    spent.clear()
    profiler = cProfile.Profile()  # saved to bench-results/profile-api.prof
    started, cpu = time.perf_counter(), time.process_time()
    if not no_profile:
        profiler.enable()
    outcomes: Counter[int] = Counter()
    for i, (number, serial) in enumerate(work[20:]):
        outcomes[one(i, number, serial).status_code] += 1
    if not no_profile:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = count - 20
    stats = None if no_profile else pstats.Stats(profiler)
    if stats is not None:
        stats.dump_stats(CACHE / "profile-api.prof")
    calls = getattr(stats, "total_calls", 0)
    profiled = " sous cProfile" if not no_profile else ""
    click.echo(
        f"{scenario} {engine_name}: {done} requêtes, {elapsed / done * 1e6:.0f} µs/requête "
        f"({cpu / done * 1e6:.0f} µs de processeur){profiled}, "
        f"{sum(statements.values()) / done:.2f} instructions SQL/requête ({len(statements)} distinctes), "
        f"{calls / done:.0f} appels de fonctions/requête ; statuts {dict(outcomes)}"
    )
    if sql:
        for stmt, seconds in spent.most_common():
            click.echo(f"{seconds / done * 1e6:6.0f} µs/requête  {' '.join(stmt.split())[:150]}")
    if stats is not None:
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)


def db_engine(app):
    with app.app_context():
        return db.get_engine()


if __name__ == "__main__":
    main()
