"""What a wall display shows: the site's units, open alerts, overdue checklists and hold timers.

Built once per site, language and change (ETag) in each process and handed to every screen of
that site that asks: a hundred screens cost one build. Ages and "stale" are left to the screen,
which knows how long ago it last heard from the server; the board carries the server's time.
"""
from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select

from app.alerts.engine import unit_state
from app.alerts.labels import alert_headline, alert_label
from app.alerts.operations import overdue_subject
from app.alerts.page import banner_alerts
from app.formatting import bilingual, local_time, slot_label
from app.models import HoldTimer, Site, TimerOutcome
from app.models.units import Unit
from sensors import temperature
from sensors.models import Reading, Sensor

#: A reading this much warmer or colder than ten minutes before shows a rising or falling arrow.
TREND_DELTA_C = 0.3
TREND_SPAN = dt.timedelta(minutes=10)
#: A tile shows "stale" once its newest reading is this many expected intervals old (and at
#: least STALE_MIN_S): the number is then no longer shown as the current temperature.
STALE_INTERVALS = 2
STALE_MIN_S = 90
#: Overdue checklist slots listed at most (the oldest deadlines).
OVERDUE_SHOWN = 4


def trend(points: list[tuple[dt.datetime, float]]) -> str | None:
    """"up", "down" or "steady" from a unit's recent readings in time order; None if too few."""
    if len(points) < 2:
        return None
    last_at, last = points[-1]
    then = next((v for at, v in reversed(points) if at <= last_at - TREND_SPAN), points[0][1])
    if last - then >= TREND_DELTA_C:
        return "up"
    if then - last >= TREND_DELTA_C:
        return "down"
    return "steady"


def _recent(session, unit_ids: list[int], since: dt.datetime) -> dict[int, list]:
    out: dict[int, list] = {u: [] for u in unit_ids}
    if unit_ids:
        rows = session.execute(
            select(Sensor.unit_id, Reading.measured_at, Reading.temperature_c)
            .join(Sensor, Sensor.id == Reading.sensor_id)
            .where(Sensor.unit_id.in_(unit_ids), Reading.measured_at >= since)
            .order_by(Reading.measured_at))
        for unit_id, at, value in rows:
            out[unit_id].append((at, value))
    return out


#: What to do about an open alert, said as an instruction to whoever reads the wall.
TODO = {
    "temperature": lazy_gettext("Check the food with a probe; move it to a working fridge"),
    "offline": lazy_gettext("Check the sensor and its power"),
    "low_battery": lazy_gettext("Replace the sensor battery"),
    "checklist_overdue": lazy_gettext("Do the checklist now"),
    "timer_expired": lazy_gettext("Serve or discard the dish"),
    "calibration": lazy_gettext("Check the thermometer against ice water"),
    "review_due": lazy_gettext("Book a time for the yearly review"),
}


def _todo(alert) -> str:
    if alert.state.status != "open":
        return _("Acknowledged: the head chef resolves it once back to normal")
    step = f"{TODO[alert.kind]} · " if alert.kind in TODO else ""
    return step + _("Acknowledge it on the tablet")


def build(session, site: Site, now: dt.datetime, locale: str) -> dict:
    """The board of ``site`` at ``now`` in ``locale``, as JSON-ready data."""
    with force_locale(locale):
        return _build(session, site, now)


