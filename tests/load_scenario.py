"""An operation day at full load, shared by the suite's bounded load test and ``scripts/bench``.

``seed`` builds, through the domain (so that journal and board counters are exact), a region with one
warehouse and one association, accounts of each role with API tokens, devices on issued slips waiting to be
picked, devices in stock and pupils waiting for them. ``run_load`` drives a real server with concurrent
clients, each keeping its own HTTP connection: device reads (bearer token), picks by the API (each with an
Idempotency-Key, some replayed), assignments racing two by two for the same device (coordinator's token) and
web scans (logged-in session, CSRF token). ``check`` then compares the database with every 2xx answer."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from logistique.domain import accounts, assignments, devices, money, pupils, referential, slips, tallies
from logistique.models import (
    Assignment,
    Department,
    Device,
    DeviceCondition,
    DeviceEvent,
    DeviceKind,
    DeviceStatus,
    EnvelopeKind,
    OrganisationKind,
    Pupil,
    Qpv,
    Region,
    Role,
    SlipLine,
)

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "charge-mot-de-passe"  # noqa: S105 — throw-away accounts of a throw-away database
SLIP_SIZE = 10
KINDS = ("read", "pick", "assign", "scan")


@dataclass
class Scenario:
    """What the clients need: accounts, tokens, and the work each kind of client shares out."""

    warehouse_email: str
    tokens: dict[str, str]  # role -> bearer token
    pick_slips: list[tuple[str, list[str]]]  # slips for the API's picks: number, serials
    scan_slips: list[tuple[str, list[str]]]  # slips for the web scans
    free_serials: list[str]  # tablets in stock, to be assigned
    waiting_pupils: list[str]  # references of pupils waiting for a tablet
    read_serials: list[str] = field(default_factory=list)


def _phone(n: int) -> str:
    digits = f"{n:08d}"
    return "06 " + " ".join(digits[i : i + 2] for i in range(0, 8, 2))


def _name(n: int) -> str:
    letters = ""
    while True:
        n, rest = divmod(n, 26)
        letters = chr(65 + rest) + letters
        if n == 0:
            return "Charge" + letters.lower()


def _pupils(session: Session, coordinator, start: int, count: int) -> list[Pupil]:
    if not count:
        return []
    rows = ["prenom;nom;niveau;uai;qpv;responsable_nom;responsable_telephone;besoins"]
    rows += [
        f"Eleve;{name};CM2;0750654D;QN05981M;Parent {name};{_phone(n)};tablette"
        for n, name in ((start + i, _name(start + i)) for i in range(count))
    ]
    before = session.scalar(sa.select(sa.func.max(Pupil.id))) or 0
    report = pupils.import_pupils(session, "\n".join(rows).encode(), by=coordinator)
    made = list(session.scalars(sa.select(Pupil).where(Pupil.id > before).order_by(Pupil.id)))
    assert len(made) == report.created == count
    return made


def seed(session: Session, *, picks: int, scans: int, free: int, progress=lambda _step: None) -> Scenario:
    """Build the operation: ``picks`` and ``scans`` devices on issued slips, ``free`` devices in stock and
    2 × ``free`` pupils waiting (commits)."""
    session.add(Region(code="32", name="Hauts-de-France"))
    session.flush()
    session.add(Department(code="59", name="Nord", region_code="32"))
    session.flush()
    session.add(Qpv(code="QN05981M", name="Nouveau Roubaix", department_code="59", list_year=2024))
    session.flush()

    def org(kind: OrganisationKind, name: str, qpvs: list[str]):
        data = referential.OrganisationData(kind=kind, name=name, department_code="59", qpv_codes=qpvs)
        return referential.save_organisation(session, data, by=None)

    warehouse = org(OrganisationKind.WAREHOUSE, "Entrepôt de charge", [])
    association = org(OrganisationKind.ASSOCIATION, "Association de charge", ["QN05981M"])

    def user(email: str, role: Role, **scope):
        return accounts.create_user(session, email=email, role=role, password=PASSWORD, **scope)

    volunteer = user("entrepot@charge.test", Role.WAREHOUSE, organisation_id=warehouse.id)
    coordinator = user("coordination@charge.test", Role.COORDINATOR, organisation_id=association.id)
    prefecture = user("prefecture@charge.test", Role.PREFECTURE, territory="region:32")
    envelope = money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="32", kind=EnvelopeKind.DELEGATED, label="Charge", amount_cents=10**12
        ),
        by=None,
    )
    tablet = money.get_or_create_model(session, DeviceKind.TABLET, "Tablette de charge", by=None)
    lot = money.save_lot(
        session,
        money.LotData(
            reference="LOT-CHARGE",
            supplier="Emmaüs Connect",
            envelope_id=envelope.id,
            warehouse_id=warehouse.id,
            unit_costs={tablet.id: 100},
        ),
        by=None,
    )
    tokens = {
        "warehouse": accounts.create_token(session, volunteer),
        "coordinator": accounts.create_token(session, coordinator),
        "prefecture": accounts.create_token(session, prefecture),
    }
    session.commit()
    progress("référentiel")

    def receive(prefix: str, count: int) -> list[Device]:
        out = []
        for i in range(count):
            out.append(
                devices.receive_device(
                    session,
                    lot=lot,
                    model=tablet,
                    serial=f"{prefix}-{i:06d}",
                    condition=DeviceCondition.REFURBISHED,
                    by=None,
                )
            )
            if i % 500 == 499:
                session.commit()
        session.commit()
        return out

    def on_slips(prefix: str, count: int) -> list[tuple[str, list[str]]]:
        stock = receive(prefix, count)
        waiting = _pupils(session, coordinator, len(_seen), count)
        _seen.extend(waiting)
        out = []
        for start in range(0, count, SLIP_SIZE):
            batch = list(
                zip(stock[start : start + SLIP_SIZE], waiting[start : start + SLIP_SIZE], strict=True)
            )
            for device, pupil in batch:
                assignments.assign(session, pupil=pupil, device=device, by=coordinator)
            serials = [d.serial for d, _p in batch]
            slip = slips.create_slip(
                session, destination=association, serials=serials, by=coordinator, issue=True
            )
            out.append((slip.number, serials))
            if start % 500 == 0:
                session.commit()
        session.commit()
        progress(f"{count} équipements sur bordereaux ({prefix})")
        return out

    _seen: list[Pupil] = []
    pick_slips = on_slips("SN-PICK", picks)
    scan_slips = on_slips("SN-SCAN", scans)
    free_devices = receive("SN-FREE", free)
    waiting = _pupils(session, coordinator, len(_seen), 2 * free) if free else []
    session.commit()
    progress(f"{free} équipements en stock, {2 * free} élèves en attente")
    return Scenario(
        warehouse_email=volunteer.email,
        tokens=tokens,
        pick_slips=pick_slips,
        scan_slips=scan_slips,
        free_serials=[d.serial for d in free_devices],
        waiting_pupils=[p.reference for p in waiting],
        read_serials=[s for _n, serials in pick_slips for s in serials] + [d.serial for d in free_devices],
    )


# ---------------------------------------------------------------- clients


@dataclass
class Answer:
    kind: str
    status: int  # 0: no answer (connection refused, reset, timeout)
    seconds: float
    subject: str = ""  # serial, or "serial pupil" for assignments
    outcome: str = ""  # picks and scans: picked / already / refused
    replayed: bool = False
    body: str = ""


class Http:
    """One client's connection; cookies kept when ``cookies`` (a logged-in browser)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.token = token
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # the server closed a kept-alive connection before reading this request: nothing was done
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return response, data

    def close(self) -> None:
        self.conn.close()


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def web_login(client: Http, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form, as a browser does (CSRF token of the page, then the session cookie)."""
    _response, page = client.request("GET", "/login")
    token = _CSRF.search(page.decode()).group(1)
    body = urlencode({"csrf_token": token, "email": email, "password": password}).encode()
    response, _ = client.request(
        "POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 302, f"connexion refusée ({response.status})"


def csrf_token(client: Http, path: str) -> str:
    """The CSRF token of a form page."""
    response, page = client.request("GET", path)
    assert response.status == 200, f"{path} : {response.status}"
    return _CSRF.search(page.decode()).group(1)


class _Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = 0.0

    def start(self) -> None:
        self.end = time.monotonic() + self.seconds

    def running(self) -> bool:
        return time.monotonic() < self.end


def _timed(kind: str, client: Http, method: str, path: str, subject: str = "", **kwargs) -> Answer:
    start = time.perf_counter()
    try:
        response, data = client.request(method, path, **kwargs)
    except OSError as exc:
        return Answer(kind, 0, time.perf_counter() - start, subject, body=repr(exc))
    answer = Answer(kind, response.status, time.perf_counter() - start, subject, body=data.decode()[:300])
    answer.replayed = response.getheader("Idempotent-Replayed") == "true"
    if kind in ("pick", "scan") and response.getheader("Content-Type", "").startswith("application/json"):
        answer.outcome = json.loads(data).get("outcome", "")
    return answer


def _reader(base: str, sc: Scenario, clock: _Clock, rnd: random.Random, out: list[Answer]) -> None:
    client = Http(base, token=sc.tokens["prefecture"])
    while clock.running():
        serial = rnd.choice(sc.read_serials)
        out.append(_timed("read", client, "GET", f"/api/v1/devices/{serial}", serial))
    client.close()


def _picker(base: str, sc: Scenario, work: list[tuple[str, str]], clock: _Clock, out: list[Answer]) -> None:
    client = Http(base, token=sc.tokens["warehouse"])
    i = 0
    while clock.running() and work:
        number, serial = work[i % len(work)]  # once through its devices, a client picks them again: "already"
        key = uuid.uuid4().hex
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        body = json.dumps({"serial": serial}).encode()
        path = f"/api/v1/slips/{number}/picks"
        out.append(_timed("pick", client, "POST", path, serial, body=body, headers=headers))
        if i % 7 == 0:  # a retry with the same key: the first answer again, nothing more changes
            out.append(_timed("pick", client, "POST", path, serial, body=body, headers=headers))
        i += 1
    client.close()


def _assigner(base: str, sc: Scenario, work: list[tuple[str, str]], clock: _Clock, out: list[Answer]) -> None:
    client = Http(base, token=sc.tokens["coordinator"])
    for serial, pupil in work:
        if not clock.running():
            break
        body = json.dumps({"pupil": pupil, "serial": serial}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        answer = _timed(
            "assign", client, "POST", "/api/v1/assignments", f"{serial} {pupil}", body=body, headers=headers
        )
        out.append(answer)
    client.close()


def _scanner(
    base: str,
    sc: Scenario,
    work: list[tuple[str, str]],
    clock: _Clock,
    out: list[Answer],
    ready: threading.Barrier,
) -> None:
    client = Http(base)
    try:
        web_login(client, sc.warehouse_email)
        token = csrf_token(client, f"/bordereaux/{work[0][0]}/preparation") if work else ""
    except (AssertionError, OSError) as exc:
        out.append(Answer("scan", 0, 0.0, "connexion", body=repr(exc)))
        work = []
    finally:
        ready.wait()
    i = 0
    while clock.running() and work:
        number, serial = work[i % len(work)]
        body = urlencode({"csrf_token": token, "code": serial}).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "X-CSRFToken": token,
        }
        out.append(
            _timed("scan", client, "POST", f"/bordereaux/{number}/scan", serial, body=body, headers=headers)
        )
        i += 1
    client.close()


def _share(slips_: list[tuple[str, list[str]]], clients: int) -> list[list[tuple[str, str]]]:
    """Slips dealt out to clients, so that no two clients scan the same slip."""
    shares: list[list[tuple[str, str]]] = [[] for _ in range(clients)]
    for i, (number, serials) in enumerate(slips_):
        shares[i % clients].extend((number, s) for s in serials)
    return shares


def run_load(base_url: str, sc: Scenario, *, clients: int, seconds: float, seed: int = 1) -> list[Answer]:
    """``clients`` concurrent clients (a quarter of each kind) for ``seconds``; every answer they got."""
    per_kind = max(1, clients // 4)
    rnd = random.Random(seed)
    answers: list[list[Answer]] = [[] for _ in range(4 * per_kind)]
    clock = _Clock(seconds)
    ready = threading.Barrier(per_kind + 1, action=clock.start)  # once every scanner has logged in
    pick_work = _share(sc.pick_slips, per_kind)
    scan_work = _share(sc.scan_slips, per_kind)
    # assignments race two by two: clients 2k and 2k+1 target the same devices with different pupils
    pairs = max(1, per_kind // 2)
    assign_work: list[list[tuple[str, str]]] = [[] for _ in range(per_kind)]
    for i, serial in enumerate(sc.free_serials):
        pair = i % pairs
        for side in (0, 1):
            client = 2 * pair + side
            if client < per_kind:
                assign_work[client].append((serial, sc.waiting_pupils[2 * i + side]))
    scanners = [
        threading.Thread(
            target=_scanner, args=(base_url, sc, scan_work[k], clock, answers[3 * per_kind + k], ready)
        )
        for k in range(per_kind)
    ]
    for t in scanners:
        t.start()
    ready.wait()
    others = [
        threading.Thread(target=_reader, args=(base_url, sc, clock, random.Random(rnd.random()), answers[k]))
        for k in range(per_kind)
    ]
    others += [
        threading.Thread(target=_picker, args=(base_url, sc, pick_work[k], clock, answers[per_kind + k]))
        for k in range(per_kind)
    ]
    others += [
        threading.Thread(
            target=_assigner, args=(base_url, sc, assign_work[k], clock, answers[2 * per_kind + k])
        )
        for k in range(per_kind)
    ]
    for t in others:
        t.start()
    for t in scanners + others:
        t.join()
    return [a for bucket in answers for a in bucket]


# ---------------------------------------------------------------- what the database must say


def summary(answers: list[Answer]) -> dict[str, Counter]:
    """Status codes by kind of request."""
    out: dict[str, Counter] = {kind: Counter() for kind in KINDS}
    for a in answers:
        out[a.kind][a.status] += 1
    return out


def server_errors(answers: list[Answer]) -> list[Answer]:
    """Answers that are 5xx, or no answer at all."""
    return [a for a in answers if a.status >= 500 or a.status == 0]


def check(session: Session, sc: Scenario, answers: list[Answer]) -> list[str]:
    """Every way in which the database disagrees with the 2xx answers the clients received."""
    problems: list[str] = []
    ok = [a for a in answers if 200 <= a.status < 300]
    picked = Counter(
        a.subject for a in ok if a.kind in ("pick", "scan") and a.outcome == "picked" and not a.replayed
    )
    on_slips = {s for _n, serials in sc.pick_slips + sc.scan_slips for s in serials}
    events = Counter(
        dict(
            session.execute(
                sa.select(Device.serial, sa.func.count(DeviceEvent.id))
                .join(DeviceEvent, DeviceEvent.device_id == Device.id)
                .where(DeviceEvent.action == "pick")
                .group_by(Device.serial)
            ).all()
        )
    )
    lines = dict(
        session.execute(
            sa.select(Device.serial, SlipLine.picked_at)
            .join(SlipLine, SlipLine.device_id == Device.id)
            .where(SlipLine.removed_at.is_(None))
        ).all()
    )
    for serial in sorted(on_slips):
        if picked[serial] > 1:
            problems.append(f"{serial} : {picked[serial]} réponses « préparé » pour un seul équipement")
        if events[serial] != picked[serial]:
            problems.append(
                f"{serial} : {events[serial]} événement(s) « pick », {picked[serial]} réponse(s) « préparé »"
            )
        if (lines.get(serial) is not None) != (picked[serial] == 1):
            problems.append(
                f"{serial} : ligne préparée = {lines.get(serial) is not None}, réponses = {picked[serial]}"
            )
    for a in ok:
        if a.kind == "pick" and a.replayed and a.outcome == "picked" and events[a.subject] != 1:
            problems.append(f"{a.subject} : une reprise Idempotency-Key a changé le journal")

    won = Counter(a.subject.split()[0] for a in ok if a.kind == "assign")
    given = {tuple(a.subject.split()) for a in ok if a.kind == "assign"}
    active = session.execute(
        sa.select(Device.serial, Pupil.reference, Device.status)
        .join(Assignment, Assignment.device_id == Device.id)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .where(Assignment.cancelled_at.is_(None), Device.serial.in_(sc.free_serials))
    ).all()
    per_device = Counter(serial for serial, _ref, _status in active)
    for serial, count in won.items():
        if count > 1:
            problems.append(f"{serial} : attribué {count} fois (réponses 201)")
    for serial, count in per_device.items():
        if count > 1:
            problems.append(f"{serial} : {count} attributions actives (à deux endroits)")
    if {(s, r) for s, r, _st in active} != given:
        problems.append(f"attributions en base ≠ réponses 201 : {len(active)} en base, {len(given)} réponses")
    for serial in sc.free_serials:
        status = session.scalar(sa.select(Device.status).where(Device.serial == serial))
        expected = DeviceStatus.ASSIGNED if won[serial] else DeviceStatus.IN_STOCK
        if status is not expected:
            problems.append(f"{serial} : statut {status}, attendu {expected} d'après les réponses")
    double = session.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(SlipLine.device_id)
            .where(SlipLine.removed_at.is_(None))
            .group_by(SlipLine.device_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
    )
    if double:
        problems.append(f"{double} équipement(s) sur deux bordereaux à la fois")
    problems += [f"compteurs : {d}" for d in tallies.differences(session)]
    return problems


# ---------------------------------------------------------------- a real server


def analyze(url: str) -> None:
    """Gather the tables' statistics, as a database in service has them: PostgreSQL's autovacuum does within
    a minute or so of a bulk load, and a measure started right after seeding would otherwise time plans made
    without them (the pick's lookup: 1.8 ms instead of 0.14). SQLite plans without them: nothing to do."""
    if not url.startswith("postgresql"):
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(
    app_spec: str,
    env: dict[str, str],
    *,
    workers: int = 2,
    log: Path | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """``app_spec`` served by gunicorn as scripts/serve runs it (sync workers); yields its base URL."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--config",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        *extra,
        app_spec,
    ]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 — closed below
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn s'est arrêté (code {process.returncode}) : {' '.join(command)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()
