"""The demo operation: the real Hauts-de-France referential and a fictitious operation on top of it."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from . import codes
from .domain import accounts, money, referential
from .domain.referential import OrganisationData
from .domain.stock_import import import_stock
from .models import DeviceCondition, DeviceKind, EnvelopeKind, Organisation, OrganisationKind, Qpv, Role, User

DEMO_PASSWORD = "demo-logistique-2020"  # noqa: S105 — demo accounts only log in when LOGISTIQUE_DEMO_MODE=1
DOMAIN = "demo.logistique.fr"


def _uai(seed: str) -> str:
    return seed + codes.uai_check_letter(seed)


# (kind, name, department, address, postal code, city, communes whose QPVs it serves, cité éducative)
ORGANISATIONS = [
    (
        "entrepot",
        "Emmaüs Connect — entrepôt de Lille",
        "59",
        "12 rue de l'Entrepôt",
        "59000",
        "Lille",
        [],
        None,
    ),
    ("entrepot", "Emmaüs Connect — entrepôt d'Amiens", "80", "4 rue des Docks", "80000", "Amiens", [], None),
    (
        "association",
        "Association Horizon Roubaix",
        "59",
        "25 boulevard de Fourmies",
        "59100",
        "Roubaix",
        ["Roubaix"],
        "cite-064",
    ),
    (
        "association",
        "Centre social Lille Sud",
        "59",
        "8 rue du Faubourg-des-Postes",
        "59000",
        "Lille",
        ["Lille"],
        "cite-037",
    ),
    (
        "ecole",
        "Collège Madame-de-Staël (démo)",
        "59",
        "1 rue du Collège",
        "59200",
        "Tourcoing",
        ["Tourcoing"],
        "cite-074",
    ),
    (
        "association",
        "Maison de quartier Europe",
        "02",
        "2 place de l'Europe",
        "02100",
        "Saint-Quentin",
        ["Saint-Quentin"],
        "cite-069",
    ),
    (
        "association",
        "Association Argentine Solidaire",
        "60",
        "10 avenue de Bourgogne",
        "60000",
        "Beauvais",
        ["Beauvais"],
        "cite-087",
    ),
    (
        "association",
        "Centre social Lens Nord",
        "62",
        "3 rue de la Gare",
        "62300",
        "Lens",
        ["Lens"],
        "cite-034",
    ),
    (
        "ecole",
        "École Jules-Ferry (démo)",
        "62",
        "5 rue de l'École",
        "62100",
        "Calais",
        ["Calais"],
        "cite-013",
    ),
    (
        "association",
        "Association Amiens Nord Avenir",
        "80",
        "6 place du Colvert",
        "80080",
        "Amiens",
        ["Amiens"],
        "cite-002",
    ),
]
SCHOOL_UAI_SEEDS = {"Collège Madame-de-Staël (démo)": "0599901", "École Jules-Ferry (démo)": "0629901"}

MODELS = [
    (DeviceKind.TABLET, "Samsung Galaxy Tab A 10.1", 15000),
    (DeviceKind.LAPTOP, "Lenovo ThinkPad T470", 23000),
    (DeviceKind.HOTSPOT, "Huawei E5576 + forfait 100 Go", 6500),
]

LOTS = [
    (
        "EC-HDF-2020-01",
        "Emmaüs Connect — entrepôt de Lille",
        "credits",
        {DeviceKind.TABLET: 300, DeviceKind.HOTSPOT: 150},
    ),
    (
        "EC-HDF-2020-02",
        "Emmaüs Connect — entrepôt d'Amiens",
        "credits",
        {DeviceKind.LAPTOP: 120, DeviceKind.TABLET: 80},
    ),
    ("EC-HDF-2020-03", "Emmaüs Connect — entrepôt de Lille", "cite_2020", {DeviceKind.LAPTOP: 100}),
]


def load(session: Session, *, echo: Callable[[str], None] = print) -> None:
    """Load the referential and the demo operation into an empty database (no commit)."""
    if session.scalar(sa.select(sa.func.count(User.id))):
        raise referential.ValidationFailed(
            "La base contient déjà des comptes : la démo se charge dans une base vide."
        )
    referential.load_base_referential(session)
    report = referential.import_qpv(
        session, referential.read_package_file("qpv_2024_hauts_de_france.csv"), by=None
    )
    echo(f"Référentiel Hauts-de-France : {report.created} QPV.")
    orgs = _organisations(session)
    envelopes = _envelopes(session)
    models = {kind: money.get_or_create_model(session, kind, name, by=None) for kind, name, _ in MODELS}
    rng = random.Random(2020)
    for reference, warehouse, envelope, counts in LOTS:
        lot = money.save_lot(
            session,
            money.LotData(
                reference=reference,
                supplier="Emmaüs Connect",
                envelope_id=envelopes[envelope].id,
                warehouse_id=orgs[warehouse].id,
                signed_on=date(2020, 4, 20),
                unit_costs={models[k].id: cost for k, _, cost in MODELS},
            ),
            by=None,
        )
        rows = ["numero_serie;type;modele;etat"]
        for kind, count in counts.items():
            prefix = {DeviceKind.TABLET: "R52", DeviceKind.LAPTOP: "PF", DeviceKind.HOTSPOT: "HW"}[kind]
            for _ in range(count):
                serial = prefix + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(9))
                rows.append(f"{serial};{kind.value};{models[kind].name};{DeviceCondition.REFURBISHED.value}")
        result = import_stock(session, ("\r\n".join(rows) + "\r\n").encode(), lot=lot, by=None)
        echo(f"Lot {reference} : {result.created} équipements en stock à {warehouse}.")
    _users(session, orgs)
    _pupils_and_needs(session, orgs, rng, echo)
    _journey(session, orgs, rng, echo)
    _returns(session, echo)
    _class_waiting(session, orgs, rng, echo)


FIRST_NAMES = [
    "Inès",
    "Adam",
    "Lina",
    "Rayan",
    "Jade",
    "Nolan",
    "Sarah",
    "Yanis",
    "Chloé",
    "Ilyes",
    "Manon",
    "Ethan",
    "Aya",
    "Noah",
    "Léna",
    "Sacha",
    "Maëlys",
    "Amine",
    "Louise",
    "Kylian",
]
LAST_NAMES = [
    "Martin",
    "Bernard",
    "Dubois",
    "Benali",
    "Lefebvre",
    "Diallo",
    "Moreau",
    "Haddad",
    "Lambert",
    "Nguyen",
    "Fontaine",
    "Traoré",
    "Roux",
    "Mercier",
    "Ouali",
    "Garnier",
    "Boyer",
    "Caron",
]
GRADES = ["CM1", "CM2", "6e", "5e", "4e", "3e", "2de", "1re"]
NEEDS = ["tablette+connexion", "tablette", "ordinateur", "ordinateur+connexion", "connexion"]


def _pupils_and_needs(session: Session, orgs: dict[str, Organisation], rng: random.Random, echo) -> None:
    """A census per association, some registered pupils (fictitious; phones in ARCEP's range for fiction),
    and a few devices already assigned by the Roubaix association."""
    from .domain import assignments, census, pupils
    from .models import Device, DeviceModel, NeedKind

    phone = 0
    registered = 0
    for org in orgs.values():
        if org.kind not in (OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL) or not org.qpvs:
            continue
        school = org.uai or _uai(f"0{org.department_code[:2]}98{rng.randint(10, 99)}")
        counts = {}
        for qpv in org.qpvs:
            for kind in NeedKind:
                counts[(qpv.code, kind)] = rng.randint(4, 25)
        census.declare_needs(session, org, counts, by=None)
        for _ in range(rng.randint(6, 12)):
            phone += 1
            pupils.register_pupil(
                session,
                pupils.PupilData(
                    rng.choice(FIRST_NAMES),
                    rng.choice(LAST_NAMES),
                    rng.choice(GRADES),
                    school,
                    rng.choice(org.qpvs).code,
                    f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    f"06 39 98 {phone // 100:02d} {phone % 100:02d}",
                    rng.choice(NEEDS),
                ),
                by=None,
                organisation=org,
            )
            registered += 1
    roubaix = next(o for o in orgs.values() if "Roubaix" in o.name)
    given = 0
    for pupil in session.scalars(
        sa.select(pupils.Pupil)
        .where(pupils.Pupil.organisation_id == roubaix.id)
        .order_by(pupils.Pupil.id)
        .limit(4)
    ):
        for kind in pupil.needs:
            device = session.scalar(
                sa.select(Device)
                .join(DeviceModel, Device.model_id == DeviceModel.id)
                .where(Device.status == "en_stock", DeviceModel.kind == kind.device_kind)
                .order_by(Device.id)
                .limit(1)
            )
            if device is not None:
                assignments.assign(session, pupil=pupil, device=device, by=None)
                given += 1
    echo(f"Élèves : {registered} enregistrés (données fictives), {given} équipements déjà attribués.")


CLASS_NAMES = [  # a class registered this week, waiting: the scan-to-assign page of the demo equips it
    ("Łukasz", "Wiśniewski"),
    ("Şükrü", "Yılmaz"),
    ("Thị Hương", "Nguyễn"),
    ("Ștefan", "Țurcanu"),
]
CLASS_SIZE = 24


def _class_waiting(session: Session, orgs: dict[str, Organisation], rng: random.Random, echo) -> None:
    """A CM2 class of the Roubaix association registered this week, every pupil waiting for a tablet (half
    of them with a 4G key too): what a coordinator equips by scanning on « Attribuer en scannant »."""
    from .domain import pupils

    roubaix = next(o for o in orgs.values() if "Roubaix" in o.name)
    school = roubaix.uai or _uai("0599877")
    for n in range(CLASS_SIZE):
        first, last = (
            CLASS_NAMES[n] if n < len(CLASS_NAMES) else (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
        )
        pupils.register_pupil(
            session,
            pupils.PupilData(
                first,
                last,
                "CM2",
                school,
                rng.choice(roubaix.qpvs).code,
                f"{rng.choice(FIRST_NAMES)} {last}",
                f"06 39 98 90 {n:02d}",
                "tablette+connexion" if n % 2 else "tablette",
            ),
            by=None,
            organisation=roubaix,
        )
    echo(f"Une classe de CM2 de {roubaix.name} ({CLASS_SIZE} élèves) attend ses tablettes.")


# what happens to the devices of successive groups of pupils of a structure, and when (days ago):
# (stage, issued, shipped, received); handovers fall between reception and today
STAGES = [
    ("remis", 24, 22, 20),
    ("remis", 17, 15, 13),
    ("recu", 12, 10, 8),
    ("expedie", 9, 6, None),  # on the road for six days: a stuck slip
    ("emis", 5, None, None),  # issued five days ago, not prepared yet: stuck too
    ("attribue", None, None, None),
]
PUPILS_PER_SLIP = 2


def _journey(session: Session, orgs: dict[str, Organisation], rng: random.Random, echo) -> None:
    """Devices at every stage, so that each page has something to show: every registered pupil gets devices
    (from the warehouse of its department when it has one); then, structure by structure, groups of
    pupils go through slips issued, prepared, shipped and received weeks ago, handovers signed since, one
    device damaged and one missing at reception, slips stuck on the road or at the warehouse, others only
    assigned."""
    from datetime import timedelta

    from .db import utcnow
    from .domain import assignments, handover, slips
    from .domain.errors import DomainError
    from .models import Device, DeviceModel, DeviceStatus, HandoverMode, Pupil, ReceptionState

    now = utcnow().replace(microsecond=0)

    def ago(days: int) -> object:
        return now - timedelta(days=days, hours=rng.randint(1, 6), minutes=rng.randint(0, 59))

    warehouses = {o.department_code: o for o in orgs.values() if o.kind is OrganisationKind.WAREHOUSE}
    lille = next(o for o in warehouses.values() if "Lille" in o.name)
    given: dict[int, dict[int, list[str]]] = {}  # structure -> warehouse -> serials, pupil by pupil
    owner: dict[str, Pupil] = {}
    for pupil in session.scalars(sa.select(Pupil).order_by(Pupil.organisation_id, Pupil.id)):
        for kind in pupil.needs:
            assignment = next(
                (a for a in pupil.assignments if a.kind is kind and a.cancelled_at is None), None
            )
            device = assignment.device if assignment is not None else None
            if device is None:
                preferred = warehouses.get(pupil.qpv.department_code, lille)
                device = session.scalar(
                    sa.select(Device)
                    .join(DeviceModel, Device.model_id == DeviceModel.id)
                    .where(Device.status == DeviceStatus.IN_STOCK, DeviceModel.kind == kind.device_kind)
                    .order_by(Device.warehouse_id != preferred.id, Device.id)
                    .limit(1)
                )
                if device is None:
                    continue
                try:
                    assignments.assign(session, pupil=pupil, device=device, by=None, now=ago(26))
                except DomainError:  # the envelope or its cap would be exceeded: the pupil waits
                    continue
            given.setdefault(pupil.organisation_id, {}).setdefault(device.warehouse_id, []).append(
                device.serial
            )
            owner[device.serial] = pupil
    signature = _signature_png()
    counts = dict.fromkeys(("slips", "remises", "incidents"), 0)
    incidents = [
        (ReceptionState.DAMAGED, "Écran fissuré à l'ouverture du colis."),
        (ReceptionState.MISSING, "Absent du colis à la réception."),
    ]
    for ordinal, (org_id, by_warehouse) in enumerate(sorted(given.items())):
        destination = session.get(Organisation, org_id)
        stages = STAGES[ordinal % 3 :] + STAGES[: ordinal % 3]  # each structure at its own pace
        for serials in by_warehouse.values():
            groups: list[list[str]] = []
            for serial in serials:  # devices of one pupil stay together
                if not groups or (
                    owner[serial].id not in {owner[s].id for s in groups[-1]}
                    and len({owner[s].id for s in groups[-1]}) >= PUPILS_PER_SLIP
                ):
                    groups.append([])
                groups[-1].append(serial)
            for group, (stage, issued, shipped, received) in zip(groups, stages, strict=False):
                if issued is None:
                    continue
                slip = slips.create_slip(
                    session, destination=destination, serials=group, by=None, issue=True, now=ago(issued)
                )
                counts["slips"] += 1
                if shipped is None:
                    continue
                for serial in group:
                    slips.scan_for_pick(session, slip, serial, by=None, now=ago(shipped + 1))
                slips.ship(session, slip, by=None, now=ago(shipped))
                if received is None:
                    continue
                lines = [slips.ReceptionLine(s, ReceptionState.RECEIVED) for s in group]
                if stage == "recu" and incidents and len(group) > 2:
                    state, comment = incidents.pop(0)
                    lines[0] = slips.ReceptionLine(group[0], state, comment)
                    counts["incidents"] += 1
                slips.receive(session, slip, lines, by=None, now=ago(received))
                if stage != "remis":
                    continue
                for pupil_id in dict.fromkeys(owner[s].id for s in group):
                    mine = [s for s in group if owner[s].id == pupil_id]
                    pupil = owner[mine[0]]
                    handover.hand_over(
                        session,
                        pupil=pupil,
                        serials=mine,
                        receiver_name=f"{rng.choice(FIRST_NAMES)} {pupil.last_name}",
                        relation=rng.choice(("mère", "père", "responsable légal")),
                        mode=HandoverMode.LOAN if rng.random() < 0.7 else HandoverMode.GIFT,
                        signature=signature,
                        by=None,
                        now=now - timedelta(days=rng.randint(0, received - 1), hours=rng.randint(1, 8)),
                    )
                    counts["remises"] += 1
    echo(
        f"Parcours : {counts['slips']} bordereaux (émis, expédiés, réceptionnés), "
        f"{counts['remises']} remises signées, {counts['incidents']} incidents de réception."
    )


def _returns(session: Session, echo) -> None:
    """End of loan, on the structure with the most pupils equipped from one warehouse: a family's return
    recorded and still at the structure, a return slip on its way back to the warehouse, and one received
    there (a device back in stock, a broken one confirmed defective)."""
    from .db import utcnow
    from .domain import return_slips, returns
    from .models import Assignment, Device, DeviceStatus

    rows = session.execute(
        sa.select(Assignment.organisation_id, Device.warehouse_id, Assignment.pupil_id, Device.serial)
        .join(Device, Device.id == Assignment.device_id)
        .where(Assignment.cancelled_at.is_(None), Assignment.device_status == DeviceStatus.HANDED_OVER)
        .order_by(Assignment.organisation_id, Device.warehouse_id, Assignment.pupil_id, Device.id)
    ).all()
    groups: dict[tuple[int, int], dict[int, list[str]]] = {}
    for org_id, warehouse_id, pupil_id, serial in rows:
        groups.setdefault((org_id, warehouse_id), {}).setdefault(pupil_id, []).append(serial)
    if not groups:
        return
    (org_id, warehouse_id), pupils = max(groups.items(), key=lambda item: (len(item[1]), -item[0][0]))
    families = list(pupils.values())[:3]
    if len(families) < 3:
        return
    coordinator = session.scalar(
        sa.select(User).where(User.role == Role.COORDINATOR, User.organisation_id == org_id).order_by(User.id)
    )
    volunteer = session.scalar(
        sa.select(User)
        .where(User.role == Role.WAREHOUSE, User.organisation_id == warehouse_id)
        .order_by(User.id)
    )
    now = utcnow().replace(microsecond=0)
    organisation = session.get(Organisation, org_id)
    recorded = []
    # today, after every handover of the demo (the oldest slips were handed over first)
    for serials in families:
        items = [returns.ReturnItem(serials[0], DeviceStatus.RETURNED)]
        items += [
            returns.ReturnItem(serial, DeviceStatus.DEFECTIVE, "Écran fissuré, rendu par la famille.")
            for serial in serials[1:]
        ]
        recorded.append(returns.record_return(session, items, by=coordinator, now=now))
    received = return_slips.create_return_slip(
        session,
        organisation=organisation,
        line_ids=[line.id for line in recorded[0].lines],
        by=coordinator,
        issue=True,
        now=now,
    )
    return_slips.ship_return_slip(session, received, by=coordinator, now=now)
    for line in received.active_lines:
        broken = line.restitution_line.state is DeviceStatus.DEFECTIVE
        return_slips.check_device(
            session,
            received,
            line.device.serial,
            outcome=DeviceStatus.DEFECTIVE if broken else DeviceStatus.IN_STOCK,
            comment="Dalle à remplacer." if broken else "",
            by=volunteer,
            now=now,
        )
    on_the_road = return_slips.create_return_slip(
        session,
        organisation=organisation,
        line_ids=[line.id for line in recorded[1].lines],
        by=coordinator,
        issue=True,
        now=now,
    )
    return_slips.ship_return_slip(session, on_the_road, by=coordinator, now=now)
    echo(
        f"Retours : {len(recorded)} restitutions des familles ({organisation.name}), bordereau de retour "
        f"{received.number} réceptionné, {on_the_road.number} en route vers l'entrepôt."
    )


def _signature_png() -> bytes:
    """A drawn stroke, as the phone's signature pad sends it."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (320, 120), (255, 255, 255, 0))
    ImageDraw.Draw(image).line(
        [(12, 90), (70, 30), (120, 95), (190, 25), (300, 70)], fill=(20, 20, 60, 255), width=4
    )
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _organisations(session: Session) -> dict[str, Organisation]:
    orgs = {}
    for kind, name, dep, address, postal, city, communes, cite in ORGANISATIONS:
        qpv_codes = []
        for commune in communes:
            qpv_codes += session.scalars(
                sa.select(Qpv.code)
                .where(Qpv.department_code == dep, Qpv.commune_names.contains(commune))
                .order_by(Qpv.code)
                .limit(4)
            ).all()
        orgs[name] = referential.save_organisation(
            session,
            OrganisationData(
                kind=OrganisationKind(kind),
                name=name,
                department_code=dep,
                uai=_uai(SCHOOL_UAI_SEEDS[name]) if name in SCHOOL_UAI_SEEDS else "",
                address=address,
                postal_code=postal,
                city=city,
                cite_educative_code=cite or "",
                qpv_codes=qpv_codes,
            ),
            by=None,
        )
    return orgs


def _envelopes(session: Session) -> dict[str, object]:
    return {
        "credits": money.save_envelope(
            session,
            money.EnvelopeData(
                region_code="32",
                kind=EnvelopeKind.DELEGATED,
                label="Crédits délégués Hauts-de-France — continuité éducative",
                amount_cents=695_294_00,
            ),
            by=None,
        ),
        "cite_2019": money.save_envelope(
            session,
            money.EnvelopeData(
                region_code="32",
                kind=EnvelopeKind.CITE_2019,
                label="Cité éducative de Roubaix — reliquat 2019",
                amount_cents=40_000_00,
                cite_educative_code="cite-064",
            ),
            by=None,
        ),
        "cite_2020": money.save_envelope(
            session,
            money.EnvelopeData(
                region_code="32",
                kind=EnvelopeKind.CITE_2020,
                label="Cité éducative Amiens Nord — 2020 (15 %)",
                amount_cents=75_000_00,
                annual_amount_cents=500_000_00,
                cite_educative_code="cite-002",
            ),
            by=None,
        ),
    }


def _slug(name: str) -> str:
    from .csvfiles import fold_accents

    text = fold_accents(name).lower()
    for word in (
        "association ",
        "centre social ",
        "maison de quartier ",
        "emmaus connect — entrepot de ",
        "emmaus connect — entrepot d'",
        "(demo)",
    ):
        text = text.replace(word, "")
    return "-".join("".join(c if c.isalnum() else " " for c in text).split())


def _users(session: Session, orgs: dict[str, Organisation]) -> None:
    def add(email: str, role: Role, name: str, **scope: object) -> None:
        accounts.create_user(
            session,
            email=f"{email}@{DOMAIN}",
            role=role,
            password=DEMO_PASSWORD,
            display_name=name,
            is_demo=True,
            **scope,
        )

    add("admin", Role.ADMIN, "Administratrice régionale")
    for org in orgs.values():
        if org.kind is OrganisationKind.WAREHOUSE:
            add(f"entrepot.{_slug(org.city)}", Role.WAREHOUSE, f"Bénévole {org.city}", organisation_id=org.id)
        else:
            add(
                f"coordination.{_slug(org.name)}",
                Role.COORDINATOR,
                f"Coordination {org.name}",
                organisation_id=org.id,
            )
    add("prefecture.region", Role.PREFECTURE, "Préfecture de région Hauts-de-France", territory="region:32")
    add("prefecture.nord", Role.PREFECTURE, "Préfecture du Nord", territory="departement:59")
    add("prefecture.somme", Role.PREFECTURE, "Préfecture de la Somme", territory="departement:80")
    session.flush()


def print_accounts(session: Session, echo: Callable[[str], None] = print) -> None:
    """Print the demo accounts with their password (demo mode only)."""
    users = session.scalars(sa.select(User).where(User.is_demo.is_(True)).order_by(User.id)).all()
    if not users:
        return
    echo("")
    echo(f"Comptes de démonstration (mot de passe commun : {DEMO_PASSWORD}) :")
    for user in users:
        echo(f"  {user.email:<52} {user.role_label:<14} {user.scope_label}")
    echo("Ces comptes ne se connectent qu'en mode démonstration (LOGISTIQUE_DEMO_MODE=1).")
