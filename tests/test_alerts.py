"""Alerts from readings and records: once per subject, acknowledged, resolved only when back in range."""
import datetime as dt

import pytest
from sqlalchemy import func, select

from app.alerts.engine import evaluate_units, sweep_checklists, sweep_timers, sweep_units
from app.alerts.operations import acknowledge, escalation_level, notify_due, resolve
from app.alerts.engine import unit_state
from app.errors import OperationError
from app.models import Alert, Notification, Site, Staff, db
from app.timers.operations import record_outcome, start_timer

from tests.factories import feed_salad, salad_fridge

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.fixture
def fridge(ctx, kitchen):
    return salad_fridge(kitchen["site"], T0)


def feed(values, start, step=60):
    return feed_salad(values, start, step)


def alerts(kind=None):
    query = select(Alert)
    if kind:
        query = query.where(Alert.kind == kind)
    return db.session.execute(query).scalars().all()


def test_a_failing_fridge_opens_exactly_one_alert_and_escalates_to_critical(fridge):
    end = feed([4.0] * 3 + [6.0] * 10, T0)
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    assert alerts() == []  # 9 minutes out of target: still within the 10-minute delay
    end = feed([6.2] * 3, end + dt.timedelta(seconds=60))
    for _ in range(3):  # evaluated after every batch and by the sweep: still one alert
        evaluate_units(db.session, [fridge.id], end)
        sweep_units(db.session, end)
        db.session.commit()
    [alert] = alerts()
    assert (alert.kind, alert.tier, alert.state.status) == ("temperature", "alarm", "open")
    assert alert.detail["peak_c"] == 6.2 and alert.detail["limit_c"] == 5.0
    end = feed([9.0] * 4, end + dt.timedelta(seconds=60))
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    [alert] = alerts()
    assert alert.state.tier == "critical"
    assert [e.kind for e in alert.events] == ["tier_raised"]


def test_acknowledge_and_resolve_only_once_back_in_range(fridge, kitchen):
    end = feed([7.0] * 15, T0)
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    [alert] = alerts()
    cook = db.session.get(Staff, kitchen["cook"])
    with pytest.raises(OperationError, match="Acknowledge the alert"):
        resolve(db.session, alert, cook, None, still_out=False)
    with pytest.raises(OperationError, match="what happened to the food"):
        acknowledge(db.session, alert, cook, None, corrective_action="Moved food", food_outcome="eaten")
    acknowledge(db.session, alert, cook, "dev1", corrective_action="Moved food to the walk-in",
                food_outcome="moved", now=end)
    db.session.commit()
    site = db.session.get(Site, kitchen["site"])
    still = unit_state(db.session, fridge, site, end)
    with pytest.raises(OperationError, match="still out of range"):
        resolve(db.session, alert, cook, None, still_out=bool(still.excursions))
    end = feed([4.6, 4.4, 4.2], end + dt.timedelta(seconds=60))
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    assert alert.state.recovered_at is not None
    state = unit_state(db.session, fridge, site, end)
    resolve(db.session, alert, cook, "dev1", still_out=bool(state.excursions), now=end)
    db.session.commit()
    assert alert.state.status == "resolved" and alert.state.open_subject is None
    kinds = [e.kind for e in alert.events]
    assert kinds == ["acknowledged", "recovered", "resolved"]
    ack = alert.events[0]
    assert (ack.actor_id, ack.data["food_outcome"], ack.device_id) == (cook.id, "moved", "dev1")
    # A new excursion after resolution is a new alert.
    end = feed([7.0] * 15, end + dt.timedelta(seconds=60))
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    assert len(alerts()) == 2


def test_time_alone_raises_the_alarm_and_silence_means_offline(fridge):
    end = feed([4.0, 6.0], T0)
    sweep_units(db.session, end + dt.timedelta(seconds=299))
    db.session.commit()
    assert alerts() == []
    sweep_units(db.session, end + dt.timedelta(seconds=601))
    db.session.commit()
    assert [a.kind for a in alerts()] == ["temperature"]
    sweep_units(db.session, end + dt.timedelta(hours=1))
    db.session.commit()
    # Still warm at the last reading: the breach alert holds; offline is not raised over it.
    assert sorted(a.kind for a in alerts()) == ["temperature"]


def test_a_silent_sensor_raises_offline_and_recovers(fridge):
    end = feed([4.0] * 3, T0)
    sweep_units(db.session, end + dt.timedelta(seconds=300))
    db.session.commit()
    assert alerts() == []
    sweep_units(db.session, end + dt.timedelta(seconds=301))
    db.session.commit()
    [offline] = alerts("offline")
    feed([4.0], end + dt.timedelta(minutes=10))
    evaluate_units(db.session, [fridge.id], end + dt.timedelta(minutes=10))
    db.session.commit()
    assert offline.state.recovered_at is not None and offline.state.status == "open"


