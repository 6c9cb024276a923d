"""Which device a request comes from: a long-lived random cookie per browser."""
from __future__ import annotations

import re
import secrets

from flask import Flask, current_app, g, request
from sqlalchemy.exc import IntegrityError

from app.models import Device, db

COOKIE = "brigade_device"
_VALID = re.compile(r"^[0-9a-f]{32}$")


def init_app(app: Flask) -> None:
    @app.before_request
    def _identify_device():
        g.device_cookie = None
        value = request.cookies.get(COOKIE, "")
        g.device_id = value if _VALID.match(value) else None

    @app.after_request
    def _remember_device(response):
        if g.get("device_cookie"):
            response.set_cookie(COOKIE, g.device_cookie, max_age=10 * 365 * 86400, httponly=True,
                                samesite="Lax", secure=app.config["SESSION_COOKIE_SECURE"])
        return response


def current_device_id() -> str:
    """The device id of this request, registering a new device on first use."""
    known = current_app.extensions.setdefault("brigade_known_devices", set())
    if g.get("device_id"):
        # Devices are never deleted: once seen in this process, no need to look again.
        if g.device_id in known or db.session.get(Device, g.device_id) is not None:
            known.add(g.device_id)
            return g.device_id
        device_id = g.device_id  # a cookie from before a database reset: register it again
    else:
        device_id = secrets.token_hex(16)
    try:
        with db.session.begin_nested():
            db.session.add(Device(id=device_id, user_agent=request.user_agent.string[:255]))
    except IntegrityError:
        pass  # two parallel first requests from the same browser
    g.device_id = g.device_cookie = device_id
    return device_id
