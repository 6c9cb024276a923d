"""A signed-in screen's "anything new?" (``GET /live``) answered before Flask when nothing changed.

The tablet's alert banner asks every half second. Through Flask each question costs a request
context, the session, Flask-Login's user query, the idle-lock hook and the counter's query —
about 1.3 ms of CPU, a third of what the load test's screens cost the server. Here a question
whose ETag still holds gets its 304 from two small caches, after the same checks the app makes:

- the session cookie, verified with the app's own signing serializer
  (``SecureCookieSessionInterface.get_signing_serializer``, Flask's public API);
- the person: active, and the session's version still theirs (a new PIN or password, logout or
  deactivation ends it) — read again from the database after ``PERSON_TTL``, so a revoked
  session is refused here within a second, as the view refuses it at once;
- a PIN session not idle past ``BRIGADE_TABLET_IDLE_SECONDS`` and a password session not older
  than ``BRIGADE_SESSION_HOURS``.

It only ever answers 304 with the ETag the screen already holds: it hands out nothing the screen
did not have. Anything else — a changed counter, a question without ``X-Brigade-Poll`` (which
the view counts as activity), an admin or owner working on another site, any doubt — goes to
the view, which decides as before. ``tests/test_live.py`` holds the two to the same answers.
"""
from __future__ import annotations

import threading
import time

from itsdangerous import BadSignature
from sqlalchemy import select
from werkzeug.http import parse_cookie

from app.live.changes import etag
from app.models import GROUP_ROLES, LiveVersion, Staff, utcnow

PATH = "/live"
PERSON_TTL = 1.0
VERSION_TTL = 0.05


class VersionCache:
    """Sites' change counters, read again after ``ttl`` seconds: one query per site and
    ``ttl`` in a process, however many screens ask (both fast paths keep one)."""

    def __init__(self, app, ttl: float = VERSION_TTL):
        self.app, self.ttl = app, ttl
        self.lock = threading.Lock()
        self.versions: dict[int, tuple[float, int]] = {}

    def get(self, site_id: int) -> int:
        cached = self.versions.get(site_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        with self.lock:
            cached = self.versions.get(site_id)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            from app.models import db
            with self.app.app_context():
                try:
                    version = db.session.execute(select(LiveVersion.version).where(
                        LiveVersion.site_id == site_id)).scalar_one_or_none() or 0
                finally:
                    db.session.remove()
            self.versions[site_id] = (time.monotonic() + self.ttl, version)
            return version


class SignedInFastPath:
    """WSGI middleware: 304 for a signed-in screen's ``/live`` question when nothing changed."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app
        #: staff id -> (until, (active, site_id, role, pin version, password version) or None)
        self.people: dict[int, tuple[float, tuple | None]] = {}
        self.versions = VersionCache(app)
        self.answered = 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "GET" \
                and environ.get("HTTP_X_BRIGADE_POLL") and environ.get("HTTP_IF_NONE_MATCH"):
            tag = self._unchanged(environ)
            if tag is not None:
                self.answered += 1
                start_response("304 Not Modified", [
                    ("ETag", f'"{tag}"'), ("Cache-Control", "no-cache"),
                    ("X-Brigade-Now", str(int(utcnow().timestamp() * 1000))),
                    ("X-Content-Type-Options", "nosniff")])
                return [b""]
        return self.wsgi_app(environ, start_response)

    def _unchanged(self, environ) -> str | None:
        """The screen's ETag when it still holds and the session is good, else None."""
        session = self._session(environ)
        if session is None:
            return None
        try:
            staff_id = int(session.get("_user_id"))
        except (TypeError, ValueError):
            return None
        now = time.time()
        via_pin = bool(session.get("via_pin"))
        config = self.app.config
        if via_pin and now - session.get("last_seen", now) > config["BRIGADE_TABLET_IDLE_SECONDS"]:
            return None
        if not via_pin and now - session.get("started", 0) > config["BRIGADE_SESSION_HOURS"] * 3600:
            return None
        person = self._person(staff_id)
        if person is None:
            return None
        active, site_id, role, pin_version, password_version = person
        if not active or session.get("version") != (pin_version if via_pin else password_version):
            return None
        if role in GROUP_ROLES and session.get("site_id"):
            return None  # may be working on another site: the view knows which
        tag = etag(self.versions.get(site_id))
        return tag if environ["HTTP_IF_NONE_MATCH"].strip() == f'"{tag}"' else None

    def _session(self, environ) -> dict | None:
        cookie = parse_cookie(environ).get(self.app.config["SESSION_COOKIE_NAME"])
        if not cookie:
            return None
        serializer = self.app.session_interface.get_signing_serializer(self.app)
        if serializer is None:
            return None
        try:
            return serializer.loads(
                cookie, max_age=int(self.app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return None

    def _person(self, staff_id: int) -> tuple | None:
        now = time.monotonic()
        cached = self.people.get(staff_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        from app.models import db
        with self.app.app_context():
            try:
                row = db.session.execute(select(
                    Staff.active, Staff.site_id, Staff.role, Staff.pin_session_version,
                    Staff.password_session_version).where(Staff.id == staff_id)).one_or_none()
            finally:
                db.session.remove()
        person = None if row is None else (row[0], row[1], row[2], row[3] or 0, row[4] or 0)
        if len(self.people) > 10_000:  # bounded, whoever asks
            self.people.clear()
        self.people[staff_id] = (now + PERSON_TTL, person)
        return person
