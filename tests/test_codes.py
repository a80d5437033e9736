"""Tests of referential code validation and normalisation."""

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import logistique
from logistique.codes import (
    DEPARTMENTS,
    CodeError,
    normalize_commune,
    normalize_department,
    normalize_phone,
    normalize_qpv,
    normalize_region,
    normalize_uai,
    qpv_department,
    qpv_list_year,
    uai_check_letter,
    unwrap_excel,
)

DATA = Path(logistique.__file__).parent / "data"


def test_code_error_is_a_value_error_with_a_french_message() -> None:
    with pytest.raises(ValueError, match="Code de département inconnu : 99"):
        normalize_department("99")


# --- unwrap_excel ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("02691", "02691"),
        ("  02691 ", "02691"),
        ('="02691"', "02691"),
        (' ="02691" ', "02691"),
        ('="  02691 "', "02691"),
        ('"02691"', "02691"),
        ("\u00a002691\u202f", "02691"),  # non-breaking spaces from a French Excel
        ("", ""),
        ('=""', ""),
        ('"', '"'),
        ('a"b', 'a"b'),
    ],
)
def test_unwrap_excel(raw: str, expected: str) -> None:
    assert unwrap_excel(raw) == expected


# --- departments ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("59", "59"),
        ("02", "02"),
        ("2", "02"),
        ("1", "01"),
        (" 9 ", "09"),
        ("2A", "2A"),
        ("2a", "2A"),
        ("2b", "2B"),
        ('="02"', "02"),
        ('="2A"', "2A"),
        ("059", "59"),
        ("002", "02"),
        ("02A", "2A"),
        ("02b", "2B"),
        ("974", "974"),
        ("971", "971"),
        ("976", "976"),
        ("978", "978"),
        ("95", "95"),
        ("19", "19"),
        ("21", "21"),
    ],
)
def test_normalize_department_accepts(raw: str, expected: str) -> None:
    assert normalize_department(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "99",
        "96",
        "20",
        "020",
        "00",
        "0",
        "000",
        "2C",
        "97",
        "979",
        "970",
        "0974",
        "59000",
        "abc",
        "5 9",
        "-1",
    ],
)
def test_normalize_department_refuses(raw: str) -> None:
    with pytest.raises(CodeError, match="Code de département inconnu"):
        normalize_department(raw)


def test_normalize_department_message_gives_the_value() -> None:
    with pytest.raises(CodeError) as excinfo:
        normalize_department(" 99 ")
    assert str(excinfo.value) == "Code de département inconnu : 99"


@pytest.mark.parametrize("raw", ["", "   ", '=""'])
def test_normalize_department_refuses_empty(raw: str) -> None:
    with pytest.raises(CodeError, match="manquant"):
        normalize_department(raw)


def test_departments_count() -> None:
    # 94 metropolitan numbers (01-95 without 20) + 2A/2B + 971..978
    assert len(DEPARTMENTS) == 94 + 2 + 8


# --- regions ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("32", "32"), ("01", "01"), ("1", "01"), ("6", "06"), (" 84 ", "84"), ('="04"', "04"), ("94", "94")],
)
def test_normalize_region_accepts(raw: str, expected: str) -> None:
    assert normalize_region(raw) == expected


@pytest.mark.parametrize("raw", ["05", "5", "31", "00", "0", "100", "032", "ab", "2A"])
def test_normalize_region_refuses(raw: str) -> None:
    with pytest.raises(CodeError, match="Code de région inconnu"):
        normalize_region(raw)


def test_normalize_region_refuses_empty() -> None:
    with pytest.raises(CodeError, match="manquant"):
        normalize_region(" ")


# --- QPV ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("QP059001", "QP059001"),
        ("qp059001", "QP059001"),
        (" QP02A001 ", "QP02A001"),
        ("QP971001", "QP971001"),
        ("QP974012", "QP974012"),
        ("QN05901M", "QN05901M"),
        ("qn05901m", "QN05901M"),
        ("QN02A01N", "QN02A01N"),
        ("QN02B03C", "QN02B03C"),
        ("QN97101M", "QN97101M"),
        ("QN97601I", "QN97601I"),
        ('="QN05901M"', "QN05901M"),
        ("QN 059 01M", "QN05901M"),
    ],
)
def test_normalize_qpv_accepts(raw: str, expected: str) -> None:
    assert normalize_qpv(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "QP59001",  # department not padded
        "QP0590011",
        "QP05900M",  # 2015 codes end with 3 digits
        "QN059001",  # 2024 codes end with a letter
        "QN0591M",
        "QX059001",
        "059001",
        "QN5901M",
        "QN05901MM",
        "QP059-01",
    ],
)
def test_normalize_qpv_refuses_bad_shape(raw: str) -> None:
    with pytest.raises(CodeError) as excinfo:
        normalize_qpv(raw)
    message = str(excinfo.value)
    assert message.startswith("Code QPV invalide : ")
    assert (
        "attendu QP + département sur 3 caractères + 3 chiffres, ou QN + département + 2 chiffres + 1 lettre"
        in (message)
    )


