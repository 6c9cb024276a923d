"""The one temperature module: conversion, typed numbers, display, and limits the breach rules share."""
import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.alerts import breach
from app.alerts.engine import evaluate_units
from app.alerts.page import readings as alert_readings
from app.models import Alert, Site, db
from app.models.units import Unit
from sensors import temperature
from sensors.temperature import (Limits, delta_to_celsius, from_celsius, parse_number,
                                 parse_temperature, show, show_delta, to_celsius)
from tests.factories import feed_salad, login_pin, salad_fridge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.mark.parametrize("raw,value", [("4", 4.0), ("4.5", 4.5), ("4,5", 4.5), ("-18", -18.0),
                                       ("\u221218", -18.0), (" +3 ", 3.0), (".5", 0.5), ("41.", 41.0)])
def test_numbers_are_read_as_people_type_them(raw, value):
    assert parse_number(raw) == value


@pytest.mark.parametrize("raw", ["", "nan", "inf", "1e3", "1_0", "4.5.1", "four", "4 5", None])
def test_anything_else_is_not_a_number(raw):
    assert parse_number(raw) is None


@pytest.mark.parametrize("raw,unit,celsius", [("4", "C", 4.0), ("39.2", "F", 4.0),
                                              ("39.2 °F", "C", 4.0), ("4 °C", "F", 4.0),
                                              ("4,5°c", "C", 4.5), ("-0.4F", "C", -18.0)])
def test_a_typed_temperature_may_say_its_own_unit(raw, unit, celsius):
    assert parse_temperature(raw, unit) == pytest.approx(celsius)


def test_display_in_the_sites_unit():
    assert show(4.0, "C") == "4.0 °C" and show(5.0, "F") == "41.0 °F" and show(None) == "—"
    assert show_delta(0.5, "F") == "0.9 °F" and show_delta(-1.5, "F", signed=True) == "-2.7 °F"
    assert delta_to_celsius(0.9, "F") == pytest.approx(0.5)


@given(st.floats(min_value=-100, max_value=200))
def test_conversion_round_trips(celsius):
    assert to_celsius(from_celsius(celsius, "F"), "F") == pytest.approx(celsius, abs=1e-9)
    assert to_celsius(celsius, "C") == celsius


def test_the_app_converts_in_one_place():
    """grep for a °C/°F formula or a number pattern finds only sensors/temperature.py."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    formula = re.compile(r"9(\.0)? ?/ ?5|5(\.0)? ?/ ?9|\* ?1\.8|/ ?1\.8")
    found = [str(p.relative_to(root)) for folder in ("app", "sensors", "templates")
             for p in (root / folder).rglob("*") if p.suffix in (".py", ".html")
             and formula.search(p.read_text(encoding="utf-8"))]
    assert found == ["sensors/temperature.py"]


HOVERING = [4.0, 5.2, 4.8, 5.1, 4.6, 4.4, 5.3, 5.0, 4.5, 4.7, 8.4, 7.8, 7.4, 6.0, 4.9, 4.2, 4.0]


@given(st.lists(st.floats(min_value=-25, max_value=15), max_size=60),
       st.sampled_from([None, -1.0]), st.sampled_from([0.0, 0.5, 1.0]))
def test_classify_follows_the_breach_state_machine(values, min_c, hysteresis):
    settings = breach.Settings(target_max_c=5.0, critical_max_c=8.0, min_c=min_c,
                               hysteresis_c=hysteresis, alert_delay_s=3600, expected_interval_s=60)
    bands = temperature.classify(Limits.of(settings), values)
    state = None
    for i, value in enumerate(values):
        at = T0 + dt.timedelta(minutes=i)
        state = breach.evaluate(settings, [(at, value)], at, previous=state)
        expected = ("critical" if "critical" in state.excursions
                    else "out" if state.excursions else "ok")
        assert bands[i] == expected


def test_the_alert_page_and_the_breach_function_agree_on_a_hovering_excursion(app, client, kitchen,
                                                                               freeze):
    with app.app_context():
        unit = salad_fridge(kitchen["site"], T0)
        start = T0 + dt.timedelta(minutes=1)
        warm = feed_salad([4.0] * 3 + [6.0] * 12, start)
        evaluate_units(db.session, [unit.id], warm)  # 11 minutes over 5 °C: the alarm opens
        db.session.commit()
        end = feed_salad(HOVERING, warm + dt.timedelta(minutes=1))
        evaluate_units(db.session, [unit.id], end)
        db.session.commit()
        alert = db.session.execute(select(Alert)).scalar_one()
        unit = db.session.get(Unit, unit.id)
        settings = breach.Settings(target_max_c=unit.target_max_c,
                                   critical_max_c=unit.critical_max_c, min_c=unit.min_c,
                                   hysteresis_c=unit.hysteresis_c)
        with app.test_request_context():
            shown = [item for item in alert_readings(alert, unit, end)["items"] if "mark" not in item]
    # What the breach function holds after each reading, fed one at a time as ingest does.
    state, expected = None, []
    for item in shown:
        state = breach.evaluate(settings, [(item["at"], item["value"])], item["at"], previous=state)
        expected.append("critical" if "critical" in state.excursions
                        else "out" if state.excursions else "ok")
    assert [item["state"] for item in shown] == expected
    # Under the 5 °C limit but not by the 0.5 °C hysteresis: out while the excursion lasts
    # (4.8, 4.6, 5.0), ok once it has ended (4.7 after 4.5) — what the old page got wrong.
    assert [(i["value"], i["state"]) for i in shown if i["value"] in (4.6, 4.7, 4.8, 5.0)] == \
        [(4.8, "out"), (4.6, "out"), (5.0, "out"), (4.7, "ok")]
    assert {i["state"] for i in shown if i["value"] == 8.4} == {"critical"}
    freeze(end)
    login_pin(client, kitchen["chef"], "1357")
    page = client.get(f"/alerts/{alert.id}").get_data(as_text=True)
    assert page.count('class="reading reading-out"') == expected.count("out")
    assert page.count('class="reading reading-critical"') == expected.count("critical")


def test_the_units_page_warns_of_a_low_battery_at_the_configured_level(app, client, kitchen):
    from sensors.models import Sensor
    app.config["BRIGADE_LOW_BATTERY_PCT"] = 35
    with app.app_context():
        salad_fridge(kitchen["site"], T0)
        db.session.execute(select(Sensor)).scalar_one().battery_pct = 30
        db.session.commit()
    client.post("/login", data={"email": "admin@test.kitchen", "password": "admin-password"})
    page = client.get("/units").get_data(as_text=True)
    assert '<span class="critical-tag">30 %</span>' in page
