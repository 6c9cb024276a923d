"""Every tappable thing on the pages a tablet shows is at least 48 × 48 px, in English and in
Chinese (Chinese text is shorter: a link sized by its words was 21 px high), measured in a real
Chromium at 768 × 1024 — the PIN pad, home with its alert banner, a run with a refused submit's
banner and a rule opened, and the head chef's Records and run record — and a rule code opens the
rule in the cook's language."""
from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from app.alerts.operations import raise_alert
from app.models import Staff, db
from tests.browser.conftest import TABLET
from tests.browser.test_tablet import enter_pin, screenshot

pytestmark = pytest.mark.browser

MIN_PX = 48

#: Every link, button, field and expander that can be seen, with its size; no exemptions (a
#: link in a sentence is tapped by a finger as much as any button). A visually hidden file
#: input is operated through its label.
TARGETS_JS = """
async (minPx) => {
  await document.fonts.ready;
  const out = [];
  for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary')) {
    if (el.type === 'hidden') continue;
    const target = el.classList.contains('visually-hidden') ? el.closest('label') : el;
    if (!target || !target.checkVisibility({visibilityProperty: true})) continue;
    const r = target.getBoundingClientRect();
    out.push({what: target.tagName.toLowerCase() + ' "' + (target.innerText || target.value
              || target.getAttribute('aria-label') || '').trim().replace(/\\s+/g, ' ').slice(0, 40) + '"',
              w: Math.round(r.width), h: Math.round(r.height)});
  }
  return {targets: out, scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth};
}
"""


def measure(page, where: str, seen: dict) -> None:
    page.wait_for_load_state("load")
    found = page.evaluate(TARGETS_JS, MIN_PX)
    small = [f"{t['what']} is {t['w']}x{t['h']}" for t in found["targets"]
             if t["w"] < MIN_PX - 0.5 or t["h"] < MIN_PX - 0.5]
    seen[where] = len(found["targets"])
    assert found["scrollWidth"] <= found["innerWidth"], f"{where}: scrolls sideways"
    assert small == [], f"{where}: tap targets under {MIN_PX} px: {small}"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_tap_target_on_the_tablets_pages_is_48_px(live, browser, artifacts, lang):
    with live.app.app_context():
        for person in db.session.query(Staff):
            person.locale = lang
        raise_alert(db.session, site_id=live.ids["site"], subject="unit:1:temperature",
                    kind="temperature", tier="critical",
                    now=live.now - dt.timedelta(minutes=12),
                    detail={"unit": "Salad fridge", "direction": "high", "value_c": 8.6,
                            "limit_c": 8.0})
        db.session.commit()
    context = browser.new_context(viewport=TABLET, locale="zh-CN" if lang == "zh" else "en-GB",
                                  timezone_id="Europe/London", base_url=live.url,
                                  extra_http_headers={"Accept-Language": "zh-CN" if lang == "zh"
                                                      else "en-GB"})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.clock.install(time=live.now)
    seen: dict[str, int] = {}
    try:
        page.goto("/pin")
        measure(page, "PIN pad", seen)
        page.get_by_test_id(f"person-{live.ids['cook']}").click()
        measure(page, "PIN keypad", seen)
        enter_pin(page, live.pins["cook"])
        expect(page.get_by_test_id("who")).to_be_visible()
        measure(page, "home with the alert banner", seen)

        page.get_by_test_id("start-before_lunch").click()
        page.wait_for_url("**/runs/*")
        run_id = int(page.url.rsplit("/", 1)[1])
        page.get_by_test_id("covered-fail").click()
        expect(page.get_by_test_id("item-covered")).to_have_attribute("data-outcome", "fail")
        page.get_by_test_id("submit-run").click()
        expect(page.get_by_test_id("refused")).to_be_visible()
        measure(page, "run with the refusal banner", seen)
        screenshot(page, artifacts, f"tap-targets-refused-{lang}", centre=page.get_by_test_id("refused"))

        # The rule behind an item, in the cook's language.
        rule = page.get_by_test_id("rule-cold_held_chilled")
        rule.locator("summary").click()
        text = page.get_by_test_id("rule-text-cold_held_chilled")
        expect(text).to_be_visible()
        expect(text).to_contain_text({"en": "Cold dishes are kept in the refrigerator until served",
                                      "zh": "冷食在供应前应放在冰箱里"}[lang])
        measure(page, "run with a rule open", seen)
        screenshot(page, artifacts, f"rule-text-{lang}", centre=rule)

        for key in ("covered",):
            page.get_by_test_id(f"{key}-fix-1").click()
        for key in ("cold_held_chilled", "plated_on_time", "spills_wiped", "utensils_used",
                    "tableware_handled", "no_reuse", "serving_tools_clean"):
            page.get_by_test_id(f"{key}-pass").click()
            expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", "pass")
        for key in "3.5":
            page.get_by_test_id("cold_unit_temp-keypad").locator(f'.key[data-key="{key}"]').click()
        page.get_by_test_id("cold_unit_temp-save").click()
        expect(page.get_by_test_id("item-cold_unit_temp")).to_have_attribute("data-outcome", "pass")
        measure(page, "run, every item answered", seen)
        page.get_by_test_id("submit-run").click()
        expect(page.get_by_test_id("slot-before_lunch-submitted")).to_be_visible()

        page.get_by_test_id("switch-person").click()
        page.get_by_test_id(f"person-{live.ids['chef']}").click()
        enter_pin(page, live.pins["chef"])
        expect(page.get_by_test_id("who")).to_be_visible()
        measure(page, "head chef's home", seen)
        page.goto("/records")
        measure(page, "Records", seen)
        screenshot(page, artifacts, f"tap-targets-records-{lang}")
        page.goto(f"/records/runs/{run_id}")
        page.locator("details summary").first.click()
        measure(page, "run record with Correct open", seen)
        screenshot(page, artifacts, f"tap-targets-record-{lang}")
    finally:
        context.close()
    assert all(seen.values()), seen
