"""Benchmark of bulk imports (issue 11): each import command against a raw executemany of the same rows.

For SQLite (a fresh file) and PostgreSQL (database ``logistique_bench_import`` on 127.0.0.1:5432, created then
dropped), schema by the migrations:

- the national QPV list (logistique/data/qpv_2024_france.csv: regions, departments, 1 493 QPV) through
  ``logistique import-qpv``;
- a stock file of --devices rows (no asset tags: the import generates them) through
  ``logistique import-stock``: devices, asset tags and first journal events;
- a pupil file of --pupils rows through ``logistique import-pupils``: pupils, references and board counters.

Each command runs as a user runs it (CliRunner: reading the file, checks, progress bar, commit). The
reference, in the same run and through the same engine, is a raw DB-API ``executemany`` of the very rows the
import wrote (read back from the database after the import), in one transaction; the table is emptied
between runs. Medians of --runs runs, after one import not timed (warm-up); peak extra memory (RSS
high-water mark) of each import. ``logistique recount --check`` must be clean at the end. Prints Markdown.

Run through ``scripts/bench import [options]``."""

from __future__ import annotations

import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import sqlalchemy as sa

import logistique.models  # noqa: F401  (registers every table)
from logistique import create_app, jobs, migrate
from logistique.db import db
from logistique.domain import accounts, money, referential
from logistique.models import DeviceKind, EnvelopeKind, Job, JobStatus, Lot, OrganisationKind, Qpv, Role, User

PG_DATABASE = "logistique_bench_import"
LOT = "BENCH-IMPORT-01"
MODELS = {DeviceKind.TABLET: "Galaxy Tab A8", DeviceKind.LAPTOP: "Latitude 5490", DeviceKind.HOTSPOT: "E5576"}
FIRST = ["Lina", "Adam", "Inès", "Mohamed", "Jade", "Noah", "Sarah", "Yanis", "Léa", "Rayan", "Emma", "Nolan"]
LAST = ["Martin", "Bernard", "Diallo", "Nguyen", "Haddad", "Moreau", "Traoré", "Petit", "Benali", "Lefèvre"]


def rss_mib() -> float:
    """Resident memory now (MiB)."""
    return _status("VmRSS")


def peak_mib() -> float:
    """Resident memory high-water mark since the last reset_peak() (MiB)."""
    return _status("VmHWM")


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS


def stock_file(n: int, rng: random.Random) -> bytes:
    lines = ["numero_serie;type;modele;etat"]
    kinds = list(MODELS)
    for i in range(n):
        kind = kinds[i % 3]
        lines.append(f"BENCH{i:07d}{rng.randrange(10**6):06d};{kind.value};{MODELS[kind]};reconditionne")
    return ("\r\n".join(lines) + "\r\n").encode()


def pupil_file(n: int, qpvs: list[str], rng: random.Random) -> bytes:
    lines = ["prenom;nom;niveau;uai;qpv;responsable_nom;responsable_telephone;besoins"]
    needs = ["tablette", "ordinateur", "connexion", "tablette+connexion"]
    for i in range(n):
        phone = f"06{i:08d}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        lines.append(
            f"{first};{last};6e;0750654D;{rng.choice(qpvs)};{rng.choice(FIRST)} {last};"
            f"{phone};{needs[i % len(needs)]}"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def snapshot(table: str, where: str = "") -> tuple[list[str], list[tuple]]:
    """The rows an import wrote, as the raw reference will write them again."""
    result = db.session.execute(sa.text(f"SELECT * FROM {table} {where} ORDER BY 1"))  # noqa: S608
    rows = [tuple(r) for r in result]
    db.session.rollback()
    return list(result.keys()), rows


def raw_insert(tables: list[tuple[str, list[str], list[tuple]]]) -> float:
    """One transaction of DB-API executemany per table, through the app's engine; seconds."""
    raw = db.get_engine().raw_connection()
    try:
        sqlite = db.get_engine().dialect.name == "sqlite"
        mark = "?" if sqlite else "%s"
        started = time.perf_counter()
        cur = raw.cursor()
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")
        for table, columns, rows in tables:
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
            cur.executemany(sql, rows)
        raw.commit() if not sqlite else cur.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        raw.close()


