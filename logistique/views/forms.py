"""Base form: CSRF from Flask-WTF, WTForms' built-in messages in French."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice


class Form(FlaskForm):
    class Meta:
        locales = ["fr_FR", "fr"]


def options(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as WTForms select choices."""
    return [SelectChoice(value, label) for value, label in pairs]


def parse_count(raw: str) -> int | None:
    """A whole number typed in a table cell (spaces around allowed), or None when it is not one."""
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() else None
