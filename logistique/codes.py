"""Validation and normalisation of referential codes (INSEE, QPV, UAI, phone numbers).

Every ``normalize_*`` function returns the canonical form of a code or raises :class:`CodeError`, whose
message is a French sentence meant to be shown to users. Inputs may come from Excel exports: surrounding
spaces, ``="02691"`` wrapping, lost leading zeros and lowercase letters are tolerated.
"""

from __future__ import annotations

import re

__all__ = [
    "DEPARTMENTS",
    "REGIONS",
    "CodeError",
    "normalize_commune",
    "normalize_department",
    "normalize_phone",
    "normalize_qpv",
    "normalize_region",
    "normalize_uai",
    "qpv_department",
    "qpv_list_year",
    "unwrap_excel",
]


class CodeError(ValueError):
    """A code is invalid; str() is a French sentence giving the reason."""


#: INSEE department codes: metropolitan France, Corsica, the five overseas departments (971 to 974, 976) and
#: the overseas collectivities that the official geographic code numbers like departments (975
#: Saint-Pierre-et-Miquelon, 977 Saint-Barthélemy, 978 Saint-Martin, which has a cité éducative).
DEPARTMENTS: frozenset[str] = frozenset(
    [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B"] + [str(n) for n in range(971, 979)]
)

#: INSEE region codes (2016 regions).
REGIONS: frozenset[str] = frozenset(
    [
        "01",
        "02",
        "03",
        "04",
        "06",
        "11",
        "24",
        "27",
        "28",
        "32",
        "44",
        "52",
        "53",
        "75",
        "76",
        "84",
        "93",
        "94",
    ]
)

_UAI_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"

#: Overseas country calling codes whose numbers become national numbers "0" + 9 digits.
_OVERSEAS_CALLING_CODES = ("262", "269", "590", "594", "596")

_SPACES = re.compile(r"\s+")
_UAI_RE = re.compile(r"[0-9]{7}[A-Z]")
_QPV_RE = re.compile(r"(QP|QN)([0-9A-Z]{3})([0-9]{2})([0-9A-Z])")
_QPV_EXPECTED = (
    "attendu QP + département sur 3 caractères + 3 chiffres, ou QN + département + 2 chiffres + 1 lettre"
)


def unwrap_excel(value: str) -> str:
    """Strip surrounding spaces, Excel's ``="..."`` wrapping and plain surrounding double quotes."""
    text = value.strip()
    if len(text) >= 3 and text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip()
    elif len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1].strip()
    return text


def _clean(value: str) -> str:
    """Unwrap an Excel cell and uppercase it."""
    if value.isascii() and value.isalnum():  # nothing to unwrap: the usual case, once per row of an import
        return value.upper()
    return unwrap_excel(value).upper()


def _compact(value: str) -> str:
    """An Excel cell unwrapped, uppercased, without any space."""
    text = _clean(value)
    return text if text.isalnum() else _SPACES.sub("", text)


def _department_or_none(text: str) -> str | None:
    """Return the canonical department code for an already cleaned text, or None."""
    if len(text) == 1 and text.isdigit():
        text = "0" + text
    elif len(text) == 3 and text.startswith("0"):
        text = text[1:]
    return text if text in DEPARTMENTS else None


def normalize_department(value: str) -> str:
    """Return the INSEE department code ('02', '2A', '974'), restoring lost zeros and 3-character padding."""
    text = _clean(value)
    if not text:
        raise CodeError("Code de département manquant.")
    department = _department_or_none(text)
    if department is None:
        raise CodeError(f"Code de département inconnu : {text}")
    return department


def normalize_region(value: str) -> str:
    """Return the INSEE region code ('32', '01'), restoring a lost leading zero."""
    text = _clean(value)
    if not text:
        raise CodeError("Code de région manquant.")
    if len(text) == 1 and text.isdigit():
        text = "0" + text
    if text not in REGIONS:
        raise CodeError(f"Code de région inconnu : {text}")
    return text


def normalize_qpv(value: str) -> str:
    """Return a QPV code of the 2015 list (QP059001) or of the 2024 list (QN05901M), uppercased."""
    text = _compact(value)
    if not text:
        raise CodeError("Code QPV manquant.")
    match = _QPV_RE.fullmatch(text)
    if match is None:
        raise CodeError(f"Code QPV invalide : {text} ({_QPV_EXPECTED})")
    prefix, department, _order, last = match.groups()
    if (prefix == "QP" and not last.isdigit()) or (prefix == "QN" and not last.isalpha()):
        raise CodeError(f"Code QPV invalide : {text} ({_QPV_EXPECTED})")
    if _department_or_none(department) is None:
        raise CodeError(f"Code QPV invalide : {text} (département {department} inconnu)")
    return text


