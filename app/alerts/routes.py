"""Alert views: the head chef's list and alert page, the tablet's banner and acknowledge page.

Acknowledging is open to anyone of the site (cooks do it from the shared tablet);
resolving is the head chef's or admin's, and only once the condition has cleared.
"""
from __future__ import annotations

import datetime as dt
import math

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.alerts import bp
from app.alerts.breach import OFFLINE
from app.alerts.engine import unit_state
from app.alerts.operations import acknowledge, resolve
from app.errors import OperationError
from app.devices import current_device_id
from app.formatting import bilingual, label, local_time, show_temp
from app.models import (FOOD_OUTCOMES, Alert, AlertState, ChecklistDefinition, Notification, Role,
                        Site, db, utcnow)
from app.security import chef_only
from app.models.units import Unit
from app.web import current_site, site_row_or_404
from sensors import temperature
from sensors.models import Reading, Sensor

#: People's-language labels for the codes alerts store (kind, tier, status, event, outcome...).
ALERT_LABELS = {
    "temperature": lazy_gettext("Temperature"), "offline": lazy_gettext("Sensor offline"),
    "low_battery": lazy_gettext("Low battery"),
    "checklist_overdue": lazy_gettext("Checklist overdue"),
    "timer_expired": lazy_gettext("Hold timer expired"),
    "review_due": lazy_gettext("Yearly review due"),
    "calibration": lazy_gettext("Thermometer out of tolerance"),
    "alarm": lazy_gettext("Alarm"), "critical": lazy_gettext("Critical"),
    "open": lazy_gettext("Open"), "acknowledged": lazy_gettext("Acknowledged"),
    "resolved": lazy_gettext("Resolved"),
    "opened": lazy_gettext("Alert opened"), "tier_raised": lazy_gettext("Became critical"),
    "recovered": lazy_gettext("Back to normal"), "relapsed": lazy_gettext("Out of range again"),
    "escalated": lazy_gettext("Escalated"),
    "kept": lazy_gettext("Kept"), "moved": lazy_gettext("Moved"),
    "discarded": lazy_gettext("Discarded"), "not_applicable": lazy_gettext("Not applicable"),
    "pending": lazy_gettext("Pending"), "sent": lazy_gettext("Sent"),
    "failed": lazy_gettext("Failed"),
    "email": lazy_gettext("Email"), "webhook": lazy_gettext("Webhook"),
    "mqtt": lazy_gettext("MQTT"),
}
#: Who is told at each escalation level (see operations.LEVEL_ROLES).
LEVELS = {0: lazy_gettext("Cooks"), 1: lazy_gettext("Head chef"), 2: lazy_gettext("Owner")}
#: Quick choices for the corrective action, per alert kind; free text can add to them.
SUGGESTED_ACTIONS = {
    "temperature": (lazy_gettext("Moved the food to another fridge"),
                    lazy_gettext("Closed the door properly"),
                    lazy_gettext("Checked with a probe thermometer"),
                    lazy_gettext("Adjusted the thermostat"), lazy_gettext("Called for a repair")),
    "offline": (lazy_gettext("Checked the sensor and its power"),
                lazy_gettext("Replaced the sensor battery"),
                lazy_gettext("Checked with a probe thermometer")),
    "low_battery": (lazy_gettext("Replaced the sensor battery"),),
    "checklist_overdue": (lazy_gettext("Did the checklist late"),
                          lazy_gettext("Reminded the cook on duty")),
    "timer_expired": (lazy_gettext("Recorded it as served"), lazy_gettext("Discarded the dish")),
    "review_due": (lazy_gettext("Booked a time for the review"),),
    "calibration": (lazy_gettext("Applied the correction to the sensor"),
                    lazy_gettext("Took the thermometer out of use"),
                    lazy_gettext("Ordered a replacement")),
}
#: What a list shows by default: everything unresolved, then what was resolved lately.
RECENT_RESOLVED = dt.timedelta(days=7)
STATUS_FILTERS = ("active", "open", "acknowledged", "resolved")
#: More readings than this around an alert are thinned, keeping the worst of each group.
MAX_READING_ROWS = 120
#: Readings shown from this long before the alert opened.
READINGS_BEFORE = dt.timedelta(hours=1)


