"""The live channel's push side: a screen holds a WebSocket and is sent each change as it happens.

Asking "anything new?" twice a second from a hundred screens is 200 requests a second through
waitress (issue #13's load test: the tablets' tick-off p95 1.25-1.5x what it is with no screen
open). Here a screen holds one WebSocket to a small asyncio server (the `websockets` library),
which costs nothing while nothing changes, and is sent every change:

- **one watcher per process** reads the counters of the sites screens watch (one query,
  however many screens) as soon as a commit in this process moved one on (``make run``: the
  web, ingest and the scheduler all commit here), and every ``POLL_S`` anyway: the counter
  lives in the database, so a change committed by another process (ingest, the scheduler or a
  web worker of the production layout) is seen within that;
- when a site's ETag moves on (a change, or the 30 s refresh period) the new state is built
  **once** per site and language — a wall display's board from the board cache the HTTP fast
  path shares, a signed-in screen's counter as ``/live`` answers it — and the same frame is
  pushed to every screen of that site (``websockets.broadcast``);
- a heartbeat every ``HEARTBEAT_S`` lets a screen tell a live channel from a dead one (it
  reconnects after ``5 s`` of silence and asks over HTTP meanwhile: ``static/live.js``) — sent
  only while the watcher's looks succeed, so a server that cannot read the database falls
  silent rather than telling screens all is well;
- every ``CHECK_S`` the tokens and sessions of open sockets are checked again: a switched-off
  display is closed with ``4403`` (its page says so), a session the app no longer takes (new
  PIN or password, logout, deactivated, idle, too old) with ``4401``.

The handshake is checked as the HTTP views check a question: a display's token (``/display/
<token>/live``) or a signed-in session's cookie (``/live``), an ``Origin`` (sent by every
browser) naming the same host; at most ``PER_DISPLAY`` sockets per display and ``PER_PERSON``
per person, ``MAX_HANDSHAKES`` being checked at once, and ``MAX_SOCKETS`` in all (fewer if
the process may open fewer files: a flood of sockets must not take the descriptors waitress
needs). The frames carry exactly what
the HTTP answers carry (the board, or ``{"version": ETag}``), so a screen may use either; a
page that cannot reach the socket asks over HTTP as before (see README, "The live channel").

``flask serve`` runs it in a thread on ``BRIGADE_LIVE_PORT``; in the production layout it runs
as its own process (``flask live``) and the web workers only name it to their pages.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from app.live.changes import etag, etag_order, on_commit
from app.live.fastpath import Signed, SignedInSessions
from app.models import LiveVersion, utcnow

logger = logging.getLogger(__name__)

#: How often the sites' counters are read when no commit in this process woke the watcher
#: (seconds): a change committed by another process reaches screens this much later at most,
#: plus its build.
POLL_S = 0.25
#: After each look, the watcher waits this long before the next: commits arriving meanwhile
#: (ingest commits many a second) are taken together.
GATHER_S = 0.03
#: How often every open socket is sent the server's time: what tells a screen the channel lives.
HEARTBEAT_S = 2.0
#: How often the tokens and sessions of open sockets are checked again (a revoked display or
#: session is closed within this, plus a query).
CHECK_S = 1.0
#: Open sockets a process holds at most (a kitchen has a few dozen screens); fewer when the
#: process may open fewer files (see :func:`socket_limit`).
MAX_SOCKETS = 2000
#: Sockets one display token may hold (one address opened on a few screens), and one person.
PER_DISPLAY, PER_PERSON = 20, 8
#: Handshakes being checked at once (each a database question); more are told to try again.
MAX_HANDSHAKES = 32
#: Close codes a screen acts on: the display was switched off (stop, say so); the session is
#: no longer taken (reconnect with the cookie it has now, or learn over HTTP what to do).
GONE, SIGNED_OUT = 4403, 4401

_DISPLAY = re.compile(r"(?:.*/)?display/([A-Za-z0-9_-]{1,100})/live")
_SIGNED = re.compile(r"(?:.*/)?live")


@dataclass
class Screen:
    """What a socket was opened with: a display's token, or a signed-in session."""

    key: tuple  # ("display", site, locale) or ("signed", site)
    token: str | None = None
    display_id: int | None = None
    signed: Signed | None = None


