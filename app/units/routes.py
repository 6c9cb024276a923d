"""Views: units (head chef reads, admin edits), sensors, rejected messages, tokens, HTTP ingest."""
from __future__ import annotations

import datetime as dt

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from app.alerts.engine import evaluate_after_ingest
from app.security import public
from app.errors import OperationError
from app.extensions import csrf
from app.models import Role, Site, db, utcnow
from app.security import chef_only, roles_required
from app.units import api, bp
from app.units.ingest import (IDEMPOTENCY_HEADER, MAX_BODY_BYTES, REPLAYED_HEADER, KeyRefused,
                              Reply, fingerprint, idempotency_key, ingest_body, remember,
                              remembered, replay, too_large)
from app.units.operations import (KINDS, PRESET_LABELS, FormInvalid, attach_sensor, create_token,
                                  create_unit, dead_letter_summary, detach_sensor, form_values,
                                  latest_dead_letters, new_unit_values, parse_unit_form,
                                  preset_summary, preview, revoke_token, show_delta,
                                  token_from_header, update_unit)
from app.models.ingest import IngestToken
from app.models.units import Unit
from app.web import current_site, sensor_or_404, site_row_or_404
from sensors.models import Sensor
from sensors.store import DEAD_LETTER_KEEP_BYTES

admin_only = roles_required(Role.ADMIN)


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
                           now=utcnow(), can_edit=current_user.role == Role.ADMIN)


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
            unit = create_unit(db.session, site, parse_unit_form(request.form, site.temp_unit))
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
            update_unit(db.session, unit, site, parse_unit_form(form, site.temp_unit))
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
                      request.form.get("temp_unit", sensor.temp_unit))
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
        detach_sensor(db.session, sensor, site)
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


@api.post("/readings")
@public
@csrf.exempt
def readings():
    """Readings from devices that cannot speak MQTT, through the MQTT path's parsing and storage."""
    token = token_from_header(db.session, request.headers.get("Authorization"))
    if token is None:
        response = jsonify(error="missing, unknown or revoked token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="brigade"'
        return response, 401
    try:
        key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    except KeyRefused as exc:
        return jsonify(error=str(exc)), 400
    now = utcnow()
    size = request.content_length
    if size is not None and size > MAX_BODY_BYTES:
        try:
            head = request.stream.read(DEAD_LETTER_KEEP_BYTES)
        except RequestEntityTooLarge:
            head = b""
        outcome = too_large(db.session, token.site_id, now, head, size)
    else:
        raw = request.stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:  # a chunked body that did not say its size
            outcome = too_large(db.session, token.site_id, now, raw, len(raw))
        elif key is not None:
            return _reply(_ingest_once(token, key, raw, now))
        else:
            outcome = ingest_body(db.session, token.site_id, raw, now)
    db.session.commit()
    _evaluate_alerts(outcome.sensors_seen)
    return jsonify(outcome.body()), outcome.status


def _evaluate_alerts(sensor_ids: set[int]) -> None:
    """A breach posted over HTTP alerts at once, as one over MQTT does (not at the next sweep).

    The readings are committed already: a failure here is logged, and the sweep retries.
    """
    try:
        evaluate_after_ingest(db.session, sensor_ids)
    except Exception:  # noqa: BLE001 - the post succeeded; alerting catches up in the sweep
        db.session.rollback()
        current_app.logger.exception("evaluating alerts after an HTTP ingest failed")


def _ingest_once(token: IngestToken, key: str, raw: bytes, now: dt.datetime) -> Reply:
    """Ingest under an Idempotency-Key: store and remember, or replay (see app.units.ingest)."""
    token_id, site_id = token.id, token.site_id
    digest = fingerprint(raw)
    prior = remembered(db.session, token_id, key, now)
    if prior is None:
        outcome = ingest_body(db.session, site_id, raw, now)
        try:
            remember(db.session, token_id, key, digest, outcome, now)
            db.session.commit()
            _evaluate_alerts(outcome.sensors_seen)
            return Reply(outcome.status, outcome.body())
        except IntegrityError:
            # A racer with the same key committed first: drop ours, answer with its response.
            db.session.rollback()
            prior = remembered(db.session, token_id, key, now)
    reply = replay(prior, digest)
    db.session.rollback()
    return reply


def _reply(reply: Reply):
    response = jsonify(reply.body)
    if reply.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response, reply.status
