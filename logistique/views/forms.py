"""Base form: CSRF from Flask-WTF, WTForms' built-in messages in French."""

from __future__ import annotations

from flask_wtf import FlaskForm


class Form(FlaskForm):
    class Meta:
        locales = ["fr_FR", "fr"]
