"""The demo kitchen's recent past, so that every page shows something real at once.

Written through the same operations the tablet and the jobs use (so every record is chained and
reads as a real one): the last days' serving-hygiene runs — mostly on time, a few late with the
overdue alert their lateness raised and their submission resolved, one failure with its
corrective action — signed off by the head chef; the fridges' readings; a past excursion on the
prep fridge with its alert, acknowledgement and resolution; hold timers served and discarded.
Today's slots that are over are done, so at start only the current slot (if any) is due.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.models import Role, Site, Staff

logger = logging.getLogger(__name__)

#: Days of history before today.
DAYS = 3
#: Seconds between the stored readings of the history (the live simulator sends every 30 s).
READING_STEP_S = 300
#: (days ago, schedule key, slot index in the day) of the runs submitted late.
LATE = {(2, "lunch_service", 1), (1, "closing", 0)}
#: The run with a failed item, its corrective action given: (days ago, schedule key).
FAILED = (1, "before_dinner")


def seed_history(session, site: Site, units: dict, now: dt.datetime) -> None:
    """Fill the demo kitchen's last ``DAYS`` days and today up to ``now``; the caller commits."""
    from app.checklists.definitions import latest_definition
    definition = latest_definition(session, "serving_hygiene", site.id)
    people = {p.name: p for p in session.execute(select(Staff).where(
        Staff.site_id == site.id)).scalars()}
    cooks = [p for p in people.values() if p.role == Role.COOK]
    chef = next(p for p in people.values() if p.role == Role.HEAD_CHEF)
    _readings(session, site, units, now)
    _excursion(session, site, units["Prep fridge"], cooks[0], chef, now)
    if definition is not None:
        _runs(session, site, definition, cooks, chef, now)
    _timers(session, site, cooks, now)
    logger.info("demo history seeded: %s days", DAYS)


# --- readings and the past excursion --------------------------------------------------------

def _start(site: Site, now: dt.datetime) -> dt.datetime:
    tz = ZoneInfo(site.timezone)
    first = now.astimezone(tz).date() - dt.timedelta(days=DAYS)
    return dt.datetime.combine(first, dt.time(0, 0), tzinfo=tz).astimezone(dt.timezone.utc)


