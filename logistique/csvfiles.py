"""Reading CSV files uploaded by users (French Excel exports and the like).

Files may use ``;``, ``,`` or tabs, be encoded in UTF-8 (with or without byte-order mark) or Windows-1252,
end lines with CRLF or LF, and name their columns loosely (case, accents, spaces, underscores, hyphens).
:func:`read_csv` never stops at the first problem: it returns the rows it could read together with every
problem found, numbered by the physical line of the file as a text editor shows it, so that callers can
refuse the whole file at once with a complete report.
"""

from __future__ import annotations

import csv
import io
import operator
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

__all__ = ["CsvFileError", "CsvTable", "RowError", "fold_accents", "normalize_header", "read_csv"]

_BOM = b"\xef\xbb\xbf"
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")
_DELIMITERS = (";", ",", "\t")  # order breaks ties
_STOP_WORDS = frozenset(["d", "de", "des", "du", "l", "la", "le", "les"])
_SEP_LINE_RE = re.compile(r"\s*sep=(.)\s*", re.IGNORECASE)

MIXED_ENCODING = "octets illisibles (encodage mixte ; enregistrez le fichier en UTF-8)"
UNREADABLE_BYTES = "octets illisibles"
NO_ROWS = "Le fichier ne contient aucune ligne."


@dataclass(frozen=True)
class RowError:
    """A problem on one line of a file."""

    line: int  # physical line number in the file, 1 = header line
    message: str  # French

    def __str__(self) -> str:
        return f"Ligne {self.line} : {self.message}"


@dataclass
class CsvTable:
    """The content of a CSV file: rows keyed by canonical column name, and the problems found."""

    rows: list[tuple[int, dict[str, str]]]
    errors: list[RowError]
    encoding: str  # 'utf-8', 'utf-8-sig' or 'cp1252' ('utf-16' for Excel's "Texte Unicode" export)
    delimiter: str
    found_columns: list[str] = field(default_factory=list)  # canonical columns present, in file order


class CsvFileError(ValueError):
    """The whole file is unusable (empty, not a CSV file, missing columns); str() is in French."""


def fold_accents(text: str) -> str:
    """``text`` without its accents, as plain ASCII (« Clé 4G » → « Cle 4G »); other non-ASCII is dropped."""
    return unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")


def normalize_header(name: str) -> str:
    """Return the canonical key of a header: lowercase ASCII words joined by '_' ('Numéro de série')."""
    text = name.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    text = fold_accents(text).lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _match_key(name: str) -> str:
    """Return the key used to compare headers: the canonical key without French articles/prepositions."""
    words = normalize_header(name).split("_")
    kept = [word for word in words if word not in _STOP_WORDS]
    return "_".join(kept or words)


