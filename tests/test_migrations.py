"""The Alembic migrations build the schema the models describe, on both databases."""
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from app.models import db
from tests.conftest import make_app


def _empty_database(database_url: str) -> str:
    """A new, empty database beside the shared test one (PostgreSQL), so the suite's schema stays."""
    if not database_url.startswith("postgresql"):
        return database_url
    import uuid
    from sqlalchemy import create_engine
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return database_url.rsplit("/", 1)[0] + "/" + name


def test_upgrade_from_empty_matches_the_models(database_url, tmp_path):
    app = make_app(_empty_database(database_url), tmp_path / "instance")
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        tables = set(inspect(db.engine).get_table_names())
        assert {"answers", "audit_records", "runs", "staff", "units"} <= tables
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.remove()
        db.engine.dispose()
