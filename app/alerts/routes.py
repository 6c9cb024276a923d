"""Alert views: the head chef's list and alert page, the tablet's banner and acknowledge page.

Acknowledging is open to anyone of the site (cooks do it from the shared tablet);
resolving is the head chef's or admin's, and only once the condition has cleared.
"""
from __future__ import annotations

import datetime as dt

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.alerts import bp
from app.alerts.labels import (SUGGESTED_ACTIONS, alert_age, alert_headline, alert_label,
                               escalation_label)
from app.alerts.operations import acknowledge, resolve
from app.alerts.page import banner_alerts, facts, readings, still_out, timeline
from app.devices import current_device_id
from app.errors import OperationError
from app.models import FOOD_OUTCOMES, Alert, AlertState, Role, db, utcnow
from app.models.units import Unit
from app.security import chef_only
from app.web import current_site, site_row_or_404

for _global in (alert_label, escalation_label, alert_age, alert_headline):
    bp.add_app_template_global(_global)


@bp.app_template_global()
def alert_banner() -> dict:
    """The tablet banner's alerts: a template global, so any page can include the banner."""
    return {"alerts": banner_alerts(db.session, current_site().id), "site": current_site(),
            "now": utcnow()}


RECENT_RESOLVED = dt.timedelta(days=7)
STATUS_FILTERS = ("active", "open", "acknowledged", "resolved")


def _is_chef() -> bool:
    return current_user.role in (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER)


def _page_context(alert: Alert, **extra) -> dict:
    from app.rules.operations import alert_rule  # (the rules blueprint loads after this one)
    site, now = current_site(), utcnow()
    unit = db.session.get(Unit, alert.unit_id) if alert.unit_id else None
    context = dict(alert=alert, site=site, now=now, unit=unit, facts=facts(alert, site),
                   timeline=timeline(alert), form={}, ack_error=None, resolve_error=None,
                   still_out=alert.state.status == "acknowledged" and still_out(alert, site, now),
                   suggestions=SUGGESTED_ACTIONS.get(alert.kind, ()), outcomes=FOOD_OUTCOMES,
                   rule=alert_rule(db.session, alert))
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
