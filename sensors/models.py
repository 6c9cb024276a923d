"""The device path's tables: sensors, their readings and rollups, deliveries, dead letters."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sensors.db import Base, Immutable, UTCDateTime, utcnow



class Sensor(Base):
    """A physical sensor or probe, known by its source-qualified key; appears by itself."""

    __tablename__ = "sensors"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Stable id from the payload format, e.g. "tasmota/kitchen1/DS18B20-1".
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))
    #: None while unassigned: the admin attaches it to a unit.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    #: The unit a bare-number device reports in (Shelly Gen1 follows its own setting).
    temp_unit: Mapped[str] = mapped_column(String(1), default="C")
    last_temperature_c: Mapped[float | None]
    last_reading_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    battery_pct: Mapped[float | None]
    #: From availability / LWT topics; None until the device says.
    online: Mapped[bool | None]
    online_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Added by ingest to readings measured since ``offset_since``, °C. Set only by a
    #: calibration (correction applied, or replaced: back to 0), so the calibration log holds
    #: its whole history; `flask audit verify` checks the two agree.
    offset_c: Mapped[float] = mapped_column(default=0.0, server_default="0")
    offset_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # A device's report applies to the sensors under its key, found by a byte-order range
        # (sensors.store._device_states); PostgreSQL's own collation may not sort by bytes.
        # (SQLite compares by bytes anyway; there the index duplicates the unique one, on a
        # table of a few dozen rows that rarely changes.)
        Index("ix_sensors_key_bytes", "key", postgresql_ops={"key": "text_pattern_ops"}),
    )


class Reading(Immutable, Base):
    """One temperature, stored once per sensor and instant (redelivery is harmless)."""

    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("sensor_id", "measured_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id"))
    measured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: As stored: what the sensor sent plus ``offset_c``.
    temperature_c: Mapped[float]
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: "device" when the payload's own timestamp was sane and used, else "received".
    time_source: Mapped[str] = mapped_column(String(10))
    #: The calibration correction in force at ``measured_at`` (0 for an uncorrected sensor).
    offset_c: Mapped[float] = mapped_column(default=0.0, server_default="0")


class Rollup(Base):
    """Per-sensor min/avg/max over fixed intervals, kept up to date as readings land."""

    __tablename__ = "rollups"

    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensors.id"), primary_key=True)
    bucket_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int]
    min_c: Mapped[float]
    max_c: Mapped[float]
    #: Sum of the readings; avg = sum_c / count (a sum merges exactly across batches).
    sum_c: Mapped[float]

    @property
    def avg_c(self) -> float:
        return self.sum_c / self.count


class DeadLetter(Base):
    """A message that could not become readings, kept with the reason for the admin."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    #: mqtt | http
    source: Mapped[str] = mapped_column(String(10))
    topic: Mapped[str] = mapped_column(String(500))
    #: The first bytes of the payload (all of it when small) and its full size.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int]
    reason: Mapped[str] = mapped_column(String(500))
    #: The site of the HTTP token that posted it; None for MQTT (the broker knows no sites),
    #: which every site's admin sees.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)


class Delivery(Base):
    """An MQTT message stored at its receive time, by its session and packet id.

    A reading without a device timestamp has no identity of its own: stored at its receive
    time, a redelivery would be stored again at another. A broker resends what it has no
    acknowledgement for with its packet id and the DUP flag, so a DUP message matching a row
    here (same session, packet id, topic and payload) whose acknowledgement is not confirmed
    yet (see ``IngestSession``) was committed already. One row per session and packet id (at
    most 65,535): the next commit with that id replaces it.
    """

    __tablename__ = "ingest_deliveries"

    #: The ingest worker's MQTT client id: packet ids are per session.
    session_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    mid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: blake2b-64 of topic and payload.
    digest: Mapped[str] = mapped_column(String(16))
    committed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class IngestSession(Base):
    """How far the broker is known to have ingest's acknowledgements, per MQTT session.

    Ingest follows each batch's acknowledgements with a question the broker answers only after
    them (an UNSUBSCRIBE); the answer moves ``acks_confirmed_through`` to the newest receive time
    in that batch. A delivery committed at or before it is known acknowledged: its packet id may
    already name another message (ids wrap after 65,535), so a redelivery is never matched to it.
    """

    __tablename__ = "ingest_sessions"

    session_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    acks_confirmed_through: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeviceState(Base):
    """The last battery level and availability a device reported, by device or sensor key.

    Availability (LWT) is often the first message of a device, before any reading
    created its sensors; new sensors inherit it from here.
    """

    __tablename__ = "device_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    battery_pct: Mapped[float | None]
    online: Mapped[bool | None]
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
