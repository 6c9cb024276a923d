"""The live channel and the wall display: versions that move on, a display token that opens
the board and nothing else, revocation, and open screens that cannot starve the server."""
from __future__ import annotations

import datetime as dt
import html as htmlparser
import json
import re
import socket
import threading
import time

import pytest
import requests
import waitress
from sqlalchemy import select

from app.alerts.engine import evaluate_after_ingest
from app.alerts.operations import acknowledge, raise_alert
from app.displays.board import ALERTS_SHOWN, BUILD_GAP_S, trend
from app.displays.fastpath import TOKEN_TTL
from app.live.fastpath import VERSION_TTL
from app.displays.tokens import create_display, hash_token, revoke_display
from app.live.changes import etag_order, site_version
from app.models import DisplayToken, Site, Staff, db
from app.timers.operations import start_timer
from sensors.models import Sensor
from tests.factories import (Kitchen, feed_salad, login_password, login_pin, other_site,
                             salad_fridge)

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def _no_refresh_roll(monkeypatch):
    """ETags also roll every 30 s (a quiet board's ages); a roll mid-test is not a change."""
    from app.live import changes
    monkeypatch.setattr(changes, "REFRESH_SECONDS", 10**9)


def _display(kitchen, name="Pass wall", locale="en") -> str:
    site = db.session.get(Site, kitchen["site"])
    _row, plain = create_display(db.session, site, name, locale,
                                 db.session.get(Staff, kitchen["chef"]))
    db.session.commit()
    return plain


def _live(client, plain, tag=None):
    return client.get(f"/display/{plain}/live", headers={"If-None-Match": tag} if tag else {})


def _next_board(client, plain, tag, within=2.0):
    """Ask as live.js does, again when told "ask again in N ms", until the board moves on."""
    deadline = time.monotonic() + within
    while True:
        answer = _live(client, plain, tag)
        if answer.status_code != 304 or time.monotonic() > deadline:
            return answer
        time.sleep(int(answer.headers.get("X-Brigade-Retry", 50)) / 1000)


# --- the change counter ----------------------------------------------------------------------

def test_every_change_a_screen_shows_moves_the_sites_counter_and_no_other(app, ctx, kitchen):
    site = kitchen["site"]
    other = Site(name="Elsewhere", timezone="UTC")
    db.session.add(other)
    db.session.commit()
    start, elsewhere = site_version(db.session, site), site_version(db.session, other.id)

    unit = salad_fridge(site)  # a unit, a sensor attached: the board changes
    after_unit = site_version(db.session, site)
    assert after_unit > start
    # Readings are stored below the ORM; ingest's alert hook marks their site.
    feed_salad([4.0, 4.1], dt.datetime.now(UTC) - dt.timedelta(minutes=2))
    assert site_version(db.session, site) == after_unit
    evaluate_after_ingest(db.session, db.session.execute(select(Sensor.id)).scalars().all())
    after_readings = site_version(db.session, site)
    assert after_readings == after_unit + 1

    alert = raise_alert(db.session, site_id=site, kind="offline", subject="unit:x:offline",
                        unit_id=unit.id)
    db.session.commit()
    after_alert = site_version(db.session, site)
    assert after_alert == after_readings + 1  # one commit, one step
    acknowledge(db.session, alert, db.session.get(Staff, kitchen["cook"]), None,
                corrective_action="Checked the sensor", food_outcome="kept")
    db.session.commit()
    assert site_version(db.session, site) == after_alert + 1
    start_timer(db.session, db.session.get(Site, site), db.session.get(Staff, kitchen["cook"]),
                None, "cold_out", "Cold noodles")
    db.session.commit()
    assert site_version(db.session, site) == after_alert + 2
    # A rolled back change moves nothing; the other site never moved.
    start_timer(db.session, db.session.get(Site, site), db.session.get(Staff, kitchen["cook"]),
                None, "plated", "Prawn salad")
    db.session.flush()
    db.session.rollback()
    assert site_version(db.session, site) == after_alert + 2
    assert site_version(db.session, other.id) == elsewhere


