"""Timer views: start one, record served or discarded, and the live panel."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.errors import OperationError
from app.devices import current_device_id
from app.formatting import label
from app.models import HoldTimer, db, utcnow
from app.timers import bp
from app.timers.operations import record_outcome, start_timer, timer_state, timers_context
from app.web import current_site


def _back():
    if request.headers.get("HX-Request"):
        site = current_site()
        return render_template("timers/_panel.html", site=site,
                               **timers_context(db.session, site, utcnow()))
    return redirect(url_for("checklists.home"))


@bp.get("/panel")
def panel():
    site = current_site()
    return render_template("timers/_panel.html", site=site, **timers_context(db.session, site, utcnow()))


@bp.post("")
def start():
    site = current_site()
    try:
        start_timer(db.session, site, current_user, current_device_id(),
                    request.form.get("kind", ""), request.form.get("dish", ""))
        db.session.commit()
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return _back()


@bp.post("/<int:timer_id>/outcome")
def outcome(timer_id: int):
    timer = db.session.get(HoldTimer, timer_id)
    if timer is None or timer.site_id != current_site().id:
        abort(404)
    try:
        record_outcome(db.session, timer, current_user, current_device_id(),
                       request.form.get("outcome", ""), request.form.get("reason"))
        db.session.commit()
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(_("Recorded: %(dish)s %(outcome)s.", dish=timer.dish,
                outcome=label(timer_state(timer, utcnow()))), "ok")
    return _back()
