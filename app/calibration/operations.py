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
from sqlalchemy import func, select

from app import audit
from app.errors import OperationError
from app.models import Role, Site, Staff, utcnow
from app.models.calibration import Calibration
from app.models.units import Unit
from sensors.models import Sensor
from sensors.temperature import delta_from_celsius, show_delta

METHODS = {
    "ice_point": lazy_gettext("Ice point (ice and water)"),
    "boiling_point": lazy_gettext("Boiling point"),
    "reference": lazy_gettext("Against a reference thermometer"),
}
#: What the method reads when the thermometer is right, °C (boiling: at sea level; editable).
METHOD_REFERENCE_C = {"ice_point": 0.0, "boiling_point": 100.0}
ACTIONS = {
    "none": lazy_gettext("None needed"),
    "reported": lazy_gettext("Reported to the head chef"),
    "offset_applied": lazy_gettext("Correction applied to the sensor"),
    "removed": lazy_gettext("Taken out of use"),
    "replaced": lazy_gettext("Replaced"),
}
#: Methods for fixed sensors: boiling water would cook a fridge's record (and alarm).
SENSOR_METHODS = ("ice_point", "reference")
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


def offset_history(session, sensor_id: int) -> list[tuple[dt.datetime, float]]:
    """A sensor's calibration offsets as (since, offset °C), oldest first: what ingest adds."""
    return [tuple(row) for row in session.execute(
        select(Calibration.performed_at, Calibration.offset_after_c)
        .where(Calibration.sensor_id == sensor_id, Calibration.offset_after_c.is_not(None))
        .order_by(Calibration.performed_at, Calibration.id))]


def signed_delta(celsius: float, temp_unit: str) -> str:
    """A temperature difference with its sign, in the site's unit: "+2.7 °F"."""
    return show_delta(celsius, temp_unit, signed=True)


def _unsigned(celsius: float, temp_unit: str) -> str:
    return f"{delta_from_celsius(celsius, temp_unit):g} °{temp_unit}"


def _probe_name(session, site: Site, typed: str) -> str:
    """The spelling already in the log for this probe ("probe 2" is "Probe 2"), else as typed."""
    for known in known_probes(session, site, include_retired=True):
        if known.casefold() == typed.casefold():
            return known
    return typed


def record_check(session, site: Site, staff: Staff, device_id: str | None, *,
                 sensor: Sensor | None = None, probe: str | None = None, method: str,
                 reference_c: float | None, measured_c: float, tolerance_c: float | None,
                 action: str, note: str | None = None,
                 now: dt.datetime | None = None) -> Calibration:
    """Record one check; apply its correction to the sensor, or reset it, when asked.

    For a sensor, ``measured_c`` is the value Brigade recorded from it in the ice (already
    corrected by its current offset), so a further error adds to that offset.
    """
    now = now or utcnow()
    unit = site.temp_unit
    probe, home = _subject(session, site, sensor, probe, method)
    reference_c, tolerance_c = _values(method, reference_c, measured_c, tolerance_c, unit)
    error_c = round(measured_c - reference_c, 3)
    passed = abs(error_c) <= tolerance_c + 1e-9
    _allowed(action, passed, error_c, tolerance_c, sensor, staff, unit)
    offset_before, offset_after = _correct(session, sensor, action, error_c, now, unit)
    subject = probe if sensor is None else f"{home.name} · {sensor.name or sensor.key}"
    if probe is not None:
        probe = _probe_name(session, site, probe)
        subject = probe
    record = Calibration(
        site_id=site.id, sensor_id=sensor.id if sensor is not None else None, probe=probe,
        subject=subject[:300], method=method, reference_c=reference_c, measured_c=measured_c,
        error_c=error_c, tolerance_c=tolerance_c, passed=passed, action=action,
        offset_before_c=offset_before, offset_after_c=offset_after,
        note=(note or "").strip()[:NOTE_MAX] or None, staff_id=staff.id, device_id=device_id,
        performed_at=now)
    audit.append(session, record, "calibration.recorded", staff.id, device_id)
    _follow_up(session, site, record, home, now)
    return record


def _subject(session, site: Site, sensor: Sensor | None, probe: str | None,
             method: str) -> tuple[str | None, Unit | None]:
    """What is checked — one of this site's sensors or a named probe — and the sensor's unit."""
    probe = " ".join((probe or "").split()) or None
    if (sensor is None) == (probe is None):
        raise CalibrationRefused(_("Choose a sensor or name a hand-held probe (one of them)."))
    if probe is not None and len(probe) > PROBE_NAME_MAX:
        raise CalibrationRefused(_("The probe's name is too long."))
    home = session.get(Unit, sensor.unit_id) if sensor is not None and sensor.unit_id else None
    if sensor is not None and (home is None or home.site_id != site.id):
        raise CalibrationRefused(_("That sensor is not on one of this site's units."))
    if method not in METHODS:
        raise CalibrationRefused(_("Unknown method."))
    if sensor is not None and method not in SENSOR_METHODS:
        raise CalibrationRefused(_("Check a fixed sensor in ice water or against a reference "
                                   "thermometer: boiling water would go into its unit's record."))
    return probe, home


