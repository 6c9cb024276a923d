"""Views: units (head chef reads, admin edits), sensors, rejected messages, ingest tokens."""
from __future__ import annotations

import datetime as dt

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.errors import OperationError
from app.models import Role, Site, db, utcnow
from app.models.ingest import IngestToken
from app.models.units import Unit
from app.security import chef_only, password_session, roles_required
from app.units.dead_letters import dead_letter_summary, latest_dead_letters, preview
from app.units.forms import (KINDS, PRESET_LABELS, FormInvalid, form_values, new_unit_values,
                             parse_unit_form, preset_summary)
from app.units.ingest import MAX_BODY_BYTES
from app.units.operations import attach_sensor, create_unit, detach_sensor, update_unit
from app.units.tokens import create_token, revoke_token
from app.web import current_site, sensor_or_404, site_row_or_404
from sensors.models import Sensor
from sensors.temperature import show_delta

bp = Blueprint("units", __name__, url_prefix="/units")
admin_only = roles_required(Role.ADMIN, Role.OWNER, password=True)


def _units(site: Site) -> list[Unit]:
    return db.session.execute(select(Unit).where(Unit.site_id == site.id)
                              .order_by(Unit.name)).scalars().all()


def _age(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return ""
    return format_timedelta(min(moment - now, dt.timedelta(0)), add_direction=True)


@bp.context_processor
def _helpers():
    return dict(age=_age, kinds=KINDS, show_delta=show_delta,
                low_battery=current_app.config["BRIGADE_LOW_BATTERY_PCT"])


@bp.get("")
@chef_only
def index():
    site = current_site()
    units = _units(site)
    sensors: dict[int, list[Sensor]] = {unit.id: [] for unit in units}
    for sensor in db.session.execute(select(Sensor).where(Sensor.unit_id.in_(list(sensors)))
                                     .order_by(Sensor.key)).scalars():
        sensors[sensor.unit_id].append(sensor)
    return render_template("units/index.html", site=site, units=units, sensors=sensors,
                           now=utcnow(),
                           can_edit=current_user.role in (Role.ADMIN, Role.OWNER) and password_session())


def _form_page(site: Site, values: dict, errors: dict, unit: Unit | None = None, status: int = 200):
    presets = {key: f"{label} ({preset_summary(key, site.temp_unit)})"
               for key, label in PRESET_LABELS.items()}
    return render_template("units/form.html", site=site, unit=unit, values=values, errors=errors,
                           presets=presets), status


@bp.route("/new", methods=["GET", "POST"])
@admin_only
def new():
    site = current_site()
    if request.method == "POST":
        try:
            unit = create_unit(db.session, site, parse_unit_form(request.form, site.temp_unit),
                               current_user.id, (request.form.get("reason") or "").strip() or None)
        except FormInvalid as exc:
            db.session.rollback()
            return _form_page(site, dict(request.form), exc.errors, status=422)
        db.session.commit()
        flash(_("Unit %(name)s added.", name=unit.name), "ok")
        return redirect(url_for("units.index"))
    try:
        values = new_unit_values(site.temp_unit, request.args.get("preset") or None)
    except FormInvalid as exc:
        return _form_page(site, new_unit_values(site.temp_unit), exc.errors, status=400)
    return _form_page(site, values, {})


@bp.route("/<int:unit_id>/edit", methods=["GET", "POST"])
@admin_only
def edit(unit_id: int):
    site = current_site()
    unit = site_row_or_404(Unit, unit_id, site)
    if request.method == "POST":
        form = {k: v for k, v in request.form.items() if k != "preset"}
        try:
            update_unit(db.session, unit, site, parse_unit_form(form, site.temp_unit),
                        current_user.id, (form.get("reason") or "").strip() or None)
        except FormInvalid as exc:
            db.session.rollback()
            return _form_page(site, form, exc.errors, unit, status=422)
        db.session.commit()
        flash(_("Unit %(name)s saved.", name=unit.name), "ok")
        return redirect(url_for("units.index"))
    return _form_page(site, form_values(unit, site.temp_unit), {}, unit)


@bp.get("/sensors")
@admin_only
def sensors():
    site = current_site()
    units = _units(site)
    unassigned = db.session.execute(select(Sensor).where(Sensor.unit_id.is_(None))
                                    .order_by(Sensor.first_seen.desc(), Sensor.key)).scalars().all()
    assigned = db.session.execute(
        select(Sensor).join(Unit, Sensor.unit_id == Unit.id).where(Unit.site_id == site.id)
        .order_by(Unit.name, Sensor.key)).scalars().all()
    return render_template("units/sensors.html", site=site, units=units,
                           units_by_id={u.id: u for u in units}, unassigned=unassigned,
                           assigned=assigned, now=utcnow())


@bp.post("/sensors/<int:sensor_id>/attach")
@admin_only
def attach(sensor_id: int):
    site = current_site()
    sensor = sensor_or_404(sensor_id, site)
    unit = site_row_or_404(Unit, request.form.get("unit_id", type=int) or 0, site)
    try:
        attach_sensor(db.session, sensor, unit, site, request.form.get("name"),
                      request.form.get("temp_unit", sensor.temp_unit), current_user.id)
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("units.sensors"))
    db.session.commit()
    flash(_("Sensor %(sensor)s is on %(unit)s.", sensor=sensor.name or sensor.key, unit=unit.name),
          "ok")
    return redirect(url_for("units.sensors"))


@bp.post("/sensors/<int:sensor_id>/detach")
@admin_only
def detach(sensor_id: int):
    site = current_site()
    sensor = sensor_or_404(sensor_id, site)
    try:
        detach_sensor(db.session, sensor, site, current_user.id)
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("units.sensors"))
    db.session.commit()
    flash(_("Sensor %(sensor)s is unassigned.", sensor=sensor.name or sensor.key), "ok")
    return redirect(url_for("units.sensors"))


@bp.get("/dead-letters")
@admin_only
def dead_letters():
    now = utcnow()
    site = current_site()
    return render_template("units/dead_letters.html", site=site, now=now,
                           summary=dead_letter_summary(db.session, site, now),
                           rows=latest_dead_letters(db.session, site), preview=preview)


def _tokens_page(new_token: str | None = None, status: int = 200):
    site = current_site()
    tokens = db.session.execute(select(IngestToken).where(IngestToken.site_id == site.id)
                                .order_by(IngestToken.revoked_at.is_not(None),
                                          IngestToken.created_at.desc())).scalars().all()
    response = render_template("units/tokens.html", site=site, tokens=tokens,
                               new_token=new_token, max_body=MAX_BODY_BYTES)
    # A new token is shown once: keep the page out of every cache.
    return response, status, {"Cache-Control": "no-store"}


@bp.get("/tokens")
@admin_only
def tokens():
    return _tokens_page()


@bp.post("/tokens")
@admin_only
def create_ingest_token():
    try:
        _token, plain = create_token(db.session, current_site(), request.form.get("name", ""))
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("units.tokens"))
    db.session.commit()
    return _tokens_page(new_token=plain, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
@admin_only
def revoke(token_id: int):
    token = db.session.get(IngestToken, token_id)
    if token is None or token.site_id != current_site().id:
        abort(404)  # another site's token is not this admin's to see
    revoke_token(db.session, token, utcnow())
    db.session.commit()
    flash(_("Token %(name)s revoked: it no longer works.", name=token.name), "ok")
    return redirect(url_for("units.tokens"))