@dataclass
class Group:
    """The screens watching one site (in one language, for displays) and what they were sent."""

    members: set = field(default_factory=set)  # sent the group's newest frame: pushed to
    joining: set = field(default_factory=set)  # being sent their first frame
    tag: str | None = None
    frame: str | None = None
    failing: bool = False  # its state could not be built at the last change
    failed_at: float = 0.0  # when (monotonic)


class LiveSocketServer:
    """The WebSocket server; :meth:`start` runs it in a thread, :meth:`run` in this one."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *,
                 poll_s: float = POLL_S, check_s: float = CHECK_S,
                 heartbeat_s: float = HEARTBEAT_S, max_sockets: int | None = None):
        self.app, self.host, self.port = app, host, port
        self.poll_s, self.check_s, self.heartbeat_s = poll_s, check_s, heartbeat_s
        self.max_sockets = socket_limit() if max_sockets is None else max_sockets
        self.handshaking = 0
        self.sessions = SignedInSessions(app)
        self.groups: dict[tuple, Group] = {}
        self.screens: dict[ServerConnection, Screen] = {}
        # Database work off the event loop (which only ever sends and waits): handshakes two at
        # a time; the watcher, and the checks of open sockets, each on a thread of its own, so
        # that a flood of handshakes holds up neither the changes pushed to the screens already
        # open nor the closing of a switched-off display.
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="brigade-live")
        self.watch_pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="brigade-live-watch")
        self.check_pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="brigade-live-check")
        self.closing: set[asyncio.Task] = set()
        self.threaded = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.stopping: asyncio.Event | None = None
        self.pushed = 0  # frames pushed (changes x screens), for tests and the benchmark
        #: display id -> when its "last seen" was last written here (monotonic)
        self.noted: dict[int, float] = {}
        #: When the watcher last read the counters (monotonic): heartbeats only while recent.
        self.looked = 0.0

    # --- running ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LiveSocketServer:
        """Serve in a daemon thread; return once listening (raises OSError if the port is taken)."""
        self.threaded = True
        self.thread = threading.Thread(target=self.run, name="brigade-live-socket", daemon=True)
        self.thread.start()
        if not self.ready.wait(timeout):
            raise TimeoutError("the live socket did not start")
        if self.failed is not None:
            raise self.failed
        return self

    def stop(self) -> None:
        """Close every socket and stop (from any thread)."""
        if self.loop is not None and self.stopping is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.stopping.set)
            except RuntimeError:
                pass  # the loop already ended
        if self.thread is not None:
            self.thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.watch_pool.shutdown(wait=False, cancel_futures=True)
        self.check_pool.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        """Serve until :meth:`stop` (or an interrupt)."""
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), or raised here
            if self.threaded and not self.ready.is_set():
                self.failed = exc
                self.ready.set()
            else:
                raise

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        async with serve(self._handler, self.host, self.port,
                         process_request=self._process_request, logger=_quiet_logger(),
                         compression=None,  # a board is a few KB; per-socket deflate costs more
                         max_size=4096,  # screens send nothing but the protocol's pings
                         ping_interval=20, ping_timeout=20, close_timeout=2,
                         open_timeout=5,  # a connection that sends no request is let go soon
                         server_header="Brigade") as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            logger.info("live socket on ws://%s:%s", self.host, self.port)
            wake = asyncio.Event()
            loop = self.loop

            def woken(_sites) -> None:  # in the committing thread
                if self.groups:
                    try:
                        loop.call_soon_threadsafe(wake.set)
                    except RuntimeError:
                        pass  # the loop has ended
            forget = on_commit(woken)
            tasks = [asyncio.create_task(self._watch(wake)), asyncio.create_task(self._check()),
                     asyncio.create_task(self._heartbeat())]
            try:
                await self.stopping.wait()
            finally:
                forget()
                for task in tasks:
                    task.cancel()
                server.close()  # closes every socket with 1001 "going away"

    async def _db(self, fn, *args, pool=None):
        return await asyncio.get_running_loop().run_in_executor(pool or self.pool, fn, *args)

    # --- the handshake ---------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request):
        """Refuse a handshake the HTTP views would refuse; remember what it was opened with."""
        try:
            path = urlsplit(request.path).path
        except ValueError:  # e.g. "//[x/live"
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")
        if len(self.screens) + self.handshaking >= self.max_sockets \
                or self.handshaking >= MAX_HANDSHAKES:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many screens\n")
        if not self._same_host(request.headers.get("Origin"), request.headers.get("Host")):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Another site's page\n")
        self.handshaking += 1
        try:
            if match := _DISPLAY.fullmatch(path):
                screen = await self._db(self._display_screen, match[1])
            elif _SIGNED.fullmatch(path):
                screen = await self._db(self._signed_screen, request.headers.get("Cookie", ""))
            else:
                return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")
        except Exception:  # the database gone, say: the screen asks over HTTP meanwhile
            logger.exception("checking a live socket's handshake failed")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Try again\n")
        finally:
            self.handshaking -= 1
        if screen is None:
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Not allowed\n")
        if self._held_by(screen) >= (PER_DISPLAY if screen.token else PER_PERSON):
            return connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many screens\n")
        connection.brigade_screen = screen
        return None

    def _held_by(self, screen: Screen) -> int:
        """Sockets open with the same display token, or the same person's sessions."""
        if screen.token is not None:
            return sum(1 for s in self.screens.values() if s.display_id == screen.display_id)
        return sum(1 for s in self.screens.values()
                   if s.signed is not None and s.signed.staff_id == screen.signed.staff_id)

    @staticmethod
    def _same_host(origin: str | None, host: str | None) -> bool:
        """A browser's page may open the socket only from the app's own host (any port: the
        socket has its own). Clients that are not browsers send no Origin."""
        if origin is None:
            return True
        try:
            origin_host = urlsplit(origin).hostname
            own_host = urlsplit(f"//{host}").hostname if host else None
        except ValueError:
            return False
        return bool(origin_host) and origin_host == own_host

    def _display_screen(self, token: str) -> Screen | None:
        from app.displays.tokens import live_display
        from app.models import db
        with self.app.app_context():
            try:
                seen = live_display(db.session, token)
            finally:
                db.session.remove()
        if seen is None:
            return None
        return Screen(("display", seen.site_id, seen.locale), token=token, display_id=seen.id)

    def _signed_screen(self, cookie: str) -> Screen | None:
        signed = self.sessions.check(cookie)
        if signed is None:
            return None
        site_id = signed.site_id
        if signed.chosen_site_id:
            from app.models import Site, db
            with self.app.app_context():
                try:
                    if db.session.get(Site, signed.chosen_site_id) is not None:
                        site_id = signed.chosen_site_id
                finally:
                    db.session.remove()
        return Screen(("signed", site_id), signed=signed)

    # --- a socket's life -------------------------------------------------------------------

    async def _handler(self, connection: ServerConnection) -> None:
        screen: Screen = connection.brigade_screen
        group = self.groups.setdefault(screen.key, Group())
        self.screens[connection] = screen
        group.joining.add(connection)
        try:
            if group.frame is None:  # the first screen of this group: its state now
                tag, body = await self._db(self._state, screen.key)
                if group.tag is None or etag_order(tag) > etag_order(group.tag):
                    group.tag, group.frame = tag, self._frame(tag, body)
                    broadcast(list(group.members), group.frame)  # any sent an older one
            # Its first frame, and again should the watcher push a newer one meanwhile: it
            # joins the screens the watcher pushes to only once it has the newest.
            sent = None
            while sent != group.tag:
                sent = group.tag
                await connection.send(group.frame)
            group.joining.discard(connection)
            group.members.add(connection)
            await connection.wait_closed()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("a live socket failed")
        finally:
            self.screens.pop(connection, None)
            group.joining.discard(connection)
            group.members.discard(connection)
            if not group.members and not group.joining and self.groups.get(screen.key) is group:
                self.groups.pop(screen.key, None)

    @staticmethod
    def _frame(tag: str, body: bytes) -> str:
        quoted = json.dumps('"' + tag + '"')  # the ETag as an HTTP answer's header has it
        now = int(utcnow().timestamp() * 1000)
        return f'{{"etag":{quoted},"now":{now},"body":' + body.decode("utf-8") + "}"

    def _state(self, key: tuple) -> tuple[str, bytes]:
        """(ETag, body) of a group now: what the HTTP answer would carry."""
        return self._build(key, etag(self._versions([key[1]]).get(key[1], 0)))

    def _build(self, key: tuple, tag: str) -> tuple[str, bytes]:
        if key[0] == "signed":
            return tag, json.dumps({"version": tag}).encode()
        from app.displays.board import board_json
        from app.models import db
        boards = self.app.extensions["brigade_live_fastpath"].boards

        def make(memo):
            with self.app.app_context():
                try:
                    return board_json(db.session, key[1], key[2], memo)
                finally:
                    db.session.remove()
        board = boards.get(key[1:], tag, make)  # the HTTP fast path's cache: one build a change
        return board.tag, board.body

    # --- pushing changes -------------------------------------------------------------------

    async def _watch(self, wake: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
            wake.clear()
            await asyncio.sleep(GATHER_S)
            sites = {key[1] for key in self.groups}
            if not sites:
                continue
            try:
                versions = await self._db(self._versions, sorted(sites), pool=self.watch_pool)
                self.looked = time.monotonic()
                for key, group in list(self.groups.items()):
                    tag = etag(versions.get(key[1], 0))
                    if not group.members or (group.tag is not None
                                             and etag_order(tag) <= etag_order(group.tag)):
                        continue
                    if group.failing and time.monotonic() - group.failed_at < 2.0:
                        continue  # a board that failed is tried again every 2 s, not each look
                    try:
                        built_tag, body = await self._db(self._build, key, tag,
                                                         pool=self.watch_pool)
                    except Exception:  # this board only: the other sites' go on
                        if not group.failing:
                            logger.exception("building the live state of %s failed", key)
                        group.failing = True  # its screens hear no heartbeat: they ask over HTTP
                        group.failed_at = time.monotonic()
                        continue
                    group.failing = False
                    if group.tag is not None and etag_order(built_tag) <= etag_order(group.tag):
                        continue  # a screen joining meanwhile set as new a frame, or newer
                    group.tag, group.frame = built_tag, self._frame(built_tag, body)
                    members = list(group.members)
                    broadcast(members, group.frame)
                    self.pushed += len(members)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again next time
                logger.exception("the live socket's watcher failed")
                await asyncio.sleep(1)

    def _versions(self, sites: list[int]) -> dict[int, int]:
        from app.models import db
        with self.app.app_context():
            try:
                return dict(db.session.execute(db.select(LiveVersion.site_id, LiveVersion.version)
                                               .where(LiveVersion.site_id.in_(sites))).all())
            finally:
                db.session.remove()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.screens and time.monotonic() - self.looked < max(3 * self.poll_s, 2.0):
                broadcast([c for group in list(self.groups.values()) if not group.failing
                           for c in group.members], json.dumps(
                    {"now": int(utcnow().timestamp() * 1000)}))

    # --- checking open sockets again -------------------------------------------------------

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            if not self.screens:
                continue
            try:
                closing = await self._db(self._refused, list(self.screens.items()),
                                         pool=self.check_pool)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("checking the live sockets failed")
                continue
            for connection, code, reason in closing:
                task = asyncio.create_task(connection.close(code, reason))
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)

    def _refused(self, screens: list[tuple[ServerConnection, Screen]]) -> list[tuple]:
        """The sockets to close now, with their close code: displays switched off, sessions the
        app no longer takes — one query for the displays and one for the people, however many
        sockets. Records a display's "last seen" at most once a minute."""
        from app.displays.tokens import SEEN_EVERY, displays_on, note_seen_many
        from app.models import db
        closing = []
        now, moment = time.time(), time.monotonic()
        self.sessions.prefetch({s.signed.staff_id for _c, s in screens if s.signed is not None})
        with self.app.app_context():
            try:
                on = displays_on(db.session, {s.display_id for _c, s in screens
                                              if s.display_id is not None})
                for connection, screen in screens:
                    if screen.display_id is not None:
                        if screen.display_id not in on:
                            closing.append((connection, GONE, "switched off"))
                    elif not self.sessions.still_good(screen.signed, now):
                        closing.append((connection, SIGNED_OUT, "signed out"))
                at = utcnow()
                due = [display_id for display_id, last in on.items()
                       if (last is None or at - last >= SEEN_EVERY)
                       and moment - self.noted.get(display_id, -1e9) >= SEEN_EVERY.total_seconds()]
                if due:
                    note_seen_many(db.session, due, at)
                    db.session.commit()
                    self.noted.update((display_id, moment) for display_id in due)
            finally:
                db.session.remove()
        return closing


