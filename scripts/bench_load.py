"""Load test of an operation day (issue 11): 64 concurrent clients for 30 s against gunicorn (2 workers, as
scripts/serve runs it), on SQLite and on PostgreSQL, then the database checked against every 2xx answer.

The clients (tests/load_scenario.py, a quarter of each kind, one HTTP connection each): device reads with a
prefecture token, picks by the API with a warehouse token and an Idempotency-Key (one in seven retried with
its key), assignments by a coordinator's token racing two by two for the same devices, web scans by logged-in
volunteers with their CSRF token. Success means no 5xx nor unanswered request, every accepted pick is one
journal event, no device is in two places, and the board's counters match a recount. The suite runs the same
check in a bounded form (tests/test_load.py). Run through ``scripts/bench load [options]``; writes
bench-results/load.md."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_api import drop_database, fresh_database  # noqa: E402

from logistique import create_app  # noqa: E402
from logistique.db import db  # noqa: E402
from tests import load_scenario  # noqa: E402

RESULTS = ROOT / "bench-results"


def load_engine(engine_name: str, clients: int, seconds: int, workdir: Path) -> dict:
    click.echo(f"\n## {engine_name}", err=True)
    url = fresh_database(engine_name, workdir)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench-load"})
    started = time.perf_counter()
    per_kind = max(1, clients // 4)
    with app.app_context(), db.new_session(write=True) as session:
        scenario = load_scenario.seed(
            session,
            picks=20 * per_kind,
            scans=20 * per_kind,
            free=10 * per_kind,
            progress=lambda m: click.echo(f"   {m}", err=True),
        )
    click.echo(f"   données : {time.perf_counter() - started:.0f} s", err=True)
    load_scenario.analyze(url)
    env = {
        "LOGISTIQUE_DATABASE_URL": url,
        "LOGISTIQUE_SECRET_KEY": "bench-load",
        "LOGISTIQUE_BASE_URL": "http://b",
    }
    log = RESULTS / f"load-{engine_name}.log"
    with load_scenario.gunicorn("logistique:create_app()", env, log=log) as base:
        answers = load_scenario.run_load(base, scenario, clients=clients, seconds=seconds)
    with app.app_context(), db.new_session() as session:
        problems = load_scenario.check(session, scenario, answers)
    db_engine = app.extensions["logistique.db"].engine
    db_engine.dispose()
    drop_database(engine_name)
    errors = load_scenario.server_errors(answers)
    for problem in problems[:20]:
        click.echo(f"   ÉCART : {problem}", err=True)
    for answer in errors[:5]:
        click.echo(f"   5xx : {answer.kind} {answer.subject} → {answer.status} {answer.body[:200]}", err=True)
    return {"answers": answers, "problems": problems, "errors": errors}


def report(results: dict[str, dict], clients: int, seconds: int) -> str:
    lines = [
        f"{clients} clients simultanés pendant {seconds} s (un quart de chaque sorte), gunicorn 2 workers.",
        "",
        "| base | requêtes | lectures | préparations API | attributions (201 / 409) | scans web "
        "| 5xx ou sans réponse | p99 | écarts base / réponses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine_name, data in results.items():
        answers = data["answers"]
        by_kind = load_scenario.summary(answers)
        ok = {k: sum(n for s, n in c.items() if 200 <= s < 300) for k, c in by_kind.items()}
        p99 = statistics.quantiles([a.seconds for a in answers], n=100)[98] * 1000 if len(answers) > 1 else 0
        lines.append(
            f"| {engine_name} | {len(answers)} | {ok['read']} | {ok['pick']} | "
            f"{by_kind['assign'][201]} / {by_kind['assign'][409]} | {ok['scan']} | {len(data['errors'])} | "
            f"{p99:.0f} ms | {len(data['problems'])} |"
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--engines", default="sqlite,postgresql", show_default=True)
@click.option("--clients", default=64, show_default=True)
@click.option("--seconds", default=30, show_default=True)
def main(engines: str, clients: int, seconds: int) -> None:
    """64 concurrent clients for 30 s: zero 5xx, and the database agrees with every 2xx answer."""
    RESULTS.mkdir(exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        for engine_name in engines.split(","):
            results[engine_name] = load_engine(engine_name, clients, seconds, Path(tmp))
    text = report(results, clients, seconds)
    (RESULTS / "load.md").write_text("# scripts/bench load\n\n" + text)
    click.echo(text)
    failed = any(data["errors"] or data["problems"] for data in results.values())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