def test_the_tablets_channel_answers_304_until_the_site_changes(app, client, kitchen):
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    first = client.get("/live", headers={"Accept": "application/json", "X-Brigade-Poll": "1"})
    assert first.status_code == 200 and first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache" and first.headers["X-Brigade-Now"]
    tag = first.headers["ETag"]
    assert client.get("/live", headers={"If-None-Match": tag}).status_code == 304
    with app.app_context():
        raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="here:1")
        db.session.commit()
    changed = client.get("/live", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    # Logged out, the channel says so (the tablet goes back to its PIN pad), never the version.
    anonymous = app.test_client().get("/live", headers={"Accept": "application/json"})
    assert anonymous.status_code == 401


POLL = {"X-Brigade-Poll": "1"}


def _poll(client, tag, **headers):
    return client.get("/live", headers={"If-None-Match": tag, **POLL, **headers})


def test_a_signed_in_screens_unchanged_question_is_answered_before_flask_after_the_same_checks(
        app, client, kitchen, monkeypatch):
    """The fast path answers only "nothing new", and only where the view would: a session that
    ended (new PIN, deactivated, idle, a forged cookie) is sent to the view, which refuses it."""
    from app.live import fastpath
    fast = app.extensions["brigade_signed_in_fastpath"]
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    tag = client.get("/live", headers=POLL).headers["ETag"]
    before = fast.answered
    answer = _poll(client, tag)
    assert answer.status_code == 304 and answer.headers["ETag"] == tag
    assert fast.answered == before + 1
    # Without X-Brigade-Poll the question counts as activity: the view takes it.
    assert client.get("/live", headers={"If-None-Match": tag}).status_code == 304
    assert fast.answered == before + 1
    # A change: the view answers with the new version.
    with app.app_context():
        raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="here:2")
        db.session.commit()
    time.sleep(VERSION_TTL * 2)
    changed = _poll(client, tag)
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert fast.answered == before + 1
    tag = changed.headers["ETag"]
    assert _poll(client, tag).status_code == 304 and fast.answered == before + 2
    # A forged cookie or none: not answered here; the view says "sign in".
    stranger = app.test_client()
    assert _poll(stranger, tag, Accept="application/json").status_code == 401
    stranger.set_cookie("session", "eyJfdXNlcl9pZCI6IjIifQ.forged.signature")
    assert _poll(stranger, tag, Accept="application/json").status_code == 401
    assert fast.answered == before + 2
    # Idle past the tablet's limit: refused as the view refuses it.
    monkeypatch.setitem(app.config, "BRIGADE_TABLET_IDLE_SECONDS", -1)
    assert _poll(client, tag, Accept="application/json").status_code == 401
    assert fast.answered == before + 2
    monkeypatch.setitem(app.config, "BRIGADE_TABLET_IDLE_SECONDS", 120)
    # A new PIN ends the session: refused here within PERSON_TTL, then by the view.
    other = app.test_client()
    login_pin(other, kitchen["cook2"], Kitchen.PINS["cook2"])
    other_tag = other.get("/live", headers=POLL).headers["ETag"]
    assert _poll(other, other_tag).status_code == 304
    with app.app_context():
        person = db.session.get(Staff, kitchen["cook2"])
        person.set_pin("8642")
        db.session.commit()
    monkeypatch.setattr(fastpath, "PERSON_TTL", 0.0)
    fast.sessions.people.clear()
    answered = fast.answered
    assert _poll(other, other_tag, Accept="application/json").status_code == 401
    assert fast.answered == answered
    # Deactivated: the same.
    with app.app_context():
        db.session.get(Staff, kitchen["cook"]).active = False
        db.session.commit()
    fast.sessions.people.clear()
    assert _poll(client, tag, Accept="application/json").status_code == 401
    assert fast.answered == answered


