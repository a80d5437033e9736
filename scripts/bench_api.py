"""Benchmark of the write paths (issue 11): the application against bare Flask endpoints, in one run.

For each engine (SQLite file, PostgreSQL database ``logistique_bench_api`` on 127.0.0.1:5432): a fresh
database migrated to head, an operation seeded through the domain (tests/load_scenario.py: thousands of
devices on issued slips), and the bare table of scripts/bench_bare.py. Two gunicorn servers with the same
settings as scripts/serve (2 sync workers, same engine settings) serve the application and the bare app; wrk
(Debian package, installed when absent) drives each at 16 connections:

- pick: ``POST /api/v1/slips/<n>/picks`` with a warehouse token and an Idempotency-Key, each request a device
  not picked yet — against ``POST /bare/pick/<id>`` (one guarded row update);
- scan: ``POST /bordereaux/<n>/scan`` with a logged-in session and its CSRF token — against ``POST
  /bare/scan/<id>``;
- get: ``GET /api/v1/devices/<serial>`` with a token — against ``GET /bare/device/<serial>`` (one row read).

Each pair runs --runs times (bare then application), each time on devices nobody picked; the medians are
printed as Markdown and written to bench-results/api.md. Run through ``scripts/bench api [options]``."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_bare import TABLE  # noqa: E402

from logistique import create_app, migrate  # noqa: E402
from logistique.db import db, make_engine  # noqa: E402
from tests import load_scenario  # noqa: E402

RESULTS = ROOT / "bench-results"
LUA = Path(__file__).with_name("bench_api.lua")
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_DATABASE = "logistique_bench_api"
SCENARIOS = (
    ("pick", "POST /api/v1/slips/<n>/picks (jeton, Idempotency-Key)"),
    ("scan", "POST /bordereaux/<n>/scan (session, CSRF)"),
    ("get", "GET /api/v1/devices/<série> (jeton)"),
)
GOAL_RATIO, GOAL_P99_MS = 0.5, 100.0


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian when absent."""
    found = shutil.which("wrk")
    if found:
        return found
    click.echo("» wrk absent : apt-get install wrk", err=True)
    apt = ["apt-get", "install", "-y", "wrk"]
    if os.geteuid() != 0:
        apt.insert(0, "sudo")
    subprocess.run(apt, check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk introuvable après apt-get install wrk")


def on_server(*statements: str) -> None:
    """Run ``statements`` on the server's ``postgres`` database, outside any transaction (CREATE and DROP
    DATABASE refuse to run in one)."""
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


def fresh_database(engine_name: str, workdir: Path) -> str:
    """An empty database migrated to head; its URL."""
    if engine_name == "sqlite":
        url = f"sqlite:///{workdir / 'bench-api.sqlite3'}"
    else:
        on_server(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)', f'CREATE DATABASE "{PG_DATABASE}"')
        url = f"{PG_SERVER}/{PG_DATABASE}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def drop_database(engine_name: str) -> None:
    if engine_name == "postgresql":
        on_server(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def fill_bare(url: str, rows: int) -> None:
    engine = make_engine(url)
    TABLE.create(engine)
    with engine.begin() as conn:
        conn.execute(
            TABLE.insert(),
            [{"id": i, "serial": f"BARE-{i:07d}", "status": "sur_bordereau"} for i in range(1, rows + 1)],
        )
    engine.dispose()


def seeded(
    engine_name: str, devices: int, bare_rows: int, workdir: Path
) -> tuple[str, load_scenario.Scenario]:
    """A fresh database with the operation and the bare table; its URL and scenario."""
    url = fresh_database(engine_name, workdir)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-api"})
    started = time.perf_counter()
    with app.app_context(), db.new_session(write=True) as session:
        scenario = load_scenario.seed(
            session, picks=devices, scans=devices, free=0, progress=lambda m: click.echo(f"   {m}", err=True)
        )
        db.get_engine().dispose()  # no connection left open: the database may serve as a template (--cache)
    click.echo(f"   données : {time.perf_counter() - started:.0f} s", err=True)
    fill_bare(url, bare_rows)
    load_scenario.analyze(url)
    return url, scenario


def seeded_copy(
    engine_name: str, devices: int, bare_rows: int, workdir: Path
) -> tuple[str, load_scenario.Scenario]:
    """``seeded``, made once and kept (bench-results/, and a PostgreSQL template database), then copied: for
    measuring again and again while working on the code (--cache)."""
    meta = RESULTS / f"api-seed-{engine_name}-{devices}.pickle"
    template = f"{PG_DATABASE}_seed_{devices}"
    master = RESULTS / f"api-seed-{devices}.sqlite3"
    if not meta.exists():
        url, scenario = seeded(engine_name, devices, bare_rows, workdir)
        if engine_name == "sqlite":
            engine = make_engine(url)
            raw = engine.raw_connection()  # outside any transaction: VACUUM refuses to run in one
            try:
                raw.driver_connection.execute(f"VACUUM INTO '{master}'")
            finally:
                raw.close()
            engine.dispose()
        else:
            on_server(
                f'DROP DATABASE IF EXISTS "{template}"',
                f'CREATE DATABASE "{template}" TEMPLATE "{PG_DATABASE}"',
            )
        meta.write_bytes(pickle.dumps(scenario))
    scenario = pickle.loads(meta.read_bytes())  # noqa: S301 — our own file
    if engine_name == "sqlite":
        copy = workdir / "bench-api.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        shutil.copy(master, copy)
        return f"sqlite:///{copy}", scenario
    on_server(
        f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)',
        f'CREATE DATABASE "{PG_DATABASE}" TEMPLATE "{template}"',
    )
    load_scenario.analyze(f"{PG_SERVER}/{PG_DATABASE}")  # a template made before the statistics were
    return f"{PG_SERVER}/{PG_DATABASE}", scenario


def wrk_run(wrk: str, base: str, mode: str, items: Path, *, seconds: int, connections: int, auth="", csrf=""):
    threads = 2
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA)]
    command += [base, "--", mode, str(items), str(threads), uuid.uuid4().hex, auth, csrf]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    result = json.loads(line[len("BENCH ") :])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def server_cpu(base: str) -> float:
    """CPU seconds used so far by the gunicorn serving ``base`` (master and workers, found by their command
    line): what a request costs the server, whatever else the machine runs."""
    bind = base.removeprefix("http://")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if bind.encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def measured(wrk: str, base: str, mode: str, items: Path, **options) -> dict:
    """``wrk_run``, with the server's CPU time per request."""
    before = server_cpu(base)
    result = wrk_run(wrk, base, mode, items, **options)
    result["cpu_us"] = (server_cpu(base) - before) / max(1, result["requests"]) * 1e6
    return result