def _unwrap_cell(value: str) -> str:
    """Strip a cell, remove Excel's ``="..."`` wrapping and turn line ends inside it into '\\n'."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) >= 3 and text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip()
    return text


def _decode(data: bytes) -> tuple[str, str, list[RowError]]:
    """Decode a file; return its text (physical lines preserved), the encoding and the undecodable lines."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Texte Unicode" export
        try:
            return data.decode("utf-16"), "utf-16", []
        except UnicodeDecodeError:
            raise CsvFileError("Le fichier est illisible : enregistrez-le au format CSV UTF-8.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if text.startswith("\ufeff"):
            return text[1:], "utf-8-sig", []
        return text, "utf-8", []

    has_bom = data.startswith(_BOM)
    lines = (data[len(_BOM) :] if has_bom else data).splitlines(keepends=True)
    utf8: list[str | None] = []
    for raw in lines:
        try:
            utf8.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            utf8.append(None)
    # A line whose non-ASCII bytes form valid UTF-8 is evidence that the file was meant to be UTF-8.
    multibyte = has_bom or any(
        decoded is not None and not raw.isascii() for raw, decoded in zip(lines, utf8, strict=True)
    )
    errors: list[RowError] = []
    parts: list[str] = []
    for number, (raw, decoded) in enumerate(zip(lines, utf8, strict=True), start=1):
        ending = raw[len(raw.rstrip(b"\r\n")) :].decode("ascii")
        if multibyte and decoded is not None:
            parts.append(decoded)
        elif not multibyte and not _CP1252_UNDEFINED.intersection(raw):
            parts.append(raw.decode("cp1252"))
        elif number == 1:
            # The header is only compared loosely: decode it as best we can rather than losing the file.
            parts.append(raw.decode("cp1252", errors="replace"))
        else:
            errors.append(RowError(number, MIXED_ENCODING if multibyte else UNREADABLE_BYTES))
            parts.append(ending)
    encoding = ("utf-8-sig" if has_bom else "utf-8") if multibyte else "cp1252"
    return "".join(parts), encoding, errors


def _detect_delimiter(header_line: str) -> str:
    """Return the one of ';', ',' and tab that appears most in the header line (';' on ties)."""
    return max(_DELIMITERS, key=header_line.count)


def _physical_lines(text: str) -> list[str]:
    """Split text into physical lines (CRLF, LF or CR), keeping their line ends."""
    return io.StringIO(text, newline="").readlines()


def _rows(lines: list[str], start: int, delimiter: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """Yield (first physical line, cells or None, error message) for each record from line index start."""
    reader = csv.reader(iter(lines[start:]), delimiter=delimiter, strict=True)
    consumed = 0
    while True:
        first_line = start + consumed + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = _csv_error_message(str(exc))
            consumed = reader.line_num
            yield first_line, None, message
            continue
        consumed = reader.line_num
        yield first_line, cells, ""


def _csv_error_message(error: str) -> str:
    """Translate an error of the csv module into French."""
    if "unexpected end of data" in error:
        return "guillemet ouvert mais jamais refermé : cette ligne et les suivantes sont illisibles"
    if "field limit" in error:
        return "champ trop long (guillemet non refermé ?)"
    if "expected after" in error:
        return "guillemet mal placé : un champ entre guillemets doit être suivi du séparateur"
    return "ligne mal formée"


def _map_header(header: list[str], columns: dict[str, set[str]]) -> dict[int, str]:
    """Map header positions to canonical column names; raise CsvFileError on duplicates."""
    aliases: dict[str, str] = {}
    for canonical, names in columns.items():
        for alias in {canonical, *names}:
            key = _match_key(alias)
            if aliases.setdefault(key, canonical) != canonical:
                raise ValueError(f"alias {alias!r} used for both {aliases[key]!r} and {canonical!r}")
    positions: dict[int, str] = {}
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        canonical = aliases.get(_match_key(_unwrap_cell(name)))
        if canonical is None:
            continue
        if canonical in seen:
            first, second = seen[canonical] + 1, index + 1
            raise CsvFileError(
                f"La colonne {canonical} apparaît plusieurs fois (colonnes {first} et {second})."
            )
        seen[canonical] = index
        positions[index] = canonical
    return positions


def read_csv(data: bytes, *, columns: dict[str, set[str]], required: set[str]) -> CsvTable:
    """Read an uploaded CSV file into rows keyed by canonical column name, with every problem by line."""
    unknown = required - columns.keys()
    if unknown:
        raise ValueError(f"required columns not declared in columns: {sorted(unknown)}")
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise CsvFileError(
            "Le fichier est un classeur Excel, pas un fichier CSV : enregistrez-le au format CSV."
        )

    text, encoding, errors = _decode(data)
    lines = _physical_lines(text)
    header_index = 0
    while header_index < len(lines) and not lines[header_index].strip():
        header_index += 1
    if header_index == len(lines):
        raise CsvFileError(NO_ROWS)

    header_line = lines[header_index]
    sep = _SEP_LINE_RE.fullmatch(header_line.rstrip("\r\n"))
    if sep is not None:  # Excel's 'sep=;' hint line
        delimiter = sep.group(1)
        header_index += 1
        if header_index == len(lines):
            raise CsvFileError(NO_ROWS)
        header_line = lines[header_index]
    else:
        delimiter = _detect_delimiter(header_line)

    records = _rows(lines, header_index, delimiter)
    header_number, header, header_error = next(records)
    if header is None:
        raise CsvFileError(f"La ligne d'en-tête (ligne {header_number}) est illisible : {header_error}.")
    positions = _map_header(header, columns)
    missing = [name for name in columns if name in required and name not in positions.values()]
    if missing:
        raise CsvFileError(f"Colonnes manquantes : {', '.join(missing)}")

    # Lines already reported as undecodable were replaced by blank lines: do not report them twice.
    rows: list[tuple[int, dict[str, str]]] = []
    make_row = row_maker(positions, columns)
    width = len(header)
    strip = str.strip
    for number, cells, message in records:
        if cells is None:
            errors.append(RowError(number, message))
            continue
        joined = "".join(cells)  # one look at the whole record spares most cells the full unwrapping
        if '="' in joined or "\r" in joined:
            values = [_unwrap_cell(cell) for cell in cells]
        else:
            values = list(map(strip, cells))
        if not any(values):
            continue
        if len(values) > width and any(values[width:]):
            errors.append(
                RowError(
                    number, f"trop de colonnes ({len(values)} valeurs pour {len(header)} colonnes d'en-tête)"
                )
            )
            continue
        rows.append((number, make_row(values)))
    errors.sort(key=lambda error: error.line)
    return finished_table(rows, errors, positions, encoding=encoding, delimiter=delimiter)


def keyed_row(values: list[str], positions: dict[int, str], columns: dict[str, set[str]]) -> dict[str, str]:
    """A row's values keyed by canonical column name ('' for a declared column the file lacks)."""
    row = dict.fromkeys(columns, "")
    for index, canonical in positions.items():
        if index < len(values):
            row[canonical] = values[index]
    return row


def row_maker(
    positions: dict[int, str], columns: dict[str, set[str]]
) -> Callable[[list[str]], dict[str, str]]:
    """``keyed_row`` for one file's header, quicker on the rows that have every cell of the header."""
    indexes = tuple(positions)
    if not indexes:
        return lambda values: keyed_row(values, positions, columns)
    names = tuple(positions.values())
    absent = [name for name in columns if name not in names]
    need = max(indexes) + 1
    pick = operator.itemgetter(*indexes)
    single = len(indexes) == 1

    def make(values: list[str]) -> dict[str, str]:
        if len(values) < need:
            return keyed_row(values, positions, columns)
        row = dict(zip(names, (pick(values),) if single else pick(values), strict=True))
        for name in absent:
            row[name] = ""
        return row

    return make


def finished_table(
    rows: list[tuple[int, dict[str, str]]],
    errors: list[RowError],
    positions: dict[int, str],
    *,
    encoding: str,
    delimiter: str,
) -> CsvTable:
    """The table read from a file, refused as empty when it has neither rows nor faulty lines."""
    if not rows and not errors:
        raise CsvFileError(NO_ROWS)
    return CsvTable(
        rows=rows,
        errors=errors,
        encoding=encoding,
        delimiter=delimiter,
        found_columns=[positions[index] for index in sorted(positions)],
    )
