"""Temperature items on the tablet: the keypad form, and the unit's live sensor reading."""
import datetime as dt
import json

import pytest
from sqlalchemy import select

from app.checklists.definitions import DefinitionError, parse_checklist
from app.models import Answer, AuditRecord, db
from tests.factories import Kitchen, at_local, login_pin
from tests.test_pages import DAY, _items, _open_before_lunch

HX = {"HX-Request": "1"}


@pytest.fixture
def cook(client, kitchen):
    assert login_pin(client, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    return client


def cold_dish_fridge(site_id: int, at: dt.datetime, value: float = 3.4,
                     name: str = "Cold-dish fridge"):
    """The unit the serving-hygiene temperature item names, with one sensor that read ``value``
    at ``at`` (through ingest, as a real one would)."""
    from app.models.units import Unit
    from sensors.models import Sensor
    from sensors.store import Message, store_batch
    unit = Unit(site_id=site_id, name=name, kind="fridge", target_max_c=5.0, critical_max_c=8.0,
                expected_interval_s=60, offline_after=5)
    db.session.add(unit)
    db.session.commit()
    store_batch(db.session, [Message("brigade/colddish/reading",
                                     json.dumps({"t": value, "ts": at.isoformat()}).encode(), at)])
    sensor = db.session.execute(select(Sensor)).scalar_one()
    sensor.unit_id = unit.id
    db.session.commit()
    return sensor.id


def _open(app, cook, freeze, kitchen, read_at="11:09:20", **fridge):
    with app.app_context():
        sensor_id = cold_dish_fridge(kitchen["site"], at_local(DAY, "11:00") + (
            dt.datetime.strptime(read_at, "%H:%M:%S") - dt.datetime(1900, 1, 1, 11)), **fridge)
    run_id = _open_before_lunch(cook, app, freeze)  # at 11:10
    return run_id, _items(app, run_id)["cold_unit_temp"], sensor_id


@pytest.mark.parametrize("locale, offer, age, saved", [
    ("en", "Use the sensor: 3.4 °C", "Cold-dish fridge · read 40 s ago", "Pass ✓ · read from the sensor"),
    ("zh", "使用传感器读数：3.4 °C", "Cold-dish fridge · 40 秒 前读取", "合格 ✓ · 取自传感器")])
def test_one_tap_records_the_units_sensor_reading_and_says_so(app, cook, freeze, kitchen, locale,
                                                              offer, age, saved):
    from tests.test_tablet_records import _text
    if locale != "en":
        cook.post("/me/language", data={"language": locale})
    run_id, item, _sensor = _open(app, cook, freeze, kitchen)
    page = cook.get(f"/runs/{run_id}").get_data(as_text=True)
    assert offer in _text(page)
    shown = page.split('data-testid="cold_unit_temp-sensor-age"')[1].split(">", 1)[1].split("<")[0]
    assert _text(shown).strip() == age
    assert 'data-testid="cold_unit_temp-keypad"' in page
    reply = cook.post(f"/runs/{run_id}/items/{item}", data={"source": "sensor", "value": "99"},
                      headers=HX)
    assert reply.status_code == 200 and saved in _text(reply.get_data(as_text=True))
    with app.app_context():
        answer = db.session.execute(select(Answer)).scalar_one()
        assert (answer.value, answer.temperature_c, answer.outcome, answer.source) == (
            "3.4", 3.4, "pass", "sensor"), "the server reads the sensor; a sent value is ignored"
        link = db.session.execute(select(AuditRecord).where(
            AuditRecord.entity == "answers", AuditRecord.entity_id == answer.id)).scalar_one()
        assert json.loads(link.payload)["source"] == "sensor"
    # A note on it keeps where the reading came from.
    cook.post(f"/runs/{run_id}/items/{item}", data={"note": "door was shut"}, headers=HX)
    with app.app_context():
        latest = db.session.execute(select(Answer).order_by(Answer.id.desc())).scalars().first()
        assert (latest.note, latest.source) == ("door was shut", "sensor")


def test_a_typed_reading_records_no_source_and_its_chained_content_is_as_before(app, cook, freeze,
                                                                               kitchen):
    run_id, item, _sensor = _open(app, cook, freeze, kitchen)
    cook.post(f"/runs/{run_id}/items/{item}", data={"source": "sensor"}, headers=HX)
    reply = cook.post(f"/runs/{run_id}/items/{item}", data={"value": "-1.5"}, headers=HX)
    assert "read from the sensor" not in reply.get_data(as_text=True)
    with app.app_context():
        answers = db.session.execute(select(Answer).order_by(Answer.id)).scalars().all()
        assert [(a.value, a.source) for a in answers] == [("3.4", "sensor"), ("-1.5", None)]
        link = db.session.execute(select(AuditRecord).where(
            AuditRecord.entity == "answers", AuditRecord.entity_id == answers[1].id)).scalar_one()
        assert "source" not in json.loads(link.payload)
        from app.audit import verify
        assert verify(db.session)[1] == []


@pytest.mark.parametrize("case", ["stale", "offline", "other_name", "no_reading_yet"])
def test_a_stale_or_offline_sensor_is_not_offered_and_cannot_be_recorded(app, cook, freeze, kitchen,
                                                                         case):
    from sensors.models import Sensor
    read_at = "11:04:59" if case == "stale" else "11:09:00"  # 5 min 1 s before 11:10: stale
    run_id, item, sensor_id = _open(app, cook, freeze, kitchen, read_at=read_at,
                                    **({"name": "Prep fridge"} if case == "other_name" else {}))
    with app.app_context():
        sensor = db.session.get(Sensor, sensor_id)
        if case == "offline":
            sensor.online = False
        if case == "no_reading_yet":
            sensor.last_temperature_c = sensor.last_reading_at = None
        db.session.commit()
    page = cook.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "use-sensor" not in page and "Use the sensor" not in page
    assert 'data-testid="cold_unit_temp-keypad"' in page and "Reading (°C)" in page
    reply = cook.post(f"/runs/{run_id}/items/{item}", data={"source": "sensor"}, headers=HX)
    assert reply.status_code == 422 and "no recent reading" in reply.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(Answer)).first() is None