@pytest.mark.parametrize(
    "raw", ["QP099001", "QP020001", "QN02C01M", "QN2A001M", "QN97901M", "QP000001", "QN59A01M"]
)
def test_normalize_qpv_refuses_unknown_department(raw: str) -> None:
    with pytest.raises(CodeError, match=r"Code QPV invalide : .*département .* inconnu"):
        normalize_qpv(raw)


def test_normalize_qpv_refuses_empty() -> None:
    with pytest.raises(CodeError, match="manquant"):
        normalize_qpv("")


@pytest.mark.parametrize(
    ("code", "department", "year"),
    [
        ("QN05901M", "59", 2024),
        ("QP059001", "59", 2015),
        ("QP02A001", "2A", 2015),
        ("QN02B01N", "2B", 2024),
        ("QN97101M", "971", 2024),
        ("QP974001", "974", 2015),
        ("QN00201M", "02", 2024),
        ("qn00201m", "02", 2024),
    ],
)
def test_qpv_department_and_year(code: str, department: str, year: int) -> None:
    assert qpv_department(code) == department
    assert qpv_list_year(code) == year


def test_qpv_department_refuses_invalid_code() -> None:
    with pytest.raises(CodeError):
        qpv_department("QX000000")


# --- UAI ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0750654D", "0750654D"),
        ("0750654d", "0750654D"),
        (' ="0750654D" ', "0750654D"),
        ("0000000A", "0000000A"),
    ],
)
def test_normalize_uai_accepts(raw: str, expected: str) -> None:
    assert normalize_uai(raw) == expected


def test_normalize_uai_wrong_check_letter() -> None:
    with pytest.raises(CodeError) as excinfo:
        normalize_uai("0750654A")
    assert str(excinfo.value) == "UAI invalide : la lettre de contrôle de 0750654A devrait être D"


@pytest.mark.parametrize(
    "raw", ["750654D", "07506540", "0750654", "07506544D", "075O654D", "D0750654", "0750654-"]
)
def test_normalize_uai_bad_shape(raw: str) -> None:
    with pytest.raises(CodeError) as excinfo:
        normalize_uai(raw)
    message = str(excinfo.value)
    assert message.startswith("UAI invalide : ")
    assert "7 chiffres suivis d'une lettre" in message
    assert "lettre de contrôle" not in message


def test_normalize_uai_refuses_empty() -> None:
    with pytest.raises(CodeError, match="UAI manquant"):
        normalize_uai("")


@given(st.integers(min_value=0, max_value=9_999_999))
def test_uai_any_number_with_its_letter_is_accepted(number: int) -> None:
    digits = f"{number:07d}"
    letter = "ABCDEFGHJKLMNPRSTUVWXYZ"[number % 23]
    assert uai_check_letter(digits) == letter
    assert normalize_uai(digits + letter) == digits + letter
    assert normalize_uai(digits + letter.lower()) == digits + letter


@given(st.integers(min_value=0, max_value=9_999_999), st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
def test_uai_any_other_letter_is_refused(number: int, letter: str) -> None:
    digits = f"{number:07d}"
    expected = "ABCDEFGHJKLMNPRSTUVWXYZ"[number % 23]
    if letter == expected:
        return
    with pytest.raises(CodeError, match=f"devrait être {expected}$"):
        normalize_uai(digits + letter)


# --- communes ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("02691", "02691"),
        ("2691", "02691"),
        ('="02691"', "02691"),
        (" 59350 ", "59350"),
        ("1053", "01053"),
        ("2A004", "2A004"),
        ("2a004", "2A004"),
        ("2B033", "2B033"),
        ("97411", "97411"),
        ("97101", "97101"),
        ("97611", "97611"),
        ("97801", "97801"),
        ("75056", "75056"),
        ("95680", "95680"),
    ],
)
def test_normalize_commune_accepts(raw: str, expected: str) -> None:
    assert normalize_commune(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "691",
        "026910",
        "20004",
        "2C004",
        "2A04",
        "99001",
        "96001",
        "00001",
        "59000",
        "97900",
        "97400",
        "abcde",
    ],
)
def test_normalize_commune_refuses(raw: str) -> None:
    with pytest.raises(CodeError, match="Code commune invalide"):
        normalize_commune(raw)


