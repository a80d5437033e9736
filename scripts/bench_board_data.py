"""Generation of the status board benchmark's synthetic national operation (``scripts/bench_board.py``):
seeded, deterministic rows per table."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import random
import resource
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import click

import logistique.models  # noqa: F401  (registers every table)
from logistique import codes
from logistique.db import Base
from logistique.domain import referential

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
