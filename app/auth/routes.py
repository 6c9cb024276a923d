"""Views: the PIN pad, password login, logout and language choice."""
from __future__ import annotations

import time

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from app.auth import bp
from app.security import public
from app.auth.operations import PinLocked, check_password, check_pin, spend_a_password_check
from app.devices import current_device_id
from app.models import PASSWORD_ROLES, Alert, AlertState, Site, Staff, db, utcnow

LANGUAGES = {"en": "English", "zh": "简体中文"}


def _tablet_site() -> Site:
    site_id = request.args.get("site", type=int) or session.get("tablet_site")
    if site_id is not None and not 0 < site_id < 2**31:
        site_id = None
    site = db.session.get(Site, site_id) if site_id else None
    site = site or db.session.execute(select(Site).order_by(Site.id).limit(1)).scalar_one_or_none()
    if site is None:
        abort(503, "No kitchen yet: set one up with `flask --app app setup` (or try the demo "
                   "with `flask --app app seed-demo`).")
    session["tablet_site"] = site.id
    return site


def _start_session(staff: Staff, via_pin: bool) -> None:
    login_user(staff)
    session["via_pin"] = via_pin
    session["last_seen"] = session["started"] = time.time()
    session["version"] = staff.session_version(via_pin)


@bp.get("/pin")
@public
def pin_pad():
    site = _tablet_site()
    people = [s for s in site.staff if s.active and s.pin_hash]
    return render_template("auth/pin_pad.html", site=site, people=people,
                           attention=_needs_attention(site))


def _needs_attention(site: Site) -> dict:
    """What a locked tablet must keep showing: unacknowledged alerts and dishes out of time."""
    from app.timers.operations import timers_context
    alerts = db.session.execute(
        select(Alert).join(AlertState).where(Alert.site_id == site.id, AlertState.status == "open")
        .order_by(Alert.opened_at.desc()).limit(10)).scalars().all()
    timers = timers_context(db.session, site, utcnow())
    # An expired timer the sweep has already raised an alert for is listed once, as the alert.
    alerted = {a.subject for a in alerts}
    expired = [t for t in timers["timers"] if timers["timer_states"][t.id] == "expired"
               and f"timer:{t.id}" not in alerted]
    return {"alerts": alerts, "timers": expired}


@bp.route("/pin/<int:staff_id>", methods=["GET", "POST"])
@public
def pin_entry(staff_id: int):
    staff = db.session.get(Staff, staff_id)
    if staff is None or not staff.active or not staff.pin_hash:
        abort(404)
    error = None
    if request.method == "POST":
        cfg = current_app.config
        try:
            ok = check_pin(staff, request.form.get("pin", ""), utcnow(),
                           cfg["BRIGADE_PIN_MAX_TRIES"], cfg["BRIGADE_PIN_LOCK_SECONDS"],
                           device_id=current_device_id())
        except PinLocked as exc:
            db.session.commit()
            error, ok = str(exc), False
        else:
            db.session.commit()
            if not ok:
                error = _("Wrong PIN.")
        if ok:
            logout_user()
            _start_session(staff, via_pin=True)
            return redirect(url_for("checklists.home"))
    return render_template("auth/pin_entry.html", staff=staff, error=error), 200 if not error else 401


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    error = None
    if request.method == "POST":
        email = (request.form.get("email") or "").strip().lower()
        staff = db.session.execute(select(Staff).where(Staff.email == email)).scalar_one_or_none()
        cfg = current_app.config
        ok = False
        password = request.form.get("password", "")
        # The same answer, after the same work, for an unknown email, a locked account and a
        # wrong password: the form does not tell who has an account.
        if staff is not None and staff.active and staff.role in PASSWORD_ROLES:
            try:
                ok = check_password(staff, password, utcnow(), cfg["BRIGADE_PIN_MAX_TRIES"],
                                    cfg["BRIGADE_PIN_LOCK_SECONDS"], device_id=current_device_id())
            except PinLocked as locked:
                if not locked.checked:
                    spend_a_password_check(password)
            db.session.commit()
        else:
            spend_a_password_check(password)
        if ok:
            _start_session(staff, via_pin=False)
            return redirect(url_for("records.index"))
        error = _("Wrong email or password.")
    return render_template("auth/login.html", error=error), 200 if not error else 401


@bp.post("/logout")
def logout():
    via_pin = session.get("via_pin")
    if current_user.is_authenticated:
        # Server-side: a copy of this cookie (or this kind of session anywhere) stops working.
        current_user.end_sessions(via_pin=bool(via_pin))
        db.session.commit()
    logout_user()
    session.pop("via_pin", None)
    return redirect(url_for("auth.pin_pad") if via_pin else url_for("auth.login"))


@bp.post("/me/language")
def set_language():
    language = request.form.get("language")
    if language not in LANGUAGES:
        abort(400, "Unknown language.")
    current_user.locale = language
    db.session.commit()
    return redirect(_page_to_return_to(request.referrer))


def _page_to_return_to(referrer: str | None) -> str:
    """The page the switch was pressed on, if a GET can show it; else the nearest page above it
    that can (a refused submit is shown at /runs/<id>/submit, which only takes a POST); never
    another site."""
    from urllib.parse import urlsplit

    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect
    home = url_for("checklists.home")
    parts = urlsplit(referrer or "")
    if parts.netloc and parts.netloc != request.host:
        return home
    adapter = current_app.url_map.bind(request.host)
    path = parts.path or "/"
    while path:
        try:
            adapter.match(path, method="GET")
        except RequestRedirect:
            return path
        except HTTPException:
            path = path.rsplit("/", 1)[0]
            continue
        return path + (f"?{parts.query}" if parts.query and path == parts.path else "")
    return home
