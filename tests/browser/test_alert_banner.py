"""The tablet's alert banner in a real headless Chromium: red, amber, live, and acknowledged by a tap."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.alerts.operations import acknowledge, raise_alert
from app.models import Alert, AlertEvent, Notification, Staff, db
from tests.browser.conftest import LAPTOP, TABLET
from tests.browser.test_tablet import assert_layout, assert_only_local_requests, log_in, screenshot

pytestmark = pytest.mark.browser



def _rgb(locator, prop: str) -> tuple[int, ...]:
    value = locator.evaluate(f"el => getComputedStyle(el).{prop}")
    return tuple(int(n) for n in re.findall(r"\d+", value)[:3])


def _is_red(rgb) -> bool:  # the critical pulse moves between two reds
    return rgb[0] > 120 and rgb[1] < 60 and rgb[2] < 60


def _is_amber(rgb) -> bool:
    return rgb[0] > 200 and 120 < rgb[1] < 200 and rgb[2] < 60


def _raise(kitchen, subject: str, minutes_ago: int, **kwargs) -> int:
    with kitchen.app.app_context():
        alert = raise_alert(db.session, site_id=kitchen.ids["site"], subject=subject,
                            now=kitchen.now - dt.timedelta(minutes=minutes_ago), **kwargs)
        db.session.commit()
        return alert.id


def test_the_banner_shows_alerts_live_and_a_cook_acknowledges_one(live, tablet, artifacts):
    fridge = _raise(live, "unit:1:temperature", 12, kind="temperature", tier="critical",
                    detail={"unit": "Salad fridge", "direction": "critical", "value_c": 8.6,
                            "peak_c": 9.1, "limit_c": 8.0})
    noodles = _raise(live, "timer:1", 20, kind="timer_expired", detail={"dish": "Cold noodles"})
    with live.app.app_context():
        acknowledge(db.session, db.session.get(Alert, noodles),
                    db.session.get(Staff, live.ids["cook2"]), None, corrective_action="Discarded the dish", food_outcome="discarded",
                    now=live.now - dt.timedelta(minutes=5))
        db.session.commit()

    page = tablet(live, TABLET)
    polls = []
    page.on("request", lambda r: polls.append(r.headers) if "/alerts/banner" in r.url else None)
    log_in(page, live, "cook")
    red = page.get_by_test_id(f"banner-alert-{fridge}")
    amber = page.get_by_test_id(f"banner-alert-{noodles}")
    expect(red).to_contain_text("Salad fridge too warm")
    expect(red).to_have_attribute("data-status", "open")
    expect(amber).to_contain_text("Acknowledged by Cook Li")
    assert _is_red(_rgb(red, "backgroundColor")), _rgb(red, "backgroundColor")
    assert _is_amber(_rgb(amber, "borderColor")), _rgb(amber, "borderColor")
    assert red.bounding_box()["height"] >= 64 and red.bounding_box()["width"] >= 600
    assert_layout(page, "home with alerts")
    screenshot(page, artifacts, "tablet-alert-banner-768x1024")

    # A new alert shows without anyone touching the tablet; the poll is marked as a poll.
    probe = _raise(live, "unit:2:temperature", 0, kind="temperature",
                   detail={"unit": "Fish drawer", "direction": "high", "value_c": 6.1})
    page.clock.run_for(11_000)
    expect(page.get_by_test_id(f"banner-alert-{probe}")).to_contain_text("Fish drawer too warm")
    assert polls and all(headers.get("x-brigade-poll") == "1" for headers in polls)

    red.click()
    expect(page).to_have_url(f"{live.url}/alerts/{fridge}/ack")
    assert_layout(page, "acknowledge page")
    page.get_by_test_id("ack-action-1").click()  # "Moved the food to another fridge"
    page.get_by_test_id("ack-submit").click()
    expect(page.get_by_test_id("ack-error")).to_contain_text("what happened to the food")
    expect(page.get_by_test_id("ack-action-1").locator("input")).to_be_checked()
    page.get_by_test_id("ack-food-moved").click()
    expect(page.get_by_test_id("ack-food-moved").locator("input")).to_be_checked()
    page.get_by_test_id("ack-action-text").fill("walk-in, top shelf")
    screenshot(page, artifacts, "tablet-alert-ack-768x1024")
    page.get_by_test_id("ack-submit").click()

    expect(page).to_have_url(live.url + "/")
    expect(page.get_by_role("status")).to_contain_text("Alert acknowledged")
    expect(page.get_by_test_id(f"banner-alert-{fridge}")).to_have_attribute("data-status", "acknowledged")
    with live.app.app_context():
        event = db.session.execute(select(AlertEvent).where(AlertEvent.alert_id == fridge,
                                                            AlertEvent.kind == "acknowledged")).scalar_one()
        assert event.actor_id == live.ids["cook"] and event.device_id
        assert event.data["corrective_action"] == "Moved the food to another fridge; walk-in, top shelf"
        assert event.data["food_outcome"] == "moved"
    assert_only_local_requests(page)


def test_the_head_chef_sees_the_timeline_and_cannot_resolve_too_early(live, tablet, artifacts):
    alert_id = _raise(live, "timer:7", 30, kind="timer_expired", detail={"dish": "Prawn salad"})
    with live.app.app_context():
        alert = db.session.get(Alert, alert_id)
        db.session.add(Notification(alert=alert, channel="webhook", target="http://127.0.0.1:9/hook",
                                    status="failed", attempts=5, created_at=alert.opened_at,
                                    last_error="connection refused"))
        acknowledge(db.session, alert, db.session.get(Staff, live.ids["cook"]), None,
                    corrective_action="Discarded the dish", food_outcome="discarded",
                    now=live.now - dt.timedelta(minutes=10))
        db.session.commit()
    page = tablet(live, LAPTOP)
    log_in(page, live, "chef")
    page.get_by_role("link", name="Alerts").click()
    expect(page.get_by_test_id(f"alert-row-{alert_id}")).to_contain_text("Hold timer expired")
    assert_layout(page, "alert list", targets=False)
    page.get_by_test_id(f"alert-row-{alert_id}").get_by_role("link").click()
    expect(page.get_by_test_id("timeline")).to_contain_text("connection refused")
    page.get_by_test_id("resolve").click()
    expect(page.get_by_test_id("resolve-error")).to_contain_text("Not back to normal yet")
    expect(page.get_by_test_id("alert-status")).to_have_text("Acknowledged")
    assert_layout(page, "alert page", targets=False)
    screenshot(page, artifacts, "alert-page-1280x800")
