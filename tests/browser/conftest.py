"""Fixtures for the tablet tests: the real app served by waitress, driven by headless Chromium."""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.models import db, set_clock
from tests.factories import Kitchen, at_local, make_app, reset_schema, unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Screenshots land here (gitignored) for a person to look at.
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TABLET = {"width": 768, "height": 1024}
LAPTOP = {"width": 1280, "height": 800}


@dataclass
class LiveKitchen:
    """The served app, its base URL, the seeded people's ids and PINs, and Brigade's pinned time."""

    app: object
    url: str
    ids: dict
    pins: dict
    now: dt.datetime
    socket: object | None = None  # app.live.socket.LiveSocketServer, as `flask serve` runs it

    def stop_socket(self) -> None:
        """The live socket's server goes away (a restart): every open socket is closed."""
        self.socket.stop()

    def start_socket(self) -> None:
        """The live socket back, on the same port the pages name."""
        from app.live.socket import LiveSocketServer
        self.socket = LiveSocketServer(self.app, "127.0.0.1", self.socket.port).start()

    def set_now(self, moment: dt.datetime) -> None:
        """Move Brigade's (server) clock."""
        self.now = moment
        set_clock(lambda: moment)


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session; each test gets its own contexts."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _stop(server, thread) -> None:
    # waitress has no public stop: close the listener and every channel, then its workers.
    logging.getLogger("waitress").setLevel(logging.CRITICAL)
    server.close()
    while server._map:
        for channel in list(server._map.values()):
            channel.handle_close()
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(timeout=5)


@pytest.fixture
def serve_kitchen(tmp_path):
    """serve_kitchen(**config) starts Brigade on a fresh SQLite kitchen, CSRF on, at 11:10 today."""
    import waitress
    started, kitchens = [], []

    def _serve(live_socket: bool = True, **config) -> LiveKitchen:
        """``live_socket``: run the live socket beside waitress, as ``flask serve`` does (pages
        hold it); False: none, pages ask over HTTP."""
        from app.live.socket import LiveSocketServer
        settings = {"WTF_CSRF_ENABLED": True}
        settings.update(config)
        app = make_app(f"sqlite:///{tmp_path / 'brigade.db'}", tmp_path / "instance", **settings)
        reset_schema(app)
        with app.app_context():
            kitchen = Kitchen()
            ids = {"site": kitchen.site.id, "chef": kitchen.chef.id, "cook": kitchen.cook.id,
                   "cook2": kitchen.cook2.id, "admin": kitchen.admin.id}
        today = dt.datetime.now(ZoneInfo("Europe/London")).date()
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
        thread = threading.Thread(target=server.run, name="brigade-waitress", daemon=True)
        thread.start()
        started.append((app, server, thread))
        socket = LiveSocketServer(app, "127.0.0.1", 0).start() if live_socket else None
        app.config["BRIGADE_LIVE_PORT"] = socket.port if socket else 0
        live = LiveKitchen(app=app, url=f"http://127.0.0.1:{server.effective_port}", ids=ids,
                           pins=dict(Kitchen.PINS), now=at_local(today, "11:10"), socket=socket)
        kitchens.append(live)
        live.set_now(live.now)  # "before lunch" (11:00, 45 minutes to do it) is due
        return live

    yield _serve
    set_clock(None)
    for kitchen in kitchens:
        if kitchen.socket is not None:
            kitchen.socket.stop()
    for app, server, thread in started:
        _stop(server, thread)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live(serve_kitchen) -> LiveKitchen:
    return serve_kitchen()


@pytest.fixture
def tablet(browser):
    """tablet(kitchen, viewport) opens a fresh browser context (a new device) on a served kitchen.

    Each context records every request URL in ``page.requests`` and runs the page's
    clock from Brigade's pinned time, so countdowns and the server agree.
    """
    contexts = []

    def _open(kitchen: LiveKitchen, viewport: dict = TABLET):
        context = browser.new_context(viewport=viewport, locale="en-GB",
                                      timezone_id="Europe/London", base_url=kitchen.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.requests = []
        context.on("request", lambda request: page.requests.append(request.url))
        page.clock.install(time=kitchen.now)
        # Anything the Content-Security-Policy blocks is a page that does not work as written;
        # an out-of-band swap without its target is a page and a response that disagree.
        page.on("console", lambda message: (("Content Security Policy" in message.text
                                             or "oobErrorNoTarget" in message.text)
                                            and refused.append(message.text)))
        return page

    refused: list[str] = []
    yield _open
    for context in contexts:
        context.close()
    assert refused == [], refused
