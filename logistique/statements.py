"""Statements of the hot paths, compiled once per database and run straight on the DBAPI cursor.

A statement built once and executed by SQLAlchemy (``connection.execute(statement, parameters)``) still costs,
at every execution, the set-up of an execution context, of its parameters' and results' processing, and the
events: several times what the database takes to run a primary-key update. A ``Prepared`` statement keeps its
SQL, the order of its parameters and their type processors per dialect, and runs on the DBAPI connection of
the session's transaction: same transaction, same SQL, same conversions of values (the column types' bind
and result processors), without that work. Database errors are raised as SQLAlchemy's (``IntegrityError``,
``OperationalError``…), as ``Connection.execute`` raises them. Used where a request runs many of them (a pick,
a scan, a token's authentication); everything else goes through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast, overload

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None


def table(model: Any) -> sa.Table:
    """The table of a mapped class, typed as one (``Model.__table__`` is typed as any FROM clause)."""
    return cast(sa.Table, model.__table__)


_CONNECTION = "logistique.statements.connection"


def _connection(session: Session) -> sa.Connection:
    """The connection of the session's transaction (``Session.connection()``, once per transaction)."""
    transaction = session.get_transaction()
    known = session.info.get(_CONNECTION)
    if transaction is not None and known is not None and known[0] is transaction and transaction.is_active:
        return known[1]
    connection = session.connection()
    session.info[_CONNECTION] = (session.get_transaction(), connection)
    return connection


@dataclass(frozen=True)
class _Form:
    """A statement as one dialect runs it."""

    sql: str
    positional: tuple[str, ...] | None  # the parameters' order (qmark, format), None for named ones
    # name, bind processor and value when not given, in the order the DBAPI takes them (a name may come twice)
    ordered: tuple[tuple[str, Processor, Any], ...]
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns with a processor: position, it
    dbapi_error: type[Exception]


class Prepared:
    """``statement`` (a Core select, insert, update or delete with named ``bindparam`` parameters), compiled
    once per dialect. An insert is compiled for the columns of ``columns``."""

    def __init__(self, statement: sa.Executable, *, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(columns) if columns is not None else None
        result_columns = getattr(statement, "exported_columns", None) or ()
        self.keys = tuple(column.key for column in result_columns)
        self._types = tuple(column.type for column in result_columns)
        self._forms: dict[str, _Form] = {}

    def _form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect.name)
        if form is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.column_keys)
            binds = {}
            for name, bind in compiled.binds.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                value = bind.effective_value if not bind.required else None
                binds[name] = (name, processor, value)
            positional = tuple(compiled.positiontup or ()) if dialect.positional else None
            results = tuple(t.dialect_impl(dialect).result_processor(dialect, None) for t in self._types)
            ordered = tuple(binds[name] for name in positional) if positional else tuple(binds.values())
            form = self._forms[dialect.name] = _Form(
                compiled.string,
                positional,
                ordered,
                tuple((i, p) for i, p in enumerate(results) if p is not None),
                dialect.loaded_dbapi.Error,
            )
        return form

    @staticmethod
    def _parameters(form: _Form, values: Mapping[str, Any]) -> Any:
        get = values.get
        if form.positional is None:
            named = {}
            for name, processor, default in form.ordered:
                value = get(name, default)
                named[name] = processor(value) if processor is not None and value is not None else value
            return named
        processed = []
        for name, processor, default in form.ordered:
            value = get(name, default)
            processed.append(processor(value) if processor is not None and value is not None else value)
        return tuple(processed)

    def _cursor(self, session: Session, values: Mapping[str, Any] | Iterable[Mapping[str, Any]], many: bool):
        connection = _connection(session)
        return self._execute(
            connection.connection.driver_connection, connection.dialect, values, many, connection
        )

    def _execute(
        self,
        raw: Any,
        dialect: Dialect,
        values: Mapping[str, Any] | Iterable[Mapping[str, Any]],
        many: bool,
        connection: sa.Connection | None = None,
    ):
        form = self._form(dialect)
        cursor = raw.cursor()
        try:
            if many:
                cursor.executemany(form.sql, [self._parameters(form, v) for v in values])
            else:
                cursor.execute(form.sql, self._parameters(form, values))
        except form.dbapi_error as exc:
            cursor.close()
            invalidated = dialect.is_disconnect(exc, raw, cursor)
            if invalidated and connection is not None:
                connection.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                form.sql,
                None,
                exc,
                form.dbapi_error,
                hide_parameters=True,
                connection_invalidated=invalidated,
                dialect=dialect,
            ) from exc
        return cursor, form

    def run(self, session: Session, values: Mapping[str, Any]) -> int:
        """Execute in the session's transaction; the number of rows changed (an update's verdict)."""
        cursor, _form = self._cursor(session, values, many=False)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, session: Session, values: Iterable[Mapping[str, Any]]) -> None:
        """Execute once per mapping of ``values`` (executemany)."""
        self._cursor(session, values, many=True)[0].close()

    def rows(self, session: Session, values: Mapping[str, Any]) -> list[tuple]:
        """Every row of the result, its values converted as SQLAlchemy converts them."""
        return self._fetch(*self._cursor(session, values, many=False))

    def first(self, session: Session, values: Mapping[str, Any]) -> tuple | None:
        """The first row of the result, or None."""
        found = self.rows(session, values)
        return found[0] if found else None

    def first_on(self, raw: Any, dialect: Dialect, values: Mapping[str, Any]) -> tuple | None:
        """``first`` on a DBAPI connection of the application's engine, outside any session."""
        found = self._fetch(*self._execute(raw, dialect, values, many=False))
        return found[0] if found else None

    @staticmethod
    def _fetch(cursor: Any, form: _Form) -> list[tuple]:
        try:
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        if not form.converted:
            return [tuple(row) for row in fetched]
        rows = []
        for row in fetched:
            values = list(row)
            for position, processor in form.converted:
                value = values[position]
                if value is not None:
                    values[position] = processor(value)
            rows.append(tuple(values))
        return rows

    @overload
    def mapping(self, row: tuple) -> dict[str, Any]: ...
    @overload
    def mapping(self, row: None) -> None: ...
    def mapping(self, row: tuple | None) -> dict[str, Any] | None:
        """``row`` as a mapping of the result's column names."""
        return None if row is None else dict(zip(self.keys, row, strict=True))
