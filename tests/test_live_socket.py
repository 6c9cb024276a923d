"""The live socket (app.live.socket): screens are sent each change as it happens, carry what the
HTTP answers carry, are closed when their token or session ends, and cannot starve the app."""
from __future__ import annotations

import json
import re
import threading
import time

import pytest
import requests
import waitress
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from app.alerts.operations import raise_alert
from app.displays.tokens import create_display, revoke_display
from app.live.socket import GONE, SIGNED_OUT, LiveSocketServer
from app.models import DisplayToken, Site, Staff, db, utcnow
from tests.factories import Kitchen, login_password, login_pin, make_app, other_site

POLL = {"X-Brigade-Poll": "1"}


@pytest.fixture(autouse=True)
def _no_refresh_roll(monkeypatch):
    """ETags also roll every 30 s (a quiet board's ages); a roll mid-test is not a change."""
    from app.live import changes
    monkeypatch.setattr(changes, "REFRESH_SECONDS", 10**9)


@pytest.fixture
def sockets(app):
    """A live socket server on a free port, quick to poll, check and beat for the tests."""
    started = []

    def _start(**options):
        settings = {"poll_s": 0.05, "check_s": 0.2, "heartbeat_s": 0.3, **options}
        server = LiveSocketServer(app, "127.0.0.1", 0, **settings).start()
        started.append(server)
        return server
    yield _start
    for server in started:
        server.stop()


def _display(kitchen, locale="en") -> str:
    with db.session.no_autoflush:
        site = db.session.get(Site, kitchen["site"])
        _row, plain = create_display(db.session, site, "Pass wall", locale,
                                     db.session.get(Staff, kitchen["chef"]))
    db.session.commit()
    return plain


def _open(server, path, **headers):
    headers.setdefault("Origin", "http://127.0.0.1:8000")
    return connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers,
                   open_timeout=5, close_timeout=1)


def _frame(ws, timeout=3.0, *, change=True):
    """The next frame (a change, unless ``change`` is False: then any, heartbeats too)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if "etag" in frame or not change:
            return frame


def _closed_with(ws, within=3.0) -> int:
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else -1
    except TimeoutError:
        pass
    raise AssertionError(f"the socket was still open after {within} s")


def _refused(server, path, **headers) -> int:
    with pytest.raises(InvalidStatus) as refused:
        _open(server, path, **headers).close()
    return refused.value.response.status_code


def _alert(app, site_id, subject):
    with app.app_context():
        raise_alert(db.session, site_id=site_id, kind="offline", subject=subject,
                    detail={"unit": subject})
        db.session.commit()


def test_a_wall_socket_is_sent_the_board_and_then_each_change(app, client, kitchen, sockets):
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    http = client.get(f"/display/{plain}/live")
    with _open(server, f"/display/{plain}/live") as ws:
        first = _frame(ws)
        # Exactly what the HTTP answer carries: its ETag and its board.
        assert first["etag"] == http.headers["ETag"]
        assert first["body"] == http.get_json()
        assert abs(first["now"] - utcnow().timestamp() * 1000) < 5000
        beat = _frame(ws, change=False)  # the heartbeat: the server's time, nothing else
        assert set(beat) == {"now"}

        published = time.monotonic()
        _alert(app, kitchen["site"], "Salad fridge")
        changed = _frame(ws)
        assert time.monotonic() - published < 2
        assert changed["etag"] != first["etag"]
        assert changed["body"]["alerts"] == \
            client.get(f"/display/{plain}/live").get_json()["alerts"]
        assert changed["body"]["alerts"], "the new alert is on the board pushed"
        # Nothing else changed: nothing more is pushed, only heartbeats.
        with pytest.raises(TimeoutError):
            _frame(ws, timeout=0.6)


def test_a_change_committed_by_another_process_reaches_every_open_socket(
        app, kitchen, sockets, database_url, tmp_path, monkeypatch):
    """The counter is in the database: a second app (its own engine and connections, as ingest
    or the scheduler in their own processes) commits, and the sockets of both languages hear —
    by the watcher's own look (``poll_s``), since no commit in its process woke it."""
    from app.live import changes
    with app.app_context():
        english, chinese = _display(kitchen, "en"), _display(kitchen, "zh")
    server = sockets(poll_s=0.2)
    screens = [_open(server, f"/display/{token}/live") for token in (english, chinese) * 5]
    firsts = [_frame(ws) for ws in screens]
    other = make_app(database_url, tmp_path / "other-instance")
    monkeypatch.setattr(changes, "_listeners", [])  # as in another process: nothing to wake it
    _alert(other, kitchen["site"], "Walk-in")
    for ws, first in zip(screens, firsts):
        frame = _frame(ws)
        assert frame["etag"] != first["etag"] and frame["body"]["alerts"]
        ws.close()
    with other.app_context():
        db.engine.dispose()
    assert server.pushed >= len(screens)


