"""The thermometer calibration pages on the tablet, in a real headless Chromium."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.audit import verify
from app.models import AuditRecord, db
from app.models.calibration import Calibration
from app.models.units import Unit
from sensors.models import Sensor
from sensors.store import Message, store_batch
from tests.browser.conftest import TABLET
from tests.browser.test_tablet import (MIN_TARGET_PX, assert_layout, assert_only_local_requests,
                                       device_cookie, enter_pin, log_in, screenshot)

pytestmark = pytest.mark.browser

TOPIC = "brigade/pass/temperature"
CORRECTION_COLUMN = 2  # Thermometer, Unit, Correction, ...


def _fridge_sensor(kitchen) -> int:
    """A fridge on the kitchen's site with one sensor attached (it appears through ingest)."""
    with kitchen.app.app_context():
        unit = Unit(site_id=kitchen.ids["site"], name="Pass fridge", kind="fridge",
                    target_max_c=5.0, critical_max_c=8.0, min_c=None)
        db.session.add(unit)
        store_batch(db.session, [Message(TOPIC, b"3.0", kitchen.now)])
        sensor = db.session.execute(select(Sensor).where(Sensor.unit_id.is_(None))).scalar_one()
        sensor.unit_id = unit.id
        db.session.commit()
        return sensor.id


def _to_calibration(page, kitchen, link: str = "Calibration") -> None:
    """Tap the top bar's calibration link."""
    page.get_by_role("navigation").get_by_role("link", name=link, exact=True).click()
    expect(page).to_have_url(kitchen.url + "/calibration")


def _check_sensor(page, kitchen, sensor_id: int, button: str = "Check") -> None:
    """Tap the sensor's Check button: the form opens with that sensor chosen."""
    page.get_by_test_id(f"subject-sensor-{sensor_id}").get_by_role("link", name=button,
                                                                    exact=True).click()
    expect(page).to_have_url(f"{kitchen.url}/calibration/new?sensor={sensor_id}")
    expect(page.get_by_test_id("field-subject")).to_have_value(f"sensor:{sensor_id}")