def _values(method: str, reference_c: float | None, measured_c: float,
            tolerance_c: float | None, unit: str) -> tuple[float, float]:
    """The reference (the method's own when it has one) and the tolerance, checked plausible."""
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
        raise CalibrationRefused(_("The tolerance must be between %(low)s and %(high)s.",
                                   low=_unsigned(TOLERANCE_RANGE_C[0], unit),
                                   high=_unsigned(TOLERANCE_RANGE_C[1], unit)))
    return reference_c, tolerance_c


def _allowed(action: str, passed: bool, error_c: float, tolerance_c: float,
             sensor: Sensor | None, staff: Staff, unit: str) -> None:
    """A failed check needs an action; only a head chef or admin changes a sensor's correction."""
    if action not in ACTIONS:
        raise CalibrationRefused(_("Unknown action."))
    if not passed and action == "none":
        raise CalibrationRefused(_(
            "The thermometer is %(error)s off, outside ±%(tolerance)s: record what was done "
            "about it.", error=signed_delta(error_c, unit), tolerance=_unsigned(tolerance_c, unit)))
    if action == "offset_applied" and sensor is None:
        raise CalibrationRefused(_("A hand-held probe cannot be corrected here: adjust or "
                                   "replace it."))
    # "replaced" resets a sensor's correction to 0: as much a change to its readings as one.
    if sensor is not None and action in ("offset_applied", "replaced") \
            and staff.role not in (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER):
        raise NotAllowed(_("Only a head chef or an admin can apply a correction to a sensor."))


def _correct(session, sensor: Sensor | None, action: str, error_c: float, now: dt.datetime,
             unit: str) -> tuple[float | None, float | None]:
    """The sensor's offset before and after the check, applied to the sensor when it changes."""
    if sensor is None:
        return None, None
    # Under the audit chain's lock, read afresh: two corrections at once apply in turn.
    audit.serialize(session)
    session.refresh(sensor)
    offset_before = offset_after = sensor.offset_c
    if action == "offset_applied":
        offset_after = round(sensor.offset_c - error_c, 3)
        if abs(offset_after) > MAX_OFFSET_C:
            raise CalibrationRefused(_(
                "A correction of %(offset)s is too large to trust: replace the sensor.",
                offset=signed_delta(offset_after, unit)))
    elif action == "replaced":
        offset_after = 0.0  # new hardware starts uncorrected, and due for its own check
    if offset_after != offset_before:
        sensor.offset_c, sensor.offset_since = offset_after, now
    return offset_before, offset_after


def _alert_subject(record: Calibration) -> str:
    return f"site:{record.site_id}:calibration:" + (
        f"sensor:{record.sensor_id}" if record.sensor_id else f"probe:{record.probe.casefold()}")


def _follow_up(session, site: Site, record: Calibration, home: Unit | None,
               now: dt.datetime) -> None:
    """A thermometer reported out of tolerance alerts the head chef until it is dealt with."""
    from app.alerts.operations import mark_recovered, raise_alert
    subject = _alert_subject(record)
    if record.action == "reported":
        raise_alert(session, site_id=site.id, kind="calibration", subject=subject,
                    unit_id=home.id if home else None, now=now,
                    detail={"title": record.subject, "error_c": record.error_c,
                            "tolerance_c": record.tolerance_c, "check_id": record.id})
    elif record.passed or record.action in ("offset_applied", "removed", "replaced"):
        mark_recovered(session, subject, now, check_id=record.id)


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

    def is_due(check: Calibration | None, sensor: bool = False) -> bool:
        # Never checked, checked too long ago, reported but not dealt with, replaced (the new
        # one needs its own check), or a sensor still on its unit though taken out of use.
        return check is None or check.performed_at < due_before or \
            check.action in ("reported", "replaced") or (sensor and check.action == "removed")

    out = [Subject(sensor, None, unit_name, last.get((sensor.id, None)),
                   is_due(last.get((sensor.id, None)), sensor=True))
           for sensor, unit_name in site_sensors(session, site)]
    for (sensor_id, probe), check in sorted(last.items(), key=lambda kv: (kv[0][1] or "").lower()):
        if sensor_id is None and check.action != "removed":  # a replaced probe: check the new one
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


def known_probes(session, site: Site, include_retired: bool = False) -> list[str]:
    """Hand-held probes checked at this site, except those whose last check took them out of use."""
    latest = select(func.max(Calibration.id)).where(
        Calibration.site_id == site.id, Calibration.probe.is_not(None)).group_by(Calibration.probe)
    rows = session.execute(select(Calibration.probe, Calibration.action)
                           .where(Calibration.id.in_(latest))).all()
    return sorted((probe for probe, action in rows if include_retired or action != "removed"),
                  key=str.casefold)
