"""The kitchen tablet end to end, in a real headless Chromium against the served app."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.audit import verify
from app.models import (Answer, AuditRecord, ChecklistItem, Device, HoldTimer, Run, Submission,
                        TimerOutcome, Verification, db)
from tests.browser.conftest import LAPTOP, TABLET

pytestmark = pytest.mark.browser

MIN_TARGET_PX = 48
PASSFAIL = ["covered", "cold_held_chilled", "plated_on_time", "spills_wiped", "utensils_used",
            "tableware_handled", "no_reuse", "serving_tools_clean"]

# Everything a finger can hit that is smaller than a gloved fingertip, and everything that
# sticks out past the right edge of the screen (body has overflow-x: hidden, which would
# hide such content rather than let the page scroll, so scrollWidth alone is not enough).
LAYOUT_PROBLEMS_JS = """
async (minPx) => {
  await document.fonts.ready;
  const small = [], tall = [], overflowing = [];
  const name = (el) => el.tagName.toLowerCase() + (el.dataset.testid ? `[${el.dataset.testid}]` : '')
      + ' "' + (el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 40) + '"';
  const isInlineTextLink = (el) => {
    if (el.tagName !== 'A' || getComputedStyle(el).display !== 'inline') return false;
    const block = el.parentElement.closest('p, li, td');
    return block && block.innerText.trim().length > el.innerText.trim().length;
  };
  for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary')) {
    if (el.type === 'hidden') continue;
    // A visually hidden file input is operated through the label that wraps it.
    const target = el.classList.contains('visually-hidden') ? el.closest('label') : el;
    if (!target || !target.checkVisibility({visibilityProperty: true})) continue;
    if (isInlineTextLink(target)) continue;
    const r = target.getBoundingClientRect();
    if (r.width < minPx - 0.5 || r.height < minPx - 0.5)
      small.push(`${name(target)} is ${Math.round(r.width)}x${Math.round(r.height)}`);
    if (el.tagName === 'INPUT' && target === el && r.height > 2 * minPx)
      tall.push(`${name(el)} is ${Math.round(r.height)} px high for one line`);
  }
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    return false;
  };
  for (const el of document.body.querySelectorAll('*')) {
    if (!el.checkVisibility()) continue;
    const r = el.getBoundingClientRect();
    if (r.right > window.innerWidth + 0.5 && !clipped(el))
      overflowing.push(`${name(el)} reaches x=${Math.round(r.right)}`);
  }
  return {small, tall, overflowing, scrollWidth: document.documentElement.scrollWidth,
          innerWidth: window.innerWidth};
}
"""


def assert_layout(page, where: str, targets: bool = True) -> None:
    """No horizontal scrolling or clipped content; every tap target at least 48x48 px."""
    page.wait_for_load_state("load")  # the stylesheet is in: a click's navigation may not be
    found = page.evaluate(LAYOUT_PROBLEMS_JS, MIN_TARGET_PX)
    assert found["scrollWidth"] <= found["innerWidth"], f"{where}: scrolls sideways: {found}"
    assert found["overflowing"] == [], f"{where}: content past the right edge: {found['overflowing']}"
    assert found["tall"] == [], f"{where}: stretched inputs: {found['tall']}"
    if targets:
        assert found["small"] == [], f"{where}: tap targets under {MIN_TARGET_PX} px: {found['small']}"


def assert_only_local_requests(page) -> None:
    hosts = {urlsplit(url).hostname for url in page.requests
             if urlsplit(url).scheme not in ("data", "blob", "about")}
    assert hosts == {"127.0.0.1"}, f"requests left the kitchen: {sorted(page.requests)}"


def enter_pin(page, pin: str) -> None:
    """Type the PIN on the on-screen keypad (not the keyboard) and press OK."""
    for digit in pin:
        page.locator(f'.keypad .key[data-key="{digit}"]').click()
    expect(page.get_by_test_id("pin-input")).to_have_value(pin)
    page.get_by_test_id("pin-ok").click()


def log_in(page, kitchen, who: str) -> None:
    page.goto("/pin")
    page.get_by_test_id(f"person-{kitchen.ids[who]}").click()
    enter_pin(page, kitchen.pins[who])
    expect(page.get_by_test_id("who")).to_be_visible()
    expect(page).to_have_url(kitchen.url + "/")


def tap(page, key: str, value: str) -> None:
    """One tap on a pass/fail/N/A button; waits until the server's answer is on screen."""
    page.get_by_test_id(f"{key}-{value}").click()
    expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", value)