def test_an_admin_working_on_another_site_watches_that_sites_counter(app, client, kitchen):
    other_id = other_site(app)
    login_password(client, "admin@test.kitchen", "admin-password")
    home = client.get("/live", headers=POLL).headers["ETag"]
    with client.session_transaction() as session:
        session["site_id"] = other_id
    with app.app_context():
        raise_alert(db.session, site_id=other_id, kind="offline", subject="there:1")
        db.session.commit()
    there = client.get("/live", headers={"If-None-Match": home, **POLL})
    assert there.status_code == 200  # the other site's counter, not the home one
    fast = app.extensions["brigade_signed_in_fastpath"]
    answered = fast.answered
    assert _poll(client, there.headers["ETag"]).status_code == 304
    assert fast.answered == answered  # the view decides which site (session's choice)


def test_the_home_banner_watches_the_channel_instead_of_polling(app, client, kitchen):
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    page = client.get("/").get_data(as_text=True)
    banner = re.search(r'<section id="alert-banner"[^>]*>', page).group(0)
    assert 'hx-trigger="brigade:live from:body"' in banner and "every" not in banner
    assert 'data-live-src="/live"' in banner and re.search(r'data-live-etag="v\d+\.\d+"', banner)
    assert "/static/live.js" in page


def test_trend_arrows():
    t0 = dt.datetime(2026, 12, 1, tzinfo=UTC)
    points = [(t0 + dt.timedelta(minutes=m), v) for m, v in ((0, 4.0), (5, 4.1), (11, 4.6))]
    assert trend(points) == "up"
    assert trend([(a, 9 - v) for a, v in points]) == "down"
    assert trend([(t0, 4.0), (t0 + dt.timedelta(minutes=12), 4.2)]) == "steady"
    assert trend(points[:1]) is None


# --- the wall display ------------------------------------------------------------------------

def test_the_board_shows_units_alerts_and_timers_and_304s_until_a_change(app, client, kitchen):
    with app.app_context():
        now = dt.datetime.now(UTC)
        salad_fridge(kitchen["site"], now - dt.timedelta(minutes=30))
        feed_salad([4.0, 4.2, 4.4], now - dt.timedelta(minutes=2))
        raise_alert(db.session, site_id=kitchen["site"], kind="temperature", tier="critical",
                    subject="unit:1:temperature", unit_id=1,
                    detail={"unit": "Salad fridge", "direction": "critical"})
        db.session.commit()
        plain = _display(kitchen, locale="zh")
    page = client.get(f"/display/{plain}")
    assert page.status_code == 200 and "Set-Cookie" not in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert f'data-live-url="/display/{plain}/live"' in html and "<script>" not in html
    labels = json.loads(htmlparser.unescape(re.search(r'data-labels="([^"]+)"', html).group(1)))
    assert 'lang="zh-Hans"' in html and labels["stale"] == "数据过时"  # the display's language

    first = _live(client, plain)
    assert first.status_code == 200 and "Set-Cookie" not in first.headers
    board = first.get_json()
    tile = board["units"][0]
    assert (tile["name"], tile["value"], tile["symbol"], tile["state"]) == ("Salad fridge", "4.4", "°C", "ok")
    assert tile["last_at"] and tile["stale_after_s"] >= 90
    [alert] = board["alerts"]
    assert alert["headline"] == "Salad fridge 温度过高" or "Salad fridge" in alert["headline"]
    assert alert["status"] == "open" and alert["todo"]
    tag = first.headers["ETag"]
    assert _live(client, plain, tag).status_code == 304
    with app.app_context():
        start_timer(db.session, db.session.get(Site, kitchen["site"]),
                    db.session.get(Staff, kitchen["cook"]), None, "cold_out", "Cold noodles")
        db.session.commit()
    time.sleep(VERSION_TTL)  # what the fast path may take to see the change
    fresh = _next_board(client, plain, tag)
    assert fresh.status_code == 200 and fresh.get_json()["timers"][0]["dish"] == "Cold noodles"
    with app.app_context():
        seen = db.session.execute(select(DisplayToken)).scalar_one()
        assert seen.last_seen_at is not None and seen.token_hash == hash_token(plain)