def _save(page, kitchen) -> int:
    """Press "Save the check"; the status of the form's POST."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url == kitchen.url + "/calibration") as posted:
        page.get_by_test_id("save-check").click()
    page.wait_for_load_state("load")
    return posted.value.status


def _correction(row):
    return row.locator("td").nth(CORRECTION_COLUMN)


def test_cook_records_an_out_of_tolerance_check_and_the_head_chef_corrects_the_sensor(
        live, tablet, artifacts):
    sensor_id = _fridge_sensor(live)
    page = tablet(live, TABLET)
    log_in(page, live, "cook")

    _to_calibration(page, live)
    expect(page.get_by_role("heading", level=1)).to_have_text("Thermometer calibration")
    row = page.get_by_test_id(f"subject-sensor-{sensor_id}")
    for text in ("brigade/pass", "Pass fridge", "never", "due"):
        expect(row).to_contain_text(text)
    expect(row).to_have_class(re.compile(r"\brow-fail\b"))
    expect(_correction(row)).to_have_text("+0.0 °C")
    expect(page.get_by_test_id("log")).to_contain_text("No checks in these dates.")
    screenshot(page, artifacts, "tablet-calibration-768x1024")
    assert_layout(page, "calibration log")

    _check_sensor(page, live, sensor_id)
    expect(page.get_by_role("heading", level=1)).to_have_text("Record a thermometer check")
    expect(page.get_by_role("radio", name="Ice point (ice and water)")).to_be_checked()
    expect(page.get_by_test_id("field-tolerance")).to_have_value("1")
    # A cook is not offered the correction, only told who can apply one.
    expect(page.get_by_role("radio", name="Correction applied to the sensor")).to_have_count(0)
    expect(page.locator('input[name="action"][value="offset_applied"]')).to_have_count(0)
    expect(page.get_by_test_id("check-form")).to_contain_text(
        "A head chef or an admin can apply a correction to a sensor.")
    screenshot(page, artifacts, "tablet-calibration-form-768x1024")

    # 1.6 °C in ice water is 1.6 °C off, outside ±1 °C: "None needed" is refused.
    page.get_by_test_id("field-measured").fill("1.6")
    page.get_by_test_id("field-note").fill("ice bath, 3 min")
    page.get_by_test_id("action-none").click()  # the choices are buttons: tap the label
    expect(page.get_by_role("radio", name="None needed")).to_be_checked()
    assert _save(page, live) == 422
    expect(page.get_by_role("alert")).to_have_text(
        "The thermometer is +1.6 °C off, outside ±1 °C: record what was done about it.")
    # Everything typed is still there to put right.
    expect(page.get_by_test_id("field-subject")).to_have_value(f"sensor:{sensor_id}")
    expect(page.get_by_test_id("field-measured")).to_have_value("1.6")
    expect(page.get_by_test_id("field-tolerance")).to_have_value("1")
    expect(page.get_by_test_id("field-note")).to_have_value("ice bath, 3 min")
    expect(page.get_by_role("radio", name="Ice point (ice and water)")).to_be_checked()
    expect(page.get_by_role("radio", name="None needed")).to_be_checked()
    screenshot(page, artifacts, "tablet-calibration-refused-768x1024")
    with live.app.app_context():
        assert db.session.execute(select(Calibration)).scalars().all() == []

    page.get_by_test_id("action-removed").click()
    expect(page.get_by_role("radio", name="Taken out of use")).to_be_checked()
    assert _save(page, live) == 302
    expect(page).to_have_url(live.url + "/calibration")
    expect(page.get_by_role("status")).to_have_text(
        "Check recorded: out of tolerance (+1.6 °C), action: Taken out of use.")
    with live.app.app_context():
        removed = db.session.execute(select(Calibration)).scalar_one()
        assert (removed.sensor_id, removed.probe, removed.method, removed.reference_c,
                removed.measured_c, removed.error_c, removed.tolerance_c, removed.passed,
                removed.action, removed.offset_after_c) == (
            sensor_id, None, "ice_point", 0.0, 1.6, 1.6, 1.0, False, "removed", 0.0)
        assert (removed.staff_id, removed.device_id, removed.performed_at, removed.note) == (
            live.ids["cook"], device_cookie(page), live.now, "ice bath, 3 min")
    logged = page.get_by_test_id("log").locator(f"#check-{removed.id}")
    for text in ("brigade/pass", "Ice point (ice and water)", "0.0 °C", "1.6 °C",
                 "+1.6 °C±1.0 °C", "Taken out of use", "ice bath, 3 min", "Cook Sam"):
        expect(logged).to_contain_text(text)
    expect(logged).to_have_class(re.compile(r"\brow-fail\b"))
    # Taken out of use, not put right: still due, and its readings are stored as they come.
    expect(row).to_contain_text("out of tolerance")
    expect(row).to_have_class(re.compile(r"\brow-fail\b"))
    expect(_correction(row)).to_have_text("+0.0 °C")
    assert_layout(page, "calibration log with a check")

    # The head chef checks it again and applies the correction to the sensor.
    page.get_by_test_id("switch-person").click()
    expect(page).to_have_url(live.url + "/pin")
    page.get_by_test_id(f"person-{live.ids['chef']}").click()
    enter_pin(page, live.pins["chef"])
    expect(page.get_by_test_id("who")).to_have_text("Chef Mei")
    _to_calibration(page, live)
    _check_sensor(page, live, sensor_id)
    correction = page.get_by_role("radio", name="Correction applied to the sensor")
    expect(correction).to_be_visible()
    expect(page.get_by_test_id("check-form")).not_to_contain_text(
        "A head chef or an admin can apply")
    page.get_by_test_id("field-measured").fill("1.6")
    page.get_by_test_id("action-offset_applied").click()
    expect(correction).to_be_checked()
    assert _save(page, live) == 302
    expect(page).to_have_url(live.url + "/calibration")
    expect(page.get_by_role("status")).to_have_text(
        "Check recorded: out of tolerance (+1.6 °C), action: Correction applied to the sensor.")
    expect(_correction(row)).to_have_text("-1.6 °C")
    expect(row).not_to_have_class(re.compile(r"\brow-fail\b"))  # corrected: no longer due
    expect(row).not_to_contain_text("due")
    with live.app.app_context():
        corrected = db.session.execute(
            select(Calibration).where(Calibration.id != removed.id)).scalar_one()
        assert (corrected.sensor_id, corrected.staff_id, corrected.action,
                corrected.offset_before_c, corrected.offset_after_c) == (
            sensor_id, live.ids["chef"], "offset_applied", 0.0, -1.6)
        assert db.session.get(Sensor, sensor_id).offset_c == -1.6
        count, problems = verify(db.session)
        records = db.session.scalar(select(func.count()).select_from(AuditRecord)
                                    .where(AuditRecord.entity != "changes"))  # not definitions
        assert problems == [] and count >= 2 and records == 2
    logged = page.get_by_test_id("log").locator(f"#check-{corrected.id}")
    expect(logged).to_contain_text("Correction applied to the sensor: +0.0 → -1.6 °C")
    expect(logged).to_contain_text("Chef Mei")
    expect(page.get_by_test_id("log").locator("tbody tr")).to_have_count(2)
    screenshot(page, artifacts, "tablet-calibration-corrected-768x1024")
    assert_layout(page, "calibration log after the correction")
    assert_only_local_requests(page)


def test_chinese_speaking_cook_sees_the_calibration_pages_in_chinese(live, tablet, artifacts):
    sensor_id = _fridge_sensor(live)
    page = tablet(live, TABLET)
    log_in(page, live, "cook2")  # Cook Li's locale is zh
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    _to_calibration(page, live, "校准")
    expect(page.get_by_role("heading", level=1)).to_have_text("温度计校准")
    expect(page).to_have_title("校准 · Brigade")
    row = page.get_by_test_id(f"subject-sensor-{sensor_id}")
    expect(row).to_contain_text("从未")
    expect(row).to_contain_text("应校准")
    screenshot(page, artifacts, "tablet-calibration-zh-768x1024")
    assert_layout(page, "calibration log in Chinese")

    _check_sensor(page, live, sensor_id, "检查")
    expect(page.get_by_role("heading", level=1)).to_have_text("记录温度计校准")
    expect(page.get_by_role("radio", name="已对传感器应用校正值")).to_have_count(0)
    page.get_by_test_id("field-measured").fill("1.6")
    assert _save(page, live) == 422
    expect(page.get_by_role("alert")).to_contain_text("温度计偏差 +1.6 °C")
    expect(page.get_by_test_id("field-measured")).to_have_value("1.6")
    screenshot(page, artifacts, "tablet-calibration-form-zh-768x1024")
    assert_only_local_requests(page)


@pytest.mark.parametrize("who", ["cook", "cook2", "chef"])
def test_the_calibration_form_fits_a_tablet(live, tablet, who):
    sensor_id = _fridge_sensor(live)
    page = tablet(live, TABLET)
    log_in(page, live, who)
    page.goto(f"/calibration/new?sensor={sensor_id}")
    page.get_by_test_id("field-measured").fill("1.6")
    assert _save(page, live) == 422  # with the error banner and everything typed
    assert_layout(page, f"calibration form for {who}")
    select_box = page.get_by_test_id("field-subject").bounding_box()
    assert select_box["height"] <= 2 * MIN_TARGET_PX, f"thermometer select: {select_box}"
    choices = page.locator("label.radio-choice")
    heights = [choices.nth(i).bounding_box()["height"] for i in range(choices.count())]
    assert heights and max(heights) <= 2 * MIN_TARGET_PX, f"radio choices are {heights} px high"
