"""The Alembic migrations build the schema the models describe, on both databases."""
import datetime as dt

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import column, inspect, select, table, text

from app.models import Site, db
from app.models.ingest import IdempotencyKey, IngestToken
from sensors.models import DeadLetter
from tests.factories import make_app

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)


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
    import logging
    watched = logging.getLogger("sensors.mqtt")  # exists before the upgrade, as in the app
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
        # Alembic's logging setup must leave the app's loggers working (it used to disable them).
        assert not watched.disabled
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.remove()
        db.engine.dispose()


def _drop_everything() -> None:
    db.drop_all()
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.mark.parametrize("sites", [0, 1, 2])
def test_tokens_made_before_sites_get_one(database_url, tmp_path, sites):
    app = make_app(_empty_database(database_url), tmp_path / "instance")
    with app.app_context():
        _drop_everything()
        upgrade(revision="3e6fc561099c")  # tokens without a site
        with db.engine.begin() as conn:
            for n in range(sites):
                # The table as it was then (the model's later columns are not there yet).
                conn.execute(table("sites", *map(column, ("id", "name", "timezone",
                                                                "temp_unit", "created_at")))
                             .insert(), {"id": 7 + n, "name": f"Kitchen {n}",
                                                       "timezone": "UTC", "temp_unit": "C",
                                                       "created_at": T0})
            conn.execute(IngestToken.__table__.insert(), [
                {"id": 1, "name": "live", "token_hash": "a" * 64, "created_at": T0,
                 "revoked_at": None},
                {"id": 2, "name": "revoked", "token_hash": "b" * 64, "created_at": T0,
                 "revoked_at": T0}])
            conn.execute(IdempotencyKey.__table__.insert(), {
                "token_id": 1, "key": "k1", "body_sha256": "c" * 64, "status": 200,
                "response": {"stored": 1}, "created_at": T0})
            conn.execute(DeadLetter.__table__.insert(), [
                {"received_at": T0, "source": source, "topic": "t", "payload": b"x",
                 "payload_size": 1, "reason": "r"} for source in ("http", "mqtt")])
        upgrade()

        def state():
            tokens = {t.name: (t.site_id, t.revoked_at)
                      for t in db.session.execute(select(IngestToken)).scalars()}
            letters = dict(db.session.execute(select(DeadLetter.source, DeadLetter.site_id)).all())
            keys = db.session.execute(select(IdempotencyKey.key)).scalars().all()
            db.session.rollback()
            return tokens, letters, keys
        tokens, letters, keys = state()
        if sites == 0:  # nobody could own them
            assert (tokens, keys) == ({}, [])
        elif sites == 1:  # its site's, working as before, with their idempotency keys
            assert tokens == {"live": (7, None), "revoked": (7, T0)} and keys == ["k1"]
            assert letters == {"http": 7, "mqtt": None}
        else:  # which kitchen they serve is unknown: listed under the first site, revoked
            assert tokens["live"][0] == 7 and tokens["live"][1] > T0
            assert tokens["revoked"] == (7, T0) and keys == ["k1"]
            assert letters == {"http": None, "mqtt": None}
        # Down and up again keeps what is there (SQLite rebuilds ingest_tokens each way).
        downgrade(revision="3e6fc561099c")
        upgrade()
        assert state()[2] == keys
        _drop_everything()
        db.session.remove()
        db.engine.dispose()


def test_the_calibration_migration_keeps_readings_both_ways(database_url, tmp_path):
    app = make_app(_empty_database(database_url), tmp_path / "instance")
    with app.app_context():
        _drop_everything()
        upgrade(revision="8db85e84950e")  # before calibration
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO sensors (id, key, temp_unit, first_seen) "
                              "VALUES (1, 'brigade/pass', 'C', :t)"), {"t": T0.replace(tzinfo=None)})
            conn.execute(text("INSERT INTO readings (sensor_id, measured_at, temperature_c, "
                              "received_at, time_source) VALUES (1, :t, 4.5, :t, 'device')"),
                         {"t": T0.replace(tzinfo=None)})
        upgrade()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT temperature_c, offset_c FROM readings")).one() == (4.5, 0.0)
            assert conn.execute(text("SELECT offset_c FROM sensors")).scalar_one() == 0.0
        downgrade(revision="8db85e84950e")  # with a reading pointing at its sensor
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT temperature_c FROM readings")).scalar_one() == 4.5
            assert "offset_c" not in {c["name"] for c in inspect(conn).get_columns("readings")}
        upgrade()
        _drop_everything()
        db.session.remove()
        db.engine.dispose()