def test_a_revoked_display_loses_the_board_at_its_next_question(app, client, kitchen):
    with app.app_context():
        plain = _display(kitchen)
        display_id = db.session.execute(select(DisplayToken.id)).scalar_one()
    tag = _live(client, plain).headers["ETag"]
    chef = app.test_client()
    login_password(chef, "chef@test.kitchen", "chef-password")
    assert chef.post(f"/settings/displays/{display_id}/revoke").status_code == 302
    # The very next question is refused, whatever the screen already had.
    gone = _live(client, plain, tag)
    assert gone.status_code == 404 and gone.get_json() == {"gone": True}
    assert client.get(f"/display/{plain}").status_code == 404
    assert "switched off" in chef.get("/settings/displays").get_data(as_text=True)


def test_a_display_revoked_by_another_process_is_refused_within_a_second(app, client, kitchen):
    with app.app_context():
        plain = _display(kitchen)
    tag = _live(client, plain).headers["ETag"]
    assert _live(client, plain, tag).status_code == 304  # now cached by the fast path
    with app.app_context():  # as another web worker would: the database only
        revoke_display(db.session, db.session.execute(select(DisplayToken)).scalar_one(),
                       dt.datetime.now(UTC))
        db.session.commit()
    revoked = time.monotonic()
    while _live(client, plain, tag).status_code == 304:
        assert time.monotonic() - revoked < TOKEN_TTL + 0.5
        time.sleep(0.05)
    assert _live(client, plain, tag).status_code == 404


def test_the_fast_path_answers_unchanged_questions_and_passes_the_rest_on(app, client, kitchen):
    with app.app_context():
        plain = _display(kitchen)
    fast = app.extensions["brigade_live_fastpath"]
    first = _live(client, plain)  # no ETag: the view (which also records "last seen")
    assert first.status_code == 200 and "Server-Timing" in first.headers
    tag = first.headers["ETag"]
    before = fast.answered
    for _ in range(5):
        unchanged = _live(client, plain, tag)
        assert unchanged.status_code == 304 and unchanged.headers["ETag"] == tag
        assert "Server-Timing" not in unchanged.headers  # never entered Flask
        assert "X-Brigade-Retry" not in unchanged.headers
    assert fast.answered == before + 5
    old = _live(client, plain, '"v0.0"')  # an old ETag: the board, from the cache
    assert old.status_code == 200 and old.headers["ETag"] == tag and "Server-Timing" not in old.headers
    # The site changes. While its next board is being built, a screen that has the board
    # before is told "nothing yet, ask again in N ms" (not held in a thread); a screen behind
    # even that is handed it at once.
    with app.app_context():
        raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="here:3")
        db.session.commit()
    time.sleep(VERSION_TTL + 0.02)
    [key] = fast.boards.newest  # (site, language)
    builds = fast.boards.builds
    with fast.boards.locks[key]:  # as a build under way in another thread
        waiting = _live(client, plain, tag)
        assert waiting.status_code == 304 and waiting.headers["ETag"] == tag
        assert 50 <= int(waiting.headers["X-Brigade-Retry"]) <= 500
        behind = _live(client, plain, '"v0.0"')
        assert behind.status_code == 200 and behind.headers["ETag"] == tag
        assert behind.data == old.data and fast.boards.builds == builds
    # The first screen to ask after it has the board built in the fast path; every other
    # screen gets the same bytes, and one that has them hears "nothing new" again.
    built = _next_board(client, plain, tag)
    assert built.status_code == 200 and "Server-Timing" not in built.headers
    assert built.headers["ETag"] != tag and "Server-Timing" not in built.headers
    assert [a["kind"] for a in built.get_json()["alerts"]] == ["offline"]
    again = _live(client, plain, tag)
    assert again.status_code == 200 and again.data == built.data
    assert again.headers["ETag"] == built.headers["ETag"] and fast.boards.builds == builds + 1
    same = _live(client, plain, built.headers["ETag"])
    assert same.status_code == 304 and "X-Brigade-Retry" not in same.headers
    assert client.get(f"/display/{plain[:-2]}xx/live", headers={"If-None-Match": tag}).status_code == 404


