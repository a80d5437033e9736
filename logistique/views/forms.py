"""Base form: CSRF from Flask-WTF, WTForms' built-in messages in French."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from .. import bounds


class Form(FlaskForm):
    class Meta:
        locales = ["fr_FR", "fr"]


def options(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as WTForms select choices."""
    return [SelectChoice(value, label) for value, label in pairs]


def device_code_field(label: str) -> StringField:
    """The field a handheld scanner types a device's serial, asset tag or label URL into (then Enter)."""
    return StringField(
        label,
        validators=[DataRequired("Scannez ou tapez un numéro de série ou une étiquette.")],
        render_kw={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"},
    )


def parse_count(raw: str) -> int | None:
    """A whole number typed in a table cell (spaces around allowed), at most bounds.MAX_COUNT, or None when
    it is not one (a huge number never reaches the database)."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or int(text) > bounds.MAX_COUNT:
        return None
    return int(text)
