"""The schema is built by the migrations, and the migrations describe exactly the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from logistique import migrate
from logistique.db import Base, db, make_engine


def test_database_is_at_the_single_head(app):
    engine = db.get_engine()
    heads = ScriptDirectory.from_config(migrate.alembic_config(str(engine.url))).get_heads()
    assert len(heads) == 1, f"plusieurs têtes de migration : {heads}"
    assert migrate.current_revision(engine) == heads[0]


def test_models_and_migrations_do_not_drift(app):
    differences = migrate.drift(db.get_engine())
    assert differences == [], f"les modèles et les migrations divergent : {differences}"


def test_drift_check_sees_a_column_missing_from_the_migrations(app):
    """The drift check is not blind: a model column that no migration created is reported."""
    metadata = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    sa.Table("devices", metadata, sa.Column("colour", sa.String(20)), extend_existing=True)
    differences = migrate.drift(db.get_engine(), metadata)
    assert any(d[0] == "add_column" and d[3].name == "colour" for d in differences), differences


def test_every_model_table_exists_with_its_columns(app):
    inspector = sa.inspect(db.get_engine())
    for table in Base.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name


def test_migrations_run_from_empty_to_head_and_back(database_url, backend, tmp_path):
    """A database of its own: upgrade from nothing, downgrade to nothing, upgrade again."""
    if backend == "sqlite":
        url = "sqlite:///" + str(tmp_path / "fresh.sqlite3")
    else:
        admin = sa.create_engine(database_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
        name = database_url.rsplit("/", 1)[1] + "_fresh"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = database_url.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.drift(engine) == []
        migrate.downgrade(engine, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()
        if backend != "sqlite":
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
