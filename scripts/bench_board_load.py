"""Loading of the benchmark's dataset into fresh SQLite and PostgreSQL databases
(``scripts/bench_board.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from bench_board_data import ADMIN_EMAIL, ADMIN_PASSWORD, INDEX_MIGRATION_SLUG, PG_DATABASE, Dataset
from sqlalchemy.orm import Session

import logistique.models  # noqa: F401  (registers every table)
from logistique import migrate
from logistique.domain import accounts, referential, tallies

# ====================================================================== loading


def bar(label: str, length: int):
    return click.progressbar(
        length=length, label=f"  {label:<18}", show_pos=True, show_percent=True, width=30, file=sys.stderr
    )


CHUNK = 20_000


def load_sqlite(engine: sa.Engine, data: Dataset) -> dict[str, float]:
    """executemany in one transaction per table, synchronous=OFF and a 256 MB page cache for the load (bench
    only); foreign keys checked once at the end (PRAGMA foreign_key_check) rather than row by row."""
    timings = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA cache_size=-262144")
        for table, (columns, rows) in data.tables.items():
            started = time.perf_counter()
            sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'  # noqa: S608
            with bar(table, len(rows)) as progress:
                cur.execute("BEGIN")
                for i in range(0, len(rows), CHUNK):
                    cur.executemany(sql, rows[i : i + CHUNK])
                    progress.update(len(rows[i : i + CHUNK]))
                cur.execute("COMMIT")
            timings[table] = time.perf_counter() - started
        started = time.perf_counter()
        broken = cur.execute("PRAGMA foreign_key_check").fetchmany(5)
        if broken:
            raise click.ClickException(f"generated rows break foreign keys: {broken}")
        timings["foreign_key_check"] = time.perf_counter() - started
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-2000")
        cur.close()
    finally:
        raw.close()
    return timings


def load_postgresql(engine: sa.Engine, data: Dataset) -> dict[str, float]:
    """COPY through psycopg, one transaction per table, then the id sequences past the loaded ids.
    Foreign keys are not checked during the load (session_replication_role = replica): the generated rows
    are the ones SQLite checks with PRAGMA foreign_key_check; unique and check constraints are enforced."""
    timings = {}
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("SET session_replication_role = replica")
        for table, (columns, rows) in data.tables.items():
            started = time.perf_counter()
            copy_sql = f'COPY "{table}" ({", ".join(columns)}) FROM STDIN'
            with bar(table, len(rows)) as progress, conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for i, row in enumerate(rows, start=1):
                    copy.write_row(row)
                    if i % CHUNK == 0:
                        progress.update(CHUNK)
                progress.update(len(rows) % CHUNK)
            conn.commit()
            timings[table] = time.perf_counter() - started
        with conn.cursor() as cur:
            for table, (columns, _rows) in data.tables.items():
                if "id" in columns:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f'(SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
                    )
            cur.execute("SET session_replication_role = DEFAULT")
        conn.commit()
    finally:
        raw.close()
    return timings


def load_referential(engine: sa.Engine) -> float:
    started = time.perf_counter()
    with Session(engine.execution_options(write=True)) as session:
        referential.import_qpv(session, referential.read_package_file("qpv_2024_france.csv"), by=None)
        session.commit()
    return time.perf_counter() - started


RECOUNT = "board counters (logistique recount)"


def recount(engine: sa.Engine) -> None:
    """The board's counters from the loaded rows, as ``logistique recount`` computes them on a live database
    (rows loaded by COPY do not go through the domain that keeps them)."""
    with Session(engine.execution_options(write=True)) as session:
        tallies.rebuild(session)
        session.commit()


def create_admin(engine: sa.Engine) -> str:
    """An administrator able to log in, and an API token for it."""
    with Session(engine.execution_options(write=True)) as session:
        user = accounts.create_user(
            session,
            email=ADMIN_EMAIL,
            role=accounts.Role.ADMIN,
            password=ADMIN_PASSWORD,
            display_name="Bench",
        )
        token = accounts.create_token(session, user, "bench")
        session.commit()
    return token


def analyze(engine: sa.Engine) -> None:
    """PostgreSQL: VACUUM ANALYZE, what autovacuum would have done by the time anyone looks at the board
    (statistics, and the visibility map that index-only scans need). SQLite: nothing — the app never runs
    ANALYZE, so the planner works without statistics, as it would in production."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


# ====================================================================== databases


def fresh_sqlite(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def fresh_postgresql(server: str) -> str:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    admin.dispose()
    return f"{server}/{PG_DATABASE}"


def drop_postgresql(server: str) -> None:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    admin.dispose()


def revisions() -> tuple[str | None, str]:
    """(the revision before the board's index migration, head); (None, head) without such a migration."""
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    head = script.get_current_head()
    for rev in script.walk_revisions():
        if INDEX_MIGRATION_SLUG in Path(rev.path).name:
            return rev.down_revision, head
    return None, head


def db_size(engine: sa.Engine, path: Path | None) -> str:
    if path is not None:
        files = [Path(str(path) + suffix) for suffix in ("", "-wal")]
        return f"{sum(f.stat().st_size for f in files if f.exists()) / 2**20:.0f} MB"
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_size_pretty(pg_database_size(current_database()))").scalar()