def test_a_server_that_cannot_read_the_database_falls_silent(app, kitchen, sockets,
                                                              monkeypatch):
    """Heartbeats only while the watcher's looks succeed: a screen then hears nothing, closes
    the socket after 5 s and asks over HTTP, which shows it "not connected" (static/live.js),
    rather than being told all is well with a board nothing can change."""
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    with _open(server, f"/display/{plain}/live") as ws:
        _frame(ws)
        assert "now" in _frame(ws, change=False)  # beating

        def gone(_sites):
            raise RuntimeError("database unreachable")
        monkeypatch.setattr(server, "_versions", gone)
        time.sleep(2.5)  # a beat or two may still be on their way
        while True:
            try:
                ws.recv(timeout=0)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            _frame(ws, timeout=1.5, change=False)
        monkeypatch.undo()
        assert "now" in _frame(ws, timeout=3, change=False)  # back


def test_a_commit_in_this_process_wakes_the_watcher_at_once(app, kitchen, sockets):
    """``make run``: the web, ingest and the scheduler commit in the socket's process, which is
    woken by the commit rather than waiting for its next look (here 30 s away)."""
    with app.app_context():
        plain = _display(kitchen)
    server = sockets(poll_s=30)
    with _open(server, f"/display/{plain}/live") as ws:
        first = _frame(ws)
        published = time.monotonic()
        _alert(app, kitchen["site"], "Salad fridge")
        assert _frame(ws, timeout=2)["etag"] != first["etag"]
        assert time.monotonic() - published < 1


def test_a_switched_off_display_is_closed_at_once_and_refused_after(app, kitchen, sockets):
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    ws = _open(server, f"/display/{plain}/live")
    _frame(ws)
    with app.app_context():
        display = db.session.execute(db.select(DisplayToken)).scalars().one()
        revoke_display(db.session, display, utcnow())
        db.session.commit()
    assert _closed_with(ws) == GONE  # the page then says "switched off" (static/live.js)
    assert _refused(server, f"/display/{plain}/live") == 403


def test_handshakes_the_views_would_refuse_are_refused(app, client, kitchen, sockets):
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    assert _refused(server, "/display/dsp_" + "x" * 43 + "/live") == 403  # no such display
    assert _refused(server, "/display/not-a-token/live") == 403
    assert _refused(server, "/photos/1") == 404
    # A page of another site may not open it: browsers always send their page's Origin.
    assert _refused(server, f"/display/{plain}/live", Origin="http://evil.example") == 403
    assert _refused(server, "/live") == 403  # no session
    assert _refused(server, "/live", Cookie="session=eyJfdXNlcl9pZCI6IjIifQ.forged.sig") == 403
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    cookie = f"session={client.get_cookie('session').value}"
    assert _refused(server, "/live", Cookie=cookie, Origin="https://evil.example") == 403
    _open(server, "/live", Cookie=cookie).close()  # the same from the app's own host: taken
    # A display's token is not a session, and a session opens no display.
    assert _refused(server, "/live", Cookie=f"session={plain}") == 403


def test_at_most_max_sockets_are_held(app, kitchen, sockets):
    with app.app_context():
        plain = _display(kitchen)
    server = sockets(max_sockets=3)
    held = [_open(server, f"/display/{plain}/live") for _ in range(3)]
    for ws in held:
        _frame(ws)
    assert _refused(server, f"/display/{plain}/live") == 503
    held.pop().close()
    time.sleep(0.2)
    _open(server, f"/display/{plain}/live").close()
    for ws in held:
        ws.close()


