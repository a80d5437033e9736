"""Bounds of the numbers a request may carry: an identifier or a page number past them is unknown (404) or
refused (400) with a French message, never a database overflow (500)."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1  # the largest value of a 32-bit INTEGER column (PostgreSQL), and far below SQLite's limit
MAX_PAGE = 1_000_000
MAX_COUNT = 1_000_000  # a number of pupils or devices typed in a form (views.forms.parse_count)


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` in routes: 1 to MAX_ID unless told otherwise; anything else does not match (404)."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 (werkzeug's parameter name)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def ident(raw: str | int | None) -> int:
    """An identifier from a query string (``request.args.get(name, type=ident)``): ValueError when it is not
    a whole number between 1 and MAX_ID, so that the argument is then ignored."""
    if isinstance(raw, int):
        value = raw
    else:
        text = (raw or "").strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 10:
            raise ValueError(raw)
        value = int(text)
    if not 1 <= value <= MAX_ID:
        raise ValueError(raw)
    return value
