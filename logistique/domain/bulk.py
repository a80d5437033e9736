"""Bulk writes at database speed, for imports of whole files (stock, pupils, QPV).

An import has two phases. The check reads the file and compares it with the database (reads only: a web
upload does it without holding SQLite's write lock); the write inserts the checked rows with one
``executemany`` per batch of rows, never one ORM object at a time. Identifiers that other rows must point to
(a device's first journal event) or that a value is derived from (a pupil's reference) are reserved before
the insert, so that nothing has to be read back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..csvfiles import CsvFileError, CsvTable, RowError, read_csv
from ..formatting import number_fr
from ..xlsxfiles import TooManyRows, declared_rows, is_xlsx, read_xlsx
from .errors import ImportRejected

# What one import accepts: past that, a file is refused before being read (French message).
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ROWS = 200_000
BATCH_ROWS = 5_000

Progress = Callable[[int], None]  # called with the number of rows just checked or written
T = TypeVar("T")


def check_upload(data: bytes, *, what: str = "lignes") -> None:
    """Refuse a file too big to be imported at once, before parsing it (a workbook by what its sheets
    declare; ``read_upload`` also stops reading one past the limit)."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRejected(
            f"Fichier refusé : {number_fr(len(data) / 1024 / 1024, 1)} Mo, au-delà de la limite de "
            f"{MAX_FILE_BYTES // 1024 // 1024} Mo par import. Découpez-le en plusieurs fichiers.",
            [],
        )
    lines = estimated_rows(data) or 0  # a workbook whose sheets do not say is counted while read
    if lines > MAX_ROWS:
        raise _too_many(lines, what)


def estimated_rows(data: bytes) -> int | None:
    """How many rows a file holds at most, without parsing it: a CSV's lines after the header (a quoted cell
    may span lines: never too strict by more than those few cells), what a workbook's sheets declare (None
    when a sheet does not say)."""
    if is_xlsx(data):
        rows = declared_rows(data)
        return None if rows is None else max(rows - 1, 0)
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1


def _too_many(rows: int, what: str) -> ImportRejected:
    return ImportRejected(
        f"Fichier refusé : {number_fr(rows)} {what}, au-delà de la limite de {number_fr(MAX_ROWS)} par "
        "import. Découpez-le en plusieurs fichiers.",
        [],
    )


def read_upload(
    data: bytes, *, columns: dict[str, set[str]], required: set[str], what: str, workbook: bool = False
) -> CsvTable:
    """Check the caps, then read an uploaded CSV file (or an Excel workbook when ``workbook``); a file that
    cannot be read at all is an ``ImportRejected`` with no rows."""
    check_upload(data, what=what)
    try:
        if workbook and is_xlsx(data):
            return read_xlsx(data, columns=columns, required=required, max_rows=MAX_ROWS)
        return read_csv(data, columns=columns, required=required)
    except TooManyRows as exc:
        raise _too_many(exc.rows, what) from exc
    except CsvFileError as exc:
        raise ImportRejected(str(exc), []) from exc


def counted(rows: Sequence[T], progress: Progress | None) -> Iterable[T]:
    """``rows``, telling ``progress`` every ``BATCH_ROWS`` rows (and at the end) how many were gone over."""
    if progress is None:
        return rows
    return _counting(rows, progress)


def _counting(rows: Sequence[T], progress: Progress) -> Iterator[T]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield from rows[start : start + BATCH_ROWS]
        progress(min(BATCH_ROWS, len(rows) - start))


def refuse(errors: list[RowError], what: str) -> ImportRejected:
    """The refusal of a file with these faulty rows (sorted, one entry per line, reasons joined)."""
    by_line: dict[int, list[str]] = {}
    for error in errors:
        by_line.setdefault(error.line, []).append(error.message)
    merged = [RowError(line, " ; ".join(messages)) for line, messages in sorted(by_line.items())]
    return ImportRejected(
        f"Fichier refusé : {number_fr(len(merged))} ligne(s) en erreur, {what} n'a été importé.", merged
    )


def _table(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def reserve_ids(session: Session, model: type[Any], count: int) -> Sequence[int]:
    """``count`` new primary keys of ``model``'s table, for rows this transaction is about to insert.

    PostgreSQL hands them out from the table's sequence. SQLite gives a new row max(id) + 1: the ids after
    the current maximum are the ones it would have chosen; a racing writer cannot take them because SQLite
    has one writer at a time (and if this transaction began reading before another one wrote, its insert is
    refused as a stale snapshot rather than clashing)."""
    if count <= 0:
        return []
    table = _table(model)
    if session.get_bind().dialect.name == "postgresql":
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        numbers = sa.select(sa.func.nextval(sequence)).select_from(sa.func.generate_series(1, count))
        return list(session.scalars(numbers))
    start = session.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))) + 1
    return range(start, start + count)


def insert_rows(
    session: Session,
    model: type[Any],
    columns: Sequence[str],
    rows: Iterable[tuple],
    *,
    constants: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> int:
    """Insert ``rows`` into ``model``'s table in batches, within the session's transaction (no commit): the
    driver's executemany on SQLite, COPY on PostgreSQL (an executemany there pays a round trip per row).

    ``rows`` hold the values of ``columns`` as every driver takes them (str, int, bool, None: enum members
    as their value); ``constants`` are the same for every row and go through their column's type once.
    Converting each value of each row through SQLAlchemy's types would cost as much as the insert itself.
    Constraints are checked as for any insert: a duplicate fails the whole transaction."""
    dialect = session.get_bind().dialect
    table = _table(model)
    fixed = [(name, _to_database(table.c[name], value, dialect)) for name, value in (constants or {}).items()]
    names = [*columns, *(name for name, _value in fixed)]
    tail = tuple(value for _name, value in fixed)
    quote = dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(n) for n in names)})"
    connection = session.connection()
    if dialect.name == "postgresql":
        driver = connection.connection.driver_connection  # the psycopg connection of this transaction

        def write(batch: list[tuple]) -> None:
            try:
                with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            except dialect.dbapi.IntegrityError as exc:  # as SQLAlchemy raises it for an INSERT
                raise sa.exc.IntegrityError(f"COPY {target}", None, exc) from exc

    else:
        sql = f"INSERT INTO {target} VALUES ({', '.join(['?'] * len(names))})"  # noqa: S608 (our names)

        def write(batch: list[tuple]) -> None:
            connection.exec_driver_sql(sql, batch)

    written = 0
    iterator = iter(rows)
    while batch := [(*row, *tail) for row in itertools.islice(iterator, BATCH_ROWS)]:
        write(batch)
        written += len(batch)
        if progress is not None:
            progress(len(batch))
    return written


def _to_database(column: sa.Column, value: Any, dialect: sa.Dialect) -> Any:
    # the dialect's own type (SQLite's DATETIME writes text): a generic type has no processor of its own,
    # and the driver would then adapt the value again on every row
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process is not None and value is not None else value


def existing_values(session: Session, column: Any, values: Iterable[str]) -> set[str]:
    """Which of ``values`` the column already holds (looked up by chunks on its unique index)."""
    values = list(values)
    found: set[str] = set()
    for start in range(0, len(values), 2_000):
        found.update(session.scalars(sa.select(column).where(column.in_(values[start : start + 2_000]))))
    return found
