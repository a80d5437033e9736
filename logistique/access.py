"""Access rules: every endpoint declares who may reach it; the app refuses an endpoint without one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .domain.scope import PERMISSIONS, Permission
from .models import Role

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Access:
    """``roles`` None means public (no login)."""

    roles: frozenset[Role] | None

    @property
    def is_public(self) -> bool:
        return self.roles is None


def _mark(access: Access) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view.access = access  # type: ignore[attr-defined]
        return view

    return decorate


def public(view: F) -> F:
    """Reachable without logging in (login page, QR landing pages that then ask to log in)."""
    return _mark(Access(None))(view)


def roles(*allowed: Role) -> Callable[[F], F]:
    """Reachable by logged-in users of these roles; others get 403."""
    return _mark(Access(frozenset(allowed)))


def any_role(view: F) -> F:
    """Reachable by every logged-in user; the view still applies the object's scope."""
    return _mark(Access(frozenset(Role)))(view)


def permission(perm: Permission) -> Callable[[F], F]:
    """Reachable by the roles that hold ``perm`` (domain.scope.PERMISSIONS)."""
    return _mark(Access(PERMISSIONS[perm]))


def access_of(view: Callable) -> Access | None:
    """The rule declared on a view function, if any."""
    return getattr(view, "access", None)
