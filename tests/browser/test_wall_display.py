"""The wall display in a real headless Chromium, fed by readings published over a real Mosquitto.

A reading turns a tile critical and its alert appears; a cut channel shows stale; restoring it
recovers by itself with nothing missed; a revoked token loses the page. Screenshots at
1920×1080, 1366×768 and 1280×720 in English and Chinese land in test-artifacts/.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playwright.sync_api import expect

from app.alerts.operations import raise_alert
from app.displays.tokens import create_display, revoke_display
from app.ingest import make_ingestor
from app.models import DisplayToken, Site, Staff, db, set_clock, utcnow
from app.models.units import Unit
from app.timers.operations import start_timer
from sensors.models import Sensor
from sensors.mqtt import MqttSettings
from sensors.store import Message, store_batch
from tests.browser.test_tablet import assert_only_local_requests

pytestmark = pytest.mark.browser

SIZES = [(1920, 1080), (1366, 768), (1280, 720)]
UNIT_NAMES = ["Salad fridge", "Cold-dish fridge", "Prep fridge", "Fish drawer", "Dessert fridge",
              "Walk-in cooler", "Freezer", "Ice-cream freezer", "Cold well", "Sushi case",
              "Dairy fridge", "Drinks fridge", "Meat fridge", "Bar fridge"]


def _unit(site_id: int, name: str, key: str, **limits) -> int:
    settings = dict(target_max_c=5.0, critical_max_c=8.0, alert_delay_s=600, critical_delay_s=0,
                    expected_interval_s=60, offline_after=5)
    settings.update(limits)
    unit = Unit(site_id=site_id, name=name, kind="fridge", **settings)
    db.session.add(unit)
    db.session.flush()
    db.session.add(Sensor(key=key, unit_id=unit.id))
    db.session.commit()
    return unit.id


def _readings(key: str, values: list[float], end: dt.datetime, step: int = 60) -> None:
    start = end - dt.timedelta(seconds=step * (len(values) - 1))
    store_batch(db.session, [Message(f"{key}/reading", json.dumps(
        {"t": v, "ts": (start + dt.timedelta(seconds=step * n)).isoformat()}).encode(),
        start + dt.timedelta(seconds=step * n)) for n, v in enumerate(values)])
    db.session.commit()


def _display(kitchen, locale: str) -> tuple[int, str]:
    with kitchen.app.app_context():
        row, plain = create_display(db.session, db.session.get(Site, kitchen.ids["site"]),
                                    "Pass wall", locale,
                                    db.session.get(Staff, kitchen.ids["chef"]))
        db.session.commit()
        return row.id, plain


def _screen(browser, kitchen, size, locale="en-GB"):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale=locale,
                                  timezone_id="Europe/London", base_url=kitchen.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.requests, page.refused = [], []
    context.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda m: "Content Security Policy" in m.text and page.refused.append(m.text))
    return context, page


@pytest.fixture
def wall(serve_kitchen, mosquitto_port):
    """The served kitchen on the real clock, with MQTT ingest on the session's Mosquitto."""
    kitchen = serve_kitchen()
    set_clock(None)  # readings arrive now: the board's ages and states run on the real clock
    worker = make_ingestor(kitchen.app, MqttSettings(port=mosquitto_port, flush_ms=20,
                                                     client_id=f"wall-{time.time_ns()}"))
    worker.start()
    assert worker.connected.wait(10)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wall-pub-{time.time_ns()}")
    publisher.connect("127.0.0.1", mosquitto_port)
    publisher.loop_start()

    def publish(key: str, value: float) -> float:
        at = utcnow()
        info = publisher.publish(f"{key}/reading", json.dumps({"t": value, "ts": at.isoformat()}),
                                 qos=1)
        info.wait_for_publish(5)
        return time.monotonic()
    kitchen.publish = publish
    yield kitchen
    publisher.loop_stop()
    publisher.disconnect()
    worker.stop()