def enter_value(page, key: str, value: str, outcome: str) -> None:
    page.get_by_test_id(f"{key}-value").fill(value)
    page.get_by_test_id(f"{key}-save").click()
    expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", outcome)


def start_before_lunch(page) -> int:
    expect(page.get_by_test_id("slot-before_lunch-due")).to_contain_text("Before lunch service")
    page.get_by_test_id("start-before_lunch").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def screenshot(page, artifacts, name: str, centre=None):
    """What the screen shows (centred on ``centre``), or the whole page when no element is given.

    The run page is shot as the screen shows it: a full-page shot would paint its sticky
    submit bar over the middle of the list.
    """
    path = artifacts / f"{name}.png"
    page.wait_for_load_state("load")
    if centre is not None:
        centre.evaluate("el => el.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(path), full_page=centre is None)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path} looks empty"
    return path


def items_by_key(kitchen, run_id: int) -> dict[str, ChecklistItem]:
    with kitchen.app.app_context():
        run = db.session.get(Run, run_id)
        return {i.key: i for i in run.definition.items}


def device_cookie(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "brigade_device")


@pytest.mark.parametrize("viewport", [TABLET, LAPTOP], ids=["768x1024", "1280x800"])
def test_cook_ticks_off_a_run_and_the_head_chef_signs_it_off(live, tablet, artifacts, viewport):
    page = tablet(live, viewport)
    size = f"{viewport['width']}x{viewport['height']}"

    page.goto("/")
    expect(page).to_have_url(live.url + "/pin")
    expect(page.get_by_role("heading", name="Who is working?")).to_be_visible()
    assert_layout(page, "PIN pad")
    page.get_by_test_id(f"person-{live.ids['cook']}").click()
    expect(page).to_have_url(f"{live.url}/pin/{live.ids['cook']}")
    assert_layout(page, "PIN keypad")
    screenshot(page, artifacts, f"tablet-pin-{size}")
    enter_pin(page, live.pins["cook"])
    expect(page.get_by_test_id("who")).to_have_text("Cook Sam")
    assert_layout(page, "home")

    run_id = start_before_lunch(page)
    items = items_by_key(live, run_id)
    for key in PASSFAIL:
        tap(page, key, "fail" if key == "utensils_used" else "pass")
    enter_value(page, "cold_unit_temp", "3.5", "pass")
    enter_value(page, "first_plated_at", "11:05", "recorded")

    page.get_by_test_id("submit-run").click()
    refused = page.get_by_test_id("refused")
    expect(refused).to_contain_text(items["utensils_used"].text_en)
    expect(refused.locator("li")).to_have_count(1)
    failed = page.get_by_test_id("item-utensils_used")
    expect(failed.locator(".fix-needed")).to_be_visible()
    action = items["utensils_used"].suggested_actions[0]["en"]
    page.get_by_test_id("utensils_used-fix-1").click()
    expect(failed.locator(".fix-done")).to_be_visible()
    expect(page.get_by_test_id("utensils_used-fix-1")).to_have_class(re.compile(r"\bchosen\b"))
    expect(refused).to_have_count(0)  # the refusal's summary goes once the fix is given
    assert_layout(page, "run page")
    screenshot(page, artifacts, f"tablet-run-{size}", centre=failed)

    page.get_by_test_id("submit-run").click()
    expect(page).to_have_url(live.url + "/")
    expect(page.get_by_role("status")).to_contain_text("Checklist submitted")
    expect(page.get_by_test_id("slot-before_lunch-submitted")).to_be_visible()
    assert_layout(page, "home after submitting")
    screenshot(page, artifacts, f"tablet-home-{size}")

    page.get_by_test_id("switch-person").click()
    expect(page).to_have_url(live.url + "/pin")
    page.get_by_test_id(f"person-{live.ids['chef']}").click()
    enter_pin(page, live.pins["chef"])
    expect(page.get_by_test_id("who")).to_have_text("Chef Mei")
    page.get_by_role("link", name="Records").click()
    expect(page).to_have_url(live.url + "/records")
    assert_layout(page, "records", targets=False)
    page.get_by_test_id(f"review-{run_id}").click()
    expect(page.locator(".history").get_by_text(f"corrective action: {action}")).to_be_visible()
    page.get_by_test_id("verify-run").click()
    expect(page.get_by_test_id("verified")).to_contain_text("Verified by Chef Mei")
    assert_layout(page, "run record", targets=False)
    assert_only_local_requests(page)

    tablet_id = device_cookie(page)
    with live.app.app_context():
        run = db.session.get(Run, run_id)
        answers = db.session.execute(select(Answer).where(Answer.run_id == run_id)
                                     .order_by(Answer.id)).scalars().all()
        by_item = {}
        for answer in answers:
            by_item.setdefault(answer.item.key, []).append(answer)
        # One tap, one record; the fix is a second record superseding the fail.
        assert {k: len(v) for k, v in by_item.items()} == {
            **{k: 1 for k in PASSFAIL}, "cold_unit_temp": 1, "first_plated_at": 1,
            "utensils_used": 2}
        fail, fixed = by_item["utensils_used"]
        assert (fail.outcome, fail.corrective_action) == ("fail", None)
        assert (fixed.outcome, fixed.corrective_action, fixed.supersedes_id) == (
            "fail", action, fail.id)
        assert by_item["cold_unit_temp"][0].temperature_c == 3.5
        assert by_item["first_plated_at"][0].value == "11:05"
        assert {(a.recorded_by_id, a.device_id) for a in answers} == {(live.ids["cook"], tablet_id)}
        assert all(a.recorded_at == live.now for a in answers)
        submission = db.session.execute(select(Submission)).scalar_one()
        assert (submission.run_id, submission.submitted_by_id, submission.device_id) == (
            run_id, live.ids["cook"], tablet_id)
        verification = db.session.execute(select(Verification)).scalar_one()
        assert (verification.run_id, verification.verified_by_id, verification.device_id) == (
            run_id, live.ids["chef"], tablet_id)
        assert run.device_id == tablet_id and db.session.get(Device, tablet_id) is not None
        count, problems = verify(db.session)
        assert problems == []
        changes = db.session.scalar(select(func.count()).select_from(AuditRecord)
                                    .where(AuditRecord.entity == "changes"))  # definitions loaded
        assert count == changes + 1 + len(answers) + 1 + 1  # opened, answers, submitted, verified


def test_chinese_speaking_cook_sees_the_checklist_in_chinese(live, tablet, artifacts):
    page = tablet(live)
    log_in(page, live, "cook2")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_test_id("slot-before_lunch-due")).to_contain_text("午市供应前")
    page.get_by_test_id("start-before_lunch").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    items = items_by_key(live, int(page.url.rsplit("/", 1)[1]))
    expect(page.get_by_role("heading", level=1)).to_contain_text("供应卫生检查")
    for key, item in items.items():
        expect(page.get_by_test_id(f"item-{key}")).to_contain_text(item.text_zh)
        assert item.text_en not in page.get_by_test_id(f"item-{key}").inner_text()
    tap(page, "utensils_used", "fail")
    expect(page.get_by_test_id("utensils_used-fix-1")).to_have_text(
        items["utensils_used"].suggested_actions[0]["zh"])
    assert_layout(page, "run page in Chinese")
    screenshot(page, artifacts, "tablet-run-zh-768x1024",
               centre=page.get_by_test_id("item-utensils_used"))
    assert_only_local_requests(page)