def run_cli(app, args: list[str]) -> tuple[float, float]:
    """Run a ``logistique`` command; (seconds, extra peak memory in MiB)."""
    runner = app.test_cli_runner()
    reset_peak()
    before = rss_mib()
    started = time.perf_counter()
    result = runner.invoke(args=args)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise click.ClickException(f"{' '.join(args)} failed: {result.output[-2000:]}")
    return seconds, peak_mib() - before


def execute(*statements: str) -> None:
    with db.get_engine().begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def bench_one(
    app, label: str, runs: int, command: list[str], clear: Callable[[], None], tables: list[tuple[str, str]]
) -> dict:
    """Time ``command`` and the raw executemany of what it wrote, ``runs`` times each, alternating, after one
    import not timed (the first one in a process also pays for compiling its statements and expressions)."""
    run_cli(app, command)
    clear()
    imports, raws, memory = [], [], []
    for run in range(runs):
        seconds, extra = run_cli(app, command)
        imports.append(seconds)
        memory.append(extra)
        written = [(table, *snapshot(table, where)) for table, where in tables]
        clear()
        raws.append(raw_insert(written))
        clear()
        click.echo(
            f"  {label} {run + 1}: import {seconds:.2f} s (+{extra:.0f} MiB), raw {raws[-1]:.2f} s", err=True
        )
    run_cli(app, command)  # what was imported stays for what follows (and for recount --check)
    rows = sum(len(rows) for _t, _c, rows in written)
    return {
        "label": label,
        "rows": rows,
        "import": statistics.median(imports),
        "raw": statistics.median(raws),
        "memory": max(memory),
    }


def web_upload(app, path: Path, n: int) -> dict:
    """The same stock file uploaded on the import page (Flask test client, an admin logged in), once: the
    request that stores it and queues its job, then the job itself, run in this process as a worker would."""
    lot_id = db.session.scalar(sa.select(Lot.id).where(Lot.reference == LOT))
    email, password = "bench-import@bench.invalid", "bench-import-mot-de-passe"
    if db.session.scalar(sa.select(User.id).where(User.email == email)) is None:
        accounts.create_user(db.session, email=email, role=Role.ADMIN, password=password)
        db.session.commit()
    execute("DELETE FROM device_events", "DELETE FROM devices")
    client = app.test_client()
    assert client.post("/login", data={"email": email, "password": password}).status_code == 302
    data = path.read_bytes()
    started = time.perf_counter()
    response = client.post(
        "/stock/import",
        data={"lot": str(lot_id), "file": (io.BytesIO(data), "stock.csv")},
        content_type="multipart/form-data",
    )
    seconds = time.perf_counter() - started
    if response.status_code != 303 or not response.headers["Location"].startswith("/travaux/"):
        raise click.ClickException(f"upload not queued: {response.status_code}")
    # the background job, run here as the worker runs it (logistique worker: jobs.run)
    key = response.headers["Location"].removeprefix("/travaux/")
    job_id = db.session.scalar(sa.select(Job.id).where(Job.key == key))
    db.session.rollback()
    started = time.perf_counter()
    jobs.run(job_id)
    job_seconds = time.perf_counter() - started
    status = db.session.scalar(sa.select(Job.status).where(Job.id == job_id))
    db.session.rollback()
    if status is not JobStatus.DONE:
        raise click.ClickException(f"upload job ended {status}")
    click.echo(f"  page d'import : {seconds:.2f} s, travail : {job_seconds:.2f} s", err=True)
    return {
        "label": f"page d'import de stock ({n:,} lignes)".replace(",", " "),
        "seconds": seconds,
        "job": job_seconds,
    }


