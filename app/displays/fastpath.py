"""A wall screen's "anything new?" answered before Flask, from small in-memory caches.

Nearly every question a screen asks gets "no" (304). Through Flask that costs about 0.8 ms of
CPU (its hooks, the session, the login check, a query); here about a tenth of that, so a
hundred screens asking twice a second leave the tablets' requests their server. When the site
did change, the new board is built once, by the first question after the change, here in the
fast path, and handed to every other screen from the board cache (:class:`BoardCache`). While
it is being built — or when the last build began under ``BUILD_GAP_S`` ago — the others are
handed the board before it if they have not had that one, or told "nothing yet, ask again in
N ms" (about when it should be ready) instead of waiting in a worker thread: a hundred screens
asking at once must not take the threads the tablets need. The caches are short: the site's
change counter is read again after ``VERSION_TTL`` (app.live.fastpath: one query per site and process, whatever
the number of screens), a display token after ``TOKEN_TTL`` (so a revoked one is refused within
about a second). Anything else — an unknown or revoked token, a "last seen" to record (one
question per display and minute), a screen's first question while the first board is built —
goes to the Flask view.
"""
from __future__ import annotations

import logging
import threading
import time


from app.displays.board import BoardCache, board_json
from app.displays.tokens import SEEN_EVERY, Seen, hash_token, live_display
from app.live.changes import etag, etag_order
from app.live.fastpath import VersionCache
from app.models import utcnow

logger = logging.getLogger(__name__)

PREFIX, SUFFIX = "/display/", "/live"
TOKEN_TTL = 1.0
#: A question sent to the view to record "last seen" is given this long (seconds) before
#: another is sent, should it have failed.
NOTING_TTL = 5.0


class LiveFastPath:
    """WSGI middleware: 304 for a display's conditional question when nothing changed."""

    def __init__(self, wsgi_app, app):
        self.wsgi_app = wsgi_app
        self.app = app
        self.displays: dict[str, tuple[float, Seen | None]] = {}  # by the token's SHA-256
        self.versions = VersionCache(app)
        self.answered = 0
        #: Displays whose "last seen" one question has gone to record: until when (monotonic).
        self.noting: dict[int, float] = {}
        self.noting_lock = threading.Lock()
        #: The newest board of each (site, language), shared with the view.
        self.boards = BoardCache()

    def forget(self, display_id: int) -> None:
        """Drop what is cached about a display (seen just now, or switched off): in this process
        at once; other processes read it again within TOKEN_TTL."""
        for digest, (_expires, seen) in list(self.displays.items()):
            if seen is not None and seen.id == display_id:
                self.displays.pop(digest, None)
        self.noting.pop(display_id, None)

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
        if (seen.last_seen_at is None or utcnow() - seen.last_seen_at >= SEEN_EVERY) \
                and self._noting(seen.id, now):
            return None  # this question goes to the view, which records "last seen"
        tag = etag(self.versions.get(seen.site_id))
        asked = asked.strip()
        if asked == f'"{tag}"':
            return "304 Not Modified", tag, None, []
        key, has, current = (seen.site_id, seen.locale), etag_order(asked), etag_order(tag)
        board = self.boards.peek(key)
        if board is None or board.order < current:
            # The site changed since the newest board: the first to ask builds the next one.
            try:
                board = self.boards.try_build(key, lambda memo: self._make(seen, memo)) or board
            except Exception:  # the database gone, say: the view fails it the usual way
                logger.exception("building the board of site %s failed", seen.site_id)
                return None
        if board is not None and (has is None or board.order > has):
            # The newest board: just built, or the one before the board being built (or due).
            return "200 OK", board.tag, board.body, []
        if has is None:
            return None  # a first question while the first board is built: the view waits
        # Nothing newer than what the screen has: its own ETag back and, if the next board is
        # being built or due, when to ask again — rather than waiting in a worker thread.
        behind = board is None or board.order < current
        retry = [("X-Brigade-Retry", str(int(self.boards.ready_in(key) * 1000)))] if behind else []
        return "304 Not Modified", asked.strip('"'), None, retry

    def _noting(self, display_id: int, now: float) -> bool:
        """Whether this question is the one to have the view record the display's "last seen"
        (at most once a minute). Only one goes: the display's other screens asking meanwhile
        (one URL opened on several) are answered here, not all sent to write the same row."""
        with self.noting_lock:
            if self.noting.get(display_id, 0.0) > now:
                return False
            self.noting[display_id] = now + NOTING_TTL
            return True

    def _make(self, seen: Seen, memo: dict) -> tuple[str, bytes]:
        from app.models import db
        with self.app.app_context():
            try:
                return board_json(db.session, seen.site_id, seen.locale, memo)
            finally:
                db.session.remove()

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
