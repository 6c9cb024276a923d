"""Issue 10's records and alerts that read right: fail counts, slot names, late runs, limits."""
import re

import pytest

from app.models import Run, db
from tests.factories import Kitchen, login_password
from tests.test_pages import _items, _open_before_lunch

HX = {"HX-Request": "1"}


@pytest.fixture
def cook(client, kitchen):
    from tests.factories import login_pin
    assert login_pin(client, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    return client


def _all_pass(cook, run_id, items, skip=()):
    for key, item_id in items.items():
        if key in skip:
            continue
        value = {"cold_unit_temp": "3.5", "first_plated_at": "11:30"}.get(key, "pass")
        assert cook.post(f"/runs/{run_id}/items/{item_id}", data={"value": value},
                         headers=HX).status_code == 200


def test_the_sign_off_queue_counts_a_runs_current_fails_not_replaced_answers(app, cook, freeze):
    """One item failed, its corrective action and photo added, another failed then passed:
    five fail records in the chain, one fail in force."""
    run_id = _open_before_lunch(cook, app, freeze)
    items = _items(app, run_id)
    _all_pass(cook, run_id, items)
    covered, no_reuse = (f"/runs/{run_id}/items/{items[k]}" for k in ("covered", "no_reuse"))
    cook.post(covered, data={"value": "fail"}, headers=HX)
    cook.post(covered, data={"corrective_action": "Covered the dishes"}, headers=HX)
    cook.post(covered, data={"note": "Lids were in the wash"}, headers=HX)
    cook.post(no_reuse, data={"value": "fail"}, headers=HX)
    cook.post(no_reuse, data={"value": "pass"}, headers=HX)
    assert cook.post(f"/runs/{run_id}/submit").status_code == 302
    with app.app_context():
        fails = [a for a in db.session.get(Run, run_id).answers if a.outcome == "fail"]
        assert len(fails) == 4
    chef = app.test_client()
    assert login_password(chef, "chef@test.kitchen", "chef-password").status_code == 302
    page = chef.get("/records").get_data(as_text=True)
    assert re.search(rf'data-testid="fails-{run_id}">(\d+)<', page).group(1) == "1"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _chef(app, locale="en"):
    chef = app.test_client()
    assert login_password(chef, "chef@test.kitchen", "chef-password").status_code == 302
    if locale != "en":
        chef.post("/me/language", data={"language": locale})
    return chef


def _overdue_alerts(app, freeze, at="13:05"):
    from app.alerts.engine import sweep_checklists
    from app.models import Alert
    from tests.factories import at_local
    from tests.test_pages import DAY
    now = freeze(at_local(DAY, at))
    with app.app_context():
        sweep_checklists(db.session, now)
        db.session.commit()
        return {a.detail["schedule"]: a.id for a in db.session.query(Alert).all()}


@pytest.mark.parametrize("locale, before_lunch, lunch", [
    ("en", "Serving hygiene overdue: Before lunch service, 11:00",
     "Serving hygiene overdue: During lunch service (every 2 h), 12:30"),
    ("zh", "供应卫生检查 已逾期：午市供应前 11:00", "供应卫生检查 已逾期：午市供应中(每2小时) 12:30")])
def test_overdue_alerts_name_their_slot_and_time_in_the_persons_language(
        app, kitchen, freeze, locale, before_lunch, lunch):
    ids = _overdue_alerts(app, freeze)
    assert set(ids) == {"before_lunch", "lunch_service"}
    chef = _chef(app, locale)
    # The locked tablet's list speaks the site's language, not the last person's.
    for page in ("/alerts", "/", f"/alerts/{ids['before_lunch']}") + (("/pin",) if locale == "en" else ()):
        if page == "/pin":
            chef.post("/logout")
        body = chef.get(page).get_data(as_text=True)
        assert "before_lunch" not in _text(body) and "lunch_service" not in _text(body), page
        assert before_lunch in _text(body), page
        if page != f"/alerts/{ids['before_lunch']}":
            assert lunch in _text(body), page
    chef = _chef(app, locale)
    facts = _text(chef.get(f"/alerts/{ids['before_lunch']}").get_data(as_text=True)
                  .split('data-testid="facts"')[1].split("</dl>")[0])
    slot = {"en": "Slot Before lunch service, 11:00", "zh": "时段 午市供应前 11:00"}[locale]
    assert slot in facts


@pytest.mark.parametrize("locale, name", [("en", "Serving hygiene · Before lunch service"),
                                          ("zh", "供应卫生检查 · 午市供应前")])
def test_records_name_the_slot_not_its_schedule_key(app, cook, freeze, locale, name):
    run_id = _open_before_lunch(cook, app, freeze)
    _all_pass(cook, run_id, _items(app, run_id))
    assert cook.post(f"/runs/{run_id}/submit").status_code == 302
    chef = _chef(app, locale)
    index = chef.get("/records?day=2026-11-27").get_data(as_text=True)
    assert "before_lunch" not in _text(index)
    assert _text(index).count(name) == 2  # waiting for sign-off, and the day's runs
    record = chef.get(f"/records/runs/{run_id}").get_data(as_text=True)
    assert "before_lunch" not in _text(record) and name in _text(record)


def test_submitting_a_late_run_resolves_its_overdue_alert_with_a_chained_event(app, cook, freeze):
    """Before lunch is due by 11:45; the cook submits at 12:05. The alert it raised at 11:50
    closes by itself with one 'resolved' event saying 'submitted late at 12:05', in the chain."""
    from app import audit
    from app.alerts.engine import sweep_checklists
    from app.models import Alert, AlertEvent, AuditRecord
    from sqlalchemy import select
    from tests.factories import at_local
    from tests.test_pages import DAY
    run_id = _open_before_lunch(cook, app, freeze)
    items = _items(app, run_id)
    with app.app_context():
        sweep_checklists(db.session, freeze(at_local(DAY, "11:50")))
        sweep_checklists(db.session, at_local(DAY, "11:55"))
        db.session.commit()
        [alert] = db.session.execute(select(Alert)).scalars().all()
        alert_id = alert.id
        assert alert.state.status == "open"
    freeze(at_local(DAY, "12:05"))
    _all_pass(cook, run_id, items)
    assert cook.post(f"/runs/{run_id}/submit").status_code == 302
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.state.status, alert.state.resolved_at, alert.state.open_subject) == (
            "resolved", at_local(DAY, "12:05"), None)
        assert alert.state.acknowledged_at is None and alert.state.next_notify_at is None
        [event] = alert.events
        assert (event.kind, event.at, event.actor.name) == ("resolved", at_local(DAY, "12:05"),
                                                           "Cook Sam")
        assert event.data == {"submitted_late_at": at_local(DAY, "12:05").isoformat(),
                              "run_id": run_id}
        link = db.session.execute(select(AuditRecord).where(
            AuditRecord.entity == "alert_events", AuditRecord.entity_id == event.id)).scalar_one()
        assert link.action == "alert.resolved"
        assert audit.verify(db.session)[1] == []
        # A sweep after the submission finds nothing overdue and opens nothing new.
        sweep_checklists(db.session, at_local(DAY, "12:10"))
        db.session.commit()
        assert db.session.query(Alert).count() == 1
        assert db.session.query(AlertEvent).count() == 1
    for locale, late, banner in (
            ("en", "Resolved Cook Sam Submitted late at 12:05",
             "Resolved by itself: the checklist was submitted late at 12:05 by Cook Sam."),
            ("zh", "已解决 Cook Sam 于 12:05 迟交", "已自动解决：Cook Sam 于 12:05 迟交了检查表。")):
        page = _text(_chef(app, locale).get(f"/alerts/{alert_id}").get_data(as_text=True))
        assert late in page and banner in page
    # The lateness stays on the record.
    assert "class=\"late\"" in _chef(app).get(f"/records/runs/{run_id}").get_data(as_text=True)


