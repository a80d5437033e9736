"""Domain errors: each carries a French message for the user and maps to one HTTP status."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..csvfiles import RowError


class DomainError(Exception):
    """A refused operation; ``message`` is shown to the user as is."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ValidationFailed(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    """Unknown, or outside the actor's scope: both answer the same so that existence does not leak."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "Introuvable, ou hors de votre périmètre.", **kw: str) -> None:
        super().__init__(message, **kw)


OutOfScope = NotFound


class Forbidden(DomainError):
    """The actor's role may not do this."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str = "Votre rôle ne permet pas cette action.", **kw: str) -> None:
        super().__init__(message, **kw)


class ImportRejected(ValidationFailed):
    """A file was refused whole; ``errors`` lists every bad row."""

    def __init__(self, message: str, errors: list[RowError]) -> None:
        super().__init__(message, code="import_rejected")
        self.errors = errors


class InvalidTransition(DomainError):
    status = 409
    code = "invalid_transition"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class BusinessRuleViolation(DomainError):
    status = 422
    code = "business_rule"