def test_only_a_temperature_item_names_a_unit():
    base = {"key": "c", "title": {"en": "C", "zh": "C"}}
    item = {"key": "t", "rule": "R2", "kind": "temperature", "limit": {"max_c": 5},
            "text": {"en": "t", "zh": "t"}, "unit": "Cold-dish fridge"}
    parsed = parse_checklist({**base, "items": [item]}, "x.yaml", {"R2"})
    assert parsed["items"][0]["unit"] == "Cold-dish fridge"
    with pytest.raises(DefinitionError, match="only a temperature item names a unit"):
        parse_checklist({**base, "items": [{**item, "kind": "passfail"}]}, "x.yaml", {"R2"})


@pytest.mark.parametrize("locale, title, text", [
    ("en", "R2 · Cold holding", "Cold dishes are kept in the refrigerator until served."),
    ("zh", "R2 · 冷食冷藏", "冷食在供应前应放在冰箱里")])
def test_an_items_rule_code_opens_the_rule_in_the_cooks_language(app, cook, freeze, locale, title,
                                                                 text):
    from tests.test_tablet_records import _text
    if locale != "en":
        cook.post("/me/language", data={"language": locale})
    run_id = _open_before_lunch(cook, app, freeze)
    page = cook.get(f"/runs/{run_id}").get_data(as_text=True)
    tip = _text(page.split('data-testid="rule-text-cold_held_chilled">')[1].split("</div>")[0])
    assert title in tip and text in tip
    assert {"en": "Default rule (source document)", "zh": "默认规章（源文件）"}[locale] in tip
    # The item's own reply (after a tap) keeps it.
    item = _items(app, run_id)["cold_held_chilled"]
    reply = cook.post(f"/runs/{run_id}/items/{item}", data={"value": "pass"}, headers=HX)
    assert title in _text(reply.get_data(as_text=True))


def test_a_store_rule_that_prevails_is_the_one_shown(app, cook, freeze, kitchen):
    from app.models import Site
    from app.rules.operations import current_version
    from app.models.rules import RuleSetVersion
    run_id = _open_before_lunch(cook, app, freeze)
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        first = current_version(db.session, site)
        rules = [dict(r) for r in first.rules]
        for r in rules:
            if r["code"] == "R2":
                r.update(source="store", overrides="R2",
                         title={"en": "Cold holding, our way", "zh": "本店冷藏"},
                         text={"en": "Cold dishes wait on ice, never on the pass.",
                               "zh": "冷菜放在冰上等候。"})
        db.session.add(RuleSetVersion(site_id=site.id, number=2, rules=rules, changed=["R2"],
                                      retired=[], published_at=first.published_at))
        db.session.commit()
    page = cook.get(f"/runs/{run_id}").get_data(as_text=True)
    tip = page.split('data-testid="rule-text-cold_held_chilled">')[1].split("</div>")[0]
    assert "Cold dishes wait on ice" in tip and "prevails over default rule R2" in tip


def test_a_note_on_a_fahrenheit_sites_reading_keeps_the_reading(app, cook, freeze, kitchen):
    """The answer keeps its reading in °C; a note added later re-read it in the site's °F."""
    from app.models import Site
    with app.app_context():
        db.session.get(Site, kitchen["site"]).temp_unit = "F"
        db.session.commit()
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["cold_unit_temp"]
    cook.post(f"/runs/{run_id}/items/{item}", data={"value": "38.3"}, headers=HX)
    cook.post(f"/runs/{run_id}/items/{item}", data={"note": "probe in the middle"}, headers=HX)
    with app.app_context():
        answers = db.session.execute(select(Answer).order_by(Answer.id)).scalars().all()
        assert [(a.temperature_c, a.outcome, a.note) for a in answers] == [
            (3.5, "pass", None), (3.5, "pass", "probe in the middle")]
