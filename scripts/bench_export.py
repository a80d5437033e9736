"""Benchmark of the national device export (issue 11) on ``scripts/bench board``'s synthetic operation.

Generates the national operation of bench_board_data.py (500 000 devices, 333 702 of them assigned), loads
it into an SQLite file and a PostgreSQL database (``logistique_bench_export`` on 127.0.0.1:5432), then, for
each engine, in a fresh Python process logged in as an administrator (France entière):

- ``GET /tableau/equipements.csv`` through the Flask test client without buffering, read chunk by chunk as a
  server sends it: time to the first rows and to the last byte, rows, size;
- the national XLSX as a background job: submitted like the page does (``jobs.submit``), then run as the
  worker runs it (``jobs.run``: claim, write-only workbook into the jobs folder, progress, done).

Memory is the process's extra resident memory: its high-water mark (``VmHWM``, reset before each export)
above the resident memory of the fresh process just before that export, after the app and its login. The
first CSV run is a warm-up (its memory is reported too: it includes what the first export loads for good).

``--keep`` keeps the databases (SQLite in bench-results/, PostgreSQL database kept) and ``--reuse`` times
the kept ones again without generating anything (~1 min saved per engine). Medians of --runs runs
(--xlsx-runs for the XLSX). Prints Markdown. Run through ``scripts/bench export [options]``."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_board_data  # noqa: E402  (same folder: the board benchmark's generator and loaders)
import bench_board_load  # noqa: E402

from logistique import create_app, jobs, migrate  # noqa: E402
from logistique.db import db, make_engine, utcnow  # noqa: E402
from logistique.models import Device, Job, JobStatus, User  # noqa: E402
from logistique.views import board  # noqa: E402

PG_DATABASE = "logistique_bench_export"  # not the board bench's database, which may be in use
DEVICES, PUPILS, SLIPS = 500_000, 300_000, 60_000


# ---------------------------------------------------------------- memory of this process (Linux)


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(fn) -> tuple[float, dict[str, float], object]:
    """(seconds, extra MiB at the peak, result) of ``fn()``. Two figures: the process's own (anonymous)
    memory, sampled every 5 ms by a thread, and the whole resident set's high-water mark, which also counts
    the pages of the SQLite file read through mmap (the OS page cache, shared and reclaimable)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    rss, anon = _status("VmRSS"), _status("RssAnon")
    peak = anon
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _status("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = fn()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    peak = max(peak, _status("RssAnon"))
    return seconds, {"anon": peak - anon, "rss": _status("VmHWM") - rss}, result


# ---------------------------------------------------------------- timing (in a fresh process)


def time_exports(url: str, runs: int, xlsx_runs: int) -> dict[str, list]:
    """The timed runs on one database; called in a process of its own (``--measure``)."""
    jobs_dir = tempfile.mkdtemp(prefix="bench-export-jobs-")
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-export",
            "WTF_CSRF_ENABLED": False,
            "BASE_URL": "http://b",
            "JOBS_DIR": jobs_dir,
        }
    )
    client = FlaskClient(app, app.response_class, use_cookies=True)
    login = client.post(
        "/login", data={"email": bench_board_data.ADMIN_EMAIL, "password": bench_board_data.ADMIN_PASSWORD}
    )
    if login.status_code != 302:
        raise click.ClickException(f"login refused: {login.status_code}")

    def csv_export() -> dict:
        started = time.perf_counter()
        response = client.get("/tableau/equipements.csv")
        if response.status_code != 200 or not response.is_streamed:
            raise click.ClickException(f"CSV export: {response.status_code}, streamed {response.is_streamed}")
        size = lines = 0
        first = None
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\r\n")
            if first is None and lines > 1:  # the header, then the first rows
                first = time.perf_counter() - started
        response.close()
        return {"rows": lines - 1, "size": size, "first_rows": first}

    def xlsx_job() -> dict:
        with app.app_context():
            with db.new_session(write=True) as session:
                admin = session.scalar(sa.select(User).where(User.email == bench_board_data.ADMIN_EMAIL))
                job = jobs.submit(
                    session,
                    board.DEVICES_XLSX,
                    by=admin,
                    title="bench",
                    file_name="equipements-bench.xlsx",
                    params={"territory": "", "qpv": None},
                    total=0,
                )
                session.commit()
                job_id = job.id
            jobs.run(job_id)  # what the worker does with the queued job
            with db.new_session() as session:
                job = session.get(Job, job_id)
                if job is None or job.status != JobStatus.DONE:
                    raise click.ClickException(f"XLSX job: {job and job.status}")
                size = job.file_size
                Path(job.file_path).unlink()
            return {"rows": None, "size": size, "first_rows": None}

    results: dict[str, list] = {"csv": [], "xlsx": []}
    try:
        for run in range(runs + 1 if runs else 0):
            seconds, extra, out = measure(csv_export)
            kind = "warm-up" if run == 0 else str(run)
            click.echo(
                f"  CSV {kind}: {out['rows']} rows, {out['size'] / 2**20:.0f} MiB, first rows "
                f"{out['first_rows']:.2f} s, last {seconds:.2f} s, +{extra['anon']:.0f} MiB "
                f"(resident set +{extra['rss']:.0f} MiB)",
                err=True,
            )
            results["csv"].append({**out, "seconds": seconds, "extra": extra, "warm_up": run == 0})
        for run in range(xlsx_runs):
            seconds, extra, out = measure(xlsx_job)
            click.echo(
                f"  XLSX {run + 1}: {out['size'] / 2**20:.0f} MiB in {seconds:.1f} s, "
                f"+{extra['anon']:.0f} MiB "
                f"(resident set +{extra['rss']:.0f} MiB)",
                err=True,
            )
            results["xlsx"].append({**out, "seconds": seconds, "extra": extra, "warm_up": False})
    finally:
        with app.app_context():
            db.get_engine().dispose()
    return results


