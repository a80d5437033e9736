"""Running counts of assignments and registered pupils, read by the status board instead of aggregating the
source tables (see ``models/tallies.py``).

The domain records a delta wherever a counted row changes — an assignment created (``assignments.assign``),
its device's status moving or the assignment ending (``devices.set_assignment_status``, the only writer
of ``Assignment.device_status`` after creation), a pupil registered (``pupils``) — and the deltas are written
when the transaction commits, in one sorted order: two transactions touching the same counters always lock
them in the same order (no deadlock), and hold those locks only for the time of the commit. A rolled-back
transaction (or savepoint) drops its deltas with it. A query that reads the counters within a transaction
first writes what that transaction recorded, by itself (``_before_read``): readers need not call ``flush``.

The listeners are registered on the application's own session factories (``install``, called by
``db.init_app``), not on SQLAlchemy's global ``Session``: importing this module changes no other session.

``differences`` recounts everything from the source tables and says where the counters disagree;
``rebuild`` recomputes them (migration backfill, ``logistique recount``, bulk loads such as the benchmark)."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.sql import visitors

from ..models import (
    Assignment,
    AssignmentTally,
    Device,
    DeviceStatus,
    NeedKind,
    Pupil,
    PupilTally,
    RestitutionLine,
    ReturnTally,
)
from ..statements import Prepared

# (qpv_code, envelope_id, kind, device_status, active)
AssignmentKey = tuple[str, int, NeedKind, DeviceStatus, bool]
# (organisation_id, qpv_code, kind)
PupilKey = tuple[int, str, NeedKind]
# (qpv_code, kind, state, outcome): devices brought back by families, how, and what they are now
ReturnKey = tuple[str, NeedKind, DeviceStatus, DeviceStatus]

log = logging.getLogger(__name__)
_PENDING = "logistique.tallies"
_SAVED = "logistique.tallies.savepoints"
PUPIL_FLAGS = (
    (NeedKind.TABLET, Pupil.needs_tablet),
    (NeedKind.LAPTOP, Pupil.needs_laptop),
    (NeedKind.CONNECTION, Pupil.needs_connection),
)


class _Pending:
    def __init__(self) -> None:
        self.assignments: dict[AssignmentKey, list[int]] = defaultdict(lambda: [0, 0])
        self.pupils: dict[PupilKey, int] = defaultdict(int)
        self.returns: dict[ReturnKey, int] = defaultdict(int)

    def copy(self) -> _Pending:
        other = _Pending()
        for key, (n, cents) in self.assignments.items():
            other.assignments[key] = [n, cents]
        other.pupils.update(self.pupils)
        other.returns.update(self.returns)
        return other

    def __bool__(self) -> bool:
        return bool(self.assignments or self.pupils or self.returns)


def _pending(session: Session) -> _Pending:
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = _Pending()
    return pending


# ---------------------------------------------------------------- recording


def assignment_key(assignment: Assignment) -> AssignmentKey:
    return (
        assignment.qpv_code,
        assignment.envelope_id,
        assignment.kind,
        assignment.device_status,
        assignment.cancelled_at is None,
    )


def move_assignment(
    session: Session, before: AssignmentKey | None, after: AssignmentKey | None, cost_cents: int
) -> None:
    """One assignment leaves the counter ``before`` (None: it is new) for ``after`` (None: it is gone)."""
    if before == after:
        return
    pending = _pending(session).assignments
    if before is not None:
        pending[before][0] -= 1
        pending[before][1] -= cost_cents
    if after is not None:
        pending[after][0] += 1
        pending[after][1] += cost_cents


def committed_cents(session: Session, envelope_ids: list[int] | None = None) -> dict[int, int]:
    """Money committed per envelope (the unit costs of its active assignments), as of this transaction:
    the envelopes of ``envelope_ids`` (None: all) that have at least one active assignment."""
    table = AssignmentTally.__table__
    query = (
        sa.select(table.c.envelope_id, sa.func.sum(table.c.devices), sa.func.sum(table.c.cost_cents))
        .where(table.c.active.is_(True))
        .group_by(table.c.envelope_id)
    )
    if envelope_ids is not None:
        query = query.where(table.c.envelope_id.in_(envelope_ids))
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for envelope_id, n, cents in _unflushed_read(session, query):
        totals[envelope_id][0] += int(n or 0)
        totals[envelope_id][1] += int(cents or 0)
    for (_qpv, envelope_id, _kind, _status, active), (n, cents) in _pending(session).assignments.items():
        if active and (envelope_ids is None or envelope_id in envelope_ids):
            totals[envelope_id][0] += n
            totals[envelope_id][1] += cents
    return {envelope_id: cents for envelope_id, (n, cents) in totals.items() if n > 0}


def active_assignments(session: Session, qpv_code: str, kind: NeedKind) -> int:
    """Active assignments of ``kind`` for pupils of ``qpv_code``, as of this transaction."""
    table = AssignmentTally.__table__
    query = sa.select(sa.func.sum(table.c.devices)).where(
        table.c.active.is_(True), table.c.qpv_code == qpv_code, table.c.kind == kind
    )
    count = sum(int(n or 0) for (n,) in _unflushed_read(session, query))
    for (qpv, _envelope, tally_kind, _status, active), (n, _cents) in _pending(session).assignments.items():
        if active and qpv == qpv_code and tally_kind == kind:
            count += n
    return count


def _unflushed_read(session: Session, query: sa.Select) -> sa.Result:
    """``query`` on the counters' rows as written, the transaction's own unwritten deltas left pending (the
    callers add them): unlike a session query (``_before_read``), it writes nothing, so that a check made
    in the middle of a transaction (an assignment's envelope and quota) locks no counter row before the
    commit, where every transaction locks them in the same order."""
    return session.connection().execute(query)


def pupil_registered(
    session: Session, organisation_id: int, qpv_code: str, kinds: list[NeedKind], *, count: int = 1
) -> None:
    pending = _pending(session).pupils
    for kind in kinds:
        pending[(organisation_id, qpv_code, kind)] += count


def move_return(session: Session, before: ReturnKey | None, after: ReturnKey | None) -> None:
    """One device brought back by a family leaves the counter ``before`` (None: new) for ``after``."""
    if before == after:
        return
    pending = _pending(session).returns
    if before is not None:
        pending[before] -= 1
    if after is not None:
        pending[after] += 1


# ---------------------------------------------------------------- writing


_UPSERTS: dict[str, Prepared] = {}


def _upsert(session: Session, model, keys: list[str], values: list[dict], counters: list[str]) -> None:
    # One statement built once and run on the transaction's connection: the ORM's bulk path cost a pick more
    # than all its other writes together. Written as text because SQLAlchemy cannot cache the compiled form
    # of an INSERT … ON CONFLICT (it compiled it again at every commit); SQLite and PostgreSQL share its SQL.
    table = model.__table__
    stmt = _UPSERTS.get(table.name)
    if stmt is None:
        columns = [*keys, *counters]
        stmt = _UPSERTS[table.name] = Prepared(
            sa.text(
                f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 — the model's own names
                f"VALUES ({', '.join(':' + c for c in columns)}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in counters)
            ).bindparams(*(sa.bindparam(c, type_=table.c[c].type) for c in columns))
        )
    session.flush()  # the ORM's pending writes first, in the order they always had
    stmt.run_many(session, values)


def flush(session: Session) -> None:
    """Write the recorded deltas, sorted by counter: before the transaction commits, or before a read of the
    counters within the transaction that recorded them."""
    pending = session.info.get(_PENDING)
    if not pending:
        return
    rows = [
        {
            "qpv_code": qpv,
            "envelope_id": envelope,
            "kind": kind,
            "device_status": status,
            "active": active,
            "devices": n,
            "cost_cents": cents,
        }
        for (qpv, envelope, kind, status, active), (n, cents) in sorted(
            pending.assignments.items(), key=lambda item: _sort_key(item[0])
        )
        if n or cents
    ]
    if rows:
        _upsert(
            session,
            AssignmentTally,
            ["qpv_code", "envelope_id", "kind", "device_status", "active"],
            rows,
            ["devices", "cost_cents"],
        )
    rows = [
        {"organisation_id": org, "qpv_code": qpv, "kind": kind, "pupils": n}
        for (org, qpv, kind), n in sorted(pending.pupils.items(), key=lambda item: _sort_key(item[0]))
        if n
    ]
    if rows:
        _upsert(session, PupilTally, ["organisation_id", "qpv_code", "kind"], rows, ["pupils"])
    rows = [
        {"qpv_code": qpv, "kind": kind, "state": state, "outcome": outcome, "devices": n}
        for (qpv, kind, state, outcome), n in sorted(
            pending.returns.items(), key=lambda item: _sort_key(item[0])
        )
        if n
    ]
    if rows:
        _upsert(session, ReturnTally, ["qpv_code", "kind", "state", "outcome"], rows, ["devices"])
    # only once written: a failed write leaves them pending, to go with the rollback that must follow
    session.info[_PENDING] = _Pending()


@functools.lru_cache(maxsize=4096)  # the same few counters, again and again (an enum's value is slow to read)
def _sort_key(key: tuple) -> tuple:
    return tuple(getattr(part, "value", part) for part in key)


# SQLAlchemy fires before_commit for the release of a savepoint as well as for the real commit; only the real
# commit writes, so that every transaction writes its counters in one sorted batch. Savepoints are closed
# before the transaction commits (``with session.begin_nested():``); a commit with one still open would leave
# its deltas unwritten, which is logged (``logistique recount`` repairs it).


def _before_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        flush(session)


_TALLY_TABLES = frozenset({AssignmentTally.__table__, PupilTally.__table__, ReturnTally.__table__})


def _reads_tallies(statement: Any) -> bool:
    return any(element in _TALLY_TABLES for element in visitors.iterate(statement))


def _before_read(state: ORMExecuteState) -> None:
    """A query that reads the counters sees what its own transaction recorded."""
    if state.is_select and state.session.info.get(_PENDING) and _reads_tallies(state.statement):
        flush(state.session)


def _savepoint_begins(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:  # what is pending now is what a rollback of this savepoint comes back to
        session.info.setdefault(_SAVED, {})[transaction] = _pending(session).copy()


def _committed(session: Session) -> None:
    released = session.get_nested_transaction()
    if released is not None:  # a savepoint released: what it recorded stays recorded
        session.info.get(_SAVED, {}).pop(released, None)
    elif session.info.get(_PENDING):
        log.error("Compteurs du tableau de bord non écrits (savepoint ouvert au commit) : « recount ».")


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        saved = session.info.get(_SAVED, {}).pop(transaction, None)
        if saved is not None:  # ended without being released: rolled back, and its deltas with it
            session.info[_PENDING] = saved
    elif transaction.parent is None:  # committed (deltas written) or rolled back (deltas dropped)
        session.info.pop(_PENDING, None)
        session.info.pop(_SAVED, None)


def install(factory: sessionmaker[Session]) -> None:
    """Keep the counters in the sessions ``factory`` makes: deltas written at commit, dropped at rollback,
    written before a read of the counters."""
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_transaction_create", _savepoint_begins)
    event.listen(factory, "after_commit", _committed)
    event.listen(factory, "after_transaction_end", _ended)
    event.listen(factory, "do_orm_execute", _before_read)


# ---------------------------------------------------------------- recounting


def _assignment_counts() -> sa.Select:
    """The assignment counters as a GROUP BY over assignments, in the columns' order."""
    active = Assignment.cancelled_at.is_(None)
    key = (Assignment.qpv_code, Assignment.envelope_id, Assignment.kind, Assignment.device_status, active)
    return sa.select(*key, sa.func.count(), sa.func.sum(Assignment.unit_cost_cents)).group_by(*key)


def _return_counts() -> sa.Select:
    """The return counters as a GROUP BY over recorded restitution lines, in the columns' order."""
    key = (RestitutionLine.qpv_code, RestitutionLine.kind, RestitutionLine.state, RestitutionLine.outcome)
    return sa.select(*key, sa.func.count()).where(RestitutionLine.outcome.is_not(None)).group_by(*key)


def _expected(session: Session) -> tuple[dict[AssignmentKey, tuple[int, int]], dict[PupilKey, int]]:
    assignments = {
        (qpv, envelope, kind, status, bool(is_active)): (int(n), int(cents or 0))
        for qpv, envelope, kind, status, is_active, n, cents in session.execute(_assignment_counts())
    }
    pupils = {}
    for kind, flag in PUPIL_FLAGS:
        for org, qpv, n in session.execute(
            sa.select(Pupil.organisation_id, Pupil.qpv_code, sa.func.count())
            .where(flag.is_(True))
            .group_by(Pupil.organisation_id, Pupil.qpv_code)
        ):
            pupils[(org, qpv, kind)] = int(n)
    return assignments, pupils


def differences(session: Session) -> list[str]:
    """Where the counters disagree with a recount of assignments and pupils (empty when they agree)."""
    flush(session)
    want_assignments, want_pupils = _expected(session)
    have_assignments = {
        (t.qpv_code, t.envelope_id, t.kind, t.device_status, t.active): (t.devices, t.cost_cents)
        for t in session.scalars(sa.select(AssignmentTally))
        if t.devices or t.cost_cents
    }
    have_pupils = {
        (t.organisation_id, t.qpv_code, t.kind): t.pupils
        for t in session.scalars(sa.select(PupilTally))
        if t.pupils
    }
    found = []
    for key in sorted(set(want_assignments) | set(have_assignments), key=_sort_key):
        want, have = want_assignments.get(key, (0, 0)), have_assignments.get(key, (0, 0))
        if want != have:
            found.append(f"attributions {_sort_key(key)} : compté {have}, recompté {want}")
    for pupil_key in sorted(set(want_pupils) | set(have_pupils), key=_sort_key):
        want_n, have_n = want_pupils.get(pupil_key, 0), have_pupils.get(pupil_key, 0)
        if want_n != have_n:
            found.append(f"élèves {_sort_key(pupil_key)} : compté {have_n}, recompté {want_n}")
    want_returns = {
        (qpv, kind, state, outcome): int(n)
        for qpv, kind, state, outcome, n in session.execute(_return_counts())
    }
    have_returns = {
        (t.qpv_code, t.kind, t.state, t.outcome): t.devices
        for t in session.scalars(sa.select(ReturnTally))
        if t.devices
    }
    for return_key in sorted(set(want_returns) | set(have_returns), key=_sort_key):
        want_n, have_n = want_returns.get(return_key, 0), have_returns.get(return_key, 0)
        if want_n != have_n:
            found.append(f"retours {_sort_key(return_key)} : compté {have_n}, recompté {want_n}")
    return found


def status_differences(session: Session) -> list[str]:
    """Active assignments whose stored device status (``Assignment.device_status``, which the counters group
    by) is not their device's status (empty when every one agrees). ``rebuild`` cannot repair these."""
    rows = session.execute(
        sa.select(Assignment.id, Device.serial, Assignment.device_status, Device.status)
        .join(Device, Device.id == Assignment.device_id)
        .where(Assignment.cancelled_at.is_(None), Assignment.device_status != Device.status)
        .order_by(Assignment.id)
    )
    return [
        f"attribution {assignment_id} : l'équipement {serial} est « {device_status.value} », "
        f"l'attribution dit « {stored.value} »"
        for assignment_id, serial, stored, device_status in rows
    ]


def rebuild(session: Session, *, lock: bool = False) -> list[str]:
    """Recompute every counter from assignments and pupils (no commit); returns the differences it corrected.
    ``lock``: on PostgreSQL, hold off writers of assignments and pupils until the commit, so that none changes
    them between recount and commit (SQLite writers already wait for each other)."""
    if lock and session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("LOCK TABLE assignments, pupils, restitution_lines IN SHARE MODE"))
    found = differences(session)
    session.info.pop(_PENDING, None)
    session.execute(sa.delete(AssignmentTally))
    session.execute(sa.delete(PupilTally))
    session.execute(sa.delete(ReturnTally))
    session.execute(
        sa.insert(ReturnTally).from_select(
            ["qpv_code", "kind", "state", "outcome", "devices"], _return_counts()
        )
    )
    session.execute(
        sa.insert(AssignmentTally).from_select(
            ["qpv_code", "envelope_id", "kind", "device_status", "active", "devices", "cost_cents"],
            _assignment_counts(),
        )
    )
    for kind, flag in PUPIL_FLAGS:
        session.execute(
            sa.insert(PupilTally).from_select(
                ["organisation_id", "qpv_code", "kind", "pupils"],
                sa.select(Pupil.organisation_id, Pupil.qpv_code, sa.literal(kind.value), sa.func.count())
                .where(flag.is_(True))
                .group_by(Pupil.organisation_id, Pupil.qpv_code),
            )
        )
    return found
