"""Flask-SQLAlchemy bound to the shared declarative base, and the SQLite engine settings."""
from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event

# Re-exported: the app's models import their base from here.
from sensors.db import (NAMING_CONVENTION, UTC, Base, Immutable, ImmutableRecordError,  # noqa: F401
                        UTCDateTime, set_clock, utcnow)

#: Models on ``db.Model`` and on ``Base`` (the device path's) share one registry and metadata.
db = SQLAlchemy(model_class=Base)


def configure_engine(engine) -> None:
    """SQLite: WAL and a busy timeout, so concurrent tablets queue instead of failing."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