def test_overdue_checklists_and_expired_timers_raise_alerts(ctx, kitchen):
    from tests.factories import at_local
    day = dt.date(2026, 11, 27)
    sweep_checklists(db.session, at_local(day, "11:44"))
    db.session.commit()
    assert alerts() == []
    sweep_checklists(db.session, at_local(day, "11:46"))
    sweep_checklists(db.session, at_local(day, "11:50"))
    db.session.commit()
    [overdue] = alerts("checklist_overdue")
    assert overdue.detail["schedule"] == "before_lunch"
    site = db.session.get(Site, kitchen["site"])
    cook = db.session.get(Staff, kitchen["cook"])
    timer = start_timer(db.session, site, cook, None, "plated", "Cold noodles", now=T0)
    db.session.commit()
    sweep_timers(db.session, T0 + dt.timedelta(minutes=14))
    assert alerts("timer_expired") == []
    sweep_timers(db.session, T0 + dt.timedelta(minutes=15))
    sweep_timers(db.session, T0 + dt.timedelta(minutes=16))
    db.session.commit()
    [expired] = alerts("timer_expired")
    record_outcome(db.session, timer, cook, None, "discarded")
    from sqlalchemy import event
    outcome_queries = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM timer_outcomes" in statement:
            outcome_queries.append(statement)
    event.listen(db.engine, "after_cursor_execute", seen)
    try:
        sweep_timers(db.session, T0 + dt.timedelta(minutes=17))
    finally:
        event.remove(db.engine, "after_cursor_execute", seen)
    db.session.commit()
    assert expired.state.recovered_at is not None
    # Only the outcomes of the timers in the sweep's window, never every outcome ever recorded.
    assert outcome_queries and all("WHERE timer_outcomes.timer_id IN" in q for q in outcome_queries)


@pytest.mark.parametrize("minutes,level", [(0, 0), (9, 0), (10, 1), (29, 1), (30, 2), (600, 2)])
def test_escalation_levels(minutes, level):
    assert escalation_level(dt.timedelta(minutes=minutes), [0, 10, 30]) == level


def test_unacknowledged_alerts_renotify_and_escalate_until_acknowledged(app, fridge, kitchen):
    app.config.update(BRIGADE_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook",
                      BRIGADE_SMTP_HOST="127.0.0.1")
    end = feed([7.0] * 12, T0)
    evaluate_units(db.session, [fridge.id], end)
    db.session.commit()
    [alert] = alerts()
    opened = alert.opened_at
    notify_due(db.session, opened)
    notify_due(db.session, opened + dt.timedelta(minutes=1))  # not due again yet
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1  # webhook; cooks have no email
    notify_due(db.session, opened + dt.timedelta(minutes=10))
    db.session.commit()
    emails = db.session.execute(select(Notification.target).where(Notification.channel == "email")).scalars().all()
    assert emails == ["chef@test.kitchen"] and alert.state.escalation_level == 1
    notify_due(db.session, opened + dt.timedelta(minutes=30))
    db.session.commit()
    emails = db.session.execute(select(Notification.target).where(Notification.channel == "email",
                                                                  Notification.level == 2)).scalars().all()
    assert sorted(emails) == ["admin@test.kitchen", "chef@test.kitchen"]
    acknowledge(db.session, alert, db.session.get(Staff, kitchen["chef"]), None,
                corrective_action="Moved stock", food_outcome="moved")
    db.session.commit()
    before = db.session.scalar(select(func.count()).select_from(Notification))
    notify_due(db.session, opened + dt.timedelta(hours=3))
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == before
    assert [e.kind for e in alert.events if e.kind == "escalated"] == ["escalated", "escalated"]


def test_a_new_unit_is_not_offline_before_it_has_had_time_to_report(ctx, kitchen):
    from app.models.units import Unit
    from sensors.models import Sensor
    unit = Unit(site_id=kitchen["site"], name="New fridge", kind="fridge", target_max_c=5.0,
                critical_max_c=8.0, expected_interval_s=60, offline_after=5, created_at=T0)
    db.session.add(unit)
    db.session.flush()
    db.session.add(Sensor(key="brigade/new-fridge", unit_id=unit.id, first_seen=T0))
    db.session.commit()
    sweep_units(db.session, T0 + dt.timedelta(minutes=4))
    db.session.commit()
    assert alerts("offline") == []  # attached four minutes ago, never reported: not yet
    sweep_units(db.session, T0 + dt.timedelta(minutes=6))
    db.session.commit()
    assert [a.kind for a in alerts("offline")] == ["offline"]  # five intervals of silence