@bp.app_template_global()
def alert_label(code) -> str:
    """The person's-language label for an alert code; falls back to the shared labels."""
    return str(ALERT_LABELS[code]) if code in ALERT_LABELS else label(code)


@bp.app_template_global()
def escalation_label(level: int) -> str:
    return str(LEVELS[min(level, 2)])


@bp.app_template_global()
def alert_age(delta: dt.timedelta) -> str:
    """A short duration: "12 min", "3 h 5 min", "2 d 4 h"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)s d %(h)s h", d=days, h=hours)
    if hours:
        return _("%(h)s h %(m)s min", h=hours, m=minutes)
    return _("%(m)s min", m=minutes)


@bp.app_template_global()
def alert_headline(alert: Alert) -> str:
    """What the alert is about, in the person's language (``detail.title`` is English only)."""
    detail = alert.detail or {}
    unit = detail.get("unit") or (_unit_name(alert.unit_id) if alert.unit_id else "")
    if alert.kind == "temperature":
        if detail.get("direction") == "low":
            return _("%(unit)s too cold", unit=unit)
        return _("%(unit)s too warm", unit=unit)
    if alert.kind == "offline":
        return _("%(unit)s: no readings", unit=unit)
    if alert.kind == "low_battery":
        return _("%(unit)s: sensor battery low", unit=unit)
    if alert.kind == "checklist_overdue":
        definition = db.session.execute(
            select(ChecklistDefinition).where(ChecklistDefinition.key == detail.get("checklist"))
            .order_by(ChecklistDefinition.version.desc()).limit(1)).scalar_one_or_none()
        title = bilingual(definition, "title") if definition else detail.get("title", "")
        return _("%(checklist)s overdue", checklist=title)
    if alert.kind == "timer_expired":
        return _("%(dish)s: served or discarded?", dish=detail.get("dish", ""))
    if alert.kind == "review_due":
        return _("Yearly review of the kitchen rules")
    if alert.kind == "calibration":
        return _("%(thermometer)s: out of tolerance", thermometer=detail.get("title", ""))
    return detail.get("title") or alert_label(alert.kind)


@bp.app_template_global()
def alert_banner() -> dict:
    """The site's unresolved alerts for the tablet banner: unacknowledged first, newest first.

    A template global so that any page can include the banner without its view knowing.
    """
    rows = db.session.execute(
        select(Alert).join(AlertState).where(Alert.site_id == current_user.site_id,
                                             AlertState.status.in_(("open", "acknowledged")))
        .options(selectinload(Alert.state), selectinload(Alert.events))
        .order_by(Alert.opened_at.desc())).scalars().all()
    rows.sort(key=lambda a: a.state.status != "open")  # stable: keeps newest first
    return {"alerts": rows, "site": current_site(), "now": utcnow()}


def _unit_name(unit_id: int) -> str:
    unit = db.session.get(Unit, unit_id)
    return unit.name if unit else ""


def _is_chef() -> bool:
    return current_user.role in (Role.HEAD_CHEF, Role.ADMIN)


def still_out(alert: Alert, site: Site, now: dt.datetime) -> bool:
    """Whether the alert's condition still holds, so that it may not be resolved yet."""
    unit = db.session.get(Unit, alert.unit_id) if alert.unit_id else None
    if unit is not None and alert.kind == "temperature":
        return bool(unit_state(db.session, unit, site, now).excursions)
    if unit is not None and alert.kind == "offline":
        return unit_state(db.session, unit, site, now).state == OFFLINE
    return alert.state.recovered_at is None


# --- what the alert page shows ------------------------------------------------------------------

def _time(value: str | None, site: Site) -> str:
    try:
        return local_time(dt.datetime.fromisoformat(value), site.timezone, "d MMM HH:mm")
    except (TypeError, ValueError):
        return value or ""


FACTS = (  # detail key, label, how to show it
    ("value_c", lazy_gettext("Reading at the alarm"), "temp"),
    ("peak_c", lazy_gettext("Peak"), "temp"),
    ("limit_c", lazy_gettext("Limit"), "temp"),
    ("excursion_started", lazy_gettext("Out of range since"), "time"),
    ("alarmed_at", lazy_gettext("Alarmed at"), "time"),
    ("last_reading_at", lazy_gettext("Last reading"), "time"),
    ("sensor", lazy_gettext("Sensor"), "text"),
    ("battery_pct", lazy_gettext("Battery"), "pct"),
    ("schedule", lazy_gettext("Slot"), "text"),
    ("deadline", lazy_gettext("Deadline"), "time"),
    ("dish", lazy_gettext("Dish"), "text"),
    ("timer_kind", lazy_gettext("Timer"), "text"),
    ("expired_at", lazy_gettext("Expired at"), "time"),
    ("due", lazy_gettext("Due"), "time"),
    ("last_review", lazy_gettext("Last review"), "time"),
)
#: Shown by the headline instead.
_IN_HEADLINE = {"title", "unit", "direction", "checklist"}