def _build(session, site: Site, now: dt.datetime) -> dict:
    units = session.execute(select(Unit).where(Unit.site_id == site.id)
                            .order_by(Unit.name)).scalars().all()
    recent = _recent(session, [u.id for u in units], now - TREND_SPAN - dt.timedelta(minutes=5))
    symbol = f"°{site.temp_unit}"
    tiles = []
    for unit in units:
        state = unit_state(session, unit, site, now)
        value = state.last_value
        tiles.append({
            "id": unit.id, "name": unit.name, "state": state.state,
            "value": None if value is None else
            f"{temperature.from_celsius(value, site.temp_unit):.1f}",
            "symbol": symbol, "trend": trend(recent[unit.id]),
            "last_at": state.last_reading_at.isoformat() if state.last_reading_at else None,
            "stale_after_s": max(STALE_MIN_S, STALE_INTERVALS * unit.expected_interval_s),
        })
    alerts = banner_alerts(session, site.id)
    shown_alerts = [{
        "id": a.id, "kind": a.kind, "unit_id": a.unit_id, "tier": a.state.tier,
        "status": a.state.status,
        "headline": alert_headline(a), "label": alert_label(a.state.tier if a.kind == "temperature"
                                                           else a.kind),
        "todo": _todo(a), "opened_at": a.opened_at.isoformat(),
        "since": local_time(a.opened_at, site.timezone),
    } for a in sorted(alerts, key=lambda a: (a.state.status != "open",
                                              a.state.tier != "critical"))]
    subjects = {a.subject for a in alerts}
    return {"now": now.isoformat(), "site": site.name, "units": tiles, "alerts": shown_alerts,
            "overdue": _overdue(session, site, now, subjects),
            "timers": _timers(session, site, now, subjects)}


def _overdue(session, site: Site, now: dt.datetime, alerted: set[str]) -> list[dict]:
    """Today's overdue checklist slots that no open alert shows already."""
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import due_today
    overdue = []
    for entry in due_today(session, site, now, current_definitions(session, site.id)):
        subject = overdue_subject(site.id, entry.definition.key, entry.slot.schedule_key,
                                  entry.slot.start)
        if entry.status == "overdue" and subject not in alerted:
            overdue.append(entry)
    # The wall has room for a few; the oldest deadline first. Only those shown are worded.
    overdue.sort(key=lambda e: e.slot.deadline)
    return [{"title": bilingual(e.definition, "title"),
             "slot": slot_label(e.definition.schedules, e.slot.schedule_key, e.slot.start,
                                site.timezone),
             "deadline": e.slot.deadline.isoformat()} for e in overdue[:OVERDUE_SHOWN]]


def _timers(session, site: Site, now: dt.datetime, alerted: set[str]) -> list[dict]:
    """Hold timers with no outcome yet (the screen turns them red when their time is up)."""
    recent = now - dt.timedelta(days=2)
    timers = session.execute(select(HoldTimer).where(
        HoldTimer.site_id == site.id, HoldTimer.started_at >= recent - dt.timedelta(days=7),
        HoldTimer.expires_at >= recent).order_by(HoldTimer.expires_at)).scalars().all()
    settled = set(session.execute(select(TimerOutcome.timer_id).where(
        TimerOutcome.timer_id.in_([t.id for t in timers]))).scalars()) if timers else set()
    return [{"id": t.id, "dish": t.dish, "expires_at": t.expires_at.isoformat()}
            for t in timers if t.id not in settled and f"timer:{t.id}" not in alerted]


class BoardCache:
    """Boards by (site, language, ETag): the first screen to ask builds, the others wait for it."""

    def __init__(self, size: int = 16):
        self.size = size
        self.boards: OrderedDict[tuple, bytes] = OrderedDict()
        self.locks: dict[tuple, threading.Lock] = {}
        self.guard = threading.Lock()
        self.builds = 0

    def peek(self, key: tuple) -> bytes | None:
        """The board if built already (no waiting)."""
        return self.boards.get(key)

    def building(self, key: tuple) -> bool:
        """Whether a thread is building this board right now."""
        return key in self.locks

    def get(self, key: tuple, make) -> bytes:
        with self.guard:
            if key in self.boards:
                self.boards.move_to_end(key)
                return self.boards[key]
            lock = self.locks.setdefault(key, threading.Lock())
        with lock:
            with self.guard:
                if key in self.boards:
                    return self.boards[key]
            try:
                body = make()
            except BaseException:  # a failed build must not stay "being built" for ever
                with self.guard:
                    self.locks.pop(key, None)
                raise
            with self.guard:
                self.builds += 1
                self.boards[key] = body
                self.locks.pop(key, None)
                while len(self.boards) > self.size:
                    self.boards.popitem(last=False)
            return body


