"""Tests of the reading of CSV files uploaded by users."""

import pytest

from logistique.csvfiles import CsvFileError, CsvTable, RowError, normalize_header, read_csv

STOCK_COLUMNS: dict[str, set[str]] = {
    "numero_serie": {"numero de serie", "n° de série", "serial"},
    "type": set(),
    "modele": set(),
    "etiquette": {"asset tag"},
    "etat": set(),
}
STOCK_REQUIRED = {"numero_serie", "type", "modele"}

MIXED = "octets illisibles (encodage mixte ; enregistrez le fichier en UTF-8)"


def read_stock(data: bytes) -> CsvTable:
    return read_csv(data, columns=STOCK_COLUMNS, required=STOCK_REQUIRED)


def stock_row(**values: str) -> dict[str, str]:
    return {**dict.fromkeys(STOCK_COLUMNS, ""), **values}


def lines(table: CsvTable) -> list[int]:
    return [line for line, _row in table.rows]


# --- normalize_header ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Numéro de série ", "numero_de_serie"),
        ("NUMERO_SERIE", "numero_serie"),
        ("numero serie", "numero_serie"),
        ("numero-serie", "numero_serie"),
        ("  Numéro  --  série__", "numero_serie"),
        ("N° de série", "n_de_serie"),
        ("Téléphone (responsable)", "telephone_responsable"),
        ("Date d'achat", "date_d_achat"),
        ("resp.nom", "resp_nom"),
        ("ÉTAT", "etat"),
        ("Cœur", "coeur"),
        ("\ufeffcode_qp", "code_qp"),
        ("Modèle\u00a0", "modele"),
        ("", ""),
    ],
)
def test_normalize_header(raw: str, expected: str) -> None:
    assert normalize_header(raw) == expected


# --- a file as a French Excel writes it ---


def test_french_excel_utf8_with_bom_crlf_and_semicolons() -> None:
    data = (
        "\ufeffNuméro de série;Type;Modèle;État\r\n"
        "SN-001;tablette;Lenovo Tab M10;Reconditionné\r\n"
        'SN-002;ordinateur;"Dell; Latitude 5490";neuf\r\n'
        ";;;\r\n"
        ";;;\r\n"
    ).encode()
    table = read_stock(data)
    assert table.encoding == "utf-8-sig"
    assert table.delimiter == ";"
    assert table.errors == []
    assert table.rows == [
        (2, stock_row(numero_serie="SN-001", type="tablette", modele="Lenovo Tab M10", etat="Reconditionné")),
        (3, stock_row(numero_serie="SN-002", type="ordinateur", modele="Dell; Latitude 5490", etat="neuf")),
    ]
    assert table.found_columns == ["numero_serie", "type", "modele", "etat"]


def test_french_excel_cp1252() -> None:
    data = "NUMERO_SERIE;TYPE;MODELE;ETAT\r\nSN-1;tablette;Modèle à écran;Reconditionné\r\n".encode("cp1252")
    table = read_stock(data)
    assert table.encoding == "cp1252"
    assert table.errors == []
    assert table.rows[0][1]["modele"] == "Modèle à écran"
    assert table.rows[0][1]["etat"] == "Reconditionné"


def test_cp1252_specific_characters() -> None:
    data = "numero_serie;type;modele\nSN-1;tablette;Œuvre – “spéciale” …\n".encode("cp1252")
    table = read_stock(data)
    assert table.encoding == "cp1252"
    assert table.rows[0][1]["modele"] == "Œuvre – “spéciale” …"


def test_utf8_without_bom_lf_and_commas() -> None:
    data = "numero_serie,type,modele\nSN-1,tablette,Modèle\nSN-2,ordinateur,x\n".encode()
    table = read_stock(data)
    assert table.encoding == "utf-8"
    assert table.delimiter == ","
    assert lines(table) == [2, 3]


