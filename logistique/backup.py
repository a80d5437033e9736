"""A consistent copy of the whole database, and back (``logistique backup FILE``, ``… restore FILE``).

SQLite: the online backup API (a snapshot taken while the app keeps running), written as a single file.
PostgreSQL: ``pg_dump --format=custom`` (a snapshot too), restored by ``pg_restore`` piped into ``psql`` in
ONE transaction that first empties the schema: a restore that fails leaves the database as it was."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy.engine import Engine

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(RuntimeError):
    """The copy or the restore could not be done (French message for the operator)."""


def backup(engine: Engine, target: Path) -> None:
    """Write a consistent copy of ``engine``'s database to ``target`` (replaced only once complete), readable
    by its owner only (mode 0600: it holds the names of minors)."""
    target = target.resolve()
    fd, partial_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # mode 0600
    os.close(fd)
    partial = Path(partial_name)
    try:
        if engine.dialect.name == "sqlite":
            _sqlite_backup(_sqlite_path(engine), partial)
            with sqlite3.connect(partial) as copy:
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        else:
            _run(
                [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", str(partial)]
                + _pg_args(engine),
                engine,
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def restore(engine: Engine, source: Path) -> None:
    """Replace the whole content of ``engine``'s database by the copy ``source``. The app must be stopped."""
    head = source.read_bytes()[:16] if source.is_file() else b""
    if engine.dialect.name == "sqlite":
        if not head.startswith(SQLITE_MAGIC):
            raise BackupError(f"{source} n'est pas une sauvegarde SQLite de logistique.")
        _check_sqlite_copy(source)
        engine.dispose()  # no pooled connection keeps the old pages
        _sqlite_backup(source, Path(_sqlite_path(engine)))
        return
    if not head.startswith(PG_DUMP_MAGIC):
        raise BackupError(f"{source} n'est pas une sauvegarde PostgreSQL (pg_dump --format=custom).")
    engine.dispose()
    script = _run([_tool("pg_restore"), "--no-owner", "--no-privileges", "--file", "-", str(source)], engine)
    _run(
        [_tool("psql"), "--quiet", "--no-psqlrc", "--single-transaction", "-v", "ON_ERROR_STOP=1"]
        + _pg_args(engine),
        engine,
        stdin=b"DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n" + script,
    )


# ---------------------------------------------------------------- SQLite


def _sqlite_path(engine: Engine) -> str:
    path = engine.url.database
    if not path or path == ":memory:":
        raise BackupError("Une base SQLite en mémoire ne se sauvegarde pas.")
    return path


def _sqlite_backup(source: str | Path, target: Path) -> None:
    src = sqlite3.connect(str(source))
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _check_sqlite_copy(source: Path) -> None:
    connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        ok = connection.execute("PRAGMA integrity_check").fetchone()[0]
        has_schema = connection.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} est illisible : {exc}.") from exc
    finally:
        connection.close()
    if ok != "ok" or not has_schema:
        raise BackupError(f"{source} n'est pas une sauvegarde complète de logistique (contrôle : {ok}).")


# ---------------------------------------------------------------- PostgreSQL


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} est introuvable : installez le client PostgreSQL (apt-get install postgresql-client), "
            "de la même version majeure que le serveur ou plus récent."
        )
    return path


def _pg_args(engine: Engine) -> list[str]:
    url = engine.url
    return [
        "--host", url.host or "localhost",
        "--port", str(url.port or 5432),
        "--username", url.username or "postgres",
        "--dbname", url.database or "",
    ]  # fmt: skip


def _run(command: list[str], engine: Engine, stdin: bytes | None = None) -> bytes:
    env = dict(os.environ)
    url = engine.url
    if url.password:
        env["PGPASSWORD"] = url.password  # never on the command line, where `ps` shows it
    if "sslmode" in url.query:
        env["PGSSLMODE"] = str(url.query["sslmode"])
    result = subprocess.run(command, input=stdin, capture_output=True, env=env, check=False)
    if result.returncode != 0:
        error = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BackupError(f"{Path(command[0]).name} a échoué : {' / '.join(error[-3:]) or result.returncode}")
    return result.stdout
