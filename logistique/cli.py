"""The ``logistique`` command line (also available as ``flask --app logistique …``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from . import migrate
from .db import db
from .domain import accounts, privacy, referential, tallies
from .domain.errors import DomainError, ImportRejected
from .domain.scope import get_lot
from .models import Role, User


def _fail(message: str) -> None:
    db.session.rollback()
    raise click.ClickException(message)


def _report_rejection(exc: ImportRejected) -> None:
    click.echo(exc.message, err=True)
    for error in exc.errors:
        click.echo(f"  ligne {error.line} : {error.message}", err=True)
    if exc.unreported:
        click.echo(f"  … et {exc.unreported} autre(s) ligne(s) en erreur, non listées.", err=True)
    db.session.rollback()
    sys.exit(1)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the schema to the latest migration."""
    engine = db.get_engine()
    before = migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    click.echo(
        f"Schéma à jour (révision {after})"
        + ("" if before == after else f", depuis {before or 'vide'}")
        + "."
    )


@click.command("load-demo")
@click.option("--if-empty", is_flag=True, help="Ne rien faire si la base contient déjà des comptes.")
@with_appcontext
def load_demo(if_empty: bool) -> None:
    """Load the Hauts-de-France referential and a demo operation; print the demo accounts."""
    from . import demo

    if if_empty and db.session.scalar(sa.select(sa.func.count(User.id))):
        click.echo("La base contient déjà des données : démo non rechargée.")
        demo.print_accounts(db.session, click.echo)
        return
    try:
        demo.load(db.session, echo=click.echo)
    except DomainError as exc:
        _fail(exc.message)
    db.session.commit()
    demo.print_accounts(db.session, click.echo)