def facts(alert: Alert, site: Site) -> list[tuple[str, str]]:
    """The facts recorded at opening, formatted for people; unknown keys are shown as they are."""
    detail = alert.detail or {}
    shown = []
    for key, name, how in FACTS:
        value = detail.get(key)
        if value is None:
            continue
        if how == "temp":
            text = show_temp(value, site.temp_unit)
        elif how == "time":
            text = _time(value, site)
        elif how == "pct":
            text = f"{value:.0f} %"
        else:
            text = str(value)
        shown.append((str(name), text))
    known = {key for key, _name, _how in FACTS} | _IN_HEADLINE
    shown += [(key, str(value)) for key, value in detail.items() if key not in known]
    return shown


def timeline(alert: Alert) -> list[dict]:
    """Opening, lifecycle events and notifications of an alert, oldest first."""
    entries = [{"at": alert.opened_at, "type": "event", "kind": "opened", "who": None,
                "data": {"tier": alert.tier}}]
    for event in alert.events:
        entries.append({"at": event.at, "type": "event", "kind": event.kind,
                        "who": event.actor.name if event.actor else None,
                        "device": event.device_id, "data": event.data or {}})
    for note in db.session.execute(select(Notification).where(Notification.alert_id == alert.id)
                                   .order_by(Notification.created_at, Notification.id)).scalars():
        entries.append({"at": note.created_at, "type": "notification", "n": note})
    return sorted(entries, key=lambda e: (e["at"], e["type"] == "notification"))


def readings(alert: Alert, unit: Unit, until: dt.datetime) -> dict:
    """The unit's readings from an hour before the alert to ``until``, thinned if there are many."""
    rows = db.session.execute(
        select(Reading.measured_at, Reading.temperature_c, Sensor.id, Sensor.name, Sensor.key)
        .join(Sensor, Sensor.id == Reading.sensor_id)
        .where(Sensor.unit_id == unit.id, Reading.measured_at >= alert.opened_at - READINGS_BEFORE,
               Reading.measured_at <= until)
        .order_by(Reading.measured_at)).all()
    # Coloured by the breach rules (hysteresis included), over every reading, before thinning:
    # a reading back under the limit but not by the hysteresis is still out, as for the alarm.
    bands = temperature.classify(temperature.Limits.of(unit), [r[1] for r in rows])
    rows = [(*row, band) for row, band in zip(rows, bands)]
    step = max(1, math.ceil(len(rows) / MAX_READING_ROWS))
    if step > 1:  # keep the reading furthest out of range in each group
        low = (alert.detail or {}).get("direction") == "low"
        pick = min if low else max
        rows = [pick(rows[i:i + step], key=lambda r: r[1]) for i in range(0, len(rows), step)]

    marks = [(alert.opened_at, "opened")]
    if alert.state.resolved_at:
        marks.append((alert.state.resolved_at, "resolved"))
    items = []
    for at, value, _sensor_id, name, key, band in rows:
        while marks and marks[0][0] <= at:
            items.append({"mark": marks.pop(0)})
        items.append({"at": at, "value": value, "state": band, "sensor": name or key})
    items += [{"mark": m} for m in marks]
    return {"items": items, "step": step, "count": len(rows),
            "sensors": len({r[2] for r in rows}) > 1}


def _page_context(alert: Alert, **extra) -> dict:
    site, now = current_site(), utcnow()
    unit = db.session.get(Unit, alert.unit_id) if alert.unit_id else None
    context = dict(alert=alert, site=site, now=now, unit=unit, facts=facts(alert, site),
                   timeline=timeline(alert), form={}, ack_error=None, resolve_error=None,
                   still_out=alert.state.status == "acknowledged" and still_out(alert, site, now),
                   suggestions=SUGGESTED_ACTIONS.get(alert.kind, ()), outcomes=FOOD_OUTCOMES)
    if unit is not None and alert.kind == "temperature":
        context["readings"] = readings(alert, unit, alert.state.resolved_at or now)
    context.update(extra)
    return context