def test_tab_separated() -> None:
    table = read_stock(b"numero_serie\ttype\tmodele\nSN-1\ttablette\tM10, 64 Go\n")
    assert table.delimiter == "\t"
    assert table.rows[0][1]["modele"] == "M10, 64 Go"


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        (b"a;b;c", ";"),
        (b"a,b,c", ","),
        (b"a\tb\tc", "\t"),
        (b"a;b,x;c", ";"),
        (b"a,b;c", ";"),  # tie: ';' wins
        (b"a,b\tc", ","),  # tie: ',' before tab
        (b"a", ";"),  # a single column
    ],
)
def test_delimiter_detection(header: bytes, delimiter: str) -> None:
    table = read_csv(header + b"\n1\n", columns={"a": set()}, required=set())
    assert table.delimiter == delimiter


def test_excel_sep_hint_line() -> None:
    table = read_stock(b"sep=,\r\nnumero_serie,type,modele\r\nSN-1,tablette,M10\r\n")
    assert table.delimiter == ","
    assert table.rows == [(3, stock_row(numero_serie="SN-1", type="tablette", modele="M10"))]


def test_excel_wrapped_cells_are_unwrapped() -> None:
    data = b'numero_serie;type;modele;etiquette\n="00123";tablette;="M10";  ="02691"  \n'
    row = read_stock(data).rows[0][1]
    assert row["numero_serie"] == "00123"
    assert row["modele"] == "M10"
    assert row["etiquette"] == "02691"


def test_excel_wrapped_cells_written_with_csv_quoting() -> None:
    # how Excel actually quotes ="02691" inside a CSV file
    row = read_stock(b'numero_serie;type;modele\n"=""02691""";tablette;m\n').rows[0][1]
    assert row["numero_serie"] == "02691"


def test_values_are_stripped() -> None:
    row = read_stock(b"numero_serie ; type ; modele \n  SN-1  ; tablette ;\tm \n").rows[0][1]
    assert row == {"numero_serie": "SN-1", "type": "tablette", "modele": "m", "etiquette": "", "etat": ""}


# --- headers ---


@pytest.mark.parametrize(
    "header",
    [
        "numero_serie",
        "Numéro de série",
        "NUMERO_SERIE",
        "numero serie",
        "Numero-Serie",
        "N° de série",
        "Serial",
        " numéro   de  série ",
        '"Numéro de série"',
    ],
)
def test_header_variants(header: str) -> None:
    data = f"{header};Type;MODÈLE\nSN-1;tablette;m\n".encode()
    assert read_stock(data).rows[0][1]["numero_serie"] == "SN-1"


def test_unknown_columns_are_ignored_and_order_does_not_matter() -> None:
    data = b"commentaire;modele;autre;numero_serie;type\nblabla;m;x;SN-1;tablette\n"
    table = read_stock(data)
    assert table.rows[0][1] == stock_row(numero_serie="SN-1", type="tablette", modele="m")
    assert table.found_columns == ["modele", "numero_serie", "type"]


def test_missing_required_columns() -> None:
    with pytest.raises(CsvFileError) as excinfo:
        read_stock(b"type;etat\ntablette;neuf\n")
    assert str(excinfo.value) == "Colonnes manquantes : numero_serie, modele"


def test_missing_optional_column_gives_empty_values() -> None:
    row = read_stock(b"numero_serie;type;modele\nSN-1;t;m\n").rows[0][1]
    assert row["etiquette"] == ""
    assert row["etat"] == ""


def test_column_given_twice_is_refused() -> None:
    with pytest.raises(CsvFileError, match="La colonne numero_serie apparaît plusieurs fois"):
        read_stock(b"numero_serie;type;modele;Numero de serie\nA;t;m;B\n")


def test_conflicting_aliases_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="alias"):
        read_csv(b"a\n1\n", columns={"a": {"x"}, "b": {"X"}}, required=set())


def test_required_must_be_declared() -> None:
    with pytest.raises(ValueError, match="required"):
        read_csv(b"a\n1\n", columns={"a": set()}, required={"b"})


def test_header_in_cp1252_with_utf8_data() -> None:
    data = "Numéro de série;type;modèle\n".encode("cp1252") + "SN-1;tablette;Modèle\n".encode()
    table = read_stock(data)
    assert table.errors == []
    assert table.encoding == "utf-8"
    assert table.rows[0][1]["modele"] == "Modèle"


