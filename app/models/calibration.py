"""Thermometer calibration checks, kept as records."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Immutable, UTCDateTime, db, utcnow


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