def test_a_reading_over_mqtt_turns_a_tile_critical_and_the_board_survives_a_cut(wall, browser,
                                                                                 artifacts):
    with wall.app.app_context():
        salad = _unit(wall.ids["site"], "Salad fridge", "brigade/salad")
        prep = _unit(wall.ids["site"], "Prep fridge", "brigade/prep")
        _readings("brigade/prep", [3.8, 3.9, 4.0], utcnow())
    display_id, token = _display(wall, "en")
    context, page = _screen(browser, wall, (1366, 768))
    page.goto(f"/display/{token}")
    tile = page.get_by_test_id(f"tile-{salad}")
    expect(page.get_by_test_id("wall-conn")).to_have_attribute("data-state", "live")
    expect(page.locator("body")).to_have_attribute("data-via", "socket")  # changes are pushed
    expect(tile).to_have_attribute("data-stale", "1")  # no reading yet: never a number
    expect(tile).to_contain_text("no reading yet")

    wall.publish("brigade/salad", 4.1)
    expect(tile).to_have_attribute("data-state", "ok")
    expect(tile.locator(".tile-value")).to_contain_text("4.1")
    expect(tile).to_have_attribute("data-stale", "0")

    published = wall.publish("brigade/salad", 9.6)  # past the critical limit (8 °C), no delay
    expect(tile).to_have_attribute("data-state", "critical")
    alert = page.locator('[data-testid^="wall-alert-"]')
    expect(alert).to_contain_text("Salad fridge too warm")
    seen = time.monotonic() - published
    expect(alert).to_contain_text("Acknowledge it on the tablet")
    assert seen < 3, f"the alert took {seen:.1f} s to reach the screen"
    page.screenshot(path=str(artifacts / "wall-critical-1366x768.png"))

    # The Wi-Fi drops, and the server restarts meanwhile: within seconds the screen says so
    # and no tile shows a number as current.
    context.set_offline(True)
    wall.stop_socket()
    expect(page.get_by_test_id("wall-conn")).to_have_attribute("data-state", "down", timeout=10_000)
    expect(page.get_by_test_id("wall-conn")).to_contain_text("not connected for")
    expect(tile).to_have_attribute("data-stale", "1")
    expect(tile.locator(".tile-value")).to_have_count(0)
    expect(tile).to_contain_text("last 9.6")
    expect(page.get_by_test_id(f"tile-{prep}")).to_have_attribute("data-stale", "1")
    page.screenshot(path=str(artifacts / "wall-disconnected-1366x768.png"))
    # Meanwhile the fridge recovers, a cook starts a hold timer and another alert opens.
    wall.publish("brigade/salad", 4.3)
    with wall.app.app_context():
        start_timer(db.session, db.session.get(Site, wall.ids["site"]),
                    db.session.get(Staff, wall.ids["cook"]), None, "cold_out", "Cold noodles")
        raise_alert(db.session, site_id=wall.ids["site"], kind="offline",
                    subject=f"unit:{prep}:offline", unit_id=prep,
                    detail={"unit": "Prep fridge"})
        db.session.commit()
    time.sleep(1)

    # Back online: it recovers by itself with everything that happened meanwhile, and holds
    # the socket again.
    wall.start_socket()
    context.set_offline(False)
    expect(page.get_by_test_id("wall-conn")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(page.locator("body")).to_have_attribute("data-via", "socket", timeout=20_000)
    expect(tile).to_have_attribute("data-stale", "0")
    expect(tile.locator(".tile-value")).to_contain_text("4.3")
    expect(page.locator('[data-testid^="wall-timer-"]')).to_contain_text("Cold noodles")
    expect(page.get_by_test_id("wall-alerts")).to_contain_text("Prep fridge: no readings")
    expect(page.get_by_test_id("wall-alerts")).to_contain_text("Salad fridge too warm")

    # Switched off in the settings: the open page loses the board within seconds.
    with wall.app.app_context():
        revoke_display(db.session, db.session.get(DisplayToken, display_id), utcnow())
        db.session.commit()
    started = time.monotonic()
    expect(page.get_by_test_id("display-gone")).to_contain_text("switched off", timeout=5_000)
    assert time.monotonic() - started < 3
    expect(page.get_by_test_id("wall-tiles")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("display-gone")).to_be_visible()
    assert page.refused == [], page.refused
    assert_only_local_requests(page)
    context.close()


def _busy_kitchen(kitchen, count: int) -> dict[str, int]:
    """``count`` units: most steady, one warming, one critical, one defrosting, one silent."""
    ids = {}
    now = utcnow()
    with kitchen.app.app_context():
        site = kitchen.ids["site"]
        for n, name in enumerate(UNIT_NAMES[:count]):
            key = f"brigade/u{n}"
            freezer = "reezer" in name
            limits = dict(target_max_c=-18.0, critical_max_c=-15.0) if freezer else {}
            if name == "Freezer":
                start = (now - dt.timedelta(minutes=5)).astimezone(
                    dt.timezone(dt.timedelta(0))).strftime("%H:%M")
                limits["defrost"] = [{"start": start, "minutes": 30}]
            ids[name] = _unit(site, name, key, **limits)
            base = -20.5 if freezer else 3.2 + (n % 4) * 0.3
            values = [base + 0.1 * (i % 3) for i in range(12)]
            end = now
            if name == "Cold-dish fridge":
                values = [4.0 + 0.2 * i for i in range(12)]  # warming: 6.2 °C, out of target
            if name == "Salad fridge":
                values = [4.0] * 8 + [7.0, 8.5, 9.2, 9.6]
            if name == "Freezer":
                values = [-20.0 + 0.4 * i for i in range(12)]  # warming, not past -15 °C
            if name == "Prep fridge":
                end = now - dt.timedelta(minutes=7)  # gone quiet
            _readings(key, values, end)
        from app.alerts.engine import sweep_units
        sweep_units(db.session)
        start_timer(db.session, db.session.get(Site, site), db.session.get(Staff, kitchen.ids["cook"]),
                    None, "plated", "Prawn salad", now=now - dt.timedelta(minutes=50))
        db.session.commit()
    return ids


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_twelve_units_fit_every_screen_size_without_scrolling(serve_kitchen, browser, artifacts,
                                                              locale):
    kitchen = serve_kitchen()
    set_clock(None)
    ids = _busy_kitchen(kitchen, 12)
    _id, token = _display(kitchen, locale)
    for width, height in SIZES:
        context, page = _screen(browser, kitchen, (width, height))
        page.goto(f"/display/{token}")
        expect(page.get_by_test_id(f"tile-{ids['Salad fridge']}")).to_have_attribute("data-state", "critical")
        expect(page.get_by_test_id(f"tile-{ids['Prep fridge']}")).to_have_attribute("data-stale", "1")
        expect(page.get_by_test_id(f"tile-{ids['Freezer']}")).to_have_attribute("data-state", "defrost")
        expect(page.locator('[data-testid^="wall-alert-"]').first).to_be_visible()
        geometry = page.evaluate("""() => {
            const tiles = [...document.querySelectorAll('.tile')].map(t => t.getBoundingClientRect());
            const values = [...document.querySelectorAll('.tile-value')].map(
                v => parseFloat(getComputedStyle(v).fontSize));
            return {scrollH: document.documentElement.scrollHeight, scrollW: document.documentElement.scrollWidth,
                    innerH: innerHeight, innerW: innerWidth, tiles: tiles.length,
                    bottom: Math.max(...tiles.map(r => r.bottom)), right: Math.max(...tiles.map(r => r.right)),
                    smallestValue: Math.min(...values),
                    clock: document.querySelector('.wall-clock').textContent}; }""")
        where = f"{width}x{height} {locale}: {geometry}"
        assert geometry["tiles"] == 12, where
        assert geometry["scrollH"] <= height and geometry["scrollW"] <= width, where
        assert geometry["bottom"] <= height and geometry["right"] <= width, where
        # Legible from 3 m: the temperatures are at least 40 px tall even at 1280×720.
        assert geometry["smallestValue"] >= 40, where
        assert ":" in geometry["clock"], where
        stale = page.get_by_test_id(f"tile-{ids['Prep fridge']}")
        expect(stale).to_contain_text("无读数" if locale == "zh" else "no reading for")
        page.screenshot(path=str(artifacts / f"wall-{locale}-{width}x{height}.png"))
        assert page.refused == [], page.refused
        assert_only_local_requests(page)
        context.close()


def test_more_units_than_fit_page_through_by_themselves(serve_kitchen, browser, artifacts):
    kitchen = serve_kitchen()
    set_clock(None)
    ids = _busy_kitchen(kitchen, 14)
    _id, token = _display(kitchen, "en")
    context, page = _screen(browser, kitchen, (1280, 720))
    page.clock.install()
    page.goto(f"/display/{token}")
    expect(page.get_by_test_id("wall-page")).to_have_text("page 1 of 2")
    expect(page.locator(".tile")).to_have_count(12)
    page.clock.run_for(10_500)
    expect(page.get_by_test_id("wall-page")).to_have_text("page 2 of 2")
    expect(page.locator(".tile")).to_have_count(2)
    expect(page.get_by_test_id(f"tile-{ids['Salad fridge']}")).to_have_count(0)
    # Against burn-in the board moves a little every two minutes.
    frame = page.locator("#wall-frame")
    shift = lambda: [int(n) for n in re.findall(r"-?\d+", frame.evaluate("el => el.style.transform"))]  # noqa: E731
    assert shift() == []
    page.clock.run_for(120_500)
    first = shift()
    page.clock.run_for(120_000)
    second = shift()
    assert first and second and first != second, (first, second)
    assert all(abs(n) <= 8 for n in first + second)  # a few pixels: nothing leaves the screen
    page.screenshot(path=str(artifacts / "wall-page-2-1280x720.png"))
    context.close()


@pytest.mark.parametrize("via", ["socket", "poll"])
def test_the_tablet_banner_follows_the_live_channel(serve_kitchen, browser, artifacts, via,
                                                    monkeypatch):
    """The banner refreshes when the site changes — within a second or two, not every 10 s —
    and only then: pushed over the live socket where there is one (then the page stops asking
    over HTTP), else asked for every half second, marked as a poll so it keeps no tablet awake."""
    from app.live import changes
    from tests.browser.test_tablet import log_in
    monkeypatch.setattr(changes, "REFRESH_SECONDS", 10**9)  # the 30 s roll is no change here
    kitchen = serve_kitchen(live_socket=via == "socket")
    set_clock(None)
    context, page = _screen(browser, kitchen, (768, 1024))
    banner_requests, live_requests, sockets = [], [], []
    page.on("request", lambda r: (banner_requests if "/alerts/banner" in r.url else
                                  live_requests if r.url.endswith("/live") else []).append(r))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    log_in(page, kitchen, "cook")
    page.wait_for_timeout(2000)  # (events reach Python only while it waits on the page)
    assert banner_requests == []  # nothing changed
    if via == "socket":
        assert sockets and all(url.endswith("/live") for url in sockets), sockets
        assert len(live_requests) <= len(sockets)  # a first question each, before it opened
    else:
        assert sockets == [] and len(live_requests) >= 2
    assert all(r.headers.get("x-brigade-poll") == "1" for r in live_requests)
    asked = len(live_requests)
    with kitchen.app.app_context():
        alert = raise_alert(db.session, site_id=kitchen.ids["site"], kind="offline",
                            subject="unit:9:offline", detail={"unit": "Fish drawer"})
        db.session.commit()
        alert_id = alert.id
    raised = time.monotonic()
    expect(page.get_by_test_id(f"banner-alert-{alert_id}")).to_contain_text("Fish drawer", timeout=3_000)
    assert time.monotonic() - raised < 2.0
    assert len(banner_requests) == 1 and banner_requests[0].headers.get("x-brigade-poll") == "1"
    if via == "socket":
        assert len(live_requests) == asked  # the change was pushed, not asked for
    assert page.refused == [], page.refused
    context.close()