def qpv_department(code: str) -> str:
    """Return the department code embedded in a QPV code ('QN05901M' -> '59', 'QN97101M' -> '971')."""
    normalized = normalize_qpv(code)
    return normalize_department(normalized[2:5])


def qpv_list_year(code: str) -> int:
    """Return the year of the QPV list a code belongs to: 2015 for QP codes, 2024 for QN codes."""
    return 2015 if normalize_qpv(code).startswith("QP") else 2024


def uai_check_letter(digits: str) -> str:
    """Return the check letter of a UAI from its 7 digits."""
    return _UAI_LETTERS[int(digits) % 23]


def normalize_uai(value: str) -> str:
    """Return a school identifier (UAI): 7 digits and the right check letter, uppercased."""
    text = _compact(value)
    if not text:
        raise CodeError("UAI manquant.")
    if _UAI_RE.fullmatch(text) is None:
        raise CodeError(
            f"UAI invalide : {text} (attendu 7 chiffres suivis d'une lettre, par exemple 0750654D)"
        )
    expected = uai_check_letter(text[:7])
    if text[7] != expected:
        raise CodeError(f"UAI invalide : la lettre de contrôle de {text} devrait être {expected}")
    return text


def normalize_commune(value: str) -> str:
    """Return the 5-character INSEE commune code ('02691', '2A004', '97411'), restoring a lost zero."""
    text = _compact(value)
    if not text:
        raise CodeError("Code commune manquant.")
    if len(text) == 4 and text.isdigit():
        text = "0" + text
    valid = False
    if len(text) == 5:
        if text[:2] in ("2A", "2B"):
            valid = text[2:].isdigit() and text[2:] != "000"
        elif text.isdigit() and text.startswith("97"):
            valid = text[:3] in DEPARTMENTS and text[3:] != "00"
        elif text.isdigit():
            valid = text[:2] in DEPARTMENTS and text[2:] != "000"
    if not valid:
        raise CodeError(
            f"Code commune invalide : {text} (attendu 5 caractères : département puis numéro, "
            "par exemple 02691 ou 2A004)"
        )
    return text


_PHONE_SEPARATORS = re.compile(r"[\s.\-/()]")


def normalize_phone(value: str) -> str:
    """Return a French phone number in national form grouped by two digits ('06 12 34 56 78')."""
    if len(value) == 10 and value.isascii() and value.isdigit() and value[0] == "0" and value[1] != "0":
        # the common case, as a file holds it (a bulk import calls this once per row)
        return f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8:]}"
    raw = unwrap_excel(value)
    if not raw:
        raise CodeError("Numéro de téléphone manquant.")
    invalid = f"Numéro de téléphone invalide : {raw} (attendu 10 chiffres, par exemple 06 12 34 56 78)"
    text = _PHONE_SEPARATORS.sub("", raw.replace("(0)", ""))
    international: str | None = None
    national: str | None = None
    if text.startswith("+"):
        international = text[1:]
    elif text.startswith("00"):
        international = text[2:]
    elif text.isdigit() and len(text) > 10:
        international = text  # Excel turns '+33612345678' into the number 33612345678
    elif text.isdigit():
        national = "0" + text if len(text) == 9 and not text.startswith("0") else text
    if international is not None:
        if not international.isdigit():
            raise CodeError(invalid)
        for calling_code in ("33", *_OVERSEAS_CALLING_CODES):
            if international.startswith(calling_code):
                rest = international[len(calling_code) :]
                if len(rest) == 10 and rest.startswith("0"):  # '+33 0 6 ...': a stray national zero
                    rest = rest[1:]
                if len(rest) == 9:
                    national = "0" + rest
                break
        else:
            raise CodeError(
                f"Numéro de téléphone invalide : {raw} (seuls les numéros français sont acceptés)"
            )
    if national is None or len(national) != 10 or not national.isdigit() or national[1] == "0":
        raise CodeError(invalid)
    return " ".join(national[i : i + 2] for i in range(0, 10, 2))