def live_socket() -> str | None:
    """The address a page of this request opens its live socket at (``ws://host:port``, or
    ``BRIGADE_LIVE_SOCKET_URL``), or None: then the page asks over HTTP only. The page adds the
    path it watches (``/live``, ``/display/<token>/live``)."""
    from flask import current_app, g, request
    if "brigade_live_socket" not in g:
        config = current_app.config
        base = (config.get("BRIGADE_LIVE_SOCKET_URL") or "").rstrip("/") or None
        port = config.get("BRIGADE_LIVE_PORT") or 0
        if base is None and port and not request.is_secure:  # TLS: the proxy's URL is needed
            host = urlsplit(f"//{request.host}").hostname or "127.0.0.1"
            base = f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"
        g.brigade_live_socket = base
    return g.brigade_live_socket


def socket_origin() -> str | None:
    """The live socket's origin (scheme, host, port), for the page's CSP ``connect-src``."""
    from flask import has_request_context
    base = live_socket() if has_request_context() else None
    if not base:
        return None
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def socket_limit() -> int:
    """How many sockets a process may hold: ``MAX_SOCKETS``, or fewer where the process may open
    fewer files (a systemd service's soft limit is often 1,024): at most half of what the
    limit leaves after 200 for waitress, the database and MQTT."""
    try:
        import resource
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return MAX_SOCKETS
    if soft == resource.RLIM_INFINITY:
        return MAX_SOCKETS
    return max(0, min(MAX_SOCKETS, (soft - 200) // 2))


class _HandshakeNoise(logging.Filter):
    """A TCP connection that closes before its request (a port scan, a load balancer's health
    check) is not an error worth a traceback: logged at debug level instead. Any other failure
    of a handshake keeps its error and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage() == "opening handshake failed" \
                and record.exc_info and _closed_early(record.exc_info[1]):
            logger.debug("a connection closed before its handshake", exc_info=record.exc_info)
            return False
        return True


def _closed_early(exc: BaseException | None) -> bool:
    """Whether a handshake failed because the peer went away (EOF, reset) before finishing."""
    while exc is not None:
        if isinstance(exc, (EOFError, ConnectionError, asyncio.IncompleteReadError)):
            return True
        exc = exc.__cause__
    return False


def _quiet_logger() -> logging.Logger:
    server_logger = logging.getLogger("app.live.socket.server")
    if not any(isinstance(f, _HandshakeNoise) for f in server_logger.filters):
        server_logger.addFilter(_HandshakeNoise())
    return server_logger