@click.command("import-qpv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_qpv(file: Path) -> None:
    """Load or update the QPV referential from a CSV (all or nothing)."""
    try:
        report = referential.import_qpv(db.session, file.read_bytes(), by=None)
    except ImportRejected as exc:
        _report_rejection(exc)
        return
    db.session.commit()
    click.echo(f"QPV : {report.created} créés, {report.updated} mis à jour, {report.unchanged} inchangés.")


@click.command("create-user")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--organisation", type=int, help="Identifiant de la structure (entrepôt, association, école).")
@click.option(
    "--territory", help="Code de région (32) ou de département (departement:59) pour la préfecture."
)
@click.option("--name", default="", help="Nom affiché.")
@click.option("--password-stdin", is_flag=True, help="Lire le mot de passe sur l'entrée standard.")
@with_appcontext
def create_user(
    email: str, role: str, organisation: int | None, territory: str | None, name: str, password_stdin: bool
) -> None:
    """Create an account; without --password-stdin a password is generated and printed once."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else accounts.generate_password()
    try:
        user = accounts.create_user(
            db.session,
            email=email,
            role=Role(role),
            password=password,
            display_name=name,
            organisation_id=organisation,
            territory=territory,
        )
    except DomainError as exc:
        _fail(exc.message)
        return
    db.session.commit()
    click.echo(f"Compte créé : {user.email} ({user.role_label}, {user.scope_label}).")
    if not password_stdin:
        click.echo(f"Mot de passe (affiché une seule fois) : {password}")


@click.command("create-token")
@click.argument("email")
@click.option("--label", default="", help="À quoi sert ce jeton.")
@click.option(
    "--expires-in-days", type=click.IntRange(min=1, max=3650), help="Durée de validité (sans : illimitée)."
)
@with_appcontext
def create_token(email: str, label: str, expires_in_days: int | None) -> None:
    """Print a new API token for that account (only its hash is stored)."""
    from .cli_security import token_expiry

    try:
        user = accounts.get_user_by_email(db.session, email)
    except DomainError as exc:
        _fail(exc.message)
        return
    token = accounts.create_token(db.session, user, label, expires_at=token_expiry(expires_in_days))
    db.session.commit()
    click.echo(token)


@click.command("import-stock")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lot", "lot_reference", required=True, help="Référence du lot (ex. EC-HDF-2020-01).")
@with_appcontext
def import_stock(file: Path, lot_reference: str) -> None:
    """Add the devices of a lot from a CSV, all or nothing, with a report by row."""
    from .domain import stock_import as stock

    data = file.read_bytes()
    try:
        with db.new_session() as reader:  # checked first, without holding the write lock
            lot = get_lot(reader, None, reference=lot_reference.strip().upper())
            checked = stock.check_stock(reader, data, lot=lot, by=None)
        with db.new_session(write=True) as writer, _progress(len(checked.devices), "Équipements") as bar:
            report = stock.write_stock(writer, checked, by=None, progress=bar.update)
            writer.commit()
    except ImportRejected as exc:
        _report_rejection(exc)
        return
    except DomainError as exc:
        _fail(exc.message)
        return
    detail = ", ".join(f"{k.label_lower} : {n}" for k, n in report.by_kind.items())
    click.echo(f"{report.created} équipements ajoutés au lot {lot.reference} ({detail}).")


@click.command("import-pupils")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--organisation", "organisation_id", type=int, required=True, help="Structure (identifiant).")
@with_appcontext
def import_pupils(file: Path, organisation_id: int) -> None:
    """Register the pupils of an association or school from a CSV or .xlsx file, all or nothing, with a
    report by row (row numbers as Excel shows them)."""
    from .domain import pupils
    from .models import Organisation

    data = file.read_bytes()
    try:
        with db.new_session() as reader:
            organisation = reader.get(Organisation, organisation_id)
            if organisation is None:
                _fail(f"Structure {organisation_id} introuvable.")
            checked = pupils.check_pupils(reader, data, by=None, organisation=organisation)
        with db.new_session(write=True) as writer, _progress(len(checked.pupils), "Élèves") as bar:
            report = pupils.write_pupils(writer, checked, by=None, progress=bar.update)
            writer.commit()
    except ImportRejected as exc:
        _report_rejection(exc)
        return
    except DomainError as exc:
        _fail(exc.message)
        return
    click.echo(
        f"{report.created} élèves enregistrés pour {organisation.name} "
        f"({report.first_reference} à {report.last_reference})."
    )


def _progress(length: int, label: str):
    return click.progressbar(length=length, label=label, show_pos=True, file=sys.stderr)


@click.command("close-operation")
@click.option("--yes", is_flag=True, help="Ne pas demander de confirmation.")
@with_appcontext
def close_operation(yes: bool) -> None:
    """Close the operation: afterwards the pupils' personal data may be purged."""
    if not yes:
        click.confirm(
            "Clore l'opération ? Les données personnelles des élèves pourront ensuite être effacées.",
            abort=True,
        )
    state = privacy.close_operation(db.session, by=None)
    db.session.commit()
    click.echo(f"Opération close le {state.closed_at:%d/%m/%Y à %H:%M} (UTC).")


@click.command("purge-personal-data")
@click.option("--yes", is_flag=True, help="Ne pas demander de confirmation.")
@with_appcontext
def purge_personal_data(yes: bool) -> None:
    """Erase pupils' and guardians' personal data once the operation is over, keeping anonymous proofs."""
    if not yes:
        click.confirm("Effacer définitivement les noms des élèves et de leurs responsables ?", abort=True)
    try:
        count = privacy.purge_personal_data(db.session, by=None)
    except DomainError as exc:
        _fail(exc.message)
        return
    db.session.commit()
    from . import uploads

    files = uploads.discard_personal_files(db.session)  # pupil files waiting for, or left by, an import job
    db.session.commit()
    click.echo(
        f"Données personnelles effacées pour {count} élève(s) ; références, dates et preuves conservées."
        + (f" Fichiers d'import d'élèves supprimés : {files}." if files else "")
    )


@click.command("recount")
@click.option("--check", is_flag=True, help="Seulement comparer, sans rien corriger (code 1 si écart).")
@with_appcontext
def recount(check: bool) -> None:
    """Recount the status board's counters from assignments and pupils (after a bulk load or a repair)."""
    if check:
        with db.new_session() as session:
            # one snapshot for the counters and the recount, whatever others commit meanwhile
            if session.get_bind().dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            found = tallies.differences(session)
            mismatched = tallies.status_differences(session)
        for line in found + mismatched:
            click.echo(line, err=True)
        if found:
            click.echo(f"{len(found)} compteur(s) en écart : lancez « logistique recount ».", err=True)
        if mismatched:
            click.echo(
                f"{len(mismatched)} attribution(s) dont le statut diffère de celui de l'équipement : "
                "à corriger à la main (le recomptage ne les répare pas).",
                err=True,
            )
        if found or mismatched:
            sys.exit(1)
        click.echo("Compteurs du tableau de bord exacts, statuts des attributions concordants.")
        return
    with db.new_session(write=True) as session:
        corrected = tallies.rebuild(session, lock=True)  # writers of assignments and pupils wait meanwhile
        session.commit()
    click.echo(
        f"Compteurs du tableau de bord recalculés ({len(corrected)} écart(s) corrigé(s))."
        if corrected
        else "Compteurs du tableau de bord recalculés (ils étaient exacts)."
    )


@click.command("print-slips")
@click.option("--warehouse", "warehouse_id", type=int, help="Identifiant de l'entrepôt (tous par défaut).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Fichier PDF à écrire.",
)
@with_appcontext
def print_slips(warehouse_id: int | None, output: Path) -> None:
    """Every issued slip waiting for preparation (of one warehouse) in one PDF, with a progress bar."""
    from flask import current_app

    from .domain import paperwork
    from .models import Slip, SlipStatus
    from .pdf import slips_pdf

    query = sa.select(Slip).where(Slip.status == SlipStatus.ISSUED).order_by(Slip.id)
    if warehouse_id:
        query = query.where(Slip.warehouse_id == warehouse_id)
    batch = db.session.scalars(query).all()
    if not batch:
        _fail("Aucun bordereau émis à préparer.")
    base, secret = current_app.config["BASE_URL"], current_app.config["SECRET_KEY"]
    with click.progressbar(length=len(batch), label="Bordereaux", show_pos=True) as bar:
        data = slips_pdf(
            (paperwork.slip_document(s, base_url=base, secret=secret) for s in batch),
            progress=lambda _done: bar.update(1),
        )
    output.write_bytes(data)
    click.echo(f"{len(batch)} bordereaux écrits dans {output} ({len(data) // 1024} Ko).")


@click.command("print-labels")
@click.option("--lot", "lot_reference", required=True, help="Référence du lot.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True)
@with_appcontext
def print_labels(lot_reference: str, output: Path) -> None:
    """A4 label sheets (3 × 8) for every device of a lot: QR of /d/<étiquette> and serial as Code 128."""
    from flask import current_app

    from .domain import paperwork
    from .models import Device
    from .pdf import labels_pdf

    try:
        lot = get_lot(db.session, None, reference=lot_reference.strip().upper())
    except DomainError as exc:
        _fail(exc.message)
        return
    rows = db.session.scalars(sa.select(Device).where(Device.lot_id == lot.id).order_by(Device.id)).all()
    if not rows:
        _fail(f"Le lot {lot.reference} n'a aucun équipement.")
    base = current_app.config["BASE_URL"]
    output.write_bytes(labels_pdf([paperwork.label(d, base_url=base) for d in rows]))
    click.echo(f"{len(rows)} étiquettes ({-(-len(rows) // 24)} planches) écrites dans {output}.")


@click.command("db-revision")
@click.argument("message")
@with_appcontext
def db_revision(message: str) -> None:
    """(Developers) Write a new migration from the difference between the models and the database."""
    migrate.revision(db.get_engine(), message)


@click.command("send-notifications")
@click.option("--loop", is_flag=True, help="Recommencer toutes les --interval secondes (jusqu'à SIGTERM).")
@click.option("--interval", default=30.0, show_default=True, help="Secondes entre deux passages.")
@with_appcontext
def send_notifications(loop: bool, interval: float) -> None:
    """Send the e-mails waiting in the outbox (one pass, or --loop for a long-running sender)."""
    from . import mail

    if not mail.is_enabled():
        _fail("LOGISTIQUE_SMTP_URL n'est pas défini : aucun e-mail ne part.")
    if loop:
        mail.run_forever(interval)
        return
    click.echo(str(mail.run_pass()))


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@with_appcontext
def backup_database(file: Path) -> None:
    """Write a consistent copy of the whole database to FILE (SQLite or PostgreSQL)."""
    from .backup import BackupError, backup

    try:
        backup(db.get_engine(), file)
    except BackupError as exc:
        _fail(str(exc))
    click.echo(f"Sauvegarde écrite dans {file} ({file.stat().st_size // 1024} Ko).")


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Ne pas demander de confirmation.")
@with_appcontext
def restore_database(file: Path, yes: bool) -> None:
    """Replace the whole database by the copy FILE (stop the application first)."""
    from .backup import BackupError, restore

    if not yes:
        click.confirm(f"Remplacer TOUTE la base par le contenu de {file} ?", abort=True)
    engine = db.get_engine()
    try:
        restore(engine, file)
    except BackupError as exc:
        _fail(str(exc))
    click.echo(
        f"Base restaurée depuis {file} (révision {migrate.current_revision(engine)}) ; "
        "lancez « logistique init-db » si la sauvegarde précède la dernière mise à jour."
    )


COMMANDS = [
    init_db,
    load_demo,
    import_qpv,
    create_user,
    create_token,
    import_stock,
    import_pupils,
    close_operation,
    print_slips,
    print_labels,
    purge_personal_data,
    recount,
    db_revision,
    send_notifications,
    backup_database,
    restore_database,
]


def register_commands(app: Flask) -> None:
    """Attach the commands to ``app.cli``."""
    from .cli_security import COMMANDS as SECURITY_COMMANDS
    from .jobs import worker_command

    for command in [*COMMANDS, *SECURITY_COMMANDS, worker_command]:
        app.cli.add_command(command)


def _create_app() -> Flask:
    from . import create_app
    from .config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:  # say why in one sentence, not with a traceback
        click.echo(f"Erreur : {exc}", err=True)
        sys.exit(2)


main = FlaskGroup(
    create_app=_create_app, add_version_option=False, help="Outil logistique du plan de continuité éducative."
)
