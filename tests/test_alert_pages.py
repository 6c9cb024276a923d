"""The alert pages through the Flask client: the chef's list and page, the tablet banner and acknowledge."""
import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from app.alerts.engine import evaluate_units
from app.alerts.operations import mark_recovered, raise_alert
from app.models import Alert, AlertEvent, Notification, Role, Site, Staff, db
from tests.factories import Kitchen, feed_salad, login_pin, salad_fridge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
HX_POLL = {"HX-Request": "true", "X-Brigade-Poll": "1"}


def _feed(values, start, step=60):
    return feed_salad(values, start, step)


@pytest.fixture
def warm_fridge(app, kitchen, freeze):
    """A salad fridge that has been at 7 °C for a quarter of an hour: one open alarm."""
    with app.app_context():
        unit = salad_fridge(kitchen["site"], T0)
        end = _feed([4.0] * 3 + [7.0] * 15, T0 + dt.timedelta(minutes=1))
        evaluate_units(db.session, [unit.id], end)
        db.session.commit()
        alert = db.session.execute(select(Alert)).scalar_one()
        ids = {"unit": unit.id, "alert": alert.id, "end": end}
    freeze(ids["end"])
    return ids


def _login(client, kitchen, who):
    assert login_pin(client, kitchen[who], Kitchen.PINS[who]).status_code == 302
    return client


def _ack_event(app, alert_id):
    with app.app_context():
        return db.session.execute(select(AlertEvent).where(AlertEvent.alert_id == alert_id,
                                                           AlertEvent.kind == "acknowledged")
                                  ).scalar_one_or_none()


def _status(app, alert_id):
    with app.app_context():
        return db.session.get(Alert, alert_id).state.status


def test_the_list_and_the_alert_page_are_for_the_head_chef(client, kitchen, warm_fridge):
    alert_id = warm_fridge["alert"]
    _login(client, kitchen, "cook")
    assert client.get("/alerts").status_code == 403
    assert client.get(f"/alerts/{alert_id}").status_code == 403
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 403
    client.post("/logout")
    _login(client, kitchen, "chef")
    listing = client.get("/alerts")
    body = listing.get_data(as_text=True)
    assert listing.status_code == 200
    assert f'data-testid="alert-row-{alert_id}"' in body and "Salad fridge" in body
    assert "12:" in body, "opened time shown in site-local time (London is UTC in November)"
    assert client.get("/alerts?status=resolved").get_data(as_text=True).count("alert-row-") == 0
    assert client.get("/alerts?status=bogus").status_code == 400
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Salad fridge too warm" in page and 'data-testid="ack-form"' in page
    assert "7.0 °C" in page and "Limit 5.0 °C" in page


def test_the_tablet_banner_shows_open_alerts_and_its_poll_is_not_activity(app, client, kitchen,
                                                                           warm_fridge):
    alert_id = warm_fridge["alert"]
    _login(client, kitchen, "cook")
    home = client.get("/").get_data(as_text=True)
    assert 'id="alert-banner"' in home and 'hx-get="/alerts/banner"' in home and "data-poll" in home
    assert f'href="/alerts/{alert_id}/ack"' in home and 'data-status="open"' in home
    with client.session_transaction() as session:
        session["last_seen"] = seen = time.time() - 30
    partial = client.get("/alerts/banner", headers=HX_POLL)
    assert partial.status_code == 200 and "<html" not in partial.get_data(as_text=True)
    assert "Salad fridge too warm" in partial.get_data(as_text=True)
    with client.session_transaction() as session:
        assert session["last_seen"] == seen, "a poll must not keep the tablet awake"


