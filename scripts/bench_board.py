"""Benchmark of the status board (issue 5): a synthetic national operation, then the board's timings.

Generates, once and deterministically (seeded), an operation over all 1 493 QPV of the national file
(logistique/data/qpv_2024_france.csv): organisations, envelopes, lots, 300 000 pupils, needs, 500 000 devices
with a realistic mix of statuses, their assignments, 60 000 slips and their lines, handovers over the last
60 days and applied allocation plans. Loads it into a fresh SQLite file and into a fresh PostgreSQL database
(``logistique_bench`` on 127.0.0.1:5432), schema by the Alembic migrations, then times for the largest region
and for the whole country: status.board(by="qpv"), status.money, census.needs_by_qpv, GET /tableau and
GET /api/v1/status through the Flask test client, and the board's GROUP BYs in raw SQL over the same tables
through the same engine. Timings are medians of --runs runs after one warm-up (before and after an index
migration when there is one to compare, else at head). Figures are printed as Markdown and written to
bench-results/board.md.

Dates are relative to the day of the run (handovers over the last 60 days); everything else depends on the
seed only. device_events are not generated (the board does not read them).

Run through ``scripts/bench board [options]``; ``--help`` lists the options."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import math
import os
import random
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import click
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

import logistique.models  # noqa: F401  (registers every table)
from logistique import codes, create_app, migrate
from logistique.db import Base, make_engine, utcnow
from logistique.domain import accounts, census, referential, status, tallies

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
PG_DATABASE = "logistique_bench"
INDEX_MIGRATION_SLUG = "status_board_indexes"
ADMIN_EMAIL = "bench-admin@bench.invalid"
ADMIN_PASSWORD = "bench-board-mot-de-passe"  # noqa: S105 — a throw-away account in a throw-away database

# device status mix (shares of all devices); everything past en_stock has a pupil
STATUS_MIX = [
    ("en_stock", 0.35),
    ("attribue", 0.15),
    ("sur_bordereau", 0.05),
    ("prepare", 0.05),
    ("expedie", 0.10),
    ("receptionne", 0.10),
    ("remis", 0.18),
    ("perdu", 0.01),
    ("defectueux", 0.01),
]
SLIP_STAGE = {
    "sur_bordereau": "emis",
    "prepare": "prepare",
    "expedie": "expedie",
    "receptionne": "received",
    "remis": "received",
    "perdu": "received",
    "defectueux": "received",
}
RECEPTION = {"receptionne": "recu", "remis": "recu", "perdu": "manquant", "defectueux": "endommage"}
DEVICE_KIND = {"tablette": "tablette", "ordinateur": "ordinateur", "connexion": "cle_4g"}
MODELS = [  # (kind, name, unit cost in cents)
    ("tablette", "Lenovo Tab M10 (bench)", 19_900),
    ("tablette", "Samsung Galaxy Tab A8 (bench)", 22_900),
    ("ordinateur", "Dell Latitude 5490 reconditionné (bench)", 31_000),
    ("ordinateur", "HP ProBook 450 G8 (bench)", 44_900),
    ("cle_4g", "Huawei E5576 (bench)", 4_900),
    ("cle_4g", "TP-Link M7000 (bench)", 6_500),
]
FIRST = ["Lina", "Adam", "Inès", "Mohamed", "Jade", "Noah", "Sarah", "Yanis", "Léa", "Rayan", "Emma", "Nolan"]
LAST = ["Martin", "Bernard", "Diallo", "Nguyen", "Haddad", "Moreau", "Traoré", "Petit", "Benali", "Lefèvre"]
GRADES = ["CM1", "CM2", "6e", "5e", "4e", "3e", "2de", "1re", "Terminale"]


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is in KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ts(value: datetime) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite; PostgreSQL reads the same text."""
    text = value.isoformat(" ")
    return text if len(text) > 19 else text + ".000000"


# ====================================================================== generation


@dataclass
class Dataset:
    """Rows per table, in insertion order, with their columns."""

    tables: dict[str, tuple[tuple[str, ...], list[tuple]]] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)

    def add(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        self.tables[table] = (columns, rows)


def read_qpvs() -> list[dict[str, str]]:
    data = referential.read_package_file("qpv_2024_france.csv").decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(data)))