def test_one_display_or_one_person_cannot_hold_every_socket(app, client, kitchen, sockets,
                                                             monkeypatch):
    """Whoever has a display's address (it is on the wall, and in its QR code) or a cook's
    session opens only a few sockets: the process's descriptors stay the web's."""
    from app.live import socket as live_socket
    monkeypatch.setattr(live_socket, "PER_DISPLAY", 3)
    monkeypatch.setattr(live_socket, "PER_PERSON", 2)
    with app.app_context():
        plain, other = _display(kitchen), _display(kitchen)
    server = sockets()
    held = [_open(server, f"/display/{plain}/live") for _ in range(3)]
    assert _refused(server, f"/display/{plain}/live") == 429
    held.append(_open(server, f"/display/{other}/live"))  # another display: its own share
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    cookie = f"session={client.get_cookie('session').value}"
    held += [_open(server, "/live", Cookie=cookie) for _ in range(2)]
    assert _refused(server, "/live", Cookie=cookie) == 429
    for ws in held:
        ws.close()
    time.sleep(0.2)
    _open(server, f"/display/{plain}/live").close()


def test_the_socket_limit_follows_the_files_a_process_may_open(monkeypatch):
    import resource

    from app.live.socket import MAX_SOCKETS, socket_limit
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (1024, 4096))
    assert socket_limit() == 412  # (1024 - 200) / 2: waitress, the database and MQTT keep theirs
    monkeypatch.setattr(resource, "getrlimit", lambda _what: (1_048_576, 1_048_576))
    assert socket_limit() == MAX_SOCKETS


def test_one_sites_failing_board_leaves_the_others_pushed(app, kitchen, sockets, monkeypatch):
    """A board that cannot be built stops its own screens' heartbeats (they ask over HTTP,
    which shows the failure) — not every site's pushes."""
    with app.app_context():
        english, chinese = _display(kitchen, "en"), _display(kitchen, "zh")
    server = sockets()
    en, zh = _open(server, f"/display/{english}/live"), _open(server, f"/display/{chinese}/live")
    first_en, first_zh = _frame(en), _frame(zh)
    build = server._build

    def english_fails(key, tag):
        if key[0] == "display" and key[2] == "en":
            raise RuntimeError("a template error")
        return build(key, tag)
    monkeypatch.setattr(server, "_build", english_fails)
    _alert(app, kitchen["site"], "Walk-in")
    assert _frame(zh)["etag"] != first_zh["etag"]  # pushed, whatever happened to the other
    time.sleep(1.0)
    while True:  # what was on its way before the failure
        try:
            en.recv(timeout=0)
        except TimeoutError:
            break
    with pytest.raises(TimeoutError):
        _frame(en, timeout=1.0, change=False)  # silent: its page asks over HTTP
    monkeypatch.setattr(server, "_build", build)
    _alert(app, kitchen["site"], "Freezer")
    assert _frame(en)["etag"] != first_en["etag"]
    en.close()
    zh.close()


def test_a_connection_closed_before_its_handshake_is_no_error(app, sockets, caplog,
                                                              monkeypatch):
    import socket as sockets_module
    server = sockets()
    with caplog.at_level("DEBUG"):
        with sockets_module.create_connection(("127.0.0.1", server.port)):
            pass  # a port scan, a load balancer's TCP check
        time.sleep(0.5)
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    # A real failure of a handshake keeps its error and traceback.
    caplog.clear()

    def broken(*_args):
        raise RuntimeError("a bug in the handshake")
    monkeypatch.setattr(server, "_same_host", broken)
    assert _refused(server, "/live") == 500
    time.sleep(0.2)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and errors[0].exc_info and "a bug in the handshake" in caplog.text


def test_a_signed_in_socket_follows_its_site_and_ends_with_the_session(app, client, kitchen,
                                                                         sockets, monkeypatch):
    from app.live import fastpath
    monkeypatch.setattr(fastpath, "PERSON_TTL", 0.0)
    server = sockets()
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    cookie = f"session={client.get_cookie('session').value}"
    http = client.get("/live", headers=POLL)
    with _open(server, "/live", Cookie=cookie) as ws:
        first = _frame(ws)
        assert first["etag"] == http.headers["ETag"] and first["body"] == http.get_json()
        _alert(app, kitchen["site"], "Freezer")
        changed = _frame(ws)
        assert changed["body"] == {"version": changed["etag"].strip('"')}
        assert changed["etag"] == client.get("/live", headers=POLL).headers["ETag"]
        # A new PIN ends every session of that person: the socket is closed within seconds.
        with app.app_context():
            db.session.get(Staff, kitchen["cook"]).set_pin("8642")
            db.session.commit()
        assert _closed_with(ws) == SIGNED_OUT
    assert _refused(server, "/live", Cookie=cookie) == 403
    # Deactivated, and idle past the tablet's limit: the same.
    other = app.test_client()
    login_pin(other, kitchen["cook2"], Kitchen.PINS["cook2"])
    cookie2 = f"session={other.get_cookie('session').value}"
    ws = _open(server, "/live", Cookie=cookie2)
    _frame(ws)
    monkeypatch.setitem(app.config, "BRIGADE_TABLET_IDLE_SECONDS", -1)
    assert _closed_with(ws) == SIGNED_OUT


