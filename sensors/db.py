"""The declarative base every model shares: naming convention, UTC timestamps, immutable records.

It lives in ``sensors`` because the device path is the lowest layer: the web app's models
(``app.models``) build on it, and ``sensors`` imports nothing from the web app.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, MetaData, event, inspect
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

UTC = dt.timezone.utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


_clock = None


def utcnow() -> dt.datetime:
    """Now, timezone-aware UTC (the only kind of time Brigade stores)."""
    return _clock() if _clock is not None else dt.datetime.now(UTC)


def set_clock(clock) -> None:
    """Replace the clock (a callable returning aware UTC), or restore it with None.

    For tests and demos that need "11:10 on a Tuesday"; production never sets it.
    """
    global _clock
    _clock = clock


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware.

    SQLite has no time zones, so the UTC value is stored naive there; PostgreSQL
    gets ``timestamptz``. Naive datetimes are refused on the way in, because a
    naive time in a food-safety record is a guess about which clock wrote it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Immutable:
    """Mixin for compliance records: inserted once, never updated or deleted by the app.

    A mistake is corrected by a new record referencing the old one; see ``audit``.
    """

    __immutable__ = True


class ImmutableRecordError(RuntimeError):
    """Raised when code tries to change or delete a compliance record in place."""


def _columns_changed(obj) -> bool:
    # Only stored columns count: linking a new record to this one (a submission to
    # its run) changes a relationship on the Python side, not the stored record.
    state = inspect(obj)
    return any(state.attrs[attr.key].history.has_changes() for attr in state.mapper.column_attrs)


@event.listens_for(Session, "before_flush")
def _refuse_edits_to_records(session, flush_context, instances):
    for obj in list(session.dirty) + list(session.deleted):
        if getattr(obj, "__immutable__", False) and (obj in session.deleted or _columns_changed(obj)):
            raise ImmutableRecordError(
                f"{type(obj).__name__} {getattr(obj, 'id', '?')} is a record and cannot be "
                "changed or deleted; record a correction instead")
