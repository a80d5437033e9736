"""How long what is not needed any more is kept: stored answers of idempotent requests expire after a day,
and the purge takes the erased names out of the free-text fields people typed."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import rows_changed, utcnow
from ..models import AuditEvent, DeviceEvent, IdempotencyRecord, LoginThrottle, SlipEvent, SlipLine
from ..statements import Prepared, table

IDEMPOTENCY_TTL = timedelta(hours=24)
CLEANUP_BATCH = 100  # what one request deletes on its way: bounded, so that a write never waits for a sweep
# A process deletes such a batch on a write's way at most this often (seconds): the workers' housekeeping
# deletes the rest every minute, and a statement per write for a batch that is almost always empty cost a
# pick a round trip to the database.
SWEEP_EVERY = 60.0
_next_sweep = 0.0  # this process's next sweep (time.monotonic())
REDACTED = "[nom effacé]"
_SHORTEST_NAME = 3  # "de", "la", "le" in a name are not worth erasing from every comment


def idempotency_cutoff(now: datetime | None = None) -> datetime:
    """Records created before this are expired."""
    return (now or utcnow()) - IDEMPOTENCY_TTL


def delete_expired_idempotency(session: Session, *, now: datetime | None = None) -> int:
    """Delete every stored answer older than a day, in one statement; returns how many (no commit)."""
    return rows_changed(
        session.execute(
            sa.delete(IdempotencyRecord)
            .where(IdempotencyRecord.created_at < idempotency_cutoff(now))
            .execution_options(synchronize_session=False)
        )
    )


_RECORDS = table(IdempotencyRecord)
# what a write deletes on its way, in one statement built once: the oldest expired records, a bounded batch
_EXPIRED_BATCH = Prepared(
    sa.delete(_RECORDS).where(
        _RECORDS.c.id.in_(
            sa.select(_RECORDS.c.id)
            .where(_RECORDS.c.created_at < sa.bindparam("cutoff"))
            .order_by(_RECORDS.c.created_at)
            .limit(CLEANUP_BATCH)
        )
    )
)
_EXPIRED_KEY = Prepared(
    sa.delete(_RECORDS).where(
        _RECORDS.c.user_id == sa.bindparam("for_user"),
        _RECORDS.c.key == sa.bindparam("for_key"),
        _RECORDS.c.created_at < sa.bindparam("cutoff"),
    )
)


def delete_expired_on_the_way(
    session: Session, *, user_id: int | None = None, key: str | None = None, now: datetime | None = None
) -> None:
    """Delete the expired record of ``user_id``'s ``key`` (which a new answer is about to replace) when given,
    and, once every ``SWEEP_EVERY`` seconds in this process, a batch of the other expired answers (no
    commit)."""
    global _next_sweep
    cutoff = idempotency_cutoff(now)
    if key is not None:
        _EXPIRED_KEY.run(session, {"for_user": user_id, "for_key": key, "cutoff": cutoff})
    moment = time.monotonic()
    if moment >= _next_sweep:
        _next_sweep = moment + SWEEP_EVERY
        _EXPIRED_BATCH.run(session, {"cutoff": cutoff})


def delete_stale_throttles(session: Session, *, now: datetime | None = None) -> int:
    """Forget login failures older than a day whose lock is over (no commit)."""
    now = now or utcnow()
    result = session.execute(
        sa.delete(LoginThrottle)
        .where(
            LoginThrottle.last_failure_at < now - timedelta(days=1),
            sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


# ---------------------------------------------------------------- redaction


@lru_cache(maxsize=65536)
def _fold(text: str) -> str:
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


_WORD = re.compile(r"[^\W\d_]+")  # a name's parts (Jean-Baptiste, N'Diaye) are looked up one by one


def name_words(names: Iterable[str | None]) -> set[str]:
    """The words of people's names, folded (case and accents), as ``redact`` looks for them."""
    words: set[str] = set()
    for name in names:
        for part in _WORD.findall(name or ""):
            if len(part) >= _SHORTEST_NAME:
                words.add(_fold(part))
    return words


def redact(text: str, words: set[str]) -> str:
    """``text`` with every word found in ``words`` (folded) replaced by « [nom effacé] »."""
    if not text or not words:
        return text

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        return REDACTED if _fold(token) in words else token

    return _WORD.sub(replace, text)


# free texts typed by people, where a child's or guardian's name may have slipped in
FREE_TEXTS = (
    (DeviceEvent, DeviceEvent.reason),
    (SlipLine, SlipLine.reception_comment),
    (SlipEvent, SlipEvent.detail),
    (AuditEvent, AuditEvent.detail),
)


def redact_free_texts(session: Session, words: set[str], *, batch: int = 1000) -> int:
    """Replace the erased names in every free-text field; returns how many rows changed (no commit)."""
    if not words:
        return 0
    changed = 0
    for model, column in FREE_TEXTS:
        last = 0
        while True:
            rows = session.execute(
                sa.select(model.id, column)
                .where(model.id > last, column != "", column.is_not(None))
                .order_by(model.id)
                .limit(batch)
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            updates = [(ident, redact(text, words)) for ident, text in rows]
            updates = [
                (ident, new) for (ident, new), (_i, old) in zip(updates, rows, strict=True) if new != old
            ]
            for ident, new in updates:
                session.execute(
                    sa.update(model)
                    .where(model.id == ident)
                    .values({column.key: new})
                    .execution_options(synchronize_session=False)
                )
            changed += len(updates)
    return changed