# ---------------------------------------------------------------- databases


def _ready(url: str) -> bool:
    """A database kept by an earlier --keep run: schema at head, the generated devices, the admin."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if migrate.current_revision_on(conn) != migrate.head_revision():
                return False
            devices = conn.scalar(sa.select(sa.func.count()).select_from(Device))
            admin = conn.scalar(sa.select(User.id).where(User.email == bench_board_data.ADMIN_EMAIL))
            return devices == DEVICES and admin is not None
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _pg_exists(server: str) -> bool:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        found = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": PG_DATABASE})
    admin.dispose()
    return found is not None


def prepare(engines: list[str], sqlite_path: Path, pg_server: str, seed: int, reuse: bool) -> dict[str, str]:
    """The URL of a loaded database per engine: kept ones when asked and usable, else generated and loaded."""
    urls = {"sqlite": f"sqlite:///{sqlite_path}", "postgresql": f"{pg_server}/{PG_DATABASE}"}
    todo = []
    for name in engines:
        usable = reuse and (sqlite_path.exists() if name == "sqlite" else _pg_exists(pg_server))
        if usable and _ready(urls[name]):
            click.echo(f"» {name}: reusing {urls[name]}", err=True)
        else:
            todo.append(name)
    if not todo:
        return {name: urls[name] for name in engines}
    click.echo("» generating the national operation (scripts/bench board's data)", err=True)
    data = bench_board_data.generate(seed, DEVICES, PUPILS, SLIPS, utcnow().replace(microsecond=0))
    for name in todo:
        url = (
            bench_board_load.fresh_sqlite(sqlite_path)
            if name == "sqlite"
            else bench_board_load.fresh_postgresql(pg_server)
        )
        click.echo(f"» {name}: loading", err=True)
        engine = make_engine(url)
        migrate.upgrade(engine)
        bench_board_load.load_referential(engine)
        (bench_board_load.load_sqlite if name == "sqlite" else bench_board_load.load_postgresql)(engine, data)
        bench_board_load.recount(engine)
        bench_board_load.analyze(engine)
        bench_board_load.create_admin(engine)
        engine.dispose()
    return {name: urls[name] for name in engines}


# ---------------------------------------------------------------- report


def _mib(size: float) -> str:
    return f"{size / 2**20:.0f} Mio"


def table(measured: dict[str, dict[str, list]]) -> list[str]:
    lines = [
        "| base | export | lignes | taille | premières lignes | durée "
        "| mémoire propre en plus (1er export ; suivants) | RSS en plus, au plus |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, results in measured.items():
        for kind, runs_of in results.items():
            timed = [r for r in runs_of if not r["warm_up"]]
            if not timed:
                continue
            seconds = statistics.median(r["seconds"] for r in timed)
            first = [r["first_rows"] for r in timed if r["first_rows"] is not None]
            rows = timed[0]["rows"]
            count = f"{rows:,}".replace(",", " ") if rows else "—"
            first_s = f"{statistics.median(first):.2f} s" if first else "—"
            memory = f"{runs_of[0]['extra']['anon']:.0f} ; {max(r['extra']['anon'] for r in timed):.0f} Mio"
            resident = max(r["extra"]["rss"] for r in runs_of)
            what = "CSV en flux" if kind == "csv" else "XLSX (travail en arrière-plan)"
            lines.append(
                f"| {name} | {what} | {count} | {_mib(timed[0]['size'])} | {first_s} | {seconds:.1f} s "
                f"| {memory} | {resident:.0f} Mio |"
            )
    return lines


@click.command()
@click.option("--engine", "engines", multiple=True, type=click.Choice(["sqlite", "postgresql"]))
@click.option("--runs", default=3, show_default=True, help="Runs of the CSV export (after one warm-up).")
@click.option("--xlsx-runs", default=1, show_default=True, help="Runs of the XLSX job (about a minute each).")
@click.option("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432", show_default=True)
@click.option(
    "--sqlite-path",
    type=click.Path(path_type=Path),
    default=bench_board_data.RESULTS / "export.sqlite3",
    show_default=True,
)
@click.option("--keep", is_flag=True, help=f"Keep the SQLite file and the database {PG_DATABASE} afterwards.")
@click.option(
    "--reuse", is_flag=True, help="Time the databases a --keep run left, if usable (implies --keep)."
)
@click.option("--seed", default=2020, show_default=True)
@click.option("--measure", "measure_url", hidden=True, help="Internal: time one database, print JSON.")
def main(engines, runs, xlsx_runs, pg_server, sqlite_path, keep, reuse, seed, measure_url) -> None:
    """Time the national device export (CSV streamed, XLSX job) on SQLite and PostgreSQL."""
    if measure_url:
        click.echo(json.dumps(time_exports(measure_url, runs, xlsx_runs)))
        return
    engines = list(engines) or ["sqlite", "postgresql"]
    keep = keep or reuse
    bench_board_load.PG_DATABASE = PG_DATABASE
    measured: dict[str, dict[str, list]] = {}
    loads: list[float] = []
    try:
        urls = prepare(engines, sqlite_path, pg_server, seed, reuse)
        for name, url in urls.items():
            loads.append(os.getloadavg()[0])
            click.echo(f"» {name}: timing in a fresh process, load average {loads[-1]:.1f}", err=True)
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    url,
                    "--runs",
                    str(runs),
                    "--xlsx-runs",
                    str(xlsx_runs),
                ],
                stdout=subprocess.PIPE,
                check=True,
                text=True,
            )
            measured[name] = json.loads(child.stdout.strip().splitlines()[-1])
            loads.append(os.getloadavg()[0])
    finally:
        if not keep:
            if "postgresql" in engines:
                bench_board_load.drop_postgresql(pg_server)
            if "sqlite" in engines:
                bench_board_load.fresh_sqlite(sqlite_path)  # deletes the file and its WAL
    click.echo("\n".join(table(measured)))
    click.echo(
        f"(médianes de {runs} exécutions après un tour d'échauffement ; {os.cpu_count()} cœurs, charge "
        f"{min(loads, default=0):.1f} à {max(loads, default=0):.1f} ; {utcnow():%d/%m/%Y %H:%M} UTC)"
    )


if __name__ == "__main__":
    main()