def test_a_run_submitted_in_time_touches_no_alert(app, cook, freeze):
    from app.models import AlertEvent
    run_id = _open_before_lunch(cook, app, freeze)
    _all_pass(cook, run_id, _items(app, run_id))
    assert cook.post(f"/runs/{run_id}/submit").status_code == 302
    with app.app_context():
        assert db.session.query(AlertEvent).count() == 0


def _facts(page: str) -> list[str]:
    block = page.split('data-testid="facts"')[1].split("</dl>")[0]
    return [_text(f"{dt_} {dd}").strip() for dt_, dd in
            re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block)]


@pytest.mark.parametrize("locale, expected", [
    ("en", ["Target limit 5.0 °C", "Critical limit 8.0 °C",
            "This alert is about Critical limit, 8.0 °C"]),
    ("zh", ["目标上限 5.0 °C", "临界上限 8.0 °C", "本警报针对 临界上限 8.0 °C"])])
def test_a_critical_alerts_page_shows_both_limits_and_that_it_is_about_the_critical_one(
        app, kitchen, freeze, locale, expected):
    """It opened as an alarm on the 5 °C target, then the fridge passed 8 °C: 'Limit 5.0 °C'
    was all its page said."""
    import datetime as dt
    from app.alerts.engine import evaluate_units
    from app.models import Alert
    from tests.factories import SALAD_T0, feed_salad, salad_fridge
    with app.app_context():
        unit = salad_fridge(kitchen["site"], SALAD_T0)
        end = feed_salad([4.0] * 3 + [7.0] * 15, SALAD_T0 + dt.timedelta(minutes=1))
        evaluate_units(db.session, [unit.id], end)
        db.session.commit()
        alert = db.session.query(Alert).one()
        assert alert.tier == "alarm"
        end = feed_salad([9.0] * 5, end + dt.timedelta(minutes=1))
        evaluate_units(db.session, [unit.id], end)
        db.session.commit()
        alert = db.session.query(Alert).one()
        assert alert.state.tier == "critical" and alert.detail["limit_c"] == 5.0
        alert_id = alert.id
    freeze(end)
    facts = _facts(_chef(app, locale).get(f"/alerts/{alert_id}").get_data(as_text=True))
    assert [f for f in facts if any(f.startswith(e.split(" ")[0]) for e in expected)] == expected


