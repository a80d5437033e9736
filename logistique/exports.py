"""Spreadsheet exports for prefecture staff: CSV that a French Excel opens right, and typed XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from flask import Response
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}".replace(".", ",")
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    text = str(value)
    # a cell starting with = + - @ would run as a formula in Excel (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """``;``-separated, CRLF, UTF-8 with a byte-order mark: what a French Excel expects."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def xlsx_bytes(
    sheet_title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    number_formats: dict[int, str] | None = None,
) -> bytes:
    """One sheet: bold header row, frozen below it, typed cells, column widths that fit."""
    wb = Workbook()
    ws = wb.active
    ws.title = sheet_title[:31]
    ws.append(list(headers))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE3F0")
    widths = [len(h) for h in headers]
    for row in rows:
        ws.append(list(row))
        for i, value in enumerate(row):
            widths[i] = max(widths[i], min(60, len(str(value)) if value is not None else 0))
    for index, fmt in (number_formats or {}).items():
        for (cell,) in ws.iter_rows(min_row=2, min_col=index + 1, max_col=index + 1):
            cell.number_format = fmt
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width + 2
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def download(data: bytes, filename: str) -> Response:
    """A file download response with the right type for .csv and .xlsx."""
    mimetype = (
        "text/csv; charset=utf-8"
        if filename.endswith(".csv")
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response = Response(data, content_type=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


EUROS = '#,##0.00 "€"'
