"""Views: what is due for a check, the log (and its CSV), and the form to record a check."""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.calibration import bp
from app.calibration.operations import (ACTIONS, DEFAULT_TOLERANCE_C, METHOD_REFERENCE_C, METHODS,
                                        SENSOR_METHODS, CalibrationRefused, NotAllowed, signed_delta,
                                        known_probes, log, record_check, site_sensors, subjects)
from app.devices import current_device_id
from app.formatting import show_temp
from app.models import Role, Site, Staff, db, utcnow
from app.security import chef_only
from app.web import current_site, sensor_or_404
from sensors.models import Sensor
from sensors.temperature import (delta_from_celsius, delta_to_celsius, from_celsius, parse_number,
                                 show_delta, to_celsius)

#: The log shows this many days unless a range is asked for.
DEFAULT_DAYS = 90
MAX_RANGE_DAYS = 3 * 366


def _range(site: Site) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """The log's dates (site-local, both inclusive) from ?from=&to=, and their UTC bounds."""
    tz = ZoneInfo(site.timezone)
    today = utcnow().astimezone(tz).date()
    try:
        last = dt.date.fromisoformat(request.args["to"]) if request.args.get("to") else today
        first = dt.date.fromisoformat(request.args["from"]) if request.args.get("from") else \
            last - dt.timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        abort(400, "from and to must look like 2026-11-27")
    if not dt.date(2000, 1, 1) <= first <= last <= dt.date(2200, 1, 1) or \
            (last - first).days >= MAX_RANGE_DAYS:
        abort(400, f"from must not be after to, within {MAX_RANGE_DAYS} days")
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz) \
        .astimezone(dt.timezone.utc)
    return first, last, start, end


def _staff_of(checks) -> dict[int, Staff]:
    ids = {c.staff_id for c in checks}
    if not ids:
        return {}
    return {s.id: s for s in db.session.execute(select(Staff).where(Staff.id.in_(ids))).scalars()}


@bp.context_processor
def _helpers():
    return dict(methods=METHODS, actions=ACTIONS, show_temp=show_temp, show_delta=show_delta,
                signed=signed_delta, sensor_methods=SENSOR_METHODS)


