"""Thermometer calibration: record a check, apply a sensor's correction, see what is due.

The caller commits. A check is an immutable, audited record; a sensor's offset changes only
through a check that applies it, so the log is the offset's whole history.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import func, or_, select

from app import audit
from app.checklists.operations import OperationError
from app.models import Role, Site, Staff, utcnow
from app.units.operations import sensor_visible
from sensors.models import Calibration, Sensor, Unit

METHODS = {
    "ice_point": lazy_gettext("Ice point (ice and water)"),
    "boiling_point": lazy_gettext("Boiling point"),
    "reference": lazy_gettext("Against a reference thermometer"),
}
#: What the method reads when the thermometer is right, °C (boiling: at sea level; editable).
METHOD_REFERENCE_C = {"ice_point": 0.0, "boiling_point": 100.0}
ACTIONS = {
    "none": lazy_gettext("None needed"),
    "offset_applied": lazy_gettext("Correction applied to the sensor"),
    "removed": lazy_gettext("Taken out of use"),
    "replaced": lazy_gettext("Replaced"),
}
#: Within ±1 °C of the reference is the usual acceptance for kitchen thermometers.
DEFAULT_TOLERANCE_C = 1.0
TOLERANCE_RANGE_C = (0.1, 5.0)
MEASURED_RANGE_C = (-50.0, 150.0)
#: A sensor this far out is broken, not to be corrected.
MAX_OFFSET_C = 5.0
PROBE_NAME_MAX = 120
NOTE_MAX = 500


class CalibrationRefused(OperationError):
    """The check cannot be recorded as given; the message says why."""


class NotAllowed(CalibrationRefused):
    """Only a head chef or an admin may change how a sensor's readings are stored."""


@dataclass(frozen=True)
class Subject:
    """What was checked: a sensor or a hand-held probe, and when it was last checked."""

    sensor: Sensor | None
    probe: str | None
    unit_name: str | None
    last: Calibration | None
    due: bool

    @property
    def name(self) -> str:
        if self.sensor is not None:
            return self.sensor.name or self.sensor.key
        return self.probe or ""


def record_check(session, site: Site, staff: Staff, device_id: str | None, *,
                 sensor: Sensor | None = None, probe: str | None = None, method: str,
                 reference_c: float | None, measured_c: float, tolerance_c: float | None,
                 action: str, note: str | None = None,
                 now: dt.datetime | None = None) -> Calibration:
    """Record one check (and apply its correction to the sensor when asked)."""
    probe = (probe or "").strip() or None
    if (sensor is None) == (probe is None):
        raise CalibrationRefused(_("Choose a sensor or name a hand-held probe (one of them)."))
    if probe is not None and len(probe) > PROBE_NAME_MAX:
        raise CalibrationRefused(_("The probe's name is too long."))
    if sensor is not None and not sensor_visible(session, sensor, site):
        raise CalibrationRefused(_("That sensor belongs to another site."))
    if method not in METHODS:
        raise CalibrationRefused(_("Unknown method."))
    if reference_c is None:
        reference_c = METHOD_REFERENCE_C.get(method)
        if reference_c is None:
            raise CalibrationRefused(_("Enter the reference thermometer's reading."))
    tolerance_c = DEFAULT_TOLERANCE_C if tolerance_c is None else tolerance_c
    for value in (reference_c, measured_c, tolerance_c):
        if not math.isfinite(value):
            raise CalibrationRefused(_("Temperatures must be numbers."))
    if not MEASURED_RANGE_C[0] <= measured_c <= MEASURED_RANGE_C[1] or \
            not MEASURED_RANGE_C[0] <= reference_c <= MEASURED_RANGE_C[1]:
        raise CalibrationRefused(_("That temperature is not plausible for a kitchen thermometer."))
    if not TOLERANCE_RANGE_C[0] <= tolerance_c <= TOLERANCE_RANGE_C[1]:
        raise CalibrationRefused(_("The tolerance must be between 0.1 and 5 °C."))
    if action not in ACTIONS:
        raise CalibrationRefused(_("Unknown action."))
    error_c = round(measured_c - reference_c, 3)
    passed = abs(error_c) <= tolerance_c + 1e-9
    if not passed and action == "none":
        raise CalibrationRefused(_(
            "The thermometer is %(error)s °C off, outside ±%(tolerance)s °C: record what was done "
            "about it.", error=f"{error_c:+.1f}", tolerance=f"{tolerance_c:g}"))
    offset_before = offset_after = None
    if sensor is not None:
        offset_before = offset_after = sensor.offset_c
    if action == "offset_applied":
        if sensor is None:
            raise CalibrationRefused(_("A hand-held probe cannot be corrected here: adjust or "
                                       "replace it."))
        if staff.role not in (Role.HEAD_CHEF, Role.ADMIN):
            raise NotAllowed(_("Only a head chef or an admin can apply a correction to a sensor."))
        offset_after = round(sensor.offset_c - error_c, 3)
        if abs(offset_after) > MAX_OFFSET_C:
            raise CalibrationRefused(_(
                "A correction of %(offset)s °C is too large to trust: replace the sensor.",
                offset=f"{offset_after:+.1f}"))
        sensor.offset_c = offset_after
    record = Calibration(
        site_id=site.id, sensor_id=sensor.id if sensor is not None else None, probe=probe,
        method=method, reference_c=reference_c, measured_c=measured_c, error_c=error_c,
        tolerance_c=tolerance_c, passed=passed, action=action, offset_before_c=offset_before,
        offset_after_c=offset_after, note=(note or "").strip()[:NOTE_MAX] or None,
        staff_id=staff.id, device_id=device_id, performed_at=now or utcnow())
    audit.append(session, record, "calibration.recorded", staff.id, device_id)
    return record