def test_answers_are_saved_as_they_are_given(live, tablet):
    page = tablet(live)
    log_in(page, live, "cook")
    run_id = start_before_lunch(page)
    tap(page, "covered", "pass")
    enter_value(page, "cold_unit_temp", "4.2", "pass")
    tap(page, "utensils_used", "fail")
    page.context.close()  # the tablet is dropped mid-run: nothing was "saved" on purpose

    page = tablet(live)
    log_in(page, live, "cook")
    expect(page.get_by_test_id("slot-before_lunch-in_progress")).to_be_visible()
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(f"{live.url}/runs/{run_id}")
    for key, value in (("covered", "pass"), ("utensils_used", "fail")):
        chosen = page.get_by_test_id(f"{key}-{value}")
        expect(chosen).to_have_attribute("aria-pressed", "true")
        expect(chosen).to_have_class(re.compile(r"\bchosen\b"))
        expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", value)
    expect(page.get_by_test_id("cold_unit_temp-value")).to_have_value("4.2")
    expect(page.get_by_test_id("item-cold_unit_temp")).to_have_attribute("data-outcome", "pass")
    expect(page.get_by_test_id("item-utensils_used").locator(".fix-needed")).to_be_visible()
    for key in set(PASSFAIL) - {"covered", "utensils_used"}:
        expect(page.get_by_test_id(f"item-{key}")).to_have_attribute("data-outcome", "")
    expect(page.locator(".choice-row [aria-pressed=true]")).to_have_count(2)


