"""Cold-holding units (fridges, freezers, cold wells) and their limits."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (JSON, BigInteger, CheckConstraint, ForeignKey, Integer, LargeBinary, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Immutable, UTCDateTime, db, utcnow

#: Jurisdiction presets for a new unit's limits, °C.
PRESETS = {
    ("uk", "fridge"): {"target_max_c": 5.0, "critical_max_c": 8.0},
    ("uk", "freezer"): {"target_max_c": -18.0, "critical_max_c": -15.0},
    ("us", "fridge"): {"target_max_c": 5.0, "critical_max_c": 7.0},   # 41 °F / 45 °F
    ("us", "freezer"): {"target_max_c": -18.0, "critical_max_c": -15.0},  # 0 °F
}


class Unit(db.Model):
    """A fridge, freezer, walk-in, cold well or display case."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: fridge | freezer | walk_in | cold_well | display_case
    kind: Mapped[str] = mapped_column(String(20))
    #: Out of target alarms after the delay; past critical alarms (almost) at once.
    target_max_c: Mapped[float]
    critical_max_c: Mapped[float]
    min_c: Mapped[float | None]
    alert_delay_s: Mapped[int] = mapped_column(default=1800)
    hysteresis_c: Mapped[float] = mapped_column(default=0.5)
    #: The critical tier alarms after this short delay (0: at once).
    critical_delay_s: Mapped[int] = mapped_column(default=300)
    #: How often its sensors should report; silence for ``offline_after`` × this is "offline".
    expected_interval_s: Mapped[int] = mapped_column(default=60)
    offline_after: Mapped[int] = mapped_column(default=5)
    #: Daily defrost cycles in site-local time: [{"start": "02:00", "minutes": 30}, ...]
    defrost: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Sensor(db.Model):
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


class Reading(Immutable, db.Model):
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


class Rollup(db.Model):
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


class DeadLetter(db.Model):
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


class IngestToken(db.Model):
    """A token for the HTTP ingest endpoint (sensors that cannot speak MQTT); stored hashed."""

    __tablename__ = "ingest_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The site it was issued for: it posts only for that site's sensors and unassigned ones.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Immutable, db.Model):
    """The response an ``Idempotency-Key`` got from HTTP ingest, replayed to a retry for 24 h.

    Inserted in the transaction that stored the request's readings, so a key is remembered
    exactly when its readings are; purged by the retention job once stale.
    """

    __tablename__ = "ingest_idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: Keys are per token: two devices may pick the same key.
    token_id: Mapped[int] = mapped_column(ForeignKey("ingest_tokens.id"))
    #: The client's key, 1–200 printable ASCII characters.
    key: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the request body: the same key with another body is refused, not replayed.
    body_sha256: Mapped[str] = mapped_column(String(64))
    #: The response sent the first time, replayed as it was.
    status: Mapped[int]
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class Delivery(db.Model):
    """An MQTT message stored at its receive time, by its session and packet id.

    A reading without a device timestamp has no identity of its own: stored at its receive
    time, a redelivery would be stored again at another. But a broker resends a message that
    was not acknowledged with its original packet id and the DUP flag, so a redelivery that
    matches a row here (same session, packet id, topic and payload) was committed already.
    One row per session and packet id (at most 65,535): the next commit with that id
    replaces it.
    """

    __tablename__ = "ingest_deliveries"

    #: The ingest worker's MQTT client id: packet ids are per session.
    session_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    mid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: blake2b-64 of topic and payload.
    digest: Mapped[str] = mapped_column(String(16))
    committed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DeviceState(db.Model):
    """The last battery level and availability a device reported, by device or sensor key.

    Availability (LWT) is often the first message of a device, before any reading
    created its sensors; new sensors inherit it from here.
    """

    __tablename__ = "device_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    battery_pct: Mapped[float | None]
    online: Mapped[bool | None]
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Calibration(Immutable, db.Model):
    """A thermometer checked against a known temperature (ice point, 0 °C), by whom and when.

    The subject is a fixed sensor or a hand-held probe (by name). A check that fails needs an
    action; for a sensor, "offset applied" sets the sensor's offset, which ingest then adds to
    every reading — the offset before and after are kept here, so every stored reading can be
    traced to the correction it received.
    """

    __tablename__ = "calibrations"
    __table_args__ = (CheckConstraint("(sensor_id IS NULL) <> (probe IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    sensor_id: Mapped[int | None] = mapped_column(ForeignKey("sensors.id"), index=True)
    #: A hand-held probe's name, e.g. "Probe 2 (blue)".
    probe: Mapped[str | None] = mapped_column(String(120))
    #: What was checked, as it was called then ("Pass fridge · brigade/pass", or the probe).
    subject: Mapped[str] = mapped_column(String(300))
    #: ice_point | boiling_point | reference
    method: Mapped[str] = mapped_column(String(20))
    reference_c: Mapped[float]
    measured_c: Mapped[float]
    #: measured − reference
    error_c: Mapped[float]
    tolerance_c: Mapped[float]
    passed: Mapped[bool]
    #: none | reported | offset_applied | removed | replaced
    action: Mapped[str] = mapped_column(String(20))
    offset_before_c: Mapped[float | None]
    offset_after_c: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(String(500))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    performed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "sensor_id": self.sensor_id, "probe": self.probe,
                "subject": self.subject, "method": self.method, "reference_c": self.reference_c,
                "measured_c": self.measured_c, "error_c": self.error_c,
                "tolerance_c": self.tolerance_c, "passed": self.passed, "action": self.action,
                "offset_before_c": self.offset_before_c, "offset_after_c": self.offset_after_c,
                "note": self.note, "staff_id": self.staff_id, "device_id": self.device_id,
                "performed_at": self.performed_at}
