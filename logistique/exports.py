"""Spreadsheet exports for prefecture staff: CSV that a French Excel opens right, and typed XLSX.

Both are written row by row: a CSV export streams to the client as its rows come from the database, an XLSX
file is built by openpyxl's write-only mode (a few MiB whatever the number of rows). No cell is ever a
formula: text that starts with ``=`` (``=HYPERLINK(…)`` in an organisation's name) is written as text."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import IO, Any

from flask import Response, stream_with_context
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

CSV_CHUNK_ROWS = 2_000
_WIDTH_SAMPLE = 200  # rows read ahead to size the XLSX columns (write-only: before the first row)


_FORMULA_STARTS = frozenset("=+-@")
_RARE_STARTS = [f"{before}{c}" for before in ";\n" for c in "=+@"]


def csv_cell(value: Any) -> str:
    """One CSV cell as a French Excel reads it: decimal comma, days as 28/11/2026, text never a formula."""
    kind = type(value)
    if kind is str:  # most cells: one type test (this runs for every cell of 300 000-row exports)
        text = value
    elif kind is int:
        return str(value)
    elif value is None:
        return ""
    elif isinstance(value, float):
        return f"{value:.2f}".replace(".", ",")
    elif isinstance(value, datetime):
        return f"{value.day:02d}/{value.month:02d}/{value.year} {value.hour:02d}:{value.minute:02d}"
    elif isinstance(value, date):
        return f"{value.day:02d}/{value.month:02d}/{value.year}"
    else:
        text = str(value)
    # a cell starting with = + - @ would run as a formula in Excel (CSV injection)
    return "'" + text if text[:1] in _FORMULA_STARTS and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def csv_chunks(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """``;``-separated, CRLF, UTF-8 with a byte-order mark (what a French Excel expects), a few thousand
    rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(headers)
    plain = _FORMULA_STARTS
    for batch in _batched(rows):
        # text that cannot start a formula goes as it is; anything else through csv_cell
        writer.writerows(
            [v if type(v) is str and v[:1] not in plain else csv_cell(v) for v in row] for row in batch
        )
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _joined_may_hold_a_formula(text: str) -> bool:
    """Whether a cell of this CSV text, joined without quotes, may start with = + - @: exact, and fast
    (a few memchr-speed scans): = + @ are rare anywhere; - is common inside cells (serials, references)
    but rarely starts one."""
    return (
        ";-" in text  # the commonest first
        or "\n-" in text
        or text[0] in _FORMULA_STARTS
        or (("=" in text or "+" in text or "@" in text) and any(start in text for start in _RARE_STARTS))
    )


def csv_text_chunks(
    headers: Sequence[str], batches: Iterable[Sequence[Sequence[str | None]]]
) -> Iterator[bytes]:
    """The file of ``csv_chunks``, byte for byte, from batches of rows of text cells (str or None) as wide
    as ``headers`` (at least two cells), at C speed: a batch is joined with ``;`` and CRLF as it is, then
    checked — no cell holding ; " CR or LF (which the csv writer would quote), none starting with = + - @
    (rare: a serial like ``-12AB``) — and only a batch that fails is written again through the csv writer
    and ``csv_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    for batch in batches:
        if not batch:
            continue
        try:
            text = "\r\n".join(map(";".join, batch)) + "\r\n"  # type: ignore[arg-type]
        except TypeError:  # a None cell
            text = ""
        lines = len(batch)
        plain = (
            text
            and '"' not in text
            and text.count(";") == sum(map(len, batch)) - lines
            and text.count("\n") == lines
            and text.count("\r") == lines
        )
        if not plain or _joined_may_hold_a_formula(text):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows([csv_cell(v) for v in row] for row in batch)
            text = buffer.getvalue()
        yield text.encode("utf-8")


def _batched(rows: Iterable[Sequence[Any]]) -> Iterator[list[Sequence[Any]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, CSV_CHUNK_ROWS)):
        yield batch


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """The whole CSV file at once (small exports)."""
    return b"".join(csv_chunks(headers, rows))


def write_xlsx(
    out: IO[bytes],
    sheet_title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    number_formats: dict[int, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """One sheet in write-only mode: bold header row, frozen below it, typed cells, text never a formula,
    columns sized on the first rows. ``progress(n)`` every 1 000 rows; returns the number of rows."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet_title[:31])
    rows = iter(rows)
    sample = list(itertools.islice(rows, _WIDTH_SAMPLE))
    widths = [len(h) for h in headers]
    for row in sample:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], min(60, len(str(value)) if value is not None else 0))
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width + 2
    ws.freeze_panes = "A2"
    header_font, header_fill = Font(bold=True), PatternFill("solid", fgColor="DDE3F0")
    header = []
    for title in headers:
        cell = _text_cell(ws, title)
        cell.font, cell.fill = header_font, header_fill
        header.append(cell)
    ws.append(header)
    # one styled cell per formatted column, given each row's value (openpyxl writes a row as it is appended);
    # every other cell is a plain value: what costs in openpyxl is per cell
    styled = {i: _styled_cell(ws, fmt) for i, fmt in (number_formats or {}).items()}
    errors = ERROR_CODES
    count = 0
    for row in itertools.chain(sample, rows):
        cells = [_text_cell(ws, v) if type(v) is str and (v[:1] == "=" or v in errors) else v for v in row]
        for i, cell in styled.items():
            value = row[i]
            if value is not None and not isinstance(value, str):
                cell.value = value
                cells[i] = cell
        ws.append(cells)
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(1000)
    if progress is not None and count % 1000:
        progress(count % 1000)
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{count + 1}"
    wb.save(out)
    return count


def _text_cell(ws, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"  # openpyxl would take "=…" for a formula and "#N/A" for an error
    return cell


def _styled_cell(ws, number_format: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws)
    cell.number_format = number_format
    return cell


def xlsx_bytes(
    sheet_title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    number_formats: dict[int, str] | None = None,
) -> bytes:
    """The whole XLSX file at once (small exports)."""
    out = io.BytesIO()
    write_xlsx(out, sheet_title, headers, rows, number_formats)
    return out.getvalue()


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def _file_response(body: Any, filename: str) -> Response:
    response = Response(body, content_type=CONTENT_TYPES[filename.rsplit(".", 1)[-1]])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def download(data: bytes, filename: str) -> Response:
    """A file download response with the right type for .csv and .xlsx."""
    return _file_response(data, filename)


def download_stream(chunks: Iterator[bytes], filename: str) -> Response:
    """A download sent as it is produced; the request's database session stays open until the last chunk."""
    return _file_response(stream_with_context(chunks), filename)


EUROS = '#,##0.00 "€"'
