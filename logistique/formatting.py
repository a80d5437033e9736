"""French display of dates, amounts and numbers (Jinja filters), and parsing of amounts typed in forms."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from flask import Flask

PARIS = ZoneInfo("Europe/Paris")
NNBSP = "\u202f"  # narrow no-break space: thousands separator and before « % » in French typography
NBSP = "\u00a0"  # no-break space: before « € »
EMPTY = "—"

Number = int | float | Decimal


def to_paris(dt: datetime) -> datetime:
    """Return ``dt`` in Europe/Paris time; naive datetimes are taken as UTC (how the database stores them)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(PARIS)


def date_fr(d: date | datetime | None) -> str:
    """Format a date as ``28/11/2026``; a datetime is first converted to Paris time; None gives « — »."""
    if d is None:
        return EMPTY
    if isinstance(d, datetime):
        d = to_paris(d)
    return f"{d.day:02d}/{d.month:02d}/{d.year:04d}"


def datetime_fr(dt: datetime | date | None) -> str:
    """Format a datetime as ``28/11/2026 à 14:05`` in Paris time (naive means UTC); None gives « — »."""
    if dt is None:
        return EMPTY
    if not isinstance(dt, datetime):
        return date_fr(dt)
    local = to_paris(dt)
    return f"{date_fr(local)} à {local.hour:02d}:{local.minute:02d}"


def _group(digits: str) -> str:
    """Insert a narrow no-break space every three digits from the right."""
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return NNBSP.join(groups)


def _decimal_fr(value: Decimal, decimals: int) -> str:
    """Round half up to ``decimals`` places and write with grouped thousands and a decimal comma."""
    quantum = Decimal(1).scaleb(-decimals)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""  # no « -0 »: a zero compares equal to 0 whatever its sign
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    text = sign + _group(whole)
    return f"{text},{fraction}" if decimals > 0 else text


def _to_decimal(n: Number) -> Decimal | None:
    """Convert to Decimal without binary noise (0.153 stays 0.153); None for NaN and infinities."""
    value = Decimal(repr(n)) if isinstance(n, float) else Decimal(n)
    return value if value.is_finite() else None


def number_fr(n: Number | None, decimals: int = 0) -> str:
    """Format a number as ``1 234`` (or ``1 234,5`` with ``decimals=1``); None gives « — »."""
    if n is None:
        return EMPTY
    value = _to_decimal(n)
    return EMPTY if value is None else _decimal_fr(value, decimals)


def euros(cents: int | None, *, whole: bool = False) -> str:
    """Format an amount in cents as ``695 294,00 €``; ``whole=True`` rounds to ``695 294 €`` (tiles)."""
    if cents is None:
        return EMPTY
    amount = Decimal(int(cents)).scaleb(-2)
    return f"{_decimal_fr(amount, 0 if whole else 2)}{NBSP}€"


def percent_fr(x: Number | None, decimals: int = 1) -> str:
    """Format a ratio as a percentage: 0.153 gives ``15,3 %``; None, NaN or infinity give « — »."""
    if x is None:
        return EMPTY
    value = _to_decimal(x)
    return EMPTY if value is None else f"{_decimal_fr(value * 100, decimals)}{NBSP}%"


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009\u2007]+")
_CURRENCY = re.compile(r"^(?:€|eur)\s*|\s*(?:€|eur|euros?)$", re.IGNORECASE)
_PLAIN = re.compile(r"[0-9]+")
_GROUPED = re.compile(r"[0-9]{1,3}(?:[ .][0-9]{3})+")  # « 695 294 » or « 1.234.567 »
_DOT_DECIMAL = re.compile(r"[0-9 ]*\.[0-9]{1,2}")  # « 1234.56 »: a dot then 1 or 2 digits is a decimal point
_FRACTION = re.compile(r"[0-9]{0,2}")
_MAX_INPUT = 40

_INVALID = "« {} » n’est pas un montant valide. Exemple : 1 234,56"
_TOO_PRECISE = "Un montant en euros a au plus deux chiffres après la virgule."


def parse_euros(text: str) -> int:
    """Parse an amount typed by a person (``695 294,00``, ``1.234,56``, ``1234.56``, ``12 €``) into cents.

    Raises ValueError with a French message when the text is not an amount.
    """
    raw = (text or "").strip()
    if not raw:
        raise ValueError("Indiquez un montant en euros.")
    if len(raw) > _MAX_INPUT:
        raise ValueError("Ce montant est trop long.")
    s = _CURRENCY.sub("", _SPACES.sub(" ", raw)).strip()
    negative = s[:1] in ("-", "\u2212")
    if s[:1] in ("-", "\u2212", "+"):
        s = s[1:].strip()

    if "," in s:
        integer, _, fraction = s.partition(",")
    elif s.count(".") == 1 and _DOT_DECIMAL.fullmatch(s):
        integer, _, fraction = s.partition(".")
    else:
        integer, fraction = s, ""  # « 1.234 »: dots between groups of three digits separate thousands
    integer, fraction = integer.strip(), fraction.strip()

    if fraction.isdigit() and len(fraction) > 2:
        raise ValueError(_TOO_PRECISE)
    if not (integer or fraction) or not _FRACTION.fullmatch(fraction):
        raise ValueError(_INVALID.format(raw))
    if integer and not (_PLAIN.fullmatch(integer) or _GROUPED.fullmatch(integer)):
        raise ValueError(_INVALID.format(raw))

    cents = int(re.sub(r"[ .]", "", integer) or "0") * 100 + int(fraction.ljust(2, "0"))
    return -cents if negative else cents


FILTERS: dict[str, Callable[..., str]] = {
    "date_fr": date_fr,
    "datetime_fr": datetime_fr,
    "euros": euros,
    "number_fr": number_fr,
    "percent_fr": percent_fr,
}


def register(app: Flask) -> None:
    """Add the French formatting filters to the app's Jinja environment."""
    filters: dict[str, Any] = app.jinja_env.filters
    filters.update(FILTERS)