def generate(seed: int, n_devices: int, n_pupils: int, n_slips: int, now: datetime) -> Dataset:
    rng = random.Random(seed)
    out = Dataset()
    qpv_rows = read_qpvs()
    qpv_dep = {
        codes.normalize_qpv(r["code_qp"]): codes.normalize_department(r["insee_dep"]) for r in qpv_rows
    }
    dep_region = {codes.normalize_department(r["insee_dep"]): r["insee_reg"] for r in qpv_rows}
    qpvs_of_dep: dict[str, list[str]] = defaultdict(list)
    for code in sorted(qpv_dep):
        qpvs_of_dep[qpv_dep[code]].append(code)
    deps_of_region: dict[str, list[str]] = defaultdict(list)
    for dep in sorted(dep_region):
        deps_of_region[dep_region[dep]].append(dep)
    regions = sorted(deps_of_region)
    qpv_region = {q: dep_region[d] for q, d in qpv_dep.items()}

    # ---- organisations: 2 warehouses per region, up to 3 associations per department sharing its QPVs
    orgs, org_qpvs = [], []
    warehouses: dict[str, list[int]] = {}
    serving: dict[str, list[int]] = defaultdict(list)  # qpv -> associations serving it, primary first
    org_dep: dict[int, str] = {}
    next_id = 1
    for region in regions:
        by_size = sorted(deps_of_region[region], key=lambda d: (-len(qpvs_of_dep[d]), d))
        warehouses[region] = []
        for i in range(2):
            dep = by_size[i % len(by_size)]
            orgs.append(
                (
                    next_id,
                    "entrepot",
                    f"Entrepôt {i + 1} région {region} (bench)",
                    None,
                    dep,
                    "",
                    "",
                    "",
                    None,
                    True,
                )
            )
            warehouses[region].append(next_id)
            org_dep[next_id] = dep
            next_id += 1
    for dep in sorted(qpvs_of_dep):
        qpvs = qpvs_of_dep[dep]
        assoc = []
        for i in range(min(3, len(qpvs))):
            orgs.append(
                (
                    next_id,
                    "association",
                    f"Association {i + 1} du {dep} (bench)",
                    None,
                    dep,
                    "",
                    "",
                    "",
                    None,
                    True,
                )
            )
            assoc.append(next_id)
            org_dep[next_id] = dep
            next_id += 1
        for n, qpv in enumerate(qpvs):
            primary = assoc[n % len(assoc)]
            serving[qpv].append(primary)
            org_qpvs.append((primary, qpv))
            if len(assoc) > 1 and rng.random() < 0.15:  # some QPVs are served by a second association
                second = assoc[(n + 1) % len(assoc)]
                serving[qpv].append(second)
                org_qpvs.append((second, qpv))
    out.add(
        "organisations",
        (
            "id",
            "kind",
            "name",
            "uai",
            "department_code",
            "address",
            "postal_code",
            "city",
            "cite_educative_code",
            "is_active",
        ),
        orgs,
    )
    out.add("organisation_qpvs", ("organisation_id", "qpv_code"), sorted(org_qpvs))

    # ---- device models, envelopes (2 per region), lots (one per envelope and warehouse) and unit costs
    models = [(i + 1, kind, name) for i, (kind, name, _cost) in enumerate(MODELS)]
    base_cost = {i + 1: cost for i, (_k, _n, cost) in enumerate(MODELS)}
    models_of_kind: dict[str, list[int]] = defaultdict(list)
    for mid, kind, _name in models:
        models_of_kind[kind].append(mid)
    envelope_meta = []  # (id, region, kind, label)
    lots, unit_costs = [], []
    lots_of_warehouse: dict[int, list[tuple[int, int]]] = defaultdict(list)  # warehouse -> [(lot, envelope)]
    cost_of: dict[tuple[int, int], int] = {}
    lot_id = 1
    for region in regions:
        for kind, label in (
            ("credits_delegues", "Crédits délégués 2020"),
            ("cite_2020", "Cité éducative 2020"),
        ):
            env_id = len(envelope_meta) + 1
            envelope_meta.append((env_id, region, kind, f"{label} — région {region}"))
            for w in warehouses[region]:
                lots.append(
                    (
                        lot_id,
                        f"BENCH-{region}-{env_id}-{w}",
                        "Fournisseur (bench)",
                        env_id,
                        w,
                        (now - timedelta(days=200)).strftime("%Y-%m-%d"),
                        "",
                    )
                )
                lots_of_warehouse[w].append((lot_id, env_id))
                for mid in base_cost:
                    cost = int(base_cost[mid] * rng.uniform(0.9, 1.1))
                    unit_costs.append((lot_id, mid, cost))
                    cost_of[(lot_id, mid)] = cost
                lot_id += 1

    # ---- pupils, weighted over QPVs (a few big QPVs, many small ones)
    qpv_codes = sorted(qpv_dep)
    weights = [rng.lognormvariate(0, 0.8) for _ in qpv_codes]
    pupil_qpvs = rng.choices(qpv_codes, weights=weights, k=n_pupils)
    pupils = []
    pupil_qpv, pupil_org = [None] * (n_pupils + 1), [0] * (n_pupils + 1)
    slots: list[tuple[int, str]] = []  # (pupil, need kind) that a device may answer
    registered: Counter = Counter()  # (org, qpv, kind)
    for pid, qpv in enumerate(pupil_qpvs, start=1):
        orgs_here = serving[qpv]
        org = orgs_here[0] if len(orgs_here) == 1 or rng.random() < 0.85 else orgs_here[1]
        first = rng.random()
        tablet, laptop = first < 0.45, 0.45 <= first < 0.90
        connection = first >= 0.90 or rng.random() < 0.30
        dep = qpv_dep[qpv]
        digits = f"{rng.randrange(10**7):07d}"
        pupils.append(
            (
                pid,
                f"E-{dep}-{pid:06d}",
                org,
                qpv,
                digits + codes.uai_check_letter(digits),
                rng.choice(GRADES),
                rng.choice(FIRST),
                rng.choice(LAST),
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                f"06{rng.randrange(10**8):08d}",
                tablet,
                laptop,
                connection,
                ts(now - timedelta(days=120, seconds=rng.randrange(60 * 86400))),
                None,
            )
        )
        pupil_qpv[pid], pupil_org[pid] = qpv, org
        for kind, wanted in (("tablette", tablet), ("ordinateur", laptop), ("connexion", connection)):
            if wanted:
                slots.append((pid, kind))
                registered[(org, qpv, kind)] += 1
    out.add(
        "pupils",
        (
            "id",
            "reference",
            "organisation_id",
            "qpv_code",
            "school_uai",
            "grade",
            "first_name",
            "last_name",
            "guardian_name",
            "guardian_phone",
            "needs_tablet",
            "needs_laptop",
            "needs_connection",
            "created_at",
            "purged_at",
        ),
        pupils,
    )

    # ---- needs declared per (organisation, QPV, kind): about what was registered, sometimes more
    needs = []
    for org, qpv in sorted(org_qpvs):
        for kind in ("tablette", "ordinateur", "connexion"):
            reg = registered.get((org, qpv, kind), 0)
            if reg == 0 and rng.random() < 0.5:
                continue
            declared = int(reg * rng.uniform(0.8, 1.5)) + rng.randrange(3)
            needs.append((len(needs) + 1, org, qpv, kind, declared, ts(now - timedelta(days=100)), None))
    out.add(
        "needs", ("id", "organisation_id", "qpv_code", "kind", "count", "updated_at", "updated_by_id"), needs
    )

    # ---- devices with their statuses; those past en_stock answer a (pupil, kind) slot
    statuses: list[str] = []
    for name, share in STATUS_MIX[1:]:
        statuses += [name] * round(n_devices * share)
    n_stock = n_devices - len(statuses)
    rng.shuffle(statuses)
    if len(statuses) > len(slots):
        raise click.ClickException(f"{len(statuses)} devices to assign but only {len(slots)} needs of pupils")
    rng.shuffle(slots)
    devices, assignments = [], []
    device_info = []  # per assigned device: (device id, assignment id, pupil, warehouse, status)
    committed: Counter = Counter()

    def device_row(did: int, kind: str, region: str, state: str) -> tuple[tuple, int, int, int]:
        w = rng.choice(warehouses[region])
        lot, env = lots_of_warehouse[w][0 if rng.random() < 0.8 else 1]
        model = rng.choice(models_of_kind[kind])
        created = now - timedelta(days=150, seconds=rng.randrange(30 * 86400))
        row = (
            did,
            f"SN{did:010d}",
            f"LOG-{did:07d}",
            model,
            lot,
            w,
            "neuf" if rng.random() < 0.7 else "reconditionne",
            state,
            ts(created),
            ts(created),
        )
        return row, env, cost_of[(lot, model)], w

    for did, (state, (pid, need_kind)) in enumerate(zip(statuses, slots, strict=False), start=1):
        row, env, cost, w = device_row(did, DEVICE_KIND[need_kind], qpv_region[pupil_qpv[pid]], state)
        devices.append(row)
        aid = len(assignments) + 1
        cancelled = (
            ts(now - timedelta(days=rng.randrange(1, 40))) if state in ("perdu", "defectueux") else None
        )
        assignments.append(
            [
                aid,
                did,
                pid,
                need_kind,
                pupil_qpv[pid],
                pupil_org[pid],
                env,
                cost,
                ts(now - timedelta(days=90, seconds=rng.randrange(20 * 86400))),
                None,
                cancelled,
                None,
                state,
                None,  # handed_over_at, set with the handovers below
            ]
        )
        if cancelled is None:
            committed[env] += cost
        device_info.append((did, aid, pid, w, state))
    stock_regions = rng.choices(qpv_codes, weights=weights, k=n_stock)
    n_cancelled = 0
    for n, qpv in enumerate(stock_regions):
        did = len(statuses) + n + 1
        need_kind = rng.choice(("tablette", "ordinateur", "connexion"))
        row, env, cost, _w = device_row(did, DEVICE_KIND[need_kind], qpv_region[qpv], "en_stock")
        devices.append(row)
        if rng.random() < 0.05:  # back in stock after a cancelled assignment
            pid = rng.randrange(1, n_pupils + 1)
            assignments.append(
                (
                    len(assignments) + 1,
                    did,
                    pid,
                    need_kind,
                    pupil_qpv[pid],
                    pupil_org[pid],
                    env,
                    cost,
                    ts(now - timedelta(days=80)),
                    None,
                    ts(now - timedelta(days=70)),
                    None,
                    "en_stock",
                    None,
                )
            )
            n_cancelled += 1
    out.facts["assignments_cancelled_back_in_stock"] = n_cancelled

    # ---- envelopes, now that what they commit is known
    envelopes = []
    for env_id, region, kind, label in envelope_meta:
        amount = int(committed[env_id] * 1.3) + 1_000_000
        annual = math.ceil(amount * 100 / 15) if kind == "cite_2020" else None
        envelopes.append((env_id, region, kind, label, amount, annual, None))
    out.add(
        "envelopes",
        ("id", "region_code", "kind", "label", "amount_cents", "annual_amount_cents", "cite_educative_code"),
        envelopes,
    )
    out.add("device_models", ("id", "kind", "name"), models)
    out.add("lots", ("id", "reference", "supplier", "envelope_id", "warehouse_id", "signed_on", "note"), lots)
    out.add("lot_unit_costs", ("lot_id", "model_id", "unit_cost_cents"), unit_costs)
    out.add(
        "devices",
        (
            "id",
            "serial",
            "asset_tag",
            "model_id",
            "lot_id",
            "warehouse_id",
            "condition",
            "status",
            "created_at",
            "updated_at",
        ),
        devices,
    )
    out.add(
        "assignments",
        (
            "id",
            "device_id",
            "pupil_id",
            "kind",
            "qpv_code",
            "organisation_id",
            "envelope_id",
            "unit_cost_cents",
            "created_at",
            "created_by_id",
            "cancelled_at",
            "cancelled_by_id",
            "device_status",
            "handed_over_at",
        ),
        assignments,
    )

    # ---- slips: devices on slips grouped by (stage, warehouse, destination), cut to reach n_slips in all
    groups: dict[tuple[str, int, int], list[tuple]] = defaultdict(list)
    for info in device_info:
        if info[4] in SLIP_STAGE:
            groups[(SLIP_STAGE[info[4]], info[3], pupil_org[info[2]])].append(info)
    n_lines = sum(len(g) for g in groups.values())
    cancelled_devices = rng.sample([i for g in groups.values() for i in g], k=min(n_lines // 100, n_slips))
    n_cancelled_slips = max(1, len(cancelled_devices) // 3) if cancelled_devices else 0
    per_slip = n_lines / max(1, n_slips - n_cancelled_slips)
    slips, lines, handovers = [], [], []
    remis_lines: dict[int, list[int]] = defaultdict(list)  # pupil -> indexes in lines
    slip_received: dict[int, datetime] = {}

    def new_slip(stage: str, warehouse: int, dest: int, *, cancelled: bool = False) -> tuple[int, dict]:
        sid = len(slips) + 1
        if cancelled or stage == "received":
            issued = now - timedelta(days=rng.uniform(20, 80))
        elif stage == "expedie":
            issued = now - timedelta(days=rng.uniform(3, 12))
        else:
            issued = now - timedelta(days=rng.uniform(0, 8))
        d = {"issued": issued, "prepared": None, "shipped": None, "received": None, "cancelled": None}
        if cancelled:
            d["cancelled"] = issued + timedelta(hours=6)
        if stage in ("prepare", "expedie", "received") and not cancelled:
            d["prepared"] = issued + timedelta(hours=rng.uniform(2, 30))
        if stage in ("expedie", "received") and not cancelled:
            d["shipped"] = d["prepared"] + timedelta(hours=rng.uniform(2, 48))
        if stage == "received" and not cancelled:
            d["received"] = d["shipped"] + timedelta(hours=rng.uniform(24, 96))
            slip_received[sid] = d["received"]
        slips.append([sid, f"BL-{org_dep[dest]}-{now.year}-{sid:06d}", warehouse, dest, stage, d])
        return sid, d

    for (stage, warehouse, dest), members in sorted(groups.items(), key=lambda kv: kv[0]):
        k = max(1, round(len(members) / per_slip))  # slips for this group, of near-equal sizes
        for j in range(k):
            sid, d = new_slip(stage, warehouse, dest)
            for did, aid, pid, _w, state in members[j * len(members) // k : (j + 1) * len(members) // k]:
                reception = RECEPTION.get(state)
                comment = {"manquant": "Absent du colis", "endommage": "Écran fissuré"}.get(
                    reception or "", ""
                )
                lines.append(
                    [
                        len(lines) + 1,
                        sid,
                        did,
                        aid,
                        ts(d["prepared"]) if d["prepared"] else None,
                        None,
                        reception,
                        comment,
                        ts(d["received"]) if d["received"] else None,
                        None,
                        None,
                    ]
                )
                if state == "remis":
                    remis_lines[pid].append(len(lines) - 1)
    # earlier slips cancelled before shipping: their lines stay, removed
    by_dest: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for info in cancelled_devices:
        by_dest[(info[3], pupil_org[info[2]])].append(info)
    for (warehouse, dest), members in sorted(by_dest.items()):
        for start in range(0, len(members), 3):
            sid, d = new_slip("annule", warehouse, dest, cancelled=True)
            for did, aid, _pid, _w, _state in members[start : start + 3]:
                lines.append(
                    [len(lines) + 1, sid, did, aid, None, None, None, "", None, None, ts(d["cancelled"])]
                )

    # ---- handovers: one per pupil for its devices handed over, over the last 60 days, after reception
    for pid in sorted(remis_lines):
        idx = remis_lines[pid]
        latest = max(slip_received[lines[i][1]] for i in idx)
        start = max(latest, now - timedelta(days=60))
        at = start + (now - start) * rng.random()
        hid = len(handovers) + 1
        handovers.append(
            (
                hid,
                f"RM-{qpv_dep[pupil_qpv[pid]]}-{now.year}-{hid:06d}",
                pid,
                pupil_org[pid],
                "pret" if rng.random() < 0.7 else "don",
                f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                rng.choice(("mère", "père", "tuteur", "élève majeur")),
                None,
                hashlib.sha256(f"{seed}-{hid}".encode()).hexdigest(),
                ts(at),
                None,
            )
        )
        for i in idx:
            lines[i][9] = hid
            assignments[lines[i][3] - 1][13] = ts(at)
    open_lines: dict[int, bool] = defaultdict(bool)  # slip -> has a line neither handed over nor resolved
    for ln in lines:
        if ln[6] == "recu" and ln[9] is None:
            open_lines[ln[1]] = True
    slip_rows = []
    for sid, number, warehouse, dest, stage, d in slips:
        state = {"emis": "emis", "prepare": "prepare", "expedie": "expedie", "annule": "annule"}.get(stage)
        closed = None
        if stage == "received":
            state = "receptionne" if open_lines[sid] else "cloture"
            closed = None if open_lines[sid] else ts(d["received"] + timedelta(days=1))
        slip_rows.append(
            (
                sid,
                number,
                warehouse,
                dest,
                state,
                ts(d["issued"] - timedelta(hours=2)),
                None,
                ts(d["issued"]),
                *(ts(d[k]) if d[k] else None for k in ("prepared", "shipped", "received")),
                closed,
                ts(d["cancelled"]) if d["cancelled"] else None,
            )
        )
    out.add(
        "slips",
        (
            "id",
            "number",
            "warehouse_id",
            "destination_id",
            "status",
            "created_at",
            "created_by_id",
            "issued_at",
            "prepared_at",
            "shipped_at",
            "received_at",
            "closed_at",
            "cancelled_at",
        ),
        slip_rows,
    )
    out.add(
        "handovers",
        (
            "id",
            "number",
            "pupil_id",
            "organisation_id",
            "mode",
            "receiver_name",
            "relation",
            "signature_png",
            "signature_sha256",
            "handed_over_at",
            "created_by_id",
        ),
        handovers,
    )
    out.add(
        "slip_lines",
        (
            "id",
            "slip_id",
            "device_id",
            "assignment_id",
            "picked_at",
            "picked_by_id",
            "reception_state",
            "reception_comment",
            "received_at",
            "handover_id",
            "removed_at",
        ),
        [tuple(ln) for ln in lines],
    )

    # ---- allocation plans: applied in three regions (one with an older superseded plan)
    qpv_count = Counter(qpv_region.values())
    ranked = sorted(regions, key=lambda r: (-qpv_count[r], r))
    need_by: Counter = Counter()
    for _id, _org, qpv, kind, count, _at, _by in needs:
        need_by[(qpv, kind)] += count
    plans, plan_lines = [], []
    for n, (region, plan_status) in enumerate(
        [(ranked[0], "remplace"), (ranked[0], "applique"), (ranked[2], "applique"), (ranked[4], "applique")],
        start=1,
    ):
        created = now - timedelta(days=110 - 5 * n)
        plans.append(
            (
                n,
                region,
                plan_status,
                ts(created),
                None,
                ts(created + timedelta(hours=1)),
                None,
                "bench: quotas proportional to declared needs",
            )
        )
        for (qpv, kind), need in sorted(need_by.items()):
            if qpv_region[qpv] == region:
                proposed = int(need * (0.7 if plan_status == "remplace" else 0.8))
                plan_lines.append((len(plan_lines) + 1, n, qpv, kind, need, proposed, proposed))
    out.add(
        "allocation_plans",
        ("id", "region_code", "status", "created_at", "created_by_id", "applied_at", "applied_by_id", "note"),
        plans,
    )
    out.add(
        "allocation_lines", ("id", "plan_id", "qpv_code", "kind", "need", "proposed", "quota"), plan_lines
    )

    out.facts.update(
        largest_region=ranked[0],
        largest_region_qpvs=qpv_count[ranked[0]],
        status_counts=dict(Counter(d[7] for d in devices)),
    )
    return out


def check_columns(data: Dataset) -> None:
    """Every generated table gives every column of the model's table, in a known order."""
    for name, (columns, _rows) in data.tables.items():
        expected = {c.name for c in Base.metadata.tables[name].columns}
        if set(columns) != expected:
            raise click.ClickException(
                f"{name}: generated {sorted(columns)} but the table has {sorted(expected)}"
            )


# ====================================================================== loading


def bar(label: str, length: int):
    return click.progressbar(
        length=length, label=f"  {label:<18}", show_pos=True, show_percent=True, width=30, file=sys.stderr
    )


CHUNK = 20_000


def load_sqlite(engine: sa.Engine, data: Dataset) -> dict[str, float]:
    """executemany in one transaction per table, synchronous=OFF and a 256 MB page cache for the load (bench
    only); foreign keys checked once at the end (PRAGMA foreign_key_check) rather than row by row."""
    timings = {}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA cache_size=-262144")
        for table, (columns, rows) in data.tables.items():
            started = time.perf_counter()
            sql = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'  # noqa: S608
            with bar(table, len(rows)) as progress:
                cur.execute("BEGIN")
                for i in range(0, len(rows), CHUNK):
                    cur.executemany(sql, rows[i : i + CHUNK])
                    progress.update(len(rows[i : i + CHUNK]))
                cur.execute("COMMIT")
            timings[table] = time.perf_counter() - started
        started = time.perf_counter()
        broken = cur.execute("PRAGMA foreign_key_check").fetchmany(5)
        if broken:
            raise click.ClickException(f"generated rows break foreign keys: {broken}")
        timings["foreign_key_check"] = time.perf_counter() - started
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-2000")
        cur.close()
    finally:
        raw.close()
    return timings


def load_postgresql(engine: sa.Engine, data: Dataset) -> dict[str, float]:
    """COPY through psycopg, one transaction per table, then the id sequences past the loaded ids.
    Foreign keys are not checked during the load (session_replication_role = replica): the generated rows
    are the ones SQLite checks with PRAGMA foreign_key_check; unique and check constraints are enforced."""
    timings = {}
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        conn.execute("SET session_replication_role = replica")
        for table, (columns, rows) in data.tables.items():
            started = time.perf_counter()
            copy_sql = f'COPY "{table}" ({", ".join(columns)}) FROM STDIN'
            with bar(table, len(rows)) as progress, conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for i, row in enumerate(rows, start=1):
                    copy.write_row(row)
                    if i % CHUNK == 0:
                        progress.update(CHUNK)
                progress.update(len(rows) % CHUNK)
            conn.commit()
            timings[table] = time.perf_counter() - started
        with conn.cursor() as cur:
            for table, (columns, _rows) in data.tables.items():
                if "id" in columns:
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f'(SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
                    )
            cur.execute("SET session_replication_role = DEFAULT")
        conn.commit()
    finally:
        raw.close()
    return timings


def load_referential(engine: sa.Engine) -> float:
    started = time.perf_counter()
    with Session(engine.execution_options(write=True)) as session:
        referential.import_qpv(session, referential.read_package_file("qpv_2024_france.csv"), by=None)
        session.commit()
    return time.perf_counter() - started


RECOUNT = "board counters (logistique recount)"


def recount(engine: sa.Engine) -> None:
    """The board's counters from the loaded rows, as ``logistique recount`` computes them on a live database
    (rows loaded by COPY do not go through the domain that keeps them)."""
    with Session(engine.execution_options(write=True)) as session:
        tallies.rebuild(session)
        session.commit()


def create_admin(engine: sa.Engine) -> str:
    """An administrator able to log in, and an API token for it."""
    with Session(engine.execution_options(write=True)) as session:
        user = accounts.create_user(
            session,
            email=ADMIN_EMAIL,
            role=accounts.Role.ADMIN,
            password=ADMIN_PASSWORD,
            display_name="Bench",
        )
        token = accounts.create_token(session, user, "bench")
        session.commit()
    return token


def analyze(engine: sa.Engine) -> None:
    """PostgreSQL: VACUUM ANALYZE, what autovacuum would have done by the time anyone looks at the board
    (statistics, and the visibility map that index-only scans need). SQLite: nothing — the app never runs
    ANALYZE, so the planner works without statistics, as it would in production."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


# ====================================================================== timings

# the board's aggregation, as status.py writes it
MAIN_QUERY = "FROM assignment_tallies JOIN qpvs"
# The board's numbers by hand as plain GROUP BYs over the source tables (assignments, pupils…), run back to
# back through the same engine: what the database alone costs to count them. The board reads its counters
# instead (domain/tallies.py); the goal is to stay within 2x of this.
RAW_STATEMENTS = (
    # devices by status and committed money per QPV
    "SELECT a.qpv_code, a.device_status, count(*), sum(a.unit_cost_cents) FROM assignments a "
    "WHERE (a.cancelled_at IS NULL OR a.device_status IN ('perdu', 'defectueux')){where:a.qpv_code} "
    "GROUP BY 1, 2",
    # registered pupils per organisation, QPV and need
    "SELECT p.organisation_id, p.qpv_code, sum(CASE WHEN p.needs_tablet THEN 1 ELSE 0 END), "
    "sum(CASE WHEN p.needs_laptop THEN 1 ELSE 0 END), sum(CASE WHEN p.needs_connection THEN 1 ELSE 0 END) "
    "FROM pupils p WHERE 1 = 1{where:p.qpv_code} GROUP BY 1, 2",
    # declared needs
    "SELECT n.organisation_id, n.qpv_code, n.kind, n.count FROM needs n WHERE 1 = 1{where:n.qpv_code}",
    # quotas of the applied plans
    "SELECT l.qpv_code, sum(l.quota) FROM allocation_lines l JOIN allocation_plans ap ON ap.id = l.plan_id "
    "WHERE ap.status = 'applique'{where:l.qpv_code} GROUP BY 1",
    # names of the QPVs
    "SELECT q0.code, q0.name, q0.department_code FROM qpvs q0 WHERE 1 = 1{where:q0.code}",
)
RAW_REGION = (
    " AND {column} IN (SELECT q.code FROM qpvs q JOIN departments dep ON dep.code = q.department_code "
    "WHERE dep.region_code = :region)"
)


# The board's own statements by hand (counters, needs, quotas, names): the ORM's and Python's share of (1).
OWN_STATEMENTS = (
    "SELECT t.qpv_code, t.device_status, sum(t.devices), sum(t.cost_cents) FROM assignment_tallies t "
    "WHERE (t.active OR t.device_status IN ('perdu', 'defectueux')){where:t.qpv_code} GROUP BY 1, 2",
    "SELECT t.organisation_id, t.qpv_code, t.kind, t.pupils FROM pupil_tallies t "
    "WHERE t.pupils <> 0{where:t.qpv_code}",
    *RAW_STATEMENTS[2:],
)


def raw_statements(region: str | None, statements: tuple[str, ...] = RAW_STATEMENTS) -> list[sa.TextClause]:
    """Statements by hand, filtered on a region or not."""
    import re

    def where(match: re.Match) -> str:
        return RAW_REGION.format(column=match.group(1)) if region else ""

    return [sa.text(re.sub(r"\{where:([a-z0-9_.]+)\}", where, sql)) for sql in statements]


@dataclass(frozen=True)
class Timing:
    median: float
    runs: int


def median_time(fn: Callable[[], object], runs: int, budget: float) -> Timing:
    """Median of ``runs`` runs after a warm-up. So that slow measures (before the indexes) keep the bench
    within its time: when ``runs`` runs would take more than ``budget`` seconds, 3 runs; when even 3 would
    take more than 1.5 × ``budget``, the warm-up is the only run. The table says so."""
    started = time.perf_counter()
    fn()  # warm-up
    first = time.perf_counter() - started
    if first * runs > budget:
        if first * 3 > 1.5 * budget:
            return Timing(first, 1)
        runs = min(runs, 3)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Timing(statistics.median(times), runs)


class StatementLog:
    """Records each statement an engine runs (text, parameters, duration) while active."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine, self.active, self.items = engine, False, []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, _cursor, statement, parameters, _context, _many):
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, _cursor, statement, parameters, _context, _many):
        if self.active:
            self.items.append((statement, parameters, time.perf_counter() - conn.info.pop("bench_started")))

    def capture(self, fn: Callable[[], object]) -> list[tuple[str, object, float]]:
        self.items, self.active = [], True
        try:
            fn()
        finally:
            self.active = False
        return self.items


def short(statement: str) -> str:
    text = " ".join(statement.split())
    return text[:150] + ("…" if len(text) > 150 else "")


@dataclass
class Scope:
    label: str
    code: str | None


def has_route(app, rule: str) -> bool:
    return any(r.rule == rule for r in app.url_map.iter_rules())


def time_engine(
    engine: sa.Engine, url: str, token: str, scopes: list[Scope], runs: int, budget: float, log: StatementLog
) -> tuple[dict, dict, dict, bool]:
    """{(scope, measure): Timing}, {scope: [(statement, parameters, seconds)] of one board call}, the same
    for one GET of the page (or of the API without the page), and whether /tableau exists."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-" + "0" * 32,
            "WTF_CSRF_ENABLED": False,
            "TESTING": True,
            "DEMO_MODE": False,
            "BASE_URL": "http://bench.invalid",
        }
    )
    page = has_route(app, "/tableau")
    client = app.test_client()
    api = app.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if page:
        response = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        if response.status_code != 302:
            raise click.ClickException(f"login refused: {response.status_code}")
    results, breakdown, page_breakdown = {}, {}, {}
    app_log = StatementLog(app.extensions["logistique.db"].engine)
    try:
        for scope in scopes:
            with Session(engine) as session:
                territory = status.resolve(session, None, scope.code)

            def run(fn):
                def go():
                    with Session(engine) as session:
                        return fn(session)

                return go

            def get(c, path):
                def go():
                    response = c.get(path)
                    if response.status_code != 200:
                        raise click.ClickException(f"GET {path}: {response.status_code}")
                    return response.get_data()

                return go

            raw_sqls = raw_statements(scope.code)
            own_sqls = raw_statements(scope.code, OWN_STATEMENTS)
            raw_params = {"region": scope.code} if scope.code else {}
            measures = {
                "board": run(lambda s, t=territory: status.board(s, t, by="qpv")),
                "money": run(lambda s, t=territory: status.money(s, t)),
                "needs": run(lambda s, c=scope.code: census.needs_by_qpv(s, region_code=c)),
                "api": get(
                    api, "/api/v1/status?by=qpv" + (f"&territory=region:{scope.code}" if scope.code else "")
                ),
                "raw": run(lambda s, qs=raw_sqls, p=raw_params: [s.execute(q, p).all() for q in qs]),
                "own": run(lambda s, qs=own_sqls, p=raw_params: [s.execute(q, p).all() for q in qs]),
            }
            if page:
                measures["page"] = get(
                    client, "/tableau" + (f"?territoire=region:{scope.code}" if scope.code else "")
                )
            for name, fn in measures.items():
                results[(scope.label, name)] = median_time(fn, runs, budget)
            breakdown[scope.label] = log.capture(measures["board"])
            page_breakdown[scope.label] = app_log.capture(measures["page" if page else "api"])
    finally:
        with app.app_context():
            from logistique.db import db

            db.get_engine().dispose()
    return results, breakdown, page_breakdown, page


def explain(engine: sa.Engine, statement: str, params) -> str:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            return "\n".join(r[0] for r in cur.fetchall())
        cur.execute("EXPLAIN QUERY PLAN " + statement, params)
        return "\n".join(str(r[3]) for r in cur.fetchall())
    finally:
        raw.close()


# ====================================================================== databases


def fresh_sqlite(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def fresh_postgresql(server: str) -> str:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    admin.dispose()
    return f"{server}/{PG_DATABASE}"


def drop_postgresql(server: str) -> None:
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    admin.dispose()


def revisions() -> tuple[str | None, str]:
    """(the revision before the board's index migration, head); (None, head) without such a migration."""
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    head = script.get_current_head()
    for rev in script.walk_revisions():
        if INDEX_MIGRATION_SLUG in Path(rev.path).name:
            return rev.down_revision, head
    return None, head


def db_size(engine: sa.Engine, path: Path | None) -> str:
    if path is not None:
        files = [Path(str(path) + suffix) for suffix in ("", "-wal")]
        return f"{sum(f.stat().st_size for f in files if f.exists()) / 2**20:.0f} MB"
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_size_pretty(pg_database_size(current_database()))").scalar()


# ====================================================================== report


MEASURES = [
    ("board", "(1) status.board(by=qpv)"),
    ("money", "(2) status.money"),
    ("needs", "(3) census.needs_by_qpv"),
    ("page", "(4) GET /tableau"),
    ("api", "(4) GET /api/v1/status?by=qpv"),
    ("raw", "(5) raw SQL: GROUP BYs over the source tables"),
    ("own", "(6) raw SQL: the board's own statements (counters)"),
]


def fmt_s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def fmt_t(timing: Timing | None, runs: int) -> str:
    if timing is None:
        return "—"
    if timing.runs >= runs:
        return fmt_s(timing.median)
    return fmt_s(timing.median) + (" (1 run)" if timing.runs == 1 else f" ({timing.runs} runs)")


def report(results: dict, engines: list[str], scopes: list[Scope], phases: list[str], runs: int) -> str:
    cols = [(e, p) for e in engines for p in phases]
    head = "| measure | territory | " + " | ".join(f"{e} {p}" for e, p in cols) + " |"
    lines = [head, "|" + " --- |" * (2 + len(cols))]
    for key, label in MEASURES:
        for scope in scopes:
            cells = [fmt_t(results.get((e, p), {}).get((scope.label, key)), runs) for e, p in cols]
            lines.append(f"| {label} | {scope.label} | " + " | ".join(cells) + " |")
    for key, base, label in (
        ("board", "raw", "ratio (1)/(5)"),
        ("page", "raw", "ratio (4) page/(5)"),
        ("api", "raw", "ratio (4) API/(5)"),
        ("board", "own", "ratio (1)/(6): ORM and Python"),
    ):
        for scope in scopes:
            cells = []
            for e, p in cols:
                r = results.get((e, p), {})
                num, den = r.get((scope.label, key)), r.get((scope.label, base))
                cells.append(f"{num.median / den.median:.1f}×" if num and den else "—")
            lines.append(f"| {label} | {scope.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ====================================================================== main


@click.command()
@click.option(
    "--engine",
    "engines",
    type=click.Choice(["sqlite", "postgresql"]),
    multiple=True,
    help="Engine(s) to bench (default: both).",
)
@click.option("--devices", "n_devices", default=500_000, show_default=True)
@click.option("--pupils", "n_pupils", default=300_000, show_default=True)
@click.option("--slips", "n_slips", default=60_000, show_default=True)
@click.option("--runs", default=5, show_default=True, help="Timed runs per measure, after one warm-up.")
@click.option(
    "--budget",
    default=20.0,
    show_default=True,
    help="Seconds a measure may take: beyond, 3 runs instead of --runs (said in the table).",
)
@click.option("--seed", default=2020, show_default=True)
@click.option(
    "--sqlite-path", type=click.Path(path_type=Path), default=RESULTS / "board.sqlite3", show_default=True
)
@click.option(
    "--pg-server",
    default="postgresql+psycopg://postgres@127.0.0.1:5432",
    show_default=True,
    help=f"PostgreSQL server; the database {PG_DATABASE} is created there and dropped at the end.",
)
@click.option("--keep", is_flag=True, help="Keep the PostgreSQL database and the SQLite file afterwards.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS / "board.md", show_default=True)
def main(
    engines, n_devices, n_pupils, n_slips, runs, budget, seed, sqlite_path, pg_server, keep, out
) -> None:
    """Generate a national operation, load it into SQLite and PostgreSQL, time the status board."""
    engines = list(engines) or ["sqlite", "postgresql"]
    bench_started = time.perf_counter()
    before_rev, head = revisions()
    phases = ["before", "after"] if before_rev else ["head"]
    notes: list[str] = []
    if not before_rev:
        notes.append(f"No `*_{INDEX_MIGRATION_SLUG}` migration: timed at head ({head}) only.")
    now = utcnow().replace(microsecond=0)

    click.echo(
        f"» Generating: {n_devices} devices, {n_pupils} pupils, {n_slips} slips (seed {seed})", err=True
    )
    started = time.perf_counter()
    data = generate(seed, n_devices, n_pupils, n_slips, now)
    check_columns(data)
    gen_seconds = time.perf_counter() - started
    counts = {t: len(rows) for t, (_c, rows) in data.tables.items()}
    region = str(data.facts["largest_region"])
    scopes = [
        Scope(f"region {region} ({data.facts['largest_region_qpvs']} QPV)", region),
        Scope("France", None),
    ]
    click.echo(f"  {gen_seconds:.1f} s in Python, peak RSS {rss_mb():.0f} MB", err=True)

    load_times: dict[str, dict[str, float]] = {}
    migration_times: dict[str, float] = {}
    sizes: dict[str, str] = {}
    runs_by: dict[tuple[str, str], dict] = {}
    breakdowns: dict[tuple[str, str], dict] = {}
    page_breakdowns: dict[tuple[str, str], dict] = {}
    explains: list[tuple[str, str]] = []
    page_exists = True
    load_avgs: dict[tuple[str, str], list[float]] = {}
    databases: dict[str, tuple[sa.Engine, str, str, Path | None]] = {}
    try:
        for name in engines:
            click.echo(f"» {name}: loading", err=True)
            path = sqlite_path if name == "sqlite" else None
            url = fresh_sqlite(sqlite_path) if name == "sqlite" else fresh_postgresql(pg_server)
            engine = make_engine(url)
            started = time.perf_counter()
            migrate.upgrade(engine, before_rev or "head")
            schema = time.perf_counter() - started
            referential_s = load_referential(engine)
            started = time.perf_counter()
            times = load_sqlite(engine, data) if name == "sqlite" else load_postgresql(engine, data)
            recount_started = time.perf_counter()
            recount(engine)
            times[RECOUNT] = time.perf_counter() - recount_started
            load_total = time.perf_counter() - started
            started = time.perf_counter()
            analyze(engine)
            load_times[name] = {
                "schema (migrations)": schema,
                "referential (import_qpv)": referential_s,
                **times,
                "VACUUM ANALYZE": time.perf_counter() - started,
                "total load": load_total,
            }
            databases[name] = (engine, url, create_admin(engine), path)
            click.echo(f"  {load_total:.1f} s, peak RSS {rss_mb():.0f} MB", err=True)
        # the generated rows are no longer needed: millions of live tuples would make every garbage
        # collection of the timed code slow, which a web worker does not suffer
        statuses = data.facts["status_counts"]
        del data
        gc.collect()
        for name, (engine, url, token, path) in databases.items():
            log = StatementLog(engine)
            for phase in phases:
                if phase == "after":
                    started = time.perf_counter()
                    migrate.upgrade(engine, "head")
                    migration_times[name] = time.perf_counter() - started
                    analyze(engine)
                click.echo(f"» {name}: timing ({phase}), load average {os.getloadavg()[0]:.1f}", err=True)
                loads = [os.getloadavg()[0]]
                results, breakdown, page_breakdown, page = time_engine(
                    engine, url, token, scopes, runs, budget, log
                )
                loads.append(os.getloadavg()[0])
                load_avgs[(name, phase)] = loads
                page_exists = page_exists and page
                runs_by[(name, phase)] = results
                breakdowns[(name, phase)] = breakdown
                page_breakdowns[(name, phase)] = page_breakdown
                for scope in scopes:
                    items = breakdown[scope.label]
                    slowest = max(items, key=lambda item: item[2])
                    main_query = next(
                        (item for item in items if MAIN_QUERY in " ".join(item[0].split())), slowest
                    )
                    for what, (stmt, params, _secs) in (("main query", main_query), ("slowest", slowest)):
                        if what == "slowest" and slowest is main_query:
                            continue
                        explains.append(
                            (
                                f"{name}, {phase}, {scope.label}: {what} of the board",
                                short(stmt) + "\n" + explain(engine, stmt, params),
                            )
                        )
                click.echo(report({(name, phase): results}, [name], scopes, [phase], runs), err=True)
            sizes[name] = db_size(engine, path)
    finally:
        for engine, *_rest in databases.values():
            engine.dispose()
        if "postgresql" in engines and not keep:
            drop_postgresql(pg_server)
        if "sqlite" in engines and not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(str(sqlite_path) + suffix).unlink(missing_ok=True)
    if not page_exists:
        notes.append("`/tableau` does not exist in this tree yet: the whole page was not timed, the API was.")
    total = time.perf_counter() - bench_started

    md = [
        "# Status board benchmark",
        "",
        f"Generated {now:%Y-%m-%d %H:%M} UTC, seed {seed}, medians of {runs} runs after a warm-up; "
        f"{os.cpu_count()} cores. Whole bench {total:.0f} s, "
        f"peak RSS of the Python process {rss_mb():.0f} MB.",
        "",
        "## Data",
        "",
        "| table | rows | " + " | ".join(f"{e} load" for e in engines) + " |",
        "|" + " --- |" * (2 + len(engines)),
    ]
    for table in [
        "schema (migrations)",
        "referential (import_qpv)",
        *counts,
        "foreign_key_check",
        RECOUNT,
        "VACUUM ANALYZE",
        "total load",
    ]:
        rows = f"{counts[table]:,}".replace(",", " ") if table in counts else ""
        md.append(
            f"| {table} | {rows} | " + " | ".join(fmt_s(load_times[e].get(table)) for e in engines) + " |"
        )
    md += [
        "",
        f"Generation in Python: {gen_seconds:.1f} s. Device statuses: "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        + ". Database size: "
        + ", ".join(f"{e} {sizes.get(e, '?')}" for e in engines)
        + ".",
    ]
    if migration_times:
        md.append(
            "Index migration on the loaded data: "
            + ", ".join(f"{e} {fmt_s(s)}" for e, s in migration_times.items())
            + "."
        )
    md += [
        "",
        "## Timings",
        "",
        report(runs_by, engines, scopes, phases, runs),
        "",
        "Load average (1 min) at the start and end of each timing phase: "
        + ", ".join(f"{e} {p} {a:.1f}→{b:.1f}" for (e, p), (a, b) in load_avgs.items())
        + " (2 cores: above 2, other work on the machine competes with the bench).",
        "",
    ]
    final = phases[-1]
    for name in engines:
        r = runs_by.get((name, final), {})
        for scope in scopes:
            raw_t = r.get((scope.label, "raw"))
            for key, what in (("board", "board"), ("page", "whole page"), ("api", "API")):
                timed = r.get((scope.label, key))
                if not (timed and raw_t):
                    continue
                ratio = timed.median / raw_t.median
                pg_goal = ""
                if name == "postgresql":
                    pg_goal = "< 0.2 s met, " if timed.median < 0.2 else "< 0.2 s NOT met, "
                notes.append(
                    f"Goal ({name} {final}, {scope.label}): {what} {fmt_s(timed.median)}, {pg_goal}"
                    f"{ratio:.1f}× the raw GROUP BYs ({'≤ 2× met' if ratio <= 2 else '≤ 2× NOT met'}), "
                    f"which take {fmt_s(raw_t.median)} alone."
                )
    md += [f"- {n}" for n in notes]
    md += ["", "## Board statements (one board call)", ""]
    for (e, p), breakdown in breakdowns.items():
        for scope, items in breakdown.items():
            md.append(
                f"**{e} {p}, {scope}**: "
                + "; ".join(
                    f"{fmt_s(secs)} `{short(stmt)[:70]}`" for stmt, _params, secs in items if secs >= 0.002
                )
            )
            md.append("")
    md += ["## Statements of one GET of the page (or of the API without the page), 5 ms or more", ""]
    for (e, p), breakdown in page_breakdowns.items():
        for scope, items in breakdown.items():
            md.append(
                f"**{e} {p}, {scope}**: {len(items)} statements, {fmt_s(sum(i[2] for i in items))} in all; "
                + "; ".join(
                    f"{fmt_s(secs)} `{short(stmt)[:70]}`" for stmt, _params, secs in items if secs >= 0.005
                )
            )
            md.append("")
    md += ["## Plans", ""]
    for title, text in explains:
        md += [f"### {title}", "", "```", text, "```", ""]
    text = "\n".join(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(text)
    click.echo(f"» written to {out}", err=True)


if __name__ == "__main__":
    main()
