"""Hold timers: start, expiry demands an outcome, outcomes are records."""
import datetime as dt

import pytest
from sqlalchemy import select

from app.errors import OperationError
from app.models import HoldTimer, Site, Staff, TimerOutcome, db
from app.timers.operations import presets, record_outcome, start_timer, timer_state
from tests.factories import Kitchen, login_pin

T0 = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


def test_presets_cover_rules_2_3_and_7():
    assert {p.rule for p in presets().values()} == {"R2", "R3", "R7"}
    assert presets()["time_control"].minutes == 240


def test_a_timer_runs_expires_and_is_settled(ctx, kitchen):
    site = db.session.get(Site, kitchen["site"])
    cook = db.session.get(Staff, kitchen["cook"])
    timer = start_timer(db.session, site, cook, "dev1", "cold_out", "Pomfret salad", now=T0)
    assert timer.expires_at == T0 + dt.timedelta(minutes=120)
    assert timer_state(timer, T0 + dt.timedelta(minutes=119, seconds=59)) == "running"
    assert timer_state(timer, T0 + dt.timedelta(minutes=120)) == "expired"
    record_outcome(db.session, timer, cook, "dev1", "discarded", now=T0 + dt.timedelta(minutes=121))
    db.session.commit()
    assert timer_state(timer, T0 + dt.timedelta(hours=5)) == "discarded"
    assert record_outcome(db.session, timer, cook, None, "discarded").id == timer.outcomes[0].id
    with pytest.raises(OperationError, match="needs a reason"):
        record_outcome(db.session, timer, cook, None, "served")
    fix = record_outcome(db.session, timer, cook, None, "served", reason="Tapped the wrong button")
    db.session.commit()
    assert fix.supersedes_id == timer.outcomes[0].id and timer_state(timer, T0) == "served"


@pytest.mark.parametrize("kind,dish,message", [("nap", "Soup", "Unknown kind"),
                                               ("plated", "  ", "which dish"),
                                               ("plated", "x" * 201, "too long")])
def test_bad_timer_input_is_refused(ctx, kitchen, kind, dish, message):
    site = db.session.get(Site, kitchen["site"])
    cook = db.session.get(Staff, kitchen["cook"])
    with pytest.raises(OperationError, match=message):
        start_timer(db.session, site, cook, None, kind, dish)


def test_the_tablet_demands_an_outcome_at_expiry(app, client, kitchen, freeze):
    freeze(T0)
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    client.post("/timers", data={"kind": "plated", "dish": "Steamed fish"})
    panel = client.get("/timers/panel").get_data(as_text=True)
    assert "Steamed fish" in panel and "Time is up" not in panel
    freeze(T0 + dt.timedelta(minutes=16))
    panel = client.get("/timers/panel").get_data(as_text=True)
    assert "Time is up: served or discarded?" in panel
    with app.app_context():
        timer_id = db.session.execute(select(HoldTimer.id)).scalar_one()
    client.post(f"/timers/{timer_id}/outcome", data={"outcome": "served"})
    with app.app_context():
        outcome = db.session.execute(select(TimerOutcome)).scalar_one()
        assert (outcome.outcome, outcome.recorded_by_id) == ("served", kitchen["cook"])
        assert outcome.recorded_at == T0 + dt.timedelta(minutes=16)
    assert "Time is up" not in client.get("/timers/panel").get_data(as_text=True)


def test_the_timers_panel_costs_the_same_with_a_days_timers_or_a_few(app, client, kitchen, freeze):
    """Each timer on the panel lazy-loaded its outcomes (200 statements for a busy day), and
    every timer ever was scanned: now one query for the last two days' timers, one for their
    outcomes. An unsettled timer older than that is history, not the tablet's business."""
    from sqlalchemy import event
    freeze(T0)
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])

    def settle(count, start):
        with app.app_context():
            site = db.session.get(Site, kitchen["site"])
            cook = db.session.get(Staff, kitchen["cook"])
            for n in range(count):
                at = start + dt.timedelta(minutes=3 * n)
                timer = start_timer(db.session, site, cook, None, "plated", f"Dish {n}", now=at)
                record_outcome(db.session, timer, cook, None, "served", now=at)
            db.session.commit()

    def statements():
        seen = []
        with app.app_context():
            engine = db.engine
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            panel = client.get("/timers/panel")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert panel.status_code == 200
        return len(seen), panel.get_data(as_text=True)

    settle(3, T0 - dt.timedelta(minutes=30))
    few, _ = statements()
    settle(60, T0 - dt.timedelta(hours=5))
    many, panel = statements()
    assert many == few
    with app.app_context():  # a timer never settled, three days old: not on the panel
        start_timer(db.session, db.session.get(Site, kitchen["site"]),
                    db.session.get(Staff, kitchen["cook"]), None, "plated", "Forgotten soup",
                    now=T0 - dt.timedelta(days=3))
        db.session.commit()
    assert "Forgotten soup" not in statements()[1]
