"""French formatting filters and amount parsing, tested without the application."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from flask import Flask, render_template_string
from hypothesis import given
from hypothesis import strategies as st

from logistique.formatting import (
    NBSP,
    NNBSP,
    date_fr,
    datetime_fr,
    euros,
    number_fr,
    parse_euros,
    percent_fr,
    register,
)


def test_date_fr_formats_dates_and_datetimes():
    assert date_fr(date(2026, 11, 28)) == "28/11/2026"
    assert date_fr(date(2020, 4, 3)) == "03/04/2020"
    assert date_fr(None) == "—"


def test_date_fr_takes_the_paris_day_of_a_utc_datetime():
    # 23:30 UTC on 28 November is already 29 November in Paris (UTC+1 in winter).
    assert date_fr(datetime(2026, 11, 28, 23, 30)) == "29/11/2026"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 28, 13, 5), "28/11/2026 à 14:05"),  # winter: UTC+1
        (datetime(2020, 4, 15, 8, 0), "15/04/2020 à 10:00"),  # summer: UTC+2
        (datetime(2026, 11, 28, 13, 5, tzinfo=UTC), "28/11/2026 à 14:05"),
        (datetime(2026, 11, 28, 14, 5, tzinfo=timezone(timedelta(hours=1))), "28/11/2026 à 14:05"),
        (datetime(2026, 12, 31, 23, 59), "01/01/2027 à 00:59"),
    ],
)
def test_datetime_fr_converts_to_paris_time(moment, expected):
    assert datetime_fr(moment) == expected


def test_datetime_fr_accepts_a_date_and_none():
    assert datetime_fr(date(2026, 11, 28)) == "28/11/2026"
    assert datetime_fr(None) == "—"


@pytest.mark.parametrize(
    ("cents", "expected"),
    [
        (69529400, f"695{NNBSP}294,00{NBSP}€"),
        (0, f"0,00{NBSP}€"),
        (5, f"0,05{NBSP}€"),
        (123456, f"1{NNBSP}234,56{NBSP}€"),
        (99999, f"999,99{NBSP}€"),
        (500000000, f"5{NNBSP}000{NNBSP}000,00{NBSP}€"),
        (-123456, f"-1{NNBSP}234,56{NBSP}€"),
        (-5, f"-0,05{NBSP}€"),
    ],
)
def test_euros(cents, expected):
    assert euros(cents) == expected


def test_euros_whole_rounds_half_up_and_none_is_a_dash():
    assert euros(69529450, whole=True) == f"695{NNBSP}295{NBSP}€"
    assert euros(69529449, whole=True) == f"695{NNBSP}294{NBSP}€"
    assert euros(-40, whole=True) == f"0{NBSP}€"
    assert euros(None) == "—"


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (0, 0, "0"),
        (999, 0, "999"),
        (1234, 0, f"1{NNBSP}234"),
        (1234567, 0, f"1{NNBSP}234{NNBSP}567"),
        (-1234, 0, f"-1{NNBSP}234"),
        (Decimal("1234.5"), 1, f"1{NNBSP}234,5"),
        (2.5, 0, "3"),
        (1234.567, 2, f"1{NNBSP}234,57"),
        (None, 0, "—"),
        (float("nan"), 0, "—"),
    ],
)
def test_number_fr(value, decimals, expected):
    assert number_fr(value, decimals) == expected


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.153, f"15,3{NBSP}%"),
        (0.15, f"15,0{NBSP}%"),
        (1, f"100,0{NBSP}%"),
        (0, f"0,0{NBSP}%"),
        (12.5, f"1{NNBSP}250,0{NBSP}%"),
        (Decimal("0.0005"), f"0,1{NBSP}%"),
        (-0.00001, f"0,0{NBSP}%"),
        (None, "—"),
        (float("inf"), "—"),
    ],
)
def test_percent_fr(ratio, expected):
    assert percent_fr(ratio) == expected


def test_percent_fr_decimals():
    assert percent_fr(0.153, decimals=0) == f"15{NBSP}%"


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("695 294,00", 69529400),
        ("695294", 69529400),
        ("695 294,5 €", 69529450),
        ("1.234,56", 123456),
        ("1234.56", 123456),
        ("1234.5", 123450),
        ("1.234", 123400),
        ("1.234.567", 123456700),
        ("1 234.56", 123456),
        (f"695{NNBSP}294,00{NBSP}€", 69529400),
        ("  12 € ", 1200),
        ("12EUR", 1200),
        ("12 euros", 1200),
        ("€ 12", 1200),
        ("0,05", 5),
        (",5", 50),
        ("12,", 1200),
        ("-12,30", -1230),
        ("\u221212,30", -1230),
        ("+7", 700),
        ("0", 0),
    ],
)
def test_parse_euros_accepts_what_people_type(text, cents):
    assert parse_euros(text) == cents


@pytest.mark.parametrize(
    "text",
    ["abc", "12a", "1 2", "12 34,00", "1.23.4", "1,2,3", "1e5", ",", "-", "€", "1,2a", "١٢", "12 $"],
)
def test_parse_euros_refuses_garbage_in_french(text):
    with pytest.raises(ValueError, match="n’est pas un montant valide"):
        parse_euros(text)


def test_parse_euros_messages():
    with pytest.raises(ValueError, match="Indiquez un montant"):
        parse_euros("   ")
    with pytest.raises(ValueError, match="deux chiffres après la virgule"):
        parse_euros("12,345")
    with pytest.raises(ValueError, match="trop long"):
        parse_euros("1" * 41)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_parse_euros_reads_back_what_euros_writes(cents):
    assert parse_euros(euros(cents)) == cents


def test_register_adds_the_filters_to_jinja():
    app = Flask(__name__)
    register(app)
    template = (
        "{{ d|date_fr }} | {{ dt|datetime_fr }} | {{ c|euros }} | {{ c|euros(whole=true) }}"
        " | {{ n|number_fr }} | {{ r|percent_fr }} | {{ none|date_fr }}"
    )
    with app.app_context():
        html = render_template_string(
            template,
            d=date(2026, 11, 28),
            dt=datetime(2026, 11, 28, 13, 5),
            c=69529400,
            n=1234,
            r=0.153,
        )
    assert html == (
        f"28/11/2026 | 28/11/2026 à 14:05 | 695{NNBSP}294,00{NBSP}€ | 695{NNBSP}294{NBSP}€"
        f" | 1{NNBSP}234 | 15,3{NBSP}% | —"
    )