def _ack_context(alert: Alert, **extra) -> dict:
    site = current_site()
    context = dict(alert=alert, site=site, now=utcnow(), facts=facts(alert, site), form={},
                   ack_error=None, suggestions=SUGGESTED_ACTIONS.get(alert.kind, ()),
                   outcomes=FOOD_OUTCOMES)
    context.update(extra)
    return context


# --- views --------------------------------------------------------------------------------------

@bp.get("")
@chef_only
def index():
    site, now = current_site(), utcnow()
    status = request.args.get("status", "active")
    if status not in STATUS_FILTERS:
        abort(400, "Unknown status filter.")
    query = (select(Alert).join(AlertState).where(Alert.site_id == site.id)
             .options(selectinload(Alert.state)))
    if status == "active":
        active = db.session.execute(query.where(AlertState.status.in_(("open", "acknowledged")))
                                    .order_by(Alert.opened_at.desc())).scalars().all()
        active = sorted(active, key=lambda a: (a.state.status != "open",
                                               a.state.tier != "critical"))
        resolved = db.session.execute(query.where(AlertState.status == "resolved",
                                                  AlertState.resolved_at >= now - RECENT_RESOLVED)
                                      .order_by(AlertState.resolved_at.desc()).limit(50)
                                      ).scalars().all()
        alerts = active + resolved
    else:
        order = AlertState.resolved_at.desc() if status == "resolved" else Alert.opened_at.desc()
        alerts = db.session.execute(query.where(AlertState.status == status).order_by(order)
                                    .limit(200)).scalars().all()
    units = dict(db.session.execute(select(Unit.id, Unit.name)
                                    .where(Unit.site_id == site.id)).all())
    return render_template("alerts/index.html", site=site, now=now, alerts=alerts, units=units,
                           status=status, filters=STATUS_FILTERS)


@bp.get("/<int:alert_id>")
@chef_only
def page(alert_id: int):
    return render_template("alerts/page.html", **_page_context(site_row_or_404(Alert, alert_id)))


@bp.get("/banner")
def banner():
    """The tablet banner alone, for its HTMX poll."""
    return render_template("alerts/_banner.html")


@bp.route("/<int:alert_id>/ack", methods=["GET", "POST"])
def ack(alert_id: int):
    """Acknowledge: anyone of the site, from the tablet or the alert page."""
    alert = site_row_or_404(Alert, alert_id)
    from_page = request.form.get("return_to") == "page" and _is_chef()
    if request.method == "GET":
        return render_template("alerts/ack.html", **_ack_context(alert))
    form = request.form
    action = "; ".join(part for part in (form.get("quick_action", "").strip(),
                                         form.get("corrective_action", "").strip()) if part)
    try:
        acknowledge(db.session, alert, current_user, current_device_id(),
                    corrective_action=action, food_outcome=form.get("food_outcome", ""),
                    note=form.get("note"))
        db.session.commit()
    except OperationError as exc:
        db.session.rollback()
        if from_page:
            return render_template("alerts/page.html",
                                   **_page_context(alert, form=form, ack_error=str(exc))), 422
        return render_template("alerts/ack.html",
                               **_ack_context(alert, form=form, ack_error=str(exc))), 422
    flash(_("Alert acknowledged. Thank you, %(name)s.", name=current_user.name), "ok")
    return redirect(url_for("alerts.page", alert_id=alert.id) if from_page
                    else url_for("checklists.home"))


@bp.post("/<int:alert_id>/resolve")
@chef_only
def resolve_alert(alert_id: int):
    """Resolve: head chef or admin, refused while the condition still holds."""
    alert = site_row_or_404(Alert, alert_id)
    site, now = current_site(), utcnow()
    try:
        resolve(db.session, alert, current_user, current_device_id(),
                still_out=still_out(alert, site, now), note=request.form.get("note"), now=now)
        db.session.commit()
    except OperationError as exc:
        db.session.rollback()
        return render_template("alerts/page.html",
                               **_page_context(alert, resolve_error=str(exc))), 422
    flash(_("Alert resolved."), "ok")
    return redirect(url_for("alerts.page", alert_id=alert.id))
