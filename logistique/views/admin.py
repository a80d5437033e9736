"""Administration (blueprint ``admin``): accounts (``views/accounts.py``), the referential of organisations
and QPVs (``views/referential.py``), envelopes and lots (``views/money.py``)."""

from __future__ import annotations

from flask import Blueprint

from ..db import db
from ..domain.errors import NotFound

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _get(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        raise NotFound()
    return obj


# the administration's pages, by what they manage; their routes join this blueprint (endpoints ``admin.*``)
from . import accounts, money, referential  # noqa: E402, F401
