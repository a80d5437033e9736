"""Reading Excel workbooks (.xlsx) uploaded by users, into the same table as a CSV file.

:func:`read_xlsx` opens the workbook with openpyxl in read-only mode (the sheet is streamed, never loaded
whole), takes the first sheet whose header row names the required columns, and returns a
:class:`~logistique.csvfiles.CsvTable` whose line numbers are the row numbers Excel shows. Cells are turned
into the text a user sees: a number stored with a zero-padded format (``0000000000``) keeps its zeros, whole
numbers lose their ``.0``, dates read ``JJ/MM/AAAA``. A file that is not a readable workbook, or whose
content would unpack beyond a sane size (a « zip bomb »), is refused with a French message before any row
is read.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

from .csvfiles import (
    NO_ROWS,
    CsvFileError,
    CsvTable,
    RowError,
    _map_header,
    _unwrap_cell,
    finished_table,
    keyed_row,
)

__all__ = ["TooManyRows", "declared_rows", "is_xlsx", "read_xlsx"]

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls (and other Office 97 files)
# what the parts of an accepted workbook may unpack to: a 200 000-row sheet of short cells is ~100 MB of XML
MAX_UNPACKED_BYTES = 400 * 1024 * 1024
_ZERO_FORMAT = re.compile(r"0+")
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"[A-Z]+\d+:?[A-Z]*(\d*)\"")
_HEADER_SEARCH_ROWS = 20

NOT_A_WORKBOOK = (
    "Le fichier n'est pas un classeur Excel lisible (.xlsx) : il est peut-être abîmé ou d'un autre format. "
    "Enregistrez-le depuis Excel ou LibreOffice au format « Classeur Excel (.xlsx) » ou « CSV »."
)
OLD_EXCEL = (
    "Le fichier est un classeur Excel 97-2003 (.xls), qui n'est pas accepté : enregistrez-le au format "
    "« Classeur Excel (.xlsx) » ou « CSV »."
)


class TooManyRows(CsvFileError):
    """The sheet declares or holds more rows than one import accepts (``rows``: how many were seen)."""

    def __init__(self, rows: int) -> None:
        super().__init__(f"{rows} lignes")
        self.rows = rows


def is_xlsx(data: bytes) -> bool:
    """Whether ``data`` looks like an Office workbook (a zip archive, or an old binary .xls)."""
    return data.startswith((_ZIP_MAGIC, _OLE_MAGIC))


def cell_text(value: Any, number_format: str | None = None) -> str:
    """The text a user sees in a cell: zero-padded numbers keep their zeros, dates read JJ/MM/AAAA."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _unwrap_cell(value)
    if isinstance(value, bool):
        return "VRAI" if value else "FAUX"
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return repr(value)
        text = str(int(value))
        if number_format and _ZERO_FORMAT.fullmatch(number_format) and value >= 0:
            text = text.zfill(len(number_format))  # a phone typed as 0612… shown with its zero by its format
        return text
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.strftime("%d/%m/%Y")
        return value.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value).strip()


def _check_archive(data: bytes) -> None:
    """Refuse what is not a zip archive, or unpacks to too much; before openpyxl reads anything."""
    if data.startswith(_OLE_MAGIC):
        raise CsvFileError(OLD_EXCEL)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise CsvFileError(NOT_A_WORKBOOK) from None
    if "xl/workbook.xml" not in names:
        raise CsvFileError(NOT_A_WORKBOOK)
    if unpacked > MAX_UNPACKED_BYTES:
        raise CsvFileError(
            "Le classeur est trop volumineux une fois décompressé : découpez-le en plusieurs fichiers."
        )


def _declared_rows(archive: zipfile.ZipFile, name: str) -> int | None:
    """The last row of a sheet as its ``<dimension>`` declares it (read from the first bytes only)."""
    with archive.open(name) as part:
        head = part.read(4096)
    match = _DIMENSION.search(head)
    return int(match.group(1)) if match and match.group(1) else None


def declared_rows(data: bytes) -> int | None:
    """The most rows a workbook's sheets declare (header included), or None when unknown or unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]
            counts = [_declared_rows(archive, name) for name in sheets]
    except (zipfile.BadZipFile, ValueError, OSError, KeyError):
        return None
    known = [count for count in counts if count is not None]
    return max(known) if known and len(known) == len(counts) else None


def _cells(sheet) -> Iterator[tuple[int, list[str]]]:
    """(Excel row number, texts of the cells) for each row of a read-only sheet."""
    for number, row in enumerate(sheet.iter_rows(), start=1):
        yield number, [cell_text(cell.value, getattr(cell, "number_format", None)) for cell in row]


def read_xlsx(
    data: bytes, *, columns: dict[str, set[str]], required: set[str], max_rows: int | None = None
) -> CsvTable:
    """Read the first sheet of a workbook that has the required columns; rows numbered as Excel shows them.

    Raises ``CsvFileError`` (French) for a file that is not a readable .xlsx, a workbook without such a
    sheet, or an empty one; ``TooManyRows`` past ``max_rows`` rows (declared or read), before reading on."""
    from openpyxl import load_workbook  # noqa: PLC0415 (only imports need it)

    _check_archive(data)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises whatever its parsers meet (KeyError, XML errors…)
        raise CsvFileError(NOT_A_WORKBOOK) from None
    try:
        return _read_workbook(data, workbook, columns, required, max_rows)
    except CsvFileError:
        raise
    except Exception:  # a sheet broken further down (truncated XML, bad cell)
        raise CsvFileError(NOT_A_WORKBOOK) from None
    finally:
        workbook.close()


def _read_workbook(data: bytes, workbook, columns, required, max_rows) -> CsvTable:
    first_missing: list[str] | None = None
    header: list[str] | None = None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for sheet in workbook.worksheets:
            if not hasattr(sheet, "iter_rows"):  # a chart sheet
                continue
            part = getattr(sheet, "_worksheet_path", None) or ""
            declared = _declared_rows(archive, part) if part in archive.namelist() else None
            if max_rows is not None and declared is not None and declared - 1 > max_rows:
                raise TooManyRows(declared - 1)
            rows = _cells(sheet)
            # the header is the first row naming the required columns (title rows above it are common)
            for number, texts in rows:
                if any(texts):
                    positions = _map_header(texts, columns)
                    missing = [n for n in columns if n in required and n not in positions.values()]
                    if not missing:
                        header = texts
                        break
                    if first_missing is None:
                        first_missing = missing
                if number >= _HEADER_SEARCH_ROWS:
                    break
            else:
                continue
            if header is None:
                continue
            return _table(rows, header, positions, columns, max_rows)
    if first_missing:
        raise CsvFileError(f"Colonnes manquantes : {', '.join(first_missing)}")
    raise CsvFileError(NO_ROWS)


def _table(rows, header, positions, columns, max_rows) -> CsvTable:
    named = {index for index, text in enumerate(header) if text}
    out: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    read = 0
    for number, texts in rows:
        if not any(texts):
            continue
        read += 1
        if max_rows is not None and read > max_rows:
            raise TooManyRows(read)
        stray = [index for index, text in enumerate(texts) if text and index not in named]
        if stray:
            letters = ", ".join(_column_letter(index) for index in stray)
            errors.append(RowError(number, f"valeur hors des colonnes de l'en-tête (colonne {letters})"))
            continue
        out.append((number, keyed_row(texts, positions, columns)))
    return finished_table(out, errors, positions, encoding="xlsx", delimiter="")


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
