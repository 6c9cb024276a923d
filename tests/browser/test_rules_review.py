"""The yearly review in Chromium: the head chef walks the rules, amends one, retires one, adds a
store rule and signs off; on the tablet a cook reads what changed and suggests a change —
in English and in Chinese, with screenshots in test-artifacts/."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAPTOP

pytestmark = pytest.mark.browser


def _sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.locator("form button.btn-primary").click()
    expect(page.get_by_test_id("who")).to_be_visible()


def _pin_in(page, kitchen, who: str) -> None:
    page.goto("/pin")
    page.get_by_test_id(f"person-{kitchen.ids[who]}").click()
    for digit in kitchen.pins[who]:
        page.locator(f'.keypad .key[data-key="{digit}"]').click()
    expect(page.get_by_test_id("pin-input")).to_have_value(kitchen.pins[who])
    page.get_by_test_id("pin-ok").click()
    expect(page.get_by_test_id("who")).to_be_visible()


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_head_chef_reviews_the_rules_and_the_cooks_read_and_suggest(
        live, tablet, artifacts, language):
    chef = tablet(live, LAPTOP)
    _sign_in(chef, "chef@test.kitchen", "chef-password")
    if language == "zh":
        chef.get_by_role("button", name="中文").click()
    chef.goto("/rules")
    expect(chef.get_by_test_id("rule-R1")).to_be_visible()
    expect(chef.get_by_test_id("appendix")).to_be_visible()
    chef.screenshot(path=str(artifacts / f"rules-in-force-{language}.png"), full_page=True)

    chef.get_by_test_id("review").click()
    expect(chef.get_by_test_id("review-R3")).to_be_visible()
    chef.get_by_test_id("decision-R3-amend").check()
    chef.locator('[data-testid="review-R3"] summary').click()
    chef.get_by_test_id("title-R3-en").fill("Plating on time, and labelled")
    chef.get_by_test_id("title-R3-zh").fill("按时装盘并标注")
    chef.get_by_test_id("decision-R4-retire").check()
    chef.get_by_test_id("new-title-en").fill("Allergens")
    chef.get_by_test_id("new-title-zh").fill("过敏原")
    chef.get_by_test_id("new-text-en").fill("Allergen dishes are plated apart.")
    chef.get_by_test_id("new-text-zh").fill("含过敏原的菜点单独装盘。")
    # The store rule brings an item of its own onto the serving checklist.
    chef.get_by_test_id("item-new-checklist").select_option("serving_hygiene")
    chef.get_by_test_id("item-new-kind").select_option("passfail")
    chef.get_by_test_id("item-new-text-en").fill("Allergen dishes plated apart")
    chef.get_by_test_id("item-new-text-zh").fill("过敏原菜点单独装盘")
    chef.get_by_test_id("summary").fill("R3 labelled; R4 folded into R8; allergens added.")
    # Saved, and continued later: the draft is there when the page is opened again.
    chef.get_by_test_id("save-review").click()
    chef.goto("/rules/review")
    expect(chef.get_by_test_id("decision-R4-retire")).to_be_checked()
    expect(chef.get_by_test_id("addition-0")).to_be_visible()
    expect(chef.get_by_test_id("pending-a0-0")).to_contain_text(
        "过敏原菜点单独装盘" if language == "zh" else "Allergen dishes plated apart")
    chef.screenshot(path=str(artifacts / f"rules-review-{language}.png"), full_page=True)
    chef.get_by_test_id("publish-review").click()
    expect(chef).to_have_url(re.compile(r"/rules/diff\?to=2$"))
    expect(chef.get_by_test_id("diff-R3")).to_have_attribute("data-status", "amended")
    expect(chef.get_by_test_id("diff-R4")).to_have_attribute("data-status", "retired")
    expect(chef.get_by_test_id("diff-S1")).to_have_attribute("data-status", "added")
    expect(chef.locator('[data-testid="diff-R3"] ins').first).to_be_visible()
    expect(chef.get_by_test_id("item-added-S1")).to_be_visible()
    chef.screenshot(path=str(artifacts / f"rules-diff-{language}.png"), full_page=True)

    # On the tablet: the cook reads each changed rule with one tap, then suggests a change.
    cook = tablet(live)
    _pin_in(cook, live, "cook2" if language == "zh" else "cook")
    expect(cook.get_by_test_id("rules-to-read")).to_be_visible()
    cook.get_by_test_id("rules-to-read").scroll_into_view_if_needed()
    cook.screenshot(path=str(artifacts / f"rules-to-read-{language}.png"), full_page=True)
    for code in ("R3", "R4", "S1"):
        cook.get_by_test_id(f"read-{code}").click()
        expect(cook.get_by_test_id(f"to-read-{code}")).to_have_count(0)
    expect(cook.get_by_test_id("rules-to-read")).to_be_hidden()
    # The checklist follows the rules: R4's item is gone, the store rule's item is there.
    cook.get_by_test_id("start-before_lunch").click()
    expect(cook).to_have_url(re.compile(r"/runs/\d+$"))
    expect(cook.get_by_test_id("item-s1-1")).to_contain_text(
        "过敏原菜点单独装盘" if language == "zh" else "Allergen dishes plated apart")
    expect(cook.get_by_test_id("item-spills_wiped")).to_have_count(0)
    cook.get_by_test_id("rule-s1-1").click()
    expect(cook.get_by_test_id("rule-text-s1-1")).to_contain_text(
        "单独装盘" if language == "zh" else "plated apart")
    cook.screenshot(path=str(artifacts / f"rules-checklist-{language}.png"), full_page=True)
    cook.goto("/rules/suggest?rule=R2")
    cook.get_by_test_id("field-text").fill("Put a thermometer in the cold well too.")
    cook.get_by_test_id("send-suggestion").click()
    expect(cook).to_have_url(re.compile(r"/rules$"))

    chef.goto("/rules/suggestions")
    expect(chef.get_by_text("Put a thermometer in the cold well too.")).to_be_visible()
    chef.goto("/rules")
    reader = live.ids["cook2" if language == "zh" else "cook"]
    expect(chef.get_by_test_id(f"training-{reader}")).to_contain_text("3")
    chef.screenshot(path=str(artifacts / f"rules-training-{language}.png"), full_page=True)
