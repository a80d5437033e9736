"""The web's commit boundary, as ``api/framework.py`` is the API's.

A POST view validates its form, calls the domain through :func:`commit`, and returns: ``commit`` commits once
on success and flashes the success message, or rolls back and flashes the domain's French refusal. Domain
functions never commit; views never write ``try/rollback/commit`` by hand. A ``DomainError`` that a view
lets escape is rolled back by the error handler (``views/errors.py``), and the request's teardown (``db.py``)
closes the session, discarding whatever was left uncommitted. See docs/architecture.md, « Une seule frontière
de transaction par bord ».
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import flash

from ..db import db
from ..domain.errors import DomainError

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What :func:`commit` did: ``value`` returned by the domain call, or the ``error`` that refused it."""

    value: T | None = None
    error: DomainError | None = None

    def __bool__(self) -> bool:
        return self.error is None

    @property
    def status(self) -> int:
        """The HTTP status of the refusal (200 when committed)."""
        return self.error.status if self.error is not None else 200


def commit(
    action: Callable[[], T],
    success: str | Callable[[T], str] | None = None,
    *,
    catch: type[DomainError] | tuple[type[DomainError], ...] = DomainError,
    flash_error: bool = True,
) -> Outcome[T]:
    """Run one domain call as the request's unit of work: commit and flash ``success``, or roll back and
    flash the refusal (``catch`` narrows which domain errors are shown here rather than as an error page;
    ``()`` shows none here)."""
    try:
        value = action()
    except catch as exc:
        db.session.rollback()
        if flash_error:
            flash(exc.message, "error")
        return Outcome(error=exc)
    db.session.commit()
    if success is not None:
        flash(success(value) if callable(success) else success, "success")
    return Outcome(value=value)