def test_boards_are_built_at_most_once_per_gap_and_never_handed_out_older(app, client, kitchen):
    """However fast a site changes, a board is built at most every BUILD_GAP_S; every board
    handed out is at least as new as its ETag, and a screen that has a newer board (from
    another worker) is never handed an older one."""
    with app.app_context():
        plain = _display(kitchen)
        salad_fridge(kitchen["site"], dt.datetime.now(UTC) - dt.timedelta(minutes=30))
    fast = app.extensions["brigade_live_fastpath"]
    tag = _live(client, plain).headers["ETag"]
    builds, started = fast.boards.builds, time.monotonic()
    values, shown = [round(3.0 + n / 10, 1) for n in range(12)], None
    for value in values:  # a reading every 50 ms, a screen asking as fast as it is told to
        with app.app_context():
            feed_salad([value], dt.datetime.now(UTC))
            evaluate_after_ingest(db.session, db.session.execute(select(Sensor.id)).scalars().all())
            version = site_version(db.session, kitchen["site"])
        answer = _live(client, plain, tag)
        if answer.status_code == 200:
            tag, shown = answer.headers["ETag"], answer.get_json()["units"][0]["value"]
            # Its ETag never claims more than the board holds: a board at the counter's
            # version shows the reading that moved it there (one newer is only asked again).
            assert etag_order(tag)[0] <= version
            assert etag_order(tag)[0] < version or shown == f"{value:.1f}"
        time.sleep(0.05)
    while shown != "4.1":  # the last change arrives, after the gap
        answer = _next_board(client, plain, tag)
        assert answer.status_code == 200
        tag, shown = answer.headers["ETag"], answer.get_json()["units"][0]["value"]
    elapsed = time.monotonic() - started
    assert 1 <= fast.boards.builds - builds <= elapsed / BUILD_GAP_S + 1
    assert fast.boards.builds - builds < len(values)  # not one per change
    # A screen whose board came from a worker that has seen more than this one has yet.
    ahead = tag.replace('"v', '"v1000')
    assert _live(client, plain, ahead).status_code == 304


def test_the_wall_carries_the_alerts_it_shows_and_counts_the_rest(app, client, kitchen):
    with app.app_context():
        for n in range(5):
            raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject=f"here:{n}")
        raise_alert(db.session, site_id=kitchen["site"], kind="temperature", tier="critical",
                    subject="unit:1:temperature", unit_id=None,
                    detail={"unit": "Salad fridge", "direction": "critical"})
        db.session.commit()
        plain = _display(kitchen)
    board = _live(client, plain).get_json()
    assert len(board["alerts"]) == ALERTS_SHOWN and board["alerts_more"] == 6 - ALERTS_SHOWN
    assert board["alerts"][0]["tier"] == "critical"  # critical first, then the newest
    assert [a["id"] for a in board["alerts"][1:]] == [5, 4]


def _get_routes(app):
    """Every GET route of the app with sample arguments, but the display's own."""
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "displays.board",
                                                          "displays.live"):
            continue
        view = app.view_functions[rule.endpoint]
        if getattr(view, "is_public", False):
            continue
        args = {name: (1 if isinstance(conv, type(rule._converters.get(name)))
                       and conv.__class__.__name__ in ("BoundedInt", "IntegerConverter")
                       else "x") for name, conv in rule._converters.items()}
        yield rule.endpoint, rule.build(args, append_unknown=False)[1]


