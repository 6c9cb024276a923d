"""Temperature items on the tablet: the on-screen keypad, the sensor's reading in one tap, and
keypad taps that count from the first moment a page shows (English and Chinese)."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Answer, db
from tests.browser.conftest import TABLET
from tests.browser.test_tablet import (PASSFAIL, assert_layout, screenshot, start_before_lunch,
                                       tap)
from tests.test_temperature_entry import cold_dish_fridge

pytestmark = pytest.mark.browser


class Taps:
    """Counts every touch of the screen a cook makes (a tap, or a key of the system keyboard)."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def click(self, locator):
        self.count += 1
        locator.click()

    def type(self, locator, text: str):
        """Tap the field, then one key per character on the system keyboard."""
        self.click(locator)
        for ch in text:
            self.count += 1
            self.page.keyboard.type(ch)


def _fridge(live, seconds_ago: int = 40):
    with live.app.app_context():
        cold_dish_fridge(live.ids["site"], live.now - dt.timedelta(seconds=seconds_ago), 3.4)


def _log_in(page, live, who, taps: Taps) -> None:
    page.goto("/pin")
    taps.click(page.get_by_test_id(f"person-{live.ids[who]}"))
    for digit in live.pins[who]:
        taps.click(page.locator(f'.keypad .key[data-key="{digit}"]'))
    taps.click(page.get_by_test_id("pin-ok"))
    expect(page.get_by_test_id("who")).to_be_visible()


def _answers(live):
    with live.app.app_context():
        return [(a.item.key, a.value, a.source) for a in
                db.session.execute(select(Answer).order_by(Answer.id)).scalars()]


@pytest.mark.parametrize("who, lang", [("cook", "en"), ("cook2", "zh")])
def test_the_keypad_and_the_sensor_reading_record_a_temperature(live, tablet, artifacts, who, lang):
    _fridge(live)
    page = tablet(live, TABLET)
    _log_in(page, live, who, Taps(page))
    start_before_lunch_any(page)
    item = page.get_by_test_id("item-cold_unit_temp")
    keypad = page.get_by_test_id("cold_unit_temp-keypad")
    sensor = page.get_by_test_id("cold_unit_temp-use-sensor")
    expect(sensor).to_contain_text({"en": "Use the sensor: 3.4 °C",
                                    "zh": "使用传感器读数：3.4 °C"}[lang])
    expect(page.get_by_test_id("cold_unit_temp-sensor-age")).to_have_text(re.compile(
        {"en": r"Cold-dish fridge · read 4\d s ago", "zh": r"Cold-dish fridge · 4\d 秒 前读取"}[lang]))
    # The system keyboard stays away: the keypad is the keyboard.
    expect(page.get_by_test_id("cold_unit_temp-value")).to_have_attribute("inputmode", "none")
    for key in ("-", "1", ".", ".", "5"):  # a second point is ignored
        keypad.locator(f'.key[data-key="{key}"]').click()
    expect(page.get_by_test_id("cold_unit_temp-value")).to_have_value("-1.5")
    for box in keypad.locator(".key").all():
        size = box.bounding_box()
        assert size["width"] >= 48 and size["height"] >= 48, size
    screenshot(page, artifacts, f"temperature-keypad-{lang}", centre=item)
    page.get_by_test_id("cold_unit_temp-save").click()  # OK saves
    expect(item).to_have_attribute("data-outcome", "pass")
    # Seven degrees is a fail, and needs its corrective action.
    for key in ("clear", "clear", "clear", "clear", "7"):
        page.get_by_test_id("cold_unit_temp-keypad").locator(f'.key[data-key="{key}"]').click()
    expect(page.get_by_test_id("cold_unit_temp-value")).to_have_value("7")
    page.get_by_test_id("cold_unit_temp-save").click()
    expect(item).to_have_attribute("data-outcome", "fail")
    expect(item.locator(".fix-needed")).to_be_visible()
    page.get_by_test_id("cold_unit_temp-use-sensor").click()
    expect(item).to_have_attribute("data-outcome", "pass")
    expect(page.get_by_test_id("cold_unit_temp-saved")).to_contain_text(
        {"en": "read from the sensor", "zh": "取自传感器"}[lang])
    expect(page.get_by_test_id("cold_unit_temp-use-sensor")).to_have_class(
        re.compile(r"\bchosen\b"))
    assert_layout(page, f"run page with the keypad ({lang})")
    screenshot(page, artifacts, f"temperature-sensor-{lang}", centre=item)
    assert _answers(live) == [("cold_unit_temp", "-1.5", None), ("cold_unit_temp", "7", None),
                              ("cold_unit_temp", "3.4", "sensor")]


