"""Web uploads of whole files: checked without holding the database's write lock, then written at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import g
from sqlalchemy.orm import Session

from ..db import db
from ..models import User

Checked = TypeVar("Checked")
Result = TypeVar("Result")


def check_then_write(
    check: Callable[[Session, User], Checked], write: Callable[[Session, Checked], Result]
) -> Result:
    """Run ``check(session, user)`` on a reading session, then ``write(session, checked)`` on the request's.

    Reading and checking a file of 100 000 rows takes seconds: on SQLite, a writing request holds the
    database's only write lock from its first statement (loading the user), so that transaction is ended
    first and the check runs in a session that locks nothing. Only a file that passed goes on to the write.
    ``ImportRejected`` and other domain errors propagate; the caller commits or rolls back."""
    user_id = g.user.id
    db.session.commit()  # the request's transaction has only read the user: end it, and its lock
    with db.new_session() as reader:
        checked = check(reader, reader.get(User, user_id))
    return write(db.session, checked)
