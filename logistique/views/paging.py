"""Paging of list pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import request, url_for
from sqlalchemy.orm import Session


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int
    endpoint: str
    args: dict[str, Any]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def url(self, page: int) -> str:
        return url_for(self.endpoint, **{**self.args, "page": page})

    @property
    def prev_url(self) -> str:
        return self.url(self.page - 1)

    @property
    def next_url(self) -> str:
        return self.url(self.page + 1)


def paginate(
    session: Session, query: sa.Select, *, per_page: int, endpoint: str, args: dict[str, Any]
) -> Page:
    """Run ``query`` for the page named in ``?page=`` (clamped to the existing pages)."""
    total = session.scalar(sa.select(sa.func.count()).select_from(query.order_by(None).subquery())) or 0
    raw = request.args.get("page", "1").strip()
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 7 else 1
    page = min(max(1, page), max(1, -(-total // per_page)))
    items = list(session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
    clean = {k: v for k, v in args.items() if v not in (None, "")}
    return Page(items, page, per_page, total, endpoint, clean)