def test_an_alarm_says_it_is_about_the_target_limit_and_old_alerts_find_their_limits(
        app, kitchen, freeze):
    import datetime as dt
    from app.alerts.operations import raise_alert
    from tests.factories import SALAD_T0, salad_fridge
    with app.app_context():
        unit = salad_fridge(kitchen["site"], SALAD_T0)
        unit.target_max_c, unit.critical_max_c = 4.0, 9.0  # changed since: not what was recorded
        # Recorded before alerts kept both limits: the opening's limit and the raise's.
        old = raise_alert(db.session, site_id=kitchen["site"], kind="temperature",
                          subject="old", unit_id=unit.id, now=SALAD_T0,
                          detail={"unit": unit.name, "direction": "high", "limit_c": 5.0})
        raise_alert(db.session, site_id=kitchen["site"], kind="temperature", subject="old",
                    tier="critical", unit_id=unit.id, now=SALAD_T0 + dt.timedelta(minutes=5),
                    detail={"limit_c": 8.0})
        alarm = raise_alert(db.session, site_id=kitchen["site"], kind="temperature",
                            subject="new", unit_id=unit.id, now=SALAD_T0, detail={
                                "unit": unit.name, "direction": "high", "limit_c": 5.0,
                                "target_c": 5.0, "critical_c": 8.0})
        db.session.commit()
        ids = old.id, alarm.id
    freeze(SALAD_T0 + dt.timedelta(minutes=10))
    chef = _chef(app)
    old_facts = _facts(chef.get(f"/alerts/{ids[0]}").get_data(as_text=True))
    assert "Target limit 5.0 °C" in old_facts and "Critical limit 8.0 °C" in old_facts
    assert "This alert is about Critical limit, 8.0 °C" in old_facts
    alarm_facts = _facts(chef.get(f"/alerts/{ids[1]}").get_data(as_text=True))
    assert "This alert is about Target limit, 5.0 °C" in alarm_facts
    assert "Critical limit 8.0 °C" in alarm_facts
