"""Benchmark of the national device export (issue 11) on ``scripts/bench board``'s synthetic operation.

Generates the national operation of bench_board_data.py (500 000 devices, 333 702 of them assigned), loads
it into a fresh SQLite file and a fresh PostgreSQL database (``logistique_bench_export`` on 127.0.0.1:5432,
dropped afterwards), then, as an administrator (France entière):

- ``GET /tableau/equipements.csv`` through the Flask test client without buffering, read chunk by chunk as a
  server sends it: time to the last byte, rows, extra peak memory of the process (RSS high-water mark
  above the RSS before the request);
- the national XLSX, as the background job builds it (write-only, to a file): time and extra memory.

Medians of --runs runs (--xlsx-runs for the XLSX). Prints Markdown.
Run through ``scripts/bench export [options]``."""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import sqlalchemy as sa
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_board_data  # noqa: E402  (same folder: the board benchmark's generator and loaders)
import bench_board_load  # noqa: E402
from bench_import import peak_mib, reset_peak, rss_mib  # noqa: E402

from logistique import create_app, migrate  # noqa: E402
from logistique.db import db, make_engine, utcnow  # noqa: E402
from logistique.domain import status  # noqa: E402
from logistique.models import User  # noqa: E402
from logistique.views import board  # noqa: E402


def measure(fn) -> tuple[float, float, object]:
    gc.collect()
    reset_peak()
    before = rss_mib()
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, peak_mib() - before, result


def time_exports(url: str, runs: int, xlsx_runs: int) -> dict[str, list]:
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench-export", "WTF_CSRF_ENABLED": False, "BASE_URL": "http://b"}
    )
    client = FlaskClient(app, app.response_class, use_cookies=True)
    login = client.post(
        "/login", data={"email": bench_board_data.ADMIN_EMAIL, "password": bench_board_data.ADMIN_PASSWORD}
    )
    if login.status_code != 302:
        raise click.ClickException(f"login refused: {login.status_code}")

    def csv_export() -> tuple[int, int]:
        response = client.get("/tableau/equipements.csv")
        if response.status_code != 200 or not response.is_streamed:
            raise click.ClickException(f"CSV export: {response.status_code}, streamed {response.is_streamed}")
        size = lines = 0
        for chunk in response.response:
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        response.close()
        return lines - 1, size

    def xlsx_export() -> int:
        with app.app_context(), tempfile.TemporaryFile() as out:
            admin = db.session.scalar(sa.select(User).where(User.email == bench_board_data.ADMIN_EMAIL))
            rows = board.device_rows(status.resolve(db.session, admin, ""))
            board.write_xlsx(out, "Équipements", board.DEVICE_HEADERS, rows, board.DEVICE_FORMATS)
            return out.tell()

    results: dict[str, list] = {"csv": [], "xlsx": []}
    try:
        csv_export()  # warm-up
        for run in range(runs):
            seconds, extra, (rows, size) = measure(csv_export)
            results["csv"].append((seconds, extra, rows, size))
            click.echo(
                f"  CSV {run + 1}: {rows} rows, {size / 2**20:.0f} MiB in {seconds:.2f} s, +{extra:.0f} MiB",
                err=True,
            )
        for run in range(xlsx_runs):
            seconds, extra, size = measure(xlsx_export)
            results["xlsx"].append((seconds, extra, None, size))
            click.echo(
                f"  XLSX {run + 1}: {size / 2**20:.0f} MiB in {seconds:.1f} s, +{extra:.0f} MiB", err=True
            )
    finally:
        with app.app_context():
            db.get_engine().dispose()
    return results


@click.command()
@click.option("--engine", "engines", multiple=True, type=click.Choice(["sqlite", "postgresql"]))
@click.option("--runs", default=3, show_default=True, help="Runs of the CSV export.")
@click.option("--xlsx-runs", default=1, show_default=True, help="Runs of the XLSX export (minutes each).")
@click.option("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432", show_default=True)
@click.option("--seed", default=2020, show_default=True)
def main(engines, runs, xlsx_runs, pg_server, seed) -> None:
    """Time the national device export (CSV streamed, XLSX job) on SQLite and PostgreSQL."""
    engines = list(engines) or ["sqlite", "postgresql"]
    bench_board_load.PG_DATABASE = (
        "logistique_bench_export"  # not the board bench's database, which may be in use
    )
    click.echo("» generating the national operation (scripts/bench board's data)", err=True)
    data = bench_board_data.generate(seed, 500_000, 300_000, 60_000, utcnow().replace(microsecond=0))
    lines = [
        "| base | export | lignes | taille | durée | mémoire en plus |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    urls: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        try:
            for name in engines:
                url = urls[name] = (
                    bench_board_load.fresh_sqlite(Path(tmp) / "export.sqlite3")
                    if name == "sqlite"
                    else bench_board_load.fresh_postgresql(pg_server)
                )
                click.echo(f"» {name}: loading", err=True)
                engine = make_engine(url)
                migrate.upgrade(engine)
                bench_board_load.load_referential(engine)
                (bench_board_load.load_sqlite if name == "sqlite" else bench_board_load.load_postgresql)(
                    engine, data
                )
                bench_board_load.recount(engine)
                bench_board_load.analyze(engine)
                bench_board_load.create_admin(engine)
                engine.dispose()
            del data  # millions of live tuples would slow every garbage collection of the timed code
            gc.collect()
            for name, url in urls.items():
                click.echo(f"» {name}: timing, load average {os.getloadavg()[0]:.1f}", err=True)
                for kind, runs_of in time_exports(url, runs, xlsx_runs).items():
                    if not runs_of:
                        continue
                    seconds = statistics.median(r[0] for r in runs_of)
                    extra = max(r[1] for r in runs_of)
                    _s, _e, rows, size = runs_of[0]
                    count = f"{rows:,}".replace(",", " ") if rows else "—"
                    lines.append(
                        f"| {name} | {kind.upper()} France entière | {count} | {size / 2**20:.0f} Mio | "
                        f"{seconds:.1f} s | {extra:.0f} Mio |"
                    )
        finally:
            if "postgresql" in urls:
                bench_board_load.drop_postgresql(pg_server)
    click.echo("\n".join(lines))
    click.echo(f"(médianes de {runs} exécutions ; {os.cpu_count()} cœurs, charge {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
