"""The tamper-evident audit chain over every compliance record."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Immutable, UTCDateTime, db, utcnow


class AuditRecord(db.Model):
    """One link: a record's canonical content, keyed-hashed together with the previous link."""

    __tablename__ = "audit_records"
    __table_args__ = (UniqueConstraint("entity", "entity_id"),)

    #: Position in the chain, 1, 2, 3… with no gaps.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(60))
    #: The table and id of the record this link vouches for.
    entity: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    device_id: Mapped[str | None] = mapped_column(String(32))
    #: Canonical JSON of the record as written.
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: How the hash covers the link. 1 (links written before 2026-12): (seq, prev_hash, action,
    #: entity, entity_id, payload) only. 2: all of the link, its time, actor, device and context.
    format: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    #: Canonical JSON of what a reader needs without joining rows that can change (format 2):
    #: the actor's name as it was, the item's text and limits, the unit's limits in force.
    context: Mapped[str | None] = mapped_column(Text)
    #: HMAC-SHA256 under the audit key of the link (see ``format``).
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(db.Model):
    """The chain's single head row: appends lock it, which serialises them."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Change(Immutable, db.Model):
    """A change to what records are read against — a person, a site, a unit's limits: who
    changed what, from what to what, and when. Chained like every record, never edited."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    #: What changed, as "<table>:<id>" (e.g. "staff:12").
    subject: Mapped[str] = mapped_column(String(60), index=True)
    #: What happened to it (e.g. "staff.added", "staff.deactivated", "site.updated").
    action: Mapped[str] = mapped_column(String(60))
    #: Canonical JSON: the fields that changed, each as [before, after] (secrets never).
    data: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    device_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "subject": self.subject, "action": self.action,
                "data": self.data, "actor_id": self.actor_id, "device_id": self.device_id,
                "at": self.at}


class ReadingSeal(Immutable, db.Model):
    """The digest of one sensor's readings in one hour, chained when the hour has closed: an
    edited, deleted or inserted reading in a sealed hour no longer matches it (app/seals.py).

    A seal covers the hour's readings received up to ``received_through``. Readings that
    arrive after their hour was sealed (a device's buffer, sent late) are covered by a later
    seal of the same hour marked ``late``: never taken silently into the first."""

    __tablename__ = "reading_seals"
    __table_args__ = (Index("ix_reading_seals_sensor_hour", "sensor_id", "hour_start"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"),
                                    primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id"))
    #: The hour (UTC) of the readings' measured_at.
    hour_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Covers the hour's readings received after the previous seal of the hour (if any) and
    #: up to this time.
    received_through: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int]
    #: sha256 over the covered readings in measured_at order (app.seals.reading_line).
    digest: Mapped[str] = mapped_column(String(64))
    #: True when the hour had been sealed already when these readings arrived.
    late: Mapped[bool] = mapped_column(default=False)
    sealed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_payload(self) -> dict:
        return {"sensor_id": self.sensor_id, "hour_start": self.hour_start,
                "received_through": self.received_through, "count": self.count,
                "digest": self.digest, "late": self.late, "sealed_at": self.sealed_at}