def _state_fields(state):
    return (state.state, state.last_reading_at, state.last_value,
            {k: (e.started, e.peak, e.alarmed_at) for k, e in state.excursions.items()})


def test_ingest_carries_on_from_each_units_last_evaluation_with_the_same_result(fridge):
    """A hovering excursion fed batch by batch: the remembered evaluation reads only each
    batch's new readings and agrees with a whole re-evaluation after every batch."""
    from app.alerts.engine import UnitMemory
    from app.models import Site
    memory = UnitMemory(refresh=dt.timedelta(days=1))
    values = [4.0, 5.2, 5.6, 5.4, 4.8, 5.1, 5.6, 6.0, 5.3, 4.4, 4.6, 5.7, 8.5, 8.9, 7.9, 4.2] * 3
    start, read = T0, 0
    for chunk in range(0, len(values), 4):
        batch = values[chunk:chunk + 4]
        end = feed(batch, start)
        site = db.session.get(Site, fridge.site_id)
        carried = memory.state(db.session, fridge, site, end, earliest=start)
        whole = unit_state(db.session, fridge, site, end)
        assert _state_fields(carried) == _state_fields(whole), chunk
        read += len(batch)
        start = end + dt.timedelta(seconds=60)
    assert memory.whole == 1 and memory.incremental == len(values) // 4 - 1
    assert memory.rows_read == read - 4  # the first batch was a whole evaluation


def test_a_late_reading_makes_the_unit_evaluated_from_its_whole_window(fridge):
    from app.alerts.engine import UnitMemory
    from app.models import Site
    memory = UnitMemory()
    site = db.session.get(Site, fridge.site_id)
    end = feed([4.0] * 5, T0, step=120)
    memory.state(db.session, fridge, site, end, earliest=T0)
    # A backlog arrives: readings over the limit, measured *before* the last reading seen.
    late = feed([9.0] * 12, T0 + dt.timedelta(seconds=30), step=1)
    state = memory.state(db.session, fridge, site, end, earliest=T0 + dt.timedelta(seconds=30))
    assert (memory.whole, memory.incremental) == (2, 0)
    assert _state_fields(state) == _state_fields(unit_state(db.session, fridge, site, end))
    assert late < end
    # Settings changed: whole again.
    fridge.target_max_c = 3.0
    end = feed([4.0], end + dt.timedelta(seconds=60))
    memory.state(db.session, fridge, site, end, earliest=end)
    assert memory.whole == 3


def test_a_little_late_reading_carries_on_from_an_earlier_evaluation(fridge):
    """A device-timed sensor beside one stored at receive time: its reading arrives after a
    newer one was evaluated. The memory goes back one evaluation, not to the whole window."""
    from app.alerts.engine import UnitMemory
    from app.models import Site
    memory = UnitMemory(refresh=dt.timedelta(hours=1))
    site = db.session.get(Site, fridge.site_id)
    first = feed([4.0] * 3, T0)
    memory.state(db.session, fridge, site, first, earliest=T0)
    second = feed([6.0] * 2, first + dt.timedelta(seconds=60))
    memory.state(db.session, fridge, site, second, earliest=first + dt.timedelta(seconds=60))
    # Measured before the second batch's newest reading, after the first batch's.
    late_at = first + dt.timedelta(seconds=90)
    feed([9.5], late_at)
    state = memory.state(db.session, fridge, site, second, earliest=late_at)
    assert (memory.whole, memory.incremental) == (1, 2)
    assert state.excursions["high"].peak == 9.5  # the late reading was taken in order
    assert _state_fields(state) == _state_fields(unit_state(db.session, fridge, site, second))


def test_the_last_escalation_reaches_the_sites_admin_and_every_owner_of_the_group(app, kitchen):
    from app.alerts.operations import recipients
    from app.models import Role
    with app.app_context():
        other = Site(name="Riverside", timezone="UTC")
        owner = Staff(site=other, name="Olga Owner", role=Role.OWNER, email="olga@x.example")
        their_admin = Staff(site=other, name="Rita Admin", role=Role.ADMIN, email="rita@x.example")
        gone = Staff(site_id=kitchen["site"], name="Gone Chef", role=Role.HEAD_CHEF, active=False)
        db.session.add_all([other, owner, their_admin, gone])
        db.session.commit()
        names = {level: sorted(p.name for p in recipients(db.session, kitchen["site"], level))
                 for level in (0, 1, 2)}
    assert names[0] == ["Cook Li", "Cook Sam"]
    assert names[1] == ["Chef Mei", "Cook Li", "Cook Sam"]
    # Riverside's admin is not Test Kitchen's; the owner, who sees every site, is told.
    assert names[2] == ["Admin Alex", "Chef Mei", "Cook Li", "Cook Sam", "Olga Owner"]