def site_sensors(session, site: Site) -> list[tuple[Sensor, str]]:
    """The site's sensors on units, with their unit's name, by unit then sensor."""
    return [(sensor, unit_name) for sensor, unit_name in session.execute(
        select(Sensor, Unit.name).join(Unit, Sensor.unit_id == Unit.id)
        .where(Unit.site_id == site.id).order_by(Unit.name, Sensor.name, Sensor.key))]


def subjects(session, site: Site, now: dt.datetime, every_days: int) -> list[Subject]:
    """Every sensor on the site's units and every probe checked there, with its last check."""
    latest_ids = select(func.max(Calibration.id)).where(Calibration.site_id == site.id) \
        .group_by(Calibration.sensor_id, Calibration.probe)
    last = {(c.sensor_id, c.probe): c for c in session.execute(
        select(Calibration).where(Calibration.id.in_(latest_ids))).scalars()}
    due_before = now - dt.timedelta(days=every_days)

    def is_due(check: Calibration | None) -> bool:
        return check is None or check.performed_at < due_before or \
            (not check.passed and check.action != "offset_applied")

    out = [Subject(sensor, None, unit_name, last.get((sensor.id, None)),
                   is_due(last.get((sensor.id, None))))
           for sensor, unit_name in site_sensors(session, site)]
    for (sensor_id, probe), check in sorted(last.items(), key=lambda kv: (kv[0][1] or "").lower()):
        if sensor_id is None and check.action not in ("removed", "replaced"):
            out.append(Subject(None, probe, None, check, is_due(check)))
    return out


def log(session, site: Site, start: dt.datetime, end: dt.datetime,
        sensor_id: int | None = None) -> list[Calibration]:
    """The site's checks in [start, end), newest first."""
    query = select(Calibration).where(Calibration.site_id == site.id,
                                      Calibration.performed_at >= start,
                                      Calibration.performed_at < end)
    if sensor_id is not None:
        query = query.where(Calibration.sensor_id == sensor_id)
    return session.execute(query.order_by(Calibration.performed_at.desc(),
                                          Calibration.id.desc())).scalars().all()


def known_probes(session, site: Site) -> list[str]:
    """Names of the hand-held probes checked at this site before (for the form's suggestions)."""
    return sorted(session.execute(select(Calibration.probe).distinct().where(
        Calibration.site_id == site.id, Calibration.probe.is_not(None),
        or_(Calibration.action.not_in(("removed", "replaced"))))).scalars(), key=str.lower)