def start_before_lunch_any(page) -> int:
    """Start the before-lunch run in either language (the slot's test id, not its words)."""
    page.get_by_test_id("start-before_lunch").click()
    page.wait_for_url("**/runs/*")
    return int(page.url.rsplit("/", 1)[1])


def test_a_stale_sensor_is_not_offered(live, tablet):
    _fridge(live, seconds_ago=6 * 60)  # past the fridge's five silent minutes
    page = tablet(live, TABLET)
    _log_in(page, live, "cook", Taps(page))
    start_before_lunch(page)
    expect(page.get_by_test_id("cold_unit_temp-keypad")).to_be_visible()
    expect(page.get_by_test_id("cold_unit_temp-use-sensor")).to_have_count(0)


def test_an_offered_reading_ages_on_screen_and_goes_once_it_is_stale(live, tablet):
    """Read 4 min 40 s ago: offered, its age kept current; 20 s later it is stale (the fridge
    allows five silent minutes) and the page stops offering it without a reload."""
    _fridge(live, seconds_ago=4 * 60 + 40)
    page = tablet(live, TABLET)
    _log_in(page, live, "cook", Taps(page))
    start_before_lunch(page)
    offer = page.get_by_test_id("cold_unit_temp-use-sensor")
    expect(offer).to_be_visible()
    expect(page.get_by_test_id("cold_unit_temp-sensor-age")).to_have_text(
        "Cold-dish fridge · read 4 min ago")
    page.clock.fast_forward(25_000)
    expect(offer).to_be_hidden()
    expect(page.get_by_test_id("cold_unit_temp-keypad")).to_be_visible()


def test_keypad_taps_count_from_the_first_moment_the_keys_show(live, tablet):
    """A PIN tapped while the page's deferred scripts are still loading is not lost (a test once
    got '357' for '1357': the first tap came before the handlers were attached)."""
    page = tablet(live, TABLET)
    held = []
    page.route("**/vendor/htmx.min.js", lambda route: held.append(route))
    page.goto(f"/pin/{live.ids['chef']}", wait_until="commit")
    for digit in live.pins["chef"]:
        page.locator(f'.keypad .key[data-key="{digit}"]').click()
    expect(page.get_by_test_id("pin-input")).to_have_value(live.pins["chef"])
    assert held, "htmx was still loading while the PIN was tapped"
    assert page.evaluate("document.readyState") != "complete"
    for route in held:
        route.continue_()
    page.get_by_test_id("pin-ok").click()
    expect(page.get_by_test_id("who")).to_have_text("Chef Mei")


@pytest.mark.parametrize("how", ["sensor", "keypad", "system keyboard"])
def test_the_taps_of_an_all_pass_serving_hygiene_checklist(live, tablet, how, capsys):
    """From the PIN pad to 'submitted': printed, and held to what each way of entering the
    temperature costs (21 when it was typed on the system keyboard)."""
    _fridge(live)
    page = tablet(live, TABLET)
    taps = Taps(page)
    _log_in(page, live, "cook", taps)
    taps.click(page.get_by_test_id("start-before_lunch"))
    page.wait_for_url("**/runs/*")
    for key in PASSFAIL:
        taps.click(page.get_by_test_id(f"{key}-pass"))
        expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", "pass")
    if how == "sensor":
        taps.click(page.get_by_test_id("cold_unit_temp-use-sensor"))
    elif how == "keypad":
        for key in "3.5":
            taps.click(page.get_by_test_id("cold_unit_temp-keypad").locator(f'.key[data-key="{key}"]'))
        taps.click(page.get_by_test_id("cold_unit_temp-save"))
    else:
        field = page.get_by_test_id("cold_unit_temp-value")
        field.evaluate("el => el.setAttribute('inputmode', 'decimal')")
        taps.type(field, "3.5")
        taps.click(page.get_by_test_id("cold_unit_temp-save"))
    expect(page.get_by_test_id("item-cold_unit_temp")).to_have_attribute("data-outcome", "pass")
    taps.click(page.get_by_test_id("submit-run"))
    expect(page.get_by_test_id("slot-before_lunch-submitted")).to_be_visible()
    with capsys.disabled():
        print(f"\n  taps from the PIN pad to submitted, all pass, temperature by {how}: {taps.count}")
    assert taps.count == {"sensor": 17, "keypad": 20, "system keyboard": 21}[how]
