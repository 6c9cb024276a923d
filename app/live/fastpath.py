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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Signed:
    """A signed-in session as its cookie tells it, checked against the person's row."""

    staff_id: int
    site_id: int  # the person's own site
    chosen_site_id: int | None  # an admin's or owner's chosen site (password sessions only)
    via_pin: bool
    last_seen: float
    started: float
    version: object  # the session's version, which a new PIN or password, or logout, moves on


class SignedInSessions:
    """The app's checks of a signed-in session, made from its cookie alone (no request context):
    the signature (Flask's own signing serializer, its public API), the person active with the
    session's version still theirs (re-read after ``PERSON_TTL``), the PIN idle limit and the
    password session's hours. Shared by the fast path and the live socket (app.live.socket)."""

    def __init__(self, app):
        self.app = app
        #: staff id -> (until, (active, site_id, role, pin version, password version) or None)
        self.people: dict[int, tuple[float, tuple | None]] = {}

    def check(self, cookie_header: str, now: float | None = None) -> Signed | None:
        """The session of this ``Cookie`` header if the app would take it now, else None."""
        session = self.session(cookie_header)
        if session is None:
            return None
        try:
            staff_id = int(session.get("_user_id"))
        except (TypeError, ValueError):
            return None
        person = self.person(staff_id)
        if person is None:
            return None
        via_pin = bool(session.get("via_pin"))
        chosen = session.get("site_id") if person[2] in GROUP_ROLES and not via_pin else None
        try:
            signed = Signed(staff_id, person[1], chosen if isinstance(chosen, int) else None,
                            via_pin, float(session.get("last_seen") or 0),
                            float(session.get("started") or 0), session.get("version"))
        except (TypeError, ValueError):
            return None
        return signed if self.still_good(signed, now) else None

    def still_good(self, signed: Signed, now: float | None = None) -> bool:
        """Whether the app still takes this session: not idle, not too old, the person active
        with the session's version theirs."""
        now = time.time() if now is None else now
        config = self.app.config
        if signed.via_pin and now - signed.last_seen > config["BRIGADE_TABLET_IDLE_SECONDS"]:
            return False
        if not signed.via_pin and now - signed.started > config["BRIGADE_SESSION_HOURS"] * 3600:
            return False
        person = self.person(signed.staff_id)
        if person is None:
            return False
        active, _site_id, _role, pin_version, password_version = person
        return bool(active) and signed.version == (pin_version if signed.via_pin else password_version)

    def session(self, cookie_header: str) -> dict | None:
        cookie = parse_cookie(cookie_header or "").get(self.app.config["SESSION_COOKIE_NAME"])
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

    def person(self, staff_id: int) -> tuple | None:
        """(active, site_id, role, PIN version, password version) of a person, or None."""
        cached = self.people.get(staff_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        self.prefetch([staff_id])
        return self.people.get(staff_id, (0.0, None))[1]  # (cleared by another thread: refuse)

    def prefetch(self, staff_ids) -> None:
        """Read again, in one query, the people among these whose cached row is out of date."""
        now = time.monotonic()
        stale = sorted(i for i in set(staff_ids)
                       if (cached := self.people.get(i)) is None or cached[0] <= now)
        if not stale:
            return
        from app.models import db
        with self.app.app_context():
            try:
                rows = db.session.execute(select(
                    Staff.id, Staff.active, Staff.site_id, Staff.role, Staff.pin_session_version,
                    Staff.password_session_version).where(Staff.id.in_(stale))).all()
            finally:
                db.session.remove()
        found = {row[0]: (row[1], row[2], row[3], row[4] or 0, row[5] or 0) for row in rows}
        if len(self.people) > 10_000:  # bounded, whoever asks
            self.people.clear()
        for staff_id in stale:
            self.people[staff_id] = (now + PERSON_TTL, found.get(staff_id))


class SignedInFastPath:
    """WSGI middleware: 304 for a signed-in screen's ``/live`` question when nothing changed."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app
        self.sessions = SignedInSessions(app)
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
        signed = self.sessions.check(environ.get("HTTP_COOKIE", ""))
        if signed is None or signed.chosen_site_id:
            return None  # refused, or may be working on another site: the view knows which
        tag = etag(self.versions.get(signed.site_id))
        return tag if environ["HTTP_IF_NONE_MATCH"].strip() == f'"{tag}"' else None