def bench_engine(name: str, url: str, n_devices: int, n_pupils: int, runs: int, workdir: Path) -> list[dict]:
    engine = sa.create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-import",
            "WTF_CSRF_ENABLED": False,
            "JOBS_DIR": str(workdir / "jobs"),
            "QUEUE_FILE": str(workdir / "queue.sqlite3"),
        }
    )
    rng = random.Random(11)
    results = []
    with app.app_context():
        qpv_path = workdir / "qpv.csv"
        qpv_path.write_bytes(referential.read_package_file("qpv_2024_france.csv"))
        results.append(
            bench_one(
                app,
                "QPV (liste nationale)",
                runs,
                ["import-qpv", str(qpv_path)],
                lambda: execute("DELETE FROM qpvs", "DELETE FROM departments", "DELETE FROM regions"),
                [("regions", ""), ("departments", ""), ("qpvs", "")],
            )
        )
        session = db.session
        qpvs = list(session.scalars(sa.select(Qpv.code).where(Qpv.department_code == "59")))
        warehouse = referential.save_organisation(
            session,
            referential.OrganisationData(OrganisationKind.WAREHOUSE, "Entrepôt bench", "59"),
            by=None,
        )
        association = referential.save_organisation(
            session,
            referential.OrganisationData(
                OrganisationKind.ASSOCIATION, "Association bench", "59", qpv_codes=qpvs
            ),
            by=None,
        )
        envelope = money.save_envelope(
            session,
            money.EnvelopeData(
                region_code="32", kind=EnvelopeKind.DELEGATED, label="Bench", amount_cents=10**12
            ),
            by=None,
        )
        costs = {money.get_or_create_model(session, k, m, by=None).id: 10_000 for k, m in MODELS.items()}
        money.save_lot(
            session,
            money.LotData(
                reference=LOT,
                supplier="Bench",
                envelope_id=envelope.id,
                warehouse_id=warehouse.id,
                unit_costs=costs,
            ),
            by=None,
        )
        session.commit()
        association_id = association.id

        stock_path = workdir / "stock.csv"
        stock_path.write_bytes(stock_file(n_devices, rng))
        results.append(
            bench_one(
                app,
                f"stock ({n_devices:,} équipements)".replace(",", " "),
                runs,
                ["import-stock", str(stock_path), "--lot", LOT],
                lambda: execute("DELETE FROM device_events", "DELETE FROM devices"),
                [("devices", ""), ("device_events", "")],
            )
        )
        results.append(web_upload(app, stock_path, n_devices))
        pupils_path = workdir / "pupils.csv"
        pupils_path.write_bytes(pupil_file(n_pupils, qpvs, rng))
        results.append(
            bench_one(
                app,
                f"élèves ({n_pupils:,})".replace(",", " "),
                runs,
                ["import-pupils", str(pupils_path), "--organisation", str(association_id)],
                lambda: execute(
                    "DELETE FROM audit_events", "DELETE FROM pupils", "UPDATE pupil_tallies SET pupils = 0"
                ),
                [("pupils", "")],
            )
        )
        check = app.test_cli_runner().invoke(args=["recount", "--check"])
        results.append(
            {"label": "recount --check", "ok": check.exit_code == 0, "output": check.output.strip()}
        )
        db.session.close()
        db.get_engine().dispose()
    return results


@click.command()
@click.option("--engine", "engines", multiple=True, type=click.Choice(["sqlite", "postgresql"]))
@click.option("--devices", "n_devices", default=100_000, show_default=True)
@click.option("--pupils", "n_pupils", default=50_000, show_default=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432", show_default=True)
def main(engines, n_devices, n_pupils, runs, pg_server) -> None:
    """Time the import commands against a raw executemany of the same rows, on SQLite and PostgreSQL."""
    engines = list(engines) or ["sqlite", "postgresql"]
    lines = [
        "| base | import | lignes écrites | commande | executemany brut | rapport | mémoire en plus |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for name in engines:
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            workdir = Path(tmp)
            if name == "sqlite":
                url = f"sqlite:///{workdir / 'bench.sqlite3'}"
            else:
                admin = sa.create_engine(f"{pg_server}/postgres", isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                    conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
                url = f"{pg_server}/{PG_DATABASE}"
            click.echo(f"» {name}, load average {os.getloadavg()[0]:.1f}", err=True)
            try:
                results = bench_engine(name, url, n_devices, n_pupils, runs, workdir)
            finally:
                if name == "postgresql":
                    with admin.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
                    admin.dispose()
        for r in results:
            if "seconds" in r:
                notes.append(
                    f"{name} : {r['label']} : {r['seconds']:.1f} s jusqu'à la page du travail "
                    f"(fichier enregistré), puis {r['job']:.1f} s pour le travail (vérifier, écrire)"
                )
                continue
            if "ok" in r:
                notes.append(f"{name} : `logistique recount --check` après les imports : {r['output']}")
                continue
            lines.append(
                f"| {name} | {r['label']} | {r['rows']:,} | {r['import']:.2f} s | {r['raw']:.2f} s | "
                f"{r['import'] / r['raw']:.1f}× | {r['memory']:.0f} Mio |".replace(",", " ")
            )
    click.echo("\n".join(lines + [""] + [f"- {n}" for n in notes]))
    click.echo(f"(médianes de {runs} exécutions ; {os.cpu_count()} cœurs, charge {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    sys.exit(main())