def write_items(path: Path, items: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{a} {b}\n" for a, b in items))
    return path


def bench_engine(engine_name: str, opts: dict, wrk: str, workdir: Path) -> dict:
    runs, seconds, connections, devices = opts["runs"], opts["seconds"], opts["connections"], opts["devices"]
    scenarios = [(m, label) for m, label in SCENARIOS if m in opts["scenarios"]]
    click.echo(f"\n## {engine_name}", err=True)
    bare_rows = 200_000
    url, scenario = (seeded_copy if opts["cache"] else seeded)(engine_name, devices, bare_rows, workdir)
    env = {
        "LOGISTIQUE_DATABASE_URL": url,
        "LOGISTIQUE_SECRET_KEY": "bench-api",
        "LOGISTIQUE_BASE_URL": "http://b",
    }
    picks = [(n, s) for n, serials in scenario.pick_slips for s in serials]
    scans = [(n, s) for n, serials in scenario.scan_slips for s in serials]
    reads = [("-", s) for s in scenario.read_serials]
    bare_ids = iter(range(1, bare_rows + 1))
    results: dict[str, dict[str, list[dict]]] = {m: {"bare": [], "app": []} for m, _label in scenarios}
    logs = RESULTS / f"api-{engine_name}"
    with (
        load_scenario.gunicorn(
            "bench_bare:create_app()", env, workers=opts["workers"], extra=("--pythonpath", "scripts")
        ) as bare,
        load_scenario.gunicorn(
            "logistique:create_app()", env, workers=opts["workers"], log=logs.with_suffix(".log")
        ) as real,
    ):
        browser = load_scenario.Http(real)
        load_scenario.web_login(browser, scenario.warehouse_email)
        csrf = load_scenario.csrf_token(browser, f"/bordereaux/{scans[0][0]}/preparation")
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        token = scenario.tokens["warehouse"]
        share = max(1, len(picks) // runs)
        for run in range(runs):
            for mode, _label in scenarios:
                bare_items = [(str(next(bare_ids)), "x") for _ in range(60_000 // runs // len(SCENARIOS))]
                if mode == "get":
                    bare_items = [(i, f"BARE-{int(i):07d}") for i, _x in bare_items]
                bare_file = write_items(workdir / f"bare-{mode}.txt", bare_items)
                results[mode]["bare"].append(
                    measured(wrk, bare, f"bare-{mode}", bare_file, seconds=seconds, connections=connections)
                )
                work = {"pick": picks, "scan": scans, "get": reads}[mode]
                mine = work if mode == "get" else work[run * share : (run + 1) * share]
                app_file = write_items(workdir / f"app-{mode}.txt", mine)
                auth = cookie if mode == "scan" else token
                results[mode]["app"].append(
                    measured(
                        wrk,
                        real,
                        mode,
                        app_file,
                        seconds=seconds,
                        connections=connections,
                        auth=auth,
                        csrf=csrf,
                    )
                )
                bare_r, app_r = results[mode]["bare"][-1], results[mode]["app"][-1]
                click.echo(
                    f"   run {run + 1} {mode:5} bare {bare_r['rps']:5.0f} req/s "
                    f"p99 {bare_r['p99_ms']:5.1f} ms CPU {bare_r['cpu_us']:5.0f} µs/req | "
                    f"app {app_r['rps']:5.0f} req/s "
                    f"p99 {app_r['p99_ms']:5.1f} ms CPU {app_r['cpu_us']:5.0f} µs/req | "
                    f"non-2xx {app_r['non2xx']} picked {app_r['picked']}/{app_r['requests']}",
                    err=True,
                )
    check_engine = make_engine(url)
    with check_engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM device_events WHERE action = 'pick'").scalar()
    check_engine.dispose()
    picked = sum(r["picked"] for mode in ("pick", "scan") if mode in results for r in results[mode]["app"])
    drop_database(engine_name)
    return {"results": results, "pick_events": events, "picked_answers": picked}


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(all_results: dict[str, dict], opts: dict) -> str:
    lines = [
        f"{opts['connections']} connexions (wrk -t2), gunicorn à {opts['workers']} workers, "
        f"{opts['seconds']} s par mesure, "
        f"médianes de {opts['runs']} mesures ; le rapport compare l'application à son équivalent nu "
        "mesuré dans la même exécution.",
        "",
        "| base | point d'accès | nu req/s | nu p99 | appli req/s | appli p99 | rapport "
        "| objectif (≥ 0,5×, p99 < 100 ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for engine_name, data in all_results.items():
        for mode, label in SCENARIOS:
            if mode not in data["results"]:
                continue
            bare, app = data["results"][mode]["bare"], data["results"][mode]["app"]
            ratios = [a["rps"] / b["rps"] for a, b in zip(app, bare, strict=True)]
            ratio, p99 = median(ratios), median([a["p99_ms"] for a in app])
            met = "tenu" if ratio >= GOAL_RATIO and p99 < GOAL_P99_MS else "**non tenu**"
            lines.append(
                f"| {engine_name} | {label} | {median([b['rps'] for b in bare]):.0f} | "
                f"{median([b['p99_ms'] for b in bare]):.0f} ms | {median([a['rps'] for a in app]):.0f} | "
                f"{p99:.0f} ms | {ratio:.2f}× | {met} |"
            )
    lines.append("")
    for engine_name, data in all_results.items():
        errors = sum(
            r["non2xx"] + r["socket_errors"] for m in data["results"] for r in data["results"][m]["app"]
        )
        wrapped = any(
            r["wrapped"] for m in ("pick", "scan") if m in data["results"] for r in data["results"][m]["app"]
        )
        in_flight = opts["connections"] * opts["runs"] * 2  # wrk does not count answers after its time is up
        extra = data["pick_events"] - data["picked_answers"]
        agree = "cohérent" if 0 <= extra <= in_flight else "**INCOHÉRENT**"
        lines.append(
            f"- {engine_name} : {data['picked_answers']} réponses « préparé » comptées par wrk, "
            f"{data['pick_events']} événements « pick » en base ({agree} : au plus {in_flight} requêtes "
            f"en cours à la fin des mesures, faites mais non comptées) ; "
            f"{errors} réponses non 2xx ou erreurs de connexion"
            + (
                " ; ATTENTION : des clients ont repassé sur des équipements déjà préparés (--devices)"
                if wrapped
                else ""
            )
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--engines", default="sqlite,postgresql", show_default=True)
@click.option("--devices", default=15000, show_default=True, help="Équipements sur bordereaux, par scénario.")
@click.option("--seconds", default=3, show_default=True, help="Durée de chaque mesure.")
@click.option("--runs", default=3, show_default=True, help="Mesures par scénario (médiane).")
@click.option("--connections", default=16, show_default=True)
@click.option(
    "--workers", default=2, show_default=True, help="Workers gunicorn de chaque serveur (scripts/serve : 2)."
)
@click.option(
    "--scenarios", default="pick,scan,get", show_default=True, help="Scénarios mesurés (pick, scan, get)."
)
@click.option("--cache", is_flag=True, help="Garder la base semée et la recopier aux exécutions suivantes.")
def main(
    engines: str,
    devices: int,
    seconds: int,
    runs: int,
    connections: int,
    workers: int,
    scenarios: str,
    cache: bool,
) -> None:
    """The API's write paths against bare endpoints (req/s ratio and p99), SQLite and PostgreSQL."""
    wrk = ensure_wrk()
    RESULTS.mkdir(exist_ok=True)
    opts = {
        "devices": devices,
        "seconds": seconds,
        "runs": runs,
        "connections": connections,
        "workers": workers,
        "scenarios": scenarios.split(","),
        "cache": cache,
    }
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        for engine_name in engines.split(","):
            all_results[engine_name] = bench_engine(engine_name, opts, wrk, Path(tmp))
    text = report(all_results, opts)
    (RESULTS / "api.md").write_text("# scripts/bench api\n\n" + text)
    click.echo(text)


if __name__ == "__main__":
    main()