def _cell(text: str) -> str:
    """Free text for a spreadsheet: a leading = + - @ would make it a formula; quote it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("")
def index():
    site, now = current_site(), utcnow()
    first, last, start, end = _range(site)
    sensor_id = request.args.get("sensor", type=int)
    sensor = sensor_or_404(sensor_id, site, attached=True) if sensor_id else None
    every = current_app.config["BRIGADE_CALIBRATION_DAYS"]
    checks = log(db.session, site, start, end, sensor.id if sensor else None)
    staff = _staff_of(checks)
    return render_template("calibration/index.html", site=site, now=now, every=every,
                           subjects=subjects(db.session, site, now, every), checks=checks,
                           staff=staff, sensor=sensor, first=first, last=last,
                           can_export=current_user.role in (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER))


@bp.get("/export.csv")
@chef_only
def export():
    site = current_site()
    first, last, start, end = _range(site)
    tz = ZoneInfo(site.timezone)
    checks = log(db.session, site, start, end)
    staff = {staff_id: person.name for staff_id, person in _staff_of(checks).items()}
    keys = dict(db.session.execute(select(Sensor.id, Sensor.key).where(
        Sensor.id.in_({c.sensor_id for c in checks if c.sensor_id}))).all()) if checks else {}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["performed_at_local", "performed_at_utc", "thermometer", "sensor_key",
                     "probe", "method", "reference_c", "measured_c", "error_c", "tolerance_c",
                     "passed", "action", "offset_before_c", "offset_after_c", "by", "note",
                     "record_id"])
    for c in reversed(checks):  # oldest first, as a log is read
        writer.writerow([c.performed_at.astimezone(tz).isoformat(timespec="seconds"),
                         c.performed_at.isoformat(timespec="seconds"), _cell(c.subject),
                         keys.get(c.sensor_id, ""), _cell(c.probe or ""), c.method,
                         c.reference_c, c.measured_c, c.error_c, c.tolerance_c,
                         "yes" if c.passed else "no", c.action,
                         "" if c.offset_before_c is None else c.offset_before_c,
                         "" if c.offset_after_c is None else c.offset_after_c,
                         _cell(staff.get(c.staff_id, "")), _cell(c.note or ""), c.id])
    filename = f"calibration-{site.id}-{first.isoformat()}-{last.isoformat()}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@dataclass(frozen=True)
class LastReading:
    temperature_c: float
    age: str


def _last_reading(sensor: Sensor | None) -> LastReading | None:
    """What Brigade last stored for the sensor (corrected), for the person doing the check."""
    if sensor is None or sensor.last_reading_at is None:
        return None
    ago = sensor.last_reading_at - utcnow()
    age = _("just now") if ago > -dt.timedelta(seconds=5) else \
        format_timedelta(ago, add_direction=True)
    return LastReading(sensor.last_temperature_c, age)


def _form(site: Site, values: dict, error: str | None = None, status: int = 200):
    sensor = None
    if values.get("subject", "").startswith("sensor:"):
        sensor_id = values["subject"].removeprefix("sensor:")
        sensor = db.session.get(Sensor, int(sensor_id)) if sensor_id.isdigit() else None
    return render_template("calibration/form.html", site=site, values=values, error=error,
                           last_reading=_last_reading(sensor),
                           sensors=site_sensors(db.session, site),
                           probes=known_probes(db.session, site),
                           can_correct=current_user.role in (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER),
                           references={k: from_celsius(v, site.temp_unit)
                                       for k, v in METHOD_REFERENCE_C.items()}), status


def _delta(value: float, temp_unit: str) -> float:
    return round(delta_to_celsius(value, temp_unit), 3)


@bp.get("/new")
def new():
    site = current_site()
    sensor_id = request.args.get("sensor", type=int)
    measured = ""
    if sensor_id:
        last = _last_reading(sensor_or_404(sensor_id, site, attached=True))
        if last is not None:  # the check is of this value, as Brigade records it
            measured = f"{from_celsius(last.temperature_c, site.temp_unit):.1f}"
    tolerance = round(delta_from_celsius(DEFAULT_TOLERANCE_C, site.temp_unit), 3)
    return _form(site, {"subject": f"sensor:{sensor_id}" if sensor_id else "",
                        "probe": request.args.get("probe", ""), "method": "ice_point",
                        "tolerance": f"{tolerance:g}", "action": "none", "measured": measured})


@bp.post("")
def create():
    site = current_site()
    form = request.form
    values = {k: form.get(k, "") for k in ("subject", "probe", "method", "reference", "measured",
                                            "tolerance", "action", "note")}
    sensor = None
    subject = values["subject"]
    if subject.startswith("sensor:"):
        try:
            sensor = sensor_or_404(int(subject.removeprefix("sensor:")), site, attached=True)
        except ValueError:
            abort(400, "subject must be sensor:<id> or probe")
    elif subject != "probe":
        return _form(site, values, _("Choose what was checked."), 422)
    measured = parse_number(values["measured"])
    if measured is None:
        return _form(site, values, _("Enter the temperature the thermometer showed."), 422)
    reference = parse_number(values["reference"]) if values["reference"].strip() else None
    if values["reference"].strip() and reference is None:
        return _form(site, values, _("The reference temperature is not a number."), 422)
    tolerance = parse_number(values["tolerance"]) if values["tolerance"].strip() else None
    if values["tolerance"].strip() and tolerance is None:
        return _form(site, values, _("The tolerance is not a number."), 422)
    unit = site.temp_unit
    try:
        check = record_check(
            db.session, site, current_user, current_device_id(), sensor=sensor,
            probe=values["probe"] if sensor is None else None, method=values["method"],
            reference_c=None if reference is None else round(to_celsius(reference, unit), 2),
            measured_c=round(to_celsius(measured, unit), 2),
            tolerance_c=None if tolerance is None else _delta(tolerance, unit),
            action=values["action"], note=values["note"])
        db.session.commit()
    except NotAllowed as exc:
        db.session.rollback()
        return _form(site, values, str(exc), 403)
    except CalibrationRefused as exc:
        db.session.rollback()
        return _form(site, values, str(exc), 422)
    if check.passed:
        flash(_("Check recorded: within tolerance."), "ok")
    else:
        flash(_("Check recorded: out of tolerance (%(error)s), action: %(action)s.",
                error=signed_delta(check.error_c, unit), action=ACTIONS[check.action]), "warn")
    return redirect(url_for("calibration.index"))
