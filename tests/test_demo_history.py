"""The demo kitchen a newcomer meets: a plausible recent past, and only the current slot due."""
import datetime as dt

import pytest
from sqlalchemy import func, select

from app.alerts.engine import sweep_checklists, sweep_timers, sweep_units
from app.audit import verify
from app.checklists.definitions import load_all
from app.demo import seed
from app.demo_history import DAYS
from app.models import (Alert, AlertEvent, Answer, HoldTimer, Run, Submission, TimerOutcome,
                        Verification, db)
from tests.factories import at_local

#: A Friday at 18:40 in London: dinner service's 18:30 slot is the one due.
DAY = dt.date(2026, 11, 27)


@pytest.fixture
def demo(ctx):
    now = at_local(DAY, "18:40")
    load_all(db.session)
    seed(db.session, "Europe/London", now=now)
    db.session.commit()
    return now


def test_the_demo_has_days_of_runs_mostly_on_time_a_failure_and_sign_offs(demo):
    runs = db.session.execute(select(Run).order_by(Run.slot_start)).scalars().all()
    # 7 slots a day for the past days; today those that are over.
    assert len(runs) == 7 * DAYS + 4  # today: before lunch, lunch twice, before dinner
    assert all(r.submission is not None for r in runs)
    late = [r for r in runs if r.submission.submitted_at > r.deadline]
    assert len(late) == 2
    signed = [r for r in runs if r.verification is not None]
    assert len(signed) == 7 * DAYS, "the past days are signed off; today's wait for the chef"
    fails = db.session.execute(select(Answer).where(Answer.outcome == "fail")).scalars().all()
    assert len(fails) == 2 and fails[-1].corrective_action  # the fail, then its fix
    assert fails[-1].run.verification.note == "Checked the corrective action with the team."


def test_late_runs_had_their_overdue_alert_resolved_by_the_submission(demo):
    overdue = db.session.execute(select(Alert).where(Alert.kind == "checklist_overdue")) \
        .scalars().all()
    assert len(overdue) == 2
    for alert in overdue:
        assert alert.state.status == "resolved"
        assert [e.kind for e in alert.events] == ["resolved"]
        assert "submitted_late_at" in alert.events[0].data


def test_a_past_excursion_with_its_alert_acknowledgement_and_resolution(demo):
    [alert] = db.session.execute(select(Alert).where(Alert.kind == "temperature")).scalars().all()
    assert alert.detail["unit"] == "Prep fridge" and alert.state.status == "resolved"
    assert [e.kind for e in alert.events] == ["acknowledged", "recovered", "resolved"]
    assert alert.events[0].actor.role.value == "cook" and alert.events[2].actor.role.value == \
        "head_chef"
    assert alert.opened_at < demo - dt.timedelta(days=1)


def test_timers_were_served_and_discarded(demo):
    outcomes = db.session.execute(select(TimerOutcome.outcome)).scalars().all()
    assert sorted(outcomes) == ["discarded"] + ["served"] * 5
    assert db.session.scalar(select(func.count()).select_from(HoldTimer)) == 7  # one running


def test_at_start_nothing_is_overdue_and_the_jobs_raise_nothing_new(demo):
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import due_today
    from app.models import Site
    site = db.session.execute(select(Site)).scalar_one()
    statuses = [(e.slot.schedule_key, e.status)
                for e in due_today(db.session, site, demo, current_definitions(db.session))]
    assert ("dinner_service", "due") in statuses
    assert [s for s in statuses if s[1] in ("due", "overdue", "in_progress")] == [
        ("dinner_service", "due")]
    alerts_before = db.session.scalar(select(func.count()).select_from(Alert))
    events_before = db.session.scalar(select(func.count()).select_from(AlertEvent))
    for job in (sweep_checklists, sweep_timers, sweep_units):
        job(db.session, demo)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Alert)) == alerts_before
    assert db.session.scalar(select(func.count()).select_from(AlertEvent)) == events_before
    count, problems = verify(db.session)
    assert problems == [] and count > 300


def feed_demo_start(start: dt.datetime, minutes: float, evaluate=True) -> list:
    """What `make run` does for the demo's cold-dish fridge: its simulated device publishes every
    30 s from ``start``; ingest stores each sample and evaluates the unit."""
    from app.alerts.engine import evaluate_units
    from app.models.units import Unit
    from sensors.simulator import demo_devices
    from sensors.store import Message, store_batch
    device = next(d for d in demo_devices() if d.unit == "Cold-dish fridge")
    unit = db.session.execute(select(Unit).where(Unit.name == "Cold-dish fridge")).scalar_one()
    opened = []
    t = 0.0
    while t <= minutes * 60:
        at = start + dt.timedelta(seconds=t)
        store_batch(db.session, [Message(p.topic, p.payload, at) for p in device.messages(t, at)])
        db.session.commit()
        if evaluate:
            opened += [(t, a) for a in evaluate_units(db.session, [unit.id], at)
                       if isinstance(a, Alert)]
            db.session.commit()
        t += 30
    return opened


def test_the_demos_cold_dish_fridge_goes_critical_within_five_minutes_of_the_start(demo):
    """It took 58 minutes: a failure after 20 simulated minutes, and the default delays."""
    opened = feed_demo_start(demo, 6)
    critical = [(t, a) for t, a in opened if a.state.tier == "critical"]
    assert critical, [(t, a.tier) for t, a in opened]
    t, alert = critical[0]
    assert alert.detail["unit"] == "Cold-dish fridge" and alert.kind == "temperature"
    assert 3 * 60 <= t <= 5 * 60, f"critical after {t / 60:.1f} minutes"