def test_the_display_token_opens_nothing_else(app, client, kitchen):
    with app.app_context():
        plain = _display(kitchen)
    assert _live(client, plain).status_code == 200
    tried = 0
    for endpoint, path in _get_routes(app):
        for how in ({"headers": {"Authorization": f"Bearer {plain}"}},
                    {"query_string": {"token": plain}},
                    {"headers": {"Cookie": f"session={plain}; brigade_display={plain}"}}):
            response = client.get(path, **how)
            assert response.status_code in (302, 401, 403, 404), (endpoint, path, response.status_code)
            if response.status_code == 302:
                assert "/pin" in response.headers["Location"], (endpoint, path)
            tried += 1
    assert tried > 60  # the whole app was tried, pages, exports, photos and the live channel
    # Posting readings with it, as a device would, is refused too.
    assert client.post("/api/readings", json={"sensor": "x", "t": 4.0},
                       headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    # A token with one character changed opens nothing either.
    twin = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    assert _live(client, twin).status_code == 404 and client.get(f"/display/{twin}").status_code == 404


@pytest.mark.parametrize("who, status", [("cook", 403), ("chef_pin", 403), ("chef", 200),
                                         ("admin", 200)])
def test_displays_are_set_up_by_the_head_chef_or_admin_with_a_password(app, client, kitchen,
                                                                       who, status):
    if who == "chef_pin":
        login_pin(client, kitchen["chef"], Kitchen.PINS["chef"])
    elif who == "cook":
        login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    else:
        login_password(client, f"{who}@test.kitchen", f"{who}-password")
    assert client.get("/settings/displays").status_code == status
    created = client.post("/settings/displays", data={"name": "Walk-in door", "locale": "en"})
    assert created.status_code == (201 if status == 200 else 403)
    if status == 200:
        html = created.get_data(as_text=True)
        url = re.search(r'data-testid="display-url">(http://[^<]+)<', html).group(1)
        assert "<svg" in html and created.headers["Cache-Control"] == "no-store"
        token = url.rsplit("/", 1)[1]
        assert app.test_client().get(f"/display/{token}/live").status_code == 200


def test_another_sites_display_cannot_be_revoked(app, client, kitchen):
    with app.app_context():
        other = Site(name="Elsewhere", timezone="UTC")
        db.session.add(other)
        db.session.flush()
        _row, plain = create_display(db.session, other, "Theirs", "en",
                                     db.session.get(Staff, kitchen["admin"]))
        db.session.commit()
        theirs = _row.id
    login_password(client, "chef@test.kitchen", "chef-password")
    assert client.post(f"/settings/displays/{theirs}/revoke").status_code == 404
    assert "Theirs" not in client.get("/settings/displays").get_data(as_text=True)
    assert _live(app.test_client(), plain).status_code == 200


# --- open screens cannot starve the server ---------------------------------------------------

def test_more_screens_than_threads_never_starve_other_requests(app, kitchen):
    """Four waitress threads; 40 screens asking back to back, 30 idle connections and 10 that
    send half a request and stop: the PIN pad and /healthz still answer quickly, all along."""
    with app.app_context():
        plain = _display(kitchen)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    base = f"http://127.0.0.1:{server.effective_port}"
    threading.Thread(target=server.run, daemon=True).start()
    stop = threading.Event()
    answered = [0] * 40
    idle, screens = [], []
    try:
        def screen(n):
            http = requests.Session()
            tag = None
            while not stop.is_set():
                try:
                    r = http.get(f"{base}/display/{plain}/live", timeout=10,
                                 headers={"If-None-Match": tag} if tag else {})
                except requests.ConnectionError:
                    if stop.is_set():
                        return  # the server closing at the end
                    raise
                if r.status_code in (200, 304):
                    tag = r.headers["ETag"]
                    answered[n] += 1

        screens += [threading.Thread(target=screen, args=(n,), daemon=True) for n in range(40)]
        for t in screens:
            t.start()
        for n in range(40):
            s = socket.create_connection(("127.0.0.1", server.effective_port))
            if n % 4 == 0:  # a slow client: half a request, then nothing
                s.sendall(b"GET /display/" + plain.encode() + b"/live HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        time.sleep(0.5)
        worst = 0.0
        for _ in range(10):
            for path in ("/healthz", "/pin"):
                started = time.monotonic()
                assert requests.get(base + path, timeout=5).status_code == 200
                worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)
        assert worst < 1.0, worst  # about 10-50 ms here; a starved server takes until a timeout
        before = list(answered)
        time.sleep(0.3)
        assert all(b > a for a, b in zip(before, answered)), answered  # every screen still served
    finally:
        stop.set()
        for t in screens:
            t.join(5)
        for s in idle:
            s.close()
        server.close()


def test_a_failed_board_build_is_not_left_being_built():
    from app.displays.board import BoardCache
    cache, key = BoardCache(gap=0), (1, "en")
    assert cache.get(key, "v1.1", lambda memo: ("v1.1", b"{1}")).body == b"{1}"

    def broken(memo):
        raise RuntimeError("database gone")
    with pytest.raises(RuntimeError):
        cache.try_build(key, broken)
    with pytest.raises(RuntimeError):
        cache.get(key, "v2.1", broken)
    # Not left "being built"; the board before is still handed out meanwhile.
    assert not cache.building(key) and cache.peek(key).body == b"{1}"
    assert cache.get(key, "v2.1", lambda memo: ("v2.1", b"{2}")).body == b"{2}"
    assert cache.peek(key).tag == "v2.1" and cache.builds == 2


def test_the_overdue_checklists_are_kept_between_builds_until_a_submission(app, kitchen, freeze,
                                                                           monkeypatch):
    """Working out the day's slots is most of a board's cost: between builds it is reused
    until a run is submitted, the alerts change or the ETag's period rolls, never longer."""
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import open_run, record_answer, submit_run
    from app.checklists.schedules import slots_for_day
    from app.displays import board as boards
    from app.live import changes
    monkeypatch.setattr(changes, "REFRESH_SECONDS", 30)  # (the clock is frozen: no roll but ours)
    day = dt.date(2026, 11, 26)
    worked_out = []
    monkeypatch.setattr(boards, "_overdue", lambda *args, real=boards._overdue:
                        worked_out.append(1) or real(*args))
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        definition = current_definitions(db.session, site.id)[0]
        slot = slots_for_day(definition.schedules, day, site.timezone)[0]
        freeze(slot.deadline + dt.timedelta(minutes=5))  # overdue by five minutes
        memo = {}

        def overdue():
            _tag, body = boards.board_json(db.session, site.id, "en", memo)
            db.session.rollback()
            return [o["deadline"] for o in json.loads(body)["overdue"]]
        assert slot.deadline.isoformat() in overdue() and len(worked_out) == 1
        assert slot.deadline.isoformat() in overdue() and len(worked_out) == 1  # reused
        cook = db.session.get(Staff, kitchen["cook"])
        run = open_run(db.session, site, definition.key, slot, cook, None,
                       now=slot.deadline + dt.timedelta(minutes=5))
        for item in run.definition.items:
            value = {"passfail": "pass", "temperature": "3"}.get(item.kind)
            if value:
                record_answer(db.session, run, item, cook, None, value=value)
        submit_run(db.session, run, cook, None, now=slot.deadline + dt.timedelta(minutes=5))
        db.session.commit()
        assert slot.deadline.isoformat() not in overdue() and len(worked_out) == 2
        raise_alert(db.session, site_id=site.id, kind="offline", subject="here:memo")
        db.session.commit()
        overdue()
        assert len(worked_out) == 3  # the alerts changed
        freeze(slot.deadline + dt.timedelta(minutes=5, seconds=changes.REFRESH_SECONDS))
        overdue()
        assert len(worked_out) == 4  # the clock moved on a period


def test_an_alert_on_the_wall_names_the_rule_it_tells_of_as_the_site_keeps_it(app, client,
                                                                               kitchen):
    with app.app_context():
        plain = _display(kitchen)
        raise_alert(db.session, site_id=kitchen["site"], kind="temperature",
                    subject="unit:1:warm", tier="critical", detail={"title": "Warm"})
        raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="here:9")
        db.session.commit()
    board = _live(client, plain).get_json()
    rules = {a["kind"]: a["rule"] for a in board["alerts"]}
    assert rules == {"temperature": "R2 · Cold holding", "offline": None}
    chinese = app.test_client()
    with app.app_context():
        zh = _display(kitchen, name="Wok wall", locale="zh")
    zh_rules = {a["kind"]: a["rule"] for a in _live(chinese, zh).get_json()["alerts"]}
    assert zh_rules["temperature"] == "R2 · 冷食冷藏"
