"""A wall screen's "anything new?" answered before Flask, from small in-memory caches.

Nearly every question a screen asks gets "no" (304). Through Flask that costs about 0.8 ms of
CPU (its hooks, the session, the login check, a query); here about a tenth of that, so a
hundred screens asking twice a second leave the tablets' requests their server. When the site
did change, the new board is handed out from the board cache as well: the first screen to ask
has it built (through the view), and while that build runs the others are told "nothing yet,
ask again in 100 ms" instead of waiting in a worker thread — a hundred screens asking at once
must not take the threads the tablets need. The caches are short: the site's change counter
is read again after ``VERSION_TTL`` (one query per site and process, whatever the number of
screens), a display token after ``TOKEN_TTL`` (so a revoked one is refused within about a
second). Anything else — an unknown or revoked token, a "last seen" to record, a board not
built yet — goes to the Flask view.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import select

from app.displays.board import BoardCache
from app.displays.tokens import SEEN_EVERY, Seen, hash_token, live_display
from app.live.changes import etag
from app.models import LiveVersion, utcnow

PREFIX, SUFFIX = "/display/", "/live"
VERSION_TTL = 0.1
TOKEN_TTL = 1.0


class LiveFastPath:
    """WSGI middleware: 304 for a display's conditional question when nothing changed."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app
        self.lock = threading.Lock()
        self.displays: dict[str, tuple[float, Seen | None]] = {}  # by the token's SHA-256
        self.versions: dict[int, tuple[float, int]] = {}
        self.answered = 0
        #: Boards by (site, language, ETag), shared with the view that builds them.
        self.boards = BoardCache()

    def forget(self, display_id: int) -> None:
        """Drop what is cached about a display (seen just now, or switched off): in this process
        at once; other processes read it again within TOKEN_TTL."""
        for digest, (_expires, seen) in list(self.displays.items()):
            if seen is not None and seen.id == display_id:
                self.displays.pop(digest, None)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) and path.endswith(SUFFIX) \
                and environ.get("REQUEST_METHOD") == "GET":
            answer = self._answer(path[len(PREFIX):-len(SUFFIX)],
                                  environ.get("HTTP_IF_NONE_MATCH", ""))
            if answer is not None:
                self.answered += 1
                status, tag, body, extra = answer
                headers = [("ETag", f'"{tag}"'), ("Cache-Control", "no-cache"),
                           ("X-Brigade-Now", str(int(utcnow().timestamp() * 1000))),
                           ("X-Content-Type-Options", "nosniff"), *extra]
                if body is not None:
                    headers += [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))]
                start_response(status, headers)
                return [body or b""]
        return self.wsgi_app(environ, start_response)

    def _answer(self, token: str, asked: str):
        """(status, ETag, body, extra headers) when the caches can answer, else None."""
        if "/" in token or len(token) > 100:
            return None
        now = time.monotonic()
        seen = self._display(token, now)
        if seen is None:
            return None
        if seen.last_seen_at is None or utcnow() - seen.last_seen_at >= SEEN_EVERY:
            return None  # the view records "last seen" (at most once a minute)
        tag = etag(self._version(seen.site_id, now))
        asked = asked.strip()
        if asked == f'"{tag}"':
            return "304 Not Modified", tag, None, []
        key = (seen.site_id, seen.locale, tag)
        board = self.boards.peek(key)
        if board is not None:
            return "200 OK", tag, board, []
        if asked.startswith('"v') and self.boards.building(key):
            # Being built for another screen: "nothing yet" (the screen's own ETag), soon again.
            return "304 Not Modified", asked.strip('"'), None, [("X-Brigade-Retry", "100")]
        return None

    def _display(self, token: str, now: float) -> Seen | None:
        digest = hash_token(token)
        cached = self.displays.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        from app.models import db
        with self.app.app_context():
            try:
                seen = live_display(db.session, token)
            finally:
                db.session.remove()
        if len(self.displays) > 10_000:  # someone trying tokens: keep the memory bounded
            self.displays.clear()
        self.displays[digest] = (now + TOKEN_TTL, seen)
        return seen

    def _version(self, site_id: int, now: float) -> int:
        cached = self.versions.get(site_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.lock:  # one query per site per VERSION_TTL, however many screens ask
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
            self.versions[site_id] = (time.monotonic() + VERSION_TTL, version)
            return version
