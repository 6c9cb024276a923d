"""Shared-tablet PIN login, laptop password login, roles and idle lock."""
from __future__ import annotations

import time

from flask import Blueprint, Flask, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, logout_user

from app.extensions import login_manager
from app.models import Staff, db

bp = Blueprint("auth", __name__)


def init_app(app: Flask) -> None:
    from app.auth import routes  # noqa: F401  (registers the views on bp)
    app.register_blueprint(bp)
    login_manager.login_view = "auth.pin_pad"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def _load(staff_id: str):
        staff = db.session.get(Staff, int(staff_id))
        if staff is None or not staff.active:
            return None
        # Honoured only while the person's session version is the one it began with: logout,
        # a new PIN or password end it on the server, whoever holds a copy of the cookie.
        if session.get("version") != staff.session_version(bool(session.get("via_pin"))):
            return None
        return staff

    @login_manager.unauthorized_handler
    def _unauthorized():
        target = url_for("auth.pin_pad")
        if request.headers.get("HX-Request"):
            response = jsonify(error="login required")
            response.status_code = 401
            response.headers["HX-Redirect"] = target
            return response
        if request.accept_mimetypes.best == "application/json":
            return jsonify(error="login required"), 401
        return redirect(target)

    @app.before_request
    def _require_login_and_idle_lock():
        view = app.view_functions.get(request.endpoint or "")
        if view is None or getattr(view, "is_public", False) or request.endpoint == "static":
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        now = time.time()
        idle = app.config["BRIGADE_TABLET_IDLE_SECONDS"]
        # A tablet session (PIN) falls back to the PIN pad after the idle time; the
        # browser does it too, this is the server's half so a stale tab cannot act.
        if session.get("via_pin") and now - session.get("last_seen", now) > idle:
            logout_user()
            session.pop("via_pin", None)
            return login_manager.unauthorized()
        # A password session lasts a working day at most, however busy.
        lifetime = app.config["BRIGADE_SESSION_HOURS"] * 3600
        if not session.get("via_pin") and now - session.get("started", 0) > lifetime:
            logout_user()
            return login_manager.unauthorized()
        if not request.headers.get("X-Brigade-Poll"):
            session["last_seen"] = now
        g.staff = current_user
        return None