def test_a_cook_acknowledges_from_the_tablet(app, client, kitchen, warm_fridge):
    alert_id = warm_fridge["alert"]
    _login(client, kitchen, "cook")
    page = client.get(f"/alerts/{alert_id}/ack")
    assert page.status_code == 200 and "What happened to the food?" in page.get_data(as_text=True)
    response = client.post(f"/alerts/{alert_id}/ack", data={
        "quick_action": "Moved the food to another fridge", "corrective_action": "walk-in 2",
        "food_outcome": "moved", "note": "door was left open"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    event = _ack_event(app, alert_id)
    assert event.actor_id == kitchen["cook"] and event.device_id
    assert event.data == {"corrective_action": "Moved the food to another fridge; walk-in 2",
                          "food_outcome": "moved", "note": "door was left open"}
    assert _status(app, alert_id) == "acknowledged"
    banner = client.get("/alerts/banner", headers=HX_POLL).get_data(as_text=True)
    assert 'data-status="acknowledged"' in banner and "Acknowledged by Cook Sam" in banner
    assert f"/alerts/{alert_id}/ack" not in banner
    again = client.get(f"/alerts/{alert_id}/ack").get_data(as_text=True)
    assert 'data-testid="already-acknowledged"' in again and 'data-testid="ack-form"' not in again


def test_an_acknowledgement_without_the_food_outcome_is_refused_and_records_nothing(
        app, client, kitchen, warm_fridge):
    alert_id = warm_fridge["alert"]
    _login(client, kitchen, "cook")
    response = client.post(f"/alerts/{alert_id}/ack",
                           data={"corrective_action": "Moved it all to the walk-in"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-testid="ack-error"' in body and "what happened to the food" in body
    assert 'value="Moved it all to the walk-in"' in body, "what was typed is kept"
    assert _ack_event(app, alert_id) is None and _status(app, alert_id) == "open"
    response = client.post(f"/alerts/{alert_id}/ack", data={"food_outcome": "kept"})
    assert response.status_code == 422 and "corrective action" in response.get_data(as_text=True)
    assert _ack_event(app, alert_id) is None


def test_resolve_is_refused_while_warm_and_works_once_back_in_range(app, client, kitchen,
                                                                    warm_fridge, freeze):
    alert_id = warm_fridge["alert"]
    _login(client, kitchen, "chef")
    # Resolving before acknowledging is refused too.
    refused = client.post(f"/alerts/{alert_id}/resolve")
    assert refused.status_code == 422 and "Acknowledge the alert" in refused.get_data(as_text=True)
    response = client.post(f"/alerts/{alert_id}/ack", data={
        "return_to": "page", "quick_action": "Adjusted the thermostat", "food_outcome": "kept"})
    assert response.status_code == 302 and response.headers["Location"] == f"/alerts/{alert_id}"
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'data-testid="still-out"' in page and 'data-testid="resolve"' in page
    refused = client.post(f"/alerts/{alert_id}/resolve", data={"note": "looks fine"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'data-testid="resolve-error"' in body
    assert "still out of range" in body
    assert _status(app, alert_id) == "acknowledged"

    with app.app_context():
        end = _feed([4.6, 4.4, 4.2], warm_fridge["end"] + dt.timedelta(minutes=1))
        evaluate_units(db.session, [warm_fridge["unit"]], end)
        db.session.commit()
    freeze(end)
    response = client.post(f"/alerts/{alert_id}/resolve", data={"note": "back to 4 °C"})
    assert response.status_code == 302
    assert _status(app, alert_id) == "resolved"
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'data-testid="resolved"' in page and "back to 4 °C" in page
    with app.app_context():
        kinds = [e.kind for e in db.session.get(Alert, alert_id).events]
    assert kinds == ["acknowledged", "recovered", "resolved"]
    listing = client.get("/alerts").get_data(as_text=True)
    assert f"alert-row-{alert_id}" in listing and "lasted" in listing


def test_a_timer_alert_resolves_only_once_its_condition_has_cleared(app, client, kitchen, freeze):
    freeze(T0)
    with app.app_context():
        alert = raise_alert(db.session, site_id=kitchen["site"], kind="timer_expired",
                            subject="timer:99", now=T0,
                            detail={"title": "Soup: served or discarded?", "dish": "Soup"})
        db.session.commit()
        alert_id = alert.id
    _login(client, kitchen, "cook")
    assert "Soup: served or discarded?" in client.get("/").get_data(as_text=True)
    client.post(f"/alerts/{alert_id}/ack", data={"quick_action": "Discarded the dish",
                                                 "food_outcome": "discarded"})
    client.post("/logout")
    _login(client, kitchen, "chef")
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 422
    with app.app_context():
        mark_recovered(db.session, "timer:99", T0)
        db.session.commit()
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 302
    assert _status(app, alert_id) == "resolved"


def test_another_sites_alert_is_not_found(app, client, kitchen, warm_fridge):
    alert_id = warm_fridge["alert"]
    with app.app_context():
        other = Site(name="Other", timezone="Asia/Shanghai")
        chef = Staff(site=other, name="Other chef", role=Role.HEAD_CHEF)
        chef.set_pin("4444")
        db.session.add_all([other, chef])
        db.session.commit()
        other_chef = chef.id
    assert login_pin(client, other_chef, "4444").status_code == 302
    assert client.get(f"/alerts/{alert_id}").status_code == 404
    assert client.get(f"/alerts/{alert_id}/ack").status_code == 404
    assert client.post(f"/alerts/{alert_id}/ack", data={"corrective_action": "x",
                                                        "food_outcome": "kept"}).status_code == 404
    assert client.post(f"/alerts/{alert_id}/resolve").status_code == 404
    assert f"alert-row-{alert_id}" not in client.get("/alerts").get_data(as_text=True)
    assert "banner-alert-" not in client.get("/alerts/banner").get_data(as_text=True)
    assert _status(app, alert_id) == "open"


def test_the_timeline_shows_who_was_notified_and_the_readings(app, client, kitchen, warm_fridge):
    alert_id = warm_fridge["alert"]
    with app.app_context():
        opened = db.session.get(Alert, alert_id).opened_at
        db.session.add_all([
            Notification(alert_id=alert_id, channel="email", target="chef@test.kitchen", level=1,
                         status="sent", attempts=1, created_at=opened,
                         sent_at=opened + dt.timedelta(seconds=5)),
            Notification(alert_id=alert_id, channel="webhook", target="http://127.0.0.1:9/hook/s3cret",
                         status="failed", attempts=5, created_at=opened,
                         last_error="connection refused")])
        db.session.get(Site, kitchen["site"]).temp_unit = "F"
        db.session.commit()
        ids = db.session.execute(select(Notification.id).order_by(Notification.id)).scalars().all()
    _login(client, kitchen, "chef")
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    for notification_id in ids:
        assert f'data-testid="tl-notification-{notification_id}"' in page
    assert "chef@test.kitchen" in page and "connection refused" in page and "attempts: 5" in page
    assert "http://127.0.0.1" in page and "s3cret" not in page  # a webhook's path may be a secret
    assert page.index('data-testid="tl-opened"') < page.index(f"tl-notification-{ids[0]}")
    # The readings around it, in the site's unit, the out-of-range ones marked.
    readings = page.split('data-testid="readings"')[1].split('data-testid="timeline"')[0]
    assert "39.2 °F" in readings and "44.6 °F" in readings and "Limit 41.0 °F" in readings
    assert page.count('class="reading reading-out"') == 15


def test_a_chinese_speaking_cook_sees_the_banner_in_chinese(app, client, kitchen, warm_fridge):
    _login(client, kitchen, "cook2")
    banner = client.get("/alerts/banner", headers=HX_POLL).get_data(as_text=True)
    assert "确认" in banner and "Acknowledge" not in banner
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AlertEvent)) == 0


def test_a_month_old_alert_shows_its_readings_from_the_rollups_worst_first(app, client, kitchen,
                                                                          warm_fridge, freeze):
    """Over a long span the page reads the 5-minute rollups, not every reading: rows stay few,
    each the worst of its group, and a peak whose raw readings retention has deleted still shows."""
    import json

    from sensors.models import Reading
    from sensors.store import Message, store_batch
    from app.alerts.page import MAX_READING_ROWS
    start = warm_fridge["end"] + dt.timedelta(minutes=1)
    peak_at = start + dt.timedelta(days=3, hours=5)
    messages = []
    for i in range(30 * 24 * 12):  # every 5 minutes for 30 days
        at = start + dt.timedelta(minutes=5 * i)
        value = 9.5 if at == peak_at else 7.0
        messages.append(Message("brigade/salad/reading",
                                json.dumps({"t": value, "ts": at.isoformat()}).encode(), at))
    with app.app_context():
        store_batch(db.session, messages)
        # Retention took the raw readings of the first ten days; their rollups stay.
        db.session.execute(Reading.__table__.delete().where(
            Reading.measured_at < start + dt.timedelta(days=10)))
        db.session.commit()
    freeze(messages[-1].received_at)
    _login(client, kitchen, "chef")
    page = client.get(f"/alerts/{warm_fridge['alert']}").get_data(as_text=True)
    readings = page.split('data-testid="readings"')[1].split('data-testid="timeline"')[0]
    rows = readings.count('class="reading reading-')
    assert 60 <= rows <= MAX_READING_ROWS
    assert "9.5 °C" in readings  # the peak, from the rollups alone
    assert readings.count("9.5 °C") == 1 and "Many readings: each row is the worst of" in readings
    # Dated rows over a month, day first at a site in Europe (27 Nov, not Nov 27).
    assert "27 Nov" in readings and "27 Dec" in readings and "Nov 27" not in readings