def test_normalize_commune_refuses_several_communes_in_one_cell() -> None:
    with pytest.raises(CodeError, match="Code commune invalide : 94017;94019"):
        normalize_commune("94017;94019")


def test_normalize_commune_refuses_empty() -> None:
    with pytest.raises(CodeError, match="manquant"):
        normalize_commune('=""')


# --- phone numbers ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06 12 34 56 78", "06 12 34 56 78"),
        ("06.12.34.56.78", "06 12 34 56 78"),
        ("06-12-34-56-78", "06 12 34 56 78"),
        ("0612345678", "06 12 34 56 78"),
        ("+33 6 12 34 56 78", "06 12 34 56 78"),
        ("+33612345678", "06 12 34 56 78"),
        ("0033612345678", "06 12 34 56 78"),
        ("0033 6 12 34 56 78", "06 12 34 56 78"),
        ("+33 (0)6 12 34 56 78", "06 12 34 56 78"),
        ("+33 06 12 34 56 78", "06 12 34 56 78"),
        ("33612345678", "06 12 34 56 78"),  # Excel drops the '+'
        ("612345678", "06 12 34 56 78"),  # Excel drops the leading zero
        ('="0612345678"', "06 12 34 56 78"),
        ("03 23 45 67 89", "03 23 45 67 89"),
        ("09 70 00 00 00", "09 70 00 00 00"),
        ("\u00a006\u00a012\u00a034\u00a056\u00a078", "06 12 34 56 78"),
        ("+262 692 12 34 56", "06 92 12 34 56"),
        ("+262 262 12 34 56", "02 62 12 34 56"),
        ("00262692123456", "06 92 12 34 56"),
        ("262692123456", "06 92 12 34 56"),
        ("+590 690 12 34 56", "06 90 12 34 56"),
        ("+594 694 12 34 56", "06 94 12 34 56"),
        ("+596 696 12 34 56", "06 96 12 34 56"),
        ("+269 639 12 34 56", "06 39 12 34 56"),
        ("0692 12 34 56", "06 92 12 34 56"),
    ],
)
def test_normalize_phone_accepts(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "06 12 34 56",
        "06 12 34 56 78 9",
        "0012345678",
        "00 12 34 56 78",
        "+33 6 12 34 56",
        "+33 6 12 34 56 78 9",
        "+44 20 7946 0958",
        "+1 202 555 0100",
        "06 12 34 56 7A",
        "téléphone",
        "+33 6 12 34 56 7a",
        "12",
    ],
)
def test_normalize_phone_refuses(raw: str) -> None:
    with pytest.raises(CodeError, match="Numéro de téléphone invalide : "):
        normalize_phone(raw)


def test_normalize_phone_message_gives_the_value() -> None:
    with pytest.raises(CodeError) as excinfo:
        normalize_phone(" 06 12 ")
    assert str(excinfo.value).startswith("Numéro de téléphone invalide : 06 12 (")


def test_normalize_phone_refuses_empty() -> None:
    with pytest.raises(CodeError, match="manquant"):
        normalize_phone("  ")


# --- the shipped reference data ---


def _reference_rows(name: str) -> list[dict[str, str]]:
    path = DATA / name
    if not path.exists():
        pytest.fail(f"{name} is not shipped in logistique/data")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_qpv_of_the_2024_list_is_valid() -> None:
    rows = _reference_rows("qpv_2024_france.csv")
    assert len(rows) > 1000
    for row in rows:
        assert normalize_qpv(row["code_qp"]) == row["code_qp"]
        assert qpv_list_year(row["code_qp"]) == 2024
        assert qpv_department(row["code_qp"]) == normalize_department(row["insee_dep"]) == row["insee_dep"]
        assert normalize_region(row["insee_reg"]) == row["insee_reg"]
        for commune in row["insee_com"].split(";"):
            assert normalize_commune(commune) == commune


def test_every_commune_and_cite_educative_is_valid() -> None:
    for row in _reference_rows("hdf_communes_cog.csv"):
        assert normalize_commune(row["insee_com"]) == row["insee_com"]
        assert normalize_department(row["insee_dep"]) == row["insee_dep"]
    for row in _reference_rows("cites_educatives_anct_2024.csv"):
        assert normalize_department(row["insee_dep"]) == row["insee_dep"]
        for commune in row["insee_com"].split(";"):
            assert normalize_commune(commune) == commune