def test_an_admin_socket_watches_the_site_the_admin_works_on(app, client, kitchen, sockets):
    other_id = other_site(app)
    login_password(client, "admin@test.kitchen", "admin-password")
    with client.session_transaction() as session:
        session["site_id"] = other_id
    server = sockets()
    with _open(server, "/live", Cookie=f"session={client.get_cookie('session').value}") as ws:
        first = _frame(ws)
        _alert(app, kitchen["site"], "home only")  # the home site: not this screen's
        with pytest.raises(TimeoutError):
            _frame(ws, timeout=0.6)
        _alert(app, other_id, "there")
        assert _frame(ws)["etag"] != first["etag"]


def test_pages_name_the_socket_and_let_it_through_their_policy(app, client, kitchen,
                                                               monkeypatch):
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    page = client.get("/")
    assert 'name="brigade-live-socket"' not in page.get_data(as_text=True)  # port 0: none
    assert "connect-src 'self';" in page.headers["Content-Security-Policy"]
    monkeypatch.setitem(app.config, "BRIGADE_LIVE_PORT", 8123)
    page = client.get("/")
    assert '<meta name="brigade-live-socket" content="ws://localhost:8123">' in \
        page.get_data(as_text=True)
    assert "connect-src 'self' ws://localhost:8123;" in page.headers["Content-Security-Policy"]
    # The host the page was asked for (a tablet opens the kitchen server by its name).
    pin_pad = client.get("/pin", headers={"Host": "kitchen.local:8000"})
    assert 'content="ws://kitchen.local:8123"' in pin_pad.get_data(as_text=True)
    # Over HTTPS (TLS ends at a proxy) only a configured address is named.
    secure = client.get("/pin", base_url="https://kitchen.local")
    assert 'name="brigade-live-socket"' not in secure.get_data(as_text=True)
    assert "connect-src 'self';" in secure.headers["Content-Security-Policy"]
    monkeypatch.setitem(app.config, "BRIGADE_LIVE_SOCKET_URL", "wss://kitchen.example/socket/")
    secure = client.get("/pin", base_url="https://kitchen.local")
    assert 'content="wss://kitchen.example/socket"' in secure.get_data(as_text=True)
    assert "connect-src 'self' wss://kitchen.example;" in secure.headers["Content-Security-Policy"]


def test_proxied_paths_are_taken(app, kitchen, sockets):
    """Behind a proxy the socket may sit under a prefix (BRIGADE_LIVE_SOCKET_URL=…/socket)."""
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    with _open(server, f"/socket/display/{plain}/live") as ws:
        assert _frame(ws)["body"]["units"] == []


