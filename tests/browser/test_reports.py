"""The head chef's report, a unit's page and an alert's page in a real headless Chromium: plotly
draws the charts with data (served by the app, under its Content-Security-Policy)."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from playwright.sync_api import expect

from app.alerts.operations import raise_alert
from app.models import db
from sensors.store import Message, store_batch
from tests.browser.conftest import LAPTOP
from tests.browser.test_tablet import assert_only_local_requests, log_in, screenshot
from tests.factories import salad_fridge

pytestmark = pytest.mark.browser


def _fridge_with_a_warm_spell(kitchen) -> tuple[int, int]:
    """The salad fridge's last 26 hours, one reading a minute, 40 minutes of it at 7 °C that
    alarmed two hours ago; returns (unit id, alert id)."""
    start = kitchen.now - dt.timedelta(hours=26)
    with kitchen.app.app_context():
        unit = salad_fridge(kitchen.ids["site"], start)
        messages = []
        for i in range(1, 26 * 60):
            at = start + dt.timedelta(minutes=i)
            value = 7.0 if 23 * 60 <= i < 23 * 60 + 40 else 3.0 + (i % 9) / 10
            messages.append(Message("brigade/salad/reading",
                                    json.dumps({"t": value, "ts": at.isoformat()}).encode(), at))
        store_batch(db.session, messages)
        alert = raise_alert(db.session, site_id=kitchen.ids["site"], kind="temperature",
                            subject=f"unit:{unit.id}:temperature", unit_id=unit.id,
                            detail={"value_c": 7.0, "title": "Salad fridge too warm"},
                            now=start + dt.timedelta(minutes=23 * 60 + 30))
        db.session.commit()
        return unit.id, alert.id


def _drawn(page, test_id: str):
    """The chart's plot, once plotly has drawn lines with points in it."""
    chart = page.get_by_test_id(test_id)
    expect(chart.locator(".scatterlayer path.js-line, .scatterlayer path.point, .barlayer path")
           .first).to_be_attached(timeout=15_000)
    expect(chart).to_have_class(re.compile(r"\bjs-plotly-plot\b"))
    return chart


def test_report_unit_page_and_alert_page_draw_their_charts(live, tablet, artifacts):
    unit_id, alert_id = _fridge_with_a_warm_spell(live)
    page = tablet(live, LAPTOP)
    log_in(page, live, "chef")
    expect(page.get_by_test_id("nav-report")).to_be_visible()

    page.goto("/reports?range=last_7_days")
    chart = _drawn(page, f"unit-chart-{unit_id}")
    # The line has its points (not an empty plot), and the excursion is shaded.
    points = chart.locator(".scatterlayer path.js-line").evaluate_all(
        "paths => Math.max(...paths.map(p => (p.getAttribute('d') || '').split('L').length))")
    assert points > 20 and int(chart.get_attribute("data-points")) > 100
    assert chart.locator(".shapelayer path").count() >= 3      # limits and the excursion
    _drawn(page, "heatmap")
    _drawn(page, "rules-chart")
    expect(page.get_by_test_id(f"tir-{unit_id}")).not_to_have_text("—")
    screenshot(page, artifacts, "report-laptop")

    page.goto(f"/units/{unit_id}")
    chart = _drawn(page, "unit-chart")
    assert chart.get_attribute("data-grain") == "raw"
    page.get_by_role("button", name="1 year").click()
    expect(chart).to_have_attribute("data-grain", "rollup")
    expect(chart.locator(".scatterlayer path.js-line").first).to_be_attached()
    screenshot(page, artifacts, "unit-page-laptop")

    page.goto(f"/alerts/{alert_id}")
    _drawn(page, "alert-chart")
    expect(page.locator("table.readings-table")).to_be_hidden()
    page.get_by_test_id("readings-toggle").locator("summary").click()
    expect(page.locator("table.readings-table")).to_be_visible()
    screenshot(page, artifacts, "alert-page-chart-laptop")

    page.goto("/glance")
    expect(page.get_by_test_id(f"glance-unit-{unit_id}")).to_be_visible()
    expect(page.locator(".sparkline .scatterlayer path").first).to_be_attached(timeout=15_000)
    screenshot(page, artifacts, "glance-laptop")

    # The same report in Chinese: its words, its charts' labels, dates in Chinese order.
    page.get_by_role("button", name="中文").click()
    page.goto("/reports?range=last_7_days")
    expect(page.locator("h1")).to_contain_text("合规报告")
    _drawn(page, f"unit-chart-{unit_id}")
    expect(page.get_by_test_id(f"unit-chart-{unit_id}").locator(".legend")).to_contain_text("温度")
    screenshot(page, artifacts, "report-laptop-zh")
    assert_only_local_requests(page)