# --- empty files ---


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xef\xbb\xbf",
        b"\r\n\r\n",
        b"numero_serie;type;modele",
        b"numero_serie;type;modele\r\n",
        b"\xef\xbb\xbfnumero_serie;type;modele\r\n;;\r\n;;\r\n\r\n",
        b"sep=;\r\n",
    ],
)
def test_empty_file(data: bytes) -> None:
    with pytest.raises(CsvFileError) as excinfo:
        read_stock(data)
    assert str(excinfo.value) == "Le fichier ne contient aucune ligne."


def test_missing_columns_reported_before_emptiness() -> None:
    with pytest.raises(CsvFileError, match="Colonnes manquantes"):
        read_stock(b"a;b;c\n")


@pytest.mark.parametrize("magic", [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"])
def test_excel_workbook_is_refused(magic: bytes) -> None:
    with pytest.raises(CsvFileError, match="classeur Excel"):
        read_stock(magic + b"\x00\x01binary")


def test_leading_blank_lines_keep_physical_numbers() -> None:
    table = read_stock(b"\n\nnumero_serie;type;modele\nSN-1;t;m\n")
    assert lines(table) == [4]


# --- empty rows, extra cells ---


def test_trailing_and_inner_empty_rows_are_skipped() -> None:
    data = b"numero_serie;type;modele\r\nSN-1;t;m\r\n;;\r\n\r\n ; ;\r\nSN-2;t;m\r\n;;;;;;\r\n;;\r\n"
    table = read_stock(data)
    assert table.errors == []
    assert lines(table) == [2, 6]


def test_short_rows_are_padded() -> None:
    row = read_stock(b"numero_serie;type;modele;etat\nSN-1;t\n").rows[0][1]
    assert row["modele"] == ""
    assert row["etat"] == ""


def test_too_many_cells() -> None:
    data = b"numero_serie;type;modele\nSN-1;t;m\nSN-2;t;m;extra\nSN-3;t;m;;\n"
    table = read_stock(data)
    assert table.errors == [RowError(3, "trop de colonnes (4 valeurs pour 3 colonnes d'en-tête)")]
    assert lines(table) == [2, 4]  # empty extra cells are harmless
    assert table.errors[0].message.startswith("trop de colonnes")
    assert str(table.errors[0]) == "Ligne 3 : trop de colonnes (4 valeurs pour 3 colonnes d'en-tête)"


# --- line numbers with quoted fields ---


def test_quoted_field_with_newlines_keeps_physical_line_numbers() -> None:
    data = (
        b"numero_serie;type;modele\r\n"
        b'SN-1;t;"ligne un\r\nligne deux\r\nligne trois"\r\n'
        b"SN-2;t;m\r\n"
        b'SN-3;t;"a;b"\r\n'
        b"SN-4;t;m;trop\r\n"
    )
    table = read_stock(data)
    assert lines(table) == [2, 5, 6]
    assert table.rows[0][1]["modele"] == "ligne un\nligne deux\nligne trois"
    assert table.rows[2][1]["modele"] == "a;b"
    assert table.errors == [RowError(7, "trop de colonnes (4 valeurs pour 3 colonnes d'en-tête)")]


def test_quoted_field_with_doubled_quotes() -> None:
    row = read_stock(b'numero_serie;type;modele\nSN-1;t;"Tab ""Pro"" 11"\n').rows[0][1]
    assert row["modele"] == 'Tab "Pro" 11'


def test_unclosed_quote_is_reported_where_it_starts() -> None:
    data = b'numero_serie;type;modele\nSN-1;t;m\nSN-2;t;"oups\nSN-3;t;m\nSN-4;t;m\n'
    table = read_stock(data)
    assert lines(table) == [2]
    assert [error.line for error in table.errors] == [3]
    assert "guillemet" in table.errors[0].message


def test_misplaced_quote_is_reported_and_reading_goes_on() -> None:
    data = b'numero_serie;type;modele\nSN-1;t;"m"x\nSN-2;t;m\n'
    table = read_stock(data)
    assert lines(table) == [3]
    assert [error.line for error in table.errors] == [2]
    assert "guillemet" in table.errors[0].message


def test_bare_cr_line_ends() -> None:
    table = read_stock(b"numero_serie;type;modele\rSN-1;t;m\rSN-2;t;m\r")
    assert lines(table) == [2, 3]


# --- encodings ---


def test_excel_unicode_text_export_is_utf16() -> None:
    data = "Numéro de série\tType\tModèle\r\nSN-1\ttablette\tReconditionné\r\n".encode("utf-16")
    table = read_stock(data)
    assert table.encoding == "utf-16"
    assert table.delimiter == "\t"
    assert table.rows == [(2, stock_row(numero_serie="SN-1", type="tablette", modele="Reconditionné"))]


def test_broken_utf16_is_refused() -> None:
    with pytest.raises(CsvFileError, match="illisible"):
        read_stock(b"\xff\xfea\x00b")


def test_mixed_encodings_report_the_right_lines() -> None:
    data = (
        b"numero_serie;type;modele;etat\r\n"
        + "SN-1;tablette;m;Reconditionné\r\n".encode()
        + b'SN-2;tablette;"multi\r\nligne";neuf\r\n'
        + "SN-3;tablette;m;Reconditionné\r\n".encode("cp1252")
        + "SN-4;tablette;m;Reconditionné\r\n".encode()
        + "SN-5;tablette;m;Reconditionné\r\n".encode("cp1252")
    )
    table = read_stock(data)
    assert table.encoding == "utf-8"
    assert table.errors == [RowError(5, MIXED), RowError(7, MIXED)]
    assert lines(table) == [2, 3, 6]
    assert table.rows[2][1]["etat"] == "Reconditionné"


def test_mixed_encodings_with_bom() -> None:
    data = b"\xef\xbb\xbfnumero_serie;type;modele\n" + "SN-1;t;Modèle\n".encode("cp1252") + b"SN-2;t;m\n"
    table = read_stock(data)
    assert table.encoding == "utf-8-sig"
    assert table.errors == [RowError(2, MIXED)]
    assert lines(table) == [3]


def test_cp1252_undefined_bytes() -> None:
    data = b"numero_serie;type;modele\nSN-1;t;Mod\xe8le\nSN-2;t;x\x81y\nSN-3;t;x\x9dy\n"
    table = read_stock(data)
    assert table.encoding == "cp1252"
    assert table.errors == [RowError(3, "octets illisibles"), RowError(4, "octets illisibles")]
    assert table.rows == [(2, stock_row(numero_serie="SN-1", type="t", modele="Modèle"))]


def test_file_with_only_unreadable_rows_returns_errors_not_emptiness() -> None:
    table = read_stock(b"numero_serie;type;modele\nSN-1;t;\x81\n")
    assert table.rows == []
    assert table.errors == [RowError(2, "octets illisibles")]


def test_errors_are_sorted_by_line() -> None:
    data = (
        b"numero_serie;type;modele\n"
        + b"SN-1;t;m;extra\n"
        + "SN-2;t;é\n".encode()
        + "SN-3;t;é\n".encode("cp1252")
    )
    table = read_stock(data)
    assert [error.line for error in table.errors] == [2, 4]


def test_row_error_is_frozen() -> None:
    error = RowError(2, "x")
    with pytest.raises(AttributeError):
        error.line = 3  # type: ignore[misc]


# --- a pupils file ---


def test_pupils_file_with_several_values_in_a_cell() -> None:
    columns = {
        name: set()
        for name in (
            "prenom",
            "nom",
            "niveau",
            "uai",
            "qpv",
            "responsable_nom",
            "responsable_telephone",
            "besoins",
        )
    }
    data = (
        "\ufeffPrénom;Nom;Niveau;UAI;QPV;Responsable - nom;Responsable - téléphone;Besoins\r\n"
        'Inès;Martin;6e;="0590001A";QN05901M;Mme Martin;="0612345678";"tablette, connexion"\r\n'
    ).encode()
    table = read_csv(data, columns=columns, required=set(columns))
    assert table.rows[0][1] == {
        "prenom": "Inès",
        "nom": "Martin",
        "niveau": "6e",
        "uai": "0590001A",
        "qpv": "QN05901M",
        "responsable_nom": "Mme Martin",
        "responsable_telephone": "0612345678",
        "besoins": "tablette, connexion",
    }
