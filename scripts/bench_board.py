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

import gc
import os
import time
from pathlib import Path

import click
import sqlalchemy as sa
from bench_board_data import INDEX_MIGRATION_SLUG, PG_DATABASE, RESULTS, check_columns, generate, rss_mb
from bench_board_load import (
    RECOUNT,
    analyze,
    create_admin,
    db_size,
    drop_postgresql,
    fresh_postgresql,
    fresh_sqlite,
    load_postgresql,
    load_referential,
    load_sqlite,
    recount,
    revisions,
)
from bench_board_timing import MAIN_QUERY, Scope, StatementLog, Timing, explain, short, time_engine

import logistique.models  # noqa: F401  (registers every table)
from logistique import migrate
from logistique.db import make_engine, utcnow

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
