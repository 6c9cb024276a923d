"""The demo as a newcomer meets it, in a real Chromium at 768 × 1024: days of real history on
every page and only the current slot due — then, within five minutes of the start, the
cold-dish fridge going critical on the tablet (English and Chinese)."""
from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from app.checklists.definitions import load_all
from app.demo import seed
from app.models import db, set_clock
from tests.browser.conftest import TABLET, _stop
from tests.browser.test_tablet import enter_pin, screenshot
from tests.factories import at_local, make_app, reset_schema
from tests.test_demo_history import feed_demo_start

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_kitchen(tmp_path):
    """The demo seeded on a fresh SQLite database at 18:40 today (dinner's 18:30 slot due),
    served by waitress with Brigade's clock pinned there."""
    import waitress
    today = dt.datetime.now(ZoneInfo("Europe/London")).date()
    now = at_local(today, "18:40")
    app = make_app(f"sqlite:///{tmp_path / 'brigade.db'}", tmp_path / "instance",
                   WTF_CSRF_ENABLED=True)
    reset_schema(app)
    with app.app_context():
        load_all(db.session)
        logins = {p["name"]: p for p in seed(db.session, "Europe/London", now=now)}
        db.session.commit()
        people = {s.name: s.id for s in db.session.query(__import__("app.models",
                                                                    fromlist=["Staff"]).Staff)}
    set_clock(lambda: now)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield {"app": app, "url": f"http://127.0.0.1:{server.effective_port}", "now": now,
           "logins": logins, "ids": people}
    set_clock(None)
    _stop(server, thread)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _page(browser, demo, lang):
    context = browser.new_context(viewport=TABLET, base_url=demo["url"],
                                  timezone_id="Europe/London",
                                  extra_http_headers={"Accept-Language": "zh-CN" if lang == "zh"
                                                      else "en-GB"})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.clock.install(time=demo["now"])
    return context, page


def _log_in(page, demo, name):
    page.goto("/pin")
    page.get_by_test_id(f"person-{demo['ids'][name]}").click()
    enter_pin(page, demo["logins"][name]["pin"])
    expect(page.get_by_test_id("who")).to_have_text(name)


@pytest.mark.parametrize("lang, cook, chef_words", [
    ("en", "Sam Okafor", {"resolved": "Resolved", "late": "late", "slot": "During dinner service"}),
    ("zh", "Li Wei", {"resolved": "已解决", "late": "迟交", "slot": "晚市供应中"})])
def test_the_demo_opens_on_a_real_past_and_only_the_current_slot_due(demo_kitchen, browser,
                                                                     artifacts, lang, cook,
                                                                     chef_words):
    demo = demo_kitchen
    context, page = _page(browser, demo, lang)
    try:
        _log_in(page, demo, cook)
        expect(page.locator(".due-entry.status-overdue")).to_have_count(0)
        expect(page.locator(".due-entry.status-due")).to_have_count(1)
        expect(page.get_by_test_id("slot-dinner_service-due")).to_contain_text(chef_words["slot"])
        expect(page.locator(".alert-tap")).to_have_count(0)  # no wall of red at the start
        expect(page.locator(".due-entry.status-submitted")).to_have_count(4)
        expect(page.locator(".timer.timer-running")).to_have_count(1)  # a cold dish out
        expect(page.get_by_test_id("timer-dish")).to_be_visible()
        screenshot(page, artifacts, f"demo-home-{lang}")

        page.get_by_test_id("switch-person").click()
        _log_in(page, demo, "Mei Chen")
        page.goto("/records")
        expect(page.get_by_test_id("to-verify").locator("tbody tr")).to_have_count(4)
        yesterday = (demo["now"] - dt.timedelta(days=1)).astimezone(
            ZoneInfo("Europe/London")).date().isoformat()
        page.goto(f"/records?day={yesterday}")
        expect(page.locator("main table.records").last.locator("tbody tr")).to_have_count(7)
        screenshot(page, artifacts, f"demo-records-{lang}")
        page.goto("/alerts")
        rows = page.get_by_test_id("alert-list").locator("tbody tr")
        expect(rows).to_have_count(3)  # the excursion and the two late runs, all resolved
        expect(page.locator(".status-pill-resolved")).to_have_count(3)
        screenshot(page, artifacts, f"demo-alerts-{lang}")
        page.locator("tr", has_text="Prep fridge").locator("a").first.click()
        expect(page.get_by_test_id("acknowledgement")).to_be_visible()
        expect(page.get_by_test_id("resolved")).to_be_visible()
        expect(page.get_by_test_id("readings")).to_be_visible()
        screenshot(page, artifacts, f"demo-excursion-{lang}")
    finally:
        context.close()


@pytest.mark.parametrize("lang, cook, words", [("en", "Sam Okafor", "Cold-dish fridge too warm"),
                                               ("zh", "Li Wei", "Cold-dish fridge")])
def test_the_cold_dish_fridge_goes_critical_within_five_minutes(demo_kitchen, browser, artifacts,
                                                                lang, cook, words):
    demo = demo_kitchen
    with demo["app"].app_context():
        opened = feed_demo_start(demo["now"], 5)
        first = min(t for t, a in opened if a.state.tier == "critical")
    moment = demo["now"] + dt.timedelta(seconds=first)
    set_clock(lambda: moment)
    context, page = _page(browser, {**demo, "now": moment}, lang)
    try:
        _log_in(page, demo, cook)
        banner = page.locator(".alert-tap.alert-critical")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text(words)
        screenshot(page, artifacts, f"demo-critical-{lang}")
    finally:
        context.close()
    print(f"\n  demo: the cold-dish fridge went critical {first / 60:.1f} minutes after the start")
    assert first <= 5 * 60