def excursion_window(site: Site, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """When the prep fridge was out of range: two days ago, 15:05 to 15:55 site time."""
    tz = ZoneInfo(site.timezone)
    day = now.astimezone(tz).date() - dt.timedelta(days=2)
    start = dt.datetime.combine(day, dt.time(15, 5), tzinfo=tz).astimezone(dt.timezone.utc)
    return start, start + dt.timedelta(minutes=50)


def _excursion_bump(t: dt.datetime, window) -> float:
    """°C added to the prep fridge: a door left ajar, up to +2.8 °C, then pulled down."""
    start, end = window
    if not start <= t <= end:
        return 0.0
    minutes = (t - start).total_seconds() / 60
    return min(2.8, minutes * 0.25) if minutes < 38 else max(0.0, 2.8 - (minutes - 38) * 0.4)


def _prep_values(site: Site, now: dt.datetime) -> list[tuple[dt.datetime, float]]:
    """The prep fridge's readings over its excursion, one a minute, as :func:`_readings` stores."""
    from sensors.simulator import demo_devices
    device = next(d for d in demo_devices(fail_after_s=None, silent_after_s=None)
                  if d.unit == "Prep fridge")
    start, window = _start(site, now), excursion_window(site, now)
    at, values = window[0] - dt.timedelta(hours=1), []
    while at <= window[1]:
        t = (at - start).total_seconds()
        values.append((at, device.trace.temperature(t) + _excursion_bump(at, window)))
        at += dt.timedelta(seconds=60)
    return values


def _readings(session, site: Site, units: dict, now: dt.datetime) -> None:
    """Each demo unit's readings over the history, as its device would have published them."""
    from sensors.simulator import demo_devices
    from sensors.store import Message, store_batch
    start = _start(site, now)
    window = excursion_window(site, now)
    # Live traces start at the start of `make run`; the history replays the same units calm.
    devices = [d for d in demo_devices(fail_after_s=None, silent_after_s=None) if d.unit in units]
    # Aligned on the minute from the start, so the excursion's minutes are the ones stored.
    at = start
    batch = []
    while at < now - dt.timedelta(minutes=1):
        # Finer around the excursion, so its alert page shows the rise and the recovery.
        near = window[0] - dt.timedelta(hours=1) <= at <= window[1] + dt.timedelta(minutes=30)
        t = (at - start).total_seconds()
        for device in devices:
            celsius = device.trace.temperature(t)
            if device.unit == "Prep fridge":
                celsius += _excursion_bump(at, window)
            batch += [Message(p.topic, p.payload, at) for p in device.payloads(t, celsius, at)]
        if len(batch) >= 2000:
            store_batch(session, batch)
            batch = []
        at += dt.timedelta(seconds=60 if near else READING_STEP_S)
    if batch:
        store_batch(session, batch)


def _excursion(session, site: Site, unit, cook: Staff, chef: Staff, now: dt.datetime) -> None:
    """The prep fridge's alarm of two days ago: opened, recovered, acknowledged, resolved."""
    from app.alerts.operations import acknowledge, mark_recovered, raise_alert, resolve
    values = _prep_values(site, now)
    out = [(at, v) for at, v in values if v > unit.target_max_c]
    if not out:
        return
    began = out[0][0]
    # Out of range for the unit's delay: the alarm; back under by the hysteresis: recovered.
    alarmed = began + dt.timedelta(seconds=unit.alert_delay_s)
    at_alarm = [(at, v) for at, v in values if at <= alarmed]
    back = next((at for at, v in values if at > alarmed
                 and v <= unit.target_max_c - unit.hysteresis_c), values[-1][0])
    peak = max(v for at, v in values if began <= at <= back)
    subject = f"unit:{unit.id}:temperature"
    alert = raise_alert(session, site_id=site.id, kind="temperature", subject=subject,
                        tier="critical" if peak > unit.critical_max_c else "alarm",
                        unit_id=unit.id, now=alarmed, detail={
                            "title": f"{unit.name} too warm", "unit": unit.name,
                            "direction": "high", "limit_c": unit.target_max_c,
                            "target_c": unit.target_max_c, "critical_c": unit.critical_max_c,
                            "peak_c": round(max(v for at, v in at_alarm if at >= began), 2),
                            "value_c": round(at_alarm[-1][1], 2),
                            "excursion_started": began.isoformat(),
                            "alarmed_at": alarmed.isoformat()})
    end = back
    acknowledge(session, alert, cook, None, corrective_action="Closed the door properly; "
                "checked the dishes with a probe thermometer", food_outcome="kept",
                note="Door left ajar after the delivery; the food stayed under 8 °C.",
                now=alarmed + dt.timedelta(minutes=6))
    mark_recovered(session, subject, end, value_c=4.6)
    resolve(session, alert, chef, None, still_out=False, note="Reminded the team about the door.",
            now=end + dt.timedelta(minutes=20))


# --- checklist runs -------------------------------------------------------------------------

def _runs(session, site: Site, definition, cooks: list[Staff], chef: Staff,
          now: dt.datetime) -> None:
    """Every slot of the history that is over: done (a few late), most signed off."""
    from app.alerts.engine import sweep_checklists
    from app.checklists.operations import open_run, record_answer, submit_run, verify_run
    from app.checklists.schedules import slots_for_day
    tz = ZoneInfo(site.timezone)
    today = now.astimezone(tz).date()
    rng = random.Random(7)
    for ago in range(DAYS, -1, -1):
        day = today - dt.timedelta(days=ago)
        slots = slots_for_day(definition.schedules, day, site.timezone)
        seen: dict[str, int] = {}
        for slot in slots:
            index = seen.get(slot.schedule_key, 0)
            seen[slot.schedule_key] = index + 1
            if slot.deadline >= now:
                continue  # the current and coming slots are the cook's to do
            late = (ago, slot.schedule_key, index) in LATE
            cook = cooks[(ago + len(seen)) % len(cooks)]
            opened = slot.start + dt.timedelta(minutes=rng.randint(2, 8))
            if late:
                opened = slot.deadline + dt.timedelta(minutes=rng.randint(8, 15))
                # The scheduler's sweep saw it overdue; the late submission resolves that alert.
                sweep_checklists(session, slot.deadline + dt.timedelta(minutes=2))
            run = open_run(session, site, definition.key, slot, cook, None, now=opened)
            at = opened
            failed = (ago, slot.schedule_key) == FAILED and index == 0
            for item in definition.items:
                at += dt.timedelta(seconds=rng.randint(10, 40))
                if item.kind == "time":
                    continue  # optional; most cooks leave it
                if item.kind == "temperature":
                    value = f"{rng.uniform(2.6, 4.4):.1f}"
                else:
                    value = "fail" if failed and item.key == "cold_held_chilled" else "pass"
                answer = record_answer(session, run, item, cook, None, value=value, now=at)
                if answer.outcome == "fail":
                    at += dt.timedelta(minutes=2)
                    record_answer(session, run, item, cook, None,
                                  corrective_action=item.suggested_actions[0]["en"],
                                  note="Tray of smacked cucumber left on the pass; back in "
                                       "the cold well within 10 minutes.", now=at)
            submit_run(session, run, cook, None, now=at + dt.timedelta(minutes=1))
            if ago >= 1:  # the head chef signs the past days off the next morning
                signed = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(10, 15),
                                             tzinfo=tz).astimezone(dt.timezone.utc)
                if signed < now:
                    verify_run(session, run, chef, None, now=signed + dt.timedelta(
                        minutes=len(seen)), note="Checked the corrective action with the team."
                        if failed else None)