def test_expired_hold_timer_demands_served_or_discarded(serve_kitchen, tablet):
    # A long idle time: the tablet's clock jumps 16 minutes and must stay logged in.
    kitchen = serve_kitchen(BRIGADE_TABLET_IDLE_SECONDS=3600)
    page = tablet(kitchen)
    log_in(page, kitchen, "cook")
    sent = []
    page.on("request", lambda r: sent.append((r.method, urlsplit(r.url).path,
                                              r.headers.get("x-brigade-poll"))))
    dish = page.get_by_test_id("timer-dish")
    dish.fill("Duck salad")
    page.clock.fast_forward(16_000)  # the panel's 15 s refresh comes while the cook types...
    page.wait_for_timeout(500)
    expect(dish).to_have_value("Duck salad")  # ...and must not wipe the dish name
    page.get_by_test_id("timer-start-plated").click()
    timer = page.locator(".timer", has_text="Duck salad")
    expect(timer).to_have_class(re.compile(r"\btimer-running\b"))
    expect(timer.locator("[data-countdown]")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    expect(page.get_by_role("alert")).to_have_count(0)
    timer_id = int(timer.get_attribute("data-testid").split("-")[1])

    # The plated window is 15 minutes; 16 minutes later on the server and on the tablet,
    # the countdown runs out and the tablet asks the server again, without a reload.
    later = kitchen.now + dt.timedelta(minutes=16)
    kitchen.set_now(later)
    page.clock.set_system_time(later)
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Time is up: served or discarded?", timeout=5_000)
    expect(timer).to_have_class(re.compile(r"\btimer-expired\b"))
    assert_layout(page, "home with an expired timer")

    page.get_by_test_id(f"timer-{timer_id}-discarded").click()
    expect(page.locator("#timers")).to_contain_text("Duck salad — Discarded")
    expect(page.locator("#timers").get_by_role("status")).to_have_text(
        re.compile(r"Recorded: Duck salad discarded", re.I))  # said now, not on a later page
    expect(alert).to_have_count(0)
    assert_only_local_requests(page)
    # Taps count as someone using the tablet (the idle lock); the panel's refreshes do not.
    assert ("POST", "/timers", None) in sent
    assert ("POST", f"/timers/{timer_id}/outcome", None) in sent
    assert ("GET", "/timers/panel", "1") in sent

    with kitchen.app.app_context():
        outcome = db.session.execute(select(TimerOutcome)).scalar_one()
        assert (outcome.timer_id, outcome.outcome, outcome.recorded_by_id, outcome.recorded_at) == (
            timer_id, "discarded", kitchen.ids["cook"], later)
        assert outcome.device_id == device_cookie(page)
        assert db.session.get(HoldTimer, timer_id).kind == "plated"
        assert verify(db.session)[1] == []


def test_idle_tablet_falls_back_to_the_pin_pad(serve_kitchen, tablet):
    kitchen = serve_kitchen(BRIGADE_TABLET_IDLE_SECONDS=10)
    page = tablet(kitchen)
    log_in(page, kitchen, "cook")
    page.clock.fast_forward(6_000)
    page.keyboard.press("Shift")  # someone touched the tablet: the idle time starts again
    page.clock.fast_forward(6_000)
    expect(page).to_have_url(kitchen.url + "/")
    expect(page.get_by_test_id("who")).to_have_text("Cook Sam")

    page.clock.fast_forward(5_000)  # 11 s without input
    expect(page).to_have_url(kitchen.url + "/pin")
    expect(page.get_by_role("heading", name="Who is working?")).to_be_visible()
    expect(page.get_by_test_id("who")).to_have_count(0)
    page.goto("/")  # logged out on the server too, not just hidden
    expect(page).to_have_url(kitchen.url + "/pin")