def test_hundreds_of_open_sockets_leave_the_app_its_threads(app, kitchen, sockets, monkeypatch):
    """300 open screens — far more than waitress's 4 threads here or the socket's 2 database
    workers — while /healthz and /pin keep answering at once, and a change reaches them all."""
    from app.live import socket as live_socket
    monkeypatch.setattr(live_socket, "PER_DISPLAY", 300)
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    web = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{web.effective_port}"
    screens = []
    try:
        for _ in range(300):
            screens.append(_open(server, f"/display/{plain}/live"))
        firsts = [_frame(ws)["etag"] for ws in screens]
        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            assert requests.get(url + "/healthz", timeout=5).status_code == 200
            assert requests.get(url + "/pin", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0, f"a request took {slowest:.2f} s with 300 screens open"
        published = time.monotonic()
        _alert(app, kitchen["site"], "Walk-in")
        for ws, first in zip(screens, firsts):
            assert _frame(ws)["etag"] != first
        assert time.monotonic() - published < 5
    finally:
        for ws in screens:
            ws.close()
        web.close()
        web.task_dispatcher.shutdown(timeout=5)


def test_a_display_holding_the_socket_is_seen(app, kitchen, sockets):
    """The settings page's "last seen" knows a screen holds the socket (never asking over
    HTTP), written at most once a minute; the frame's ETag is the HTTP answer's kind."""
    with app.app_context():
        plain = _display(kitchen)
    server = sockets()
    with _open(server, f"/display/{plain}/live") as ws:
        assert re.fullmatch(r'"v\d+\.\d+"', _frame(ws)["etag"])
        time.sleep(server.check_s * 3)
    with app.app_context():
        seen = db.session.execute(db.select(DisplayToken.last_seen_at)).scalar_one()
    assert seen is not None and (utcnow() - seen).total_seconds() < 10


# --- the processes, as deployed ----------------------------------------------------------------

def _process(args, env, log):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "flask", *args], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop_process(process):
    process.terminate()
    try:
        process.wait(10)
    except Exception:
        process.kill()


def test_the_production_layout_web_workers_and_a_live_process_apart(app, client, kitchen,
                                                                      database_url, tmp_path):
    """`flask serve --no-live` names the socket that `flask live` runs as its own process; a
    change committed by a third process (this test) reaches a screen on it, and a switched-off
    display's socket is closed by it."""
    import os
    from tests.services import free_port, wait_until
    with app.app_context():
        plain = _display(kitchen)
    web_port, live_port = free_port(), free_port()
    env = dict(os.environ, BRIGADE_DATABASE_URL=database_url, BRIGADE_SECRET_KEY="test-secret",
               BRIGADE_AUDIT_KEY="test-audit-key", BRIGADE_INSTANCE_PATH=str(tmp_path / "inst"),
               BRIGADE_LIVE_PORT=str(live_port), BRIGADE_MQTT_HOST="127.0.0.1",
               BRIGADE_MQTT_PORT=str(free_port()), FLASK_APP="app")
    web = _process(["serve", "--port", str(web_port), "--no-ingest", "--no-broker",
                    "--no-scheduler", "--no-live"], env, tmp_path / "web.log")
    live = _process(["live"], env, tmp_path / "live.log")
    try:
        def up(port):
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.RequestException:
                return False
        assert wait_until(lambda: up(web_port), 30), (tmp_path / "web.log").read_text()
        page = requests.get(f"http://127.0.0.1:{web_port}/display/{plain}").text
        assert f'content="ws://127.0.0.1:{live_port}"' in page
        server = type("Live", (), {"port": live_port})
        assert wait_until(lambda: _try_open(server, plain), 30), (tmp_path / "live.log").read_text()
        with _open(server, f"/display/{plain}/live") as ws:
            first = _frame(ws)
            built_apart = requests.get(f"http://127.0.0.1:{web_port}/display/{plain}/live").json()
            first["body"].pop("now"), built_apart.pop("now")  # (each process built its own)
            assert first["body"] == built_apart
            _alert(app, kitchen["site"], "Walk-in")
            assert _frame(ws)["etag"] != first["etag"]
            with app.app_context():
                display = db.session.execute(db.select(DisplayToken)).scalars().one()
                revoke_display(db.session, display, utcnow())
                db.session.commit()
            assert _closed_with(ws, within=5) == GONE
    finally:
        _stop_process(web)
        _stop_process(live)
    assert "Brigade's live socket on ws://127.0.0.1:" in (tmp_path / "live.log").read_text()


def test_flask_live_fails_when_its_port_is_taken(app, runner):
    import socket as sockets_module
    with sockets_module.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        # In a thread of its own, as the command runs in a process of its own: the browser
        # tests' Playwright keeps an event loop running in this thread.
        results = []
        worker = threading.Thread(target=lambda: results.append(
            runner.invoke(args=["live", "--port", str(taken.getsockname()[1])])))
        worker.start()
        worker.join(30)
    result = results[0]
    assert result.exit_code == 1, result.output
    assert "cannot listen on 127.0.0.1:" in result.output


def _try_open(server, plain) -> bool:
    try:
        _open(server, f"/display/{plain}/live").close()
        return True
    except (OSError, InvalidStatus):
        return False