# --- hold timers ----------------------------------------------------------------------------

def _timers(session, site: Site, cooks: list[Staff], now: dt.datetime) -> None:
    """Timers of the last days, each settled (most served, one discarded), and one running."""
    from app.timers.operations import presets, record_outcome, start_timer
    tz = ZoneInfo(site.timezone)
    today = now.astimezone(tz).date()
    plan = [(2, "12:40", "cold_out", "Smacked cucumber", "served"),
            (2, "18:50", "plated", "Drunken chicken", "served"),
            (1, "12:15", "time_control", "Sesame noodles", "discarded"),
            (1, "19:05", "cold_out", "Jellyfish salad", "served"),
            (0, "11:20", "plated", "Cold tofu", "served")]
    known = presets()
    for n, (ago, hhmm, kind, dish, outcome) in enumerate(plan):
        if kind not in known:
            continue
        hours, minutes = map(int, hhmm.split(":"))
        started = dt.datetime.combine(today - dt.timedelta(days=ago), dt.time(hours, minutes),
                                      tzinfo=tz).astimezone(dt.timezone.utc)
        window = dt.timedelta(minutes=known[kind].minutes)
        settled = started + (window if outcome == "discarded" else window * 0.6)
        if settled >= now:
            continue
        cook = cooks[n % len(cooks)]
        timer = start_timer(session, site, cook, None, kind, dish, now=started)
        record_outcome(session, timer, cook, None, outcome, now=settled)
    # And the tablet's panel at the start: a dish plated and served a quarter of an hour ago,
    # and a cold dish out of the fridge for the last half hour, still on the clock.
    if "plated" in known:
        timer = start_timer(session, site, cooks[0], None, "plated", "Drunken chicken",
                            now=now - dt.timedelta(minutes=25))
        record_outcome(session, timer, cooks[0], None, "served",
                       now=now - dt.timedelta(minutes=15))
    if "cold_out" in known:
        start_timer(session, site, cooks[1 % len(cooks)], None, "cold_out", "Jellyfish salad",
                    now=now - dt.timedelta(minutes=30))
