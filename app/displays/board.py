"""What a wall display shows: the site's units, open alerts, overdue checklists and hold timers.

Built once per site, language and change (ETag) in each process and handed to every screen of
that site that asks: a hundred screens cost one build (:class:`BoardCache`). Ages and "stale"
are left to the screen, which knows how long ago it last heard from the server; the board
carries the server's time.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass

from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager, selectinload

from app.alerts.engine import unit_state
from app.alerts.labels import alert_headline, alert_label
from app.alerts.operations import overdue_subject
from app.formatting import bilingual, local_time, slot_label
from app.live import changes
from app.live.changes import etag, etag_order, site_version
from app.models import (Alert, AlertState, HoldTimer, Run, Site, Submission, TimerOutcome,
                        utcnow)
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
#: Unresolved alerts a wall shows in full (as static/display.js does); the rest are counted.
ALERTS_SHOWN = 3


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


def _rule(session, alert) -> str | None:
    """The rule an alert tells of, as the site keeps it, and where it comes from: "R2 · Cold
    holding" or "R2 · Cold holding at 5 °C (store rule)"; None for kinds no rule is about."""
    from app.rules.operations import alert_rule  # (the rules load after the displays)
    rule = alert_rule(session, alert)
    if rule is None:
        return None
    text = f"{rule['code']} · {bilingual(rule['title'], 'title')}"
    return f"{text} ({_('store rule')})" if rule.get("source") == "store" else text


def build(session, site: Site, now: dt.datetime, locale: str, memo: dict | None = None) -> dict:
    """The board of ``site`` at ``now`` in ``locale``, as JSON-ready data. ``memo``: a dict
    kept between builds of this site and language, to reuse what cannot have changed."""
    with force_locale(locale):
        return _build(session, site, now, memo)


def _build(session, site: Site, now: dt.datetime, memo: dict | None = None) -> dict:
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
    alerts, subjects = _alerts(session, site.id)
    shown_alerts = [{
        "id": a.id, "kind": a.kind, "unit_id": a.unit_id, "tier": a.state.tier,
        "status": a.state.status,
        "headline": alert_headline(a), "label": alert_label(a.state.tier if a.kind == "temperature"
                                                           else a.kind),
        "todo": _todo(a), "opened_at": a.opened_at.isoformat(),
        "since": local_time(a.opened_at, site.timezone), "rule": _rule(session, a),
    } for a in alerts]
    return {"now": now.isoformat(), "site": site.name, "units": tiles, "alerts": shown_alerts,
            "alerts_more": len(subjects) - len(shown_alerts),
            "overdue": _overdue_kept(session, site, now, subjects, memo),
            "timers": _timers(session, site, now, subjects)}


def _alerts(session, site_id: int) -> tuple[list[Alert], list[str]]:
    """The unresolved alerts the wall shows in full — open before acknowledged, critical first,
    newest first, as the tablet's banner orders them — and the subjects of all of them.

    Only those shown are loaded and worded: a kitchen that left a week of overdue checklists
    unanswered has a thousand, and a board carrying them all was 370 KB, built in 280 ms
    and sent to every screen at each change.
    """
    unresolved = (Alert.site_id == site_id, AlertState.status.in_(("open", "acknowledged")))
    subjects = list(session.execute(select(Alert.subject).join(AlertState).where(*unresolved))
                    .scalars())
    shown = session.execute(
        select(Alert).join(AlertState).where(*unresolved).options(contains_eager(Alert.state))
        .order_by(AlertState.status != "open", AlertState.tier != "critical",
                  Alert.opened_at.desc(), Alert.id.desc())
        .limit(ALERTS_SHOWN)).scalars().all() if subjects else []
    return shown, subjects


def _overdue_kept(session, site: Site, now: dt.datetime, alerted, memo: dict | None) -> list[dict]:
    """:func:`_overdue`, reused from ``memo`` while nothing it depends on can have changed.

    Working out the day's slots is most of a board's cost (every slot of every checklist,
    1,400 on the load test's kitchen), and a board is built at every reading. Between two
    submissions (of any site: one cheap read), with the same unresolved alerts, the list
    changes only with the clock (and with a site's choice of checklists, rarely); like
    everything the clock alone changes on the board, it is then worked out again every
    REFRESH_SECONDS, the ETag's period.
    """
    if memo is None:
        return _overdue(session, site, now, alerted)
    period = int(now.timestamp() // changes.REFRESH_SECONDS)
    key = (period, str(get_locale()), frozenset(alerted),
           session.execute(select(func.max(Submission.id))).scalar())
    kept = memo.get("overdue")
    if kept is None or kept[0] != key:
        kept = memo["overdue"] = (key, _overdue(session, site, now, alerted))
    return kept[1]


def _overdue(session, site: Site, now: dt.datetime, alerted) -> list[dict]:
    """Today's overdue checklist slots that no open alert shows already."""
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import due_today
    # due_today asks each run for its submission and sign-off, a query apiece (hundreds on a
    # busy day); read them first, for every run of the days it looks at, in three queries —
    # the session hands due_today these same runs, already loaded (``loaded`` keeps them).
    loaded = session.execute(select(Run).where(
        Run.site_id == site.id, Run.slot_start >= now - dt.timedelta(days=2),
        Run.slot_start <= now + dt.timedelta(days=1))
        .options(selectinload(Run.submission), selectinload(Run.verification))).scalars().all()
    entries = due_today(session, site, now, current_definitions(session, site.id))
    del loaded
    overdue = []
    for entry in entries:
        if entry.status == "overdue" and overdue_subject(
                site.id, entry.definition.key, entry.slot.schedule_key,
                entry.slot.start) not in alerted:
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


#: A board is built at most this often (seconds) per site and language, however often the
#: site changes: what screens ask for in between is the board before, then the next one.
BUILD_GAP_S = 0.25


def board_json(session, site_id: int, locale: str, memo: dict | None = None
               ) -> tuple[str, bytes]:
    """(ETag, JSON) of a site's board now. The ETag is read before the board, in the same
    transaction, so the board is at least as new as its ETag says (never older)."""
    tag = etag(site_version(session, site_id))
    data = build(session, session.get(Site, site_id), utcnow(), locale, memo)
    return tag, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Board:
    """A built board: its ETag, when it was (version, refresh period), and its bytes."""

    tag: str
    order: tuple[int, int]
    body: bytes


class BoardCache:
    """The newest board of each (site, language) in this process, built by one thread at a time.

    A change is built once, however many screens ask: the first question after it builds it (at
    most every ``gap`` seconds), and while it does, the other screens are handed the board
    before it if that is newer than theirs, or told to ask again once it should be ready —
    none waits in a worker thread. Only the view, for a screen's first question, waits for a
    build under way.
    """

    def __init__(self, gap: float = BUILD_GAP_S):
        self.gap = gap
        self.newest: dict[tuple, Board] = {}
        self.locks: dict[tuple, threading.Lock] = {}
        self.started: dict[tuple, float] = {}  # when each key's last build began (monotonic)
        self.took: dict[tuple, float] = {}  # how long it took, to tell screens when to ask again
        #: What a build of each key leaves for the next (see board.build's ``memo``).
        self.memos: dict[tuple, dict] = {}
        self.guard = threading.Lock()
        self.builds = 0

    def peek(self, key: tuple) -> Board | None:
        """The newest board built for (site, language), if any (no waiting)."""
        return self.newest.get(key)

    def building(self, key: tuple) -> bool:
        """Whether a thread is building this board right now."""
        return self._lock(key).locked()

    def try_build(self, key: tuple, make) -> Board | None:
        """Build now, in this thread, unless a build is under way or the last one began less
        than ``gap`` ago (then None). ``make(memo)`` returns (ETag, bytes)."""
        lock = self._lock(key)
        if time.monotonic() - self.started.get(key, -self.gap) < self.gap \
                or not lock.acquire(blocking=False):
            return None
        try:
            return self._build(key, make)
        finally:
            lock.release()

    def get(self, key: tuple, tag: str, make) -> Board:
        """A board at least as new as ``tag``: the newest if it is, else built (after waiting
        for a build under way)."""
        wanted = etag_order(tag) or (0, 0)
        board = self.newest.get(key)
        if board is not None and board.order >= wanted:
            return board
        with self._lock(key):
            board = self.newest.get(key)
            if board is not None and board.order >= wanted:
                return board
            return self._build(key, make)

    def ready_in(self, key: tuple) -> float:
        """About how many seconds until the board being built, or due to be, is ready."""
        since = time.monotonic() - self.started.get(key, -self.gap)
        took = self.took.get(key, 0.05)
        wait = took - since if self.building(key) else max(0.0, self.gap - since) + took
        return min(max(wait, 0.05), 0.5)

    def _lock(self, key: tuple) -> threading.Lock:
        lock = self.locks.get(key)
        if lock is None:
            with self.guard:
                lock = self.locks.setdefault(key, threading.Lock())
        return lock

    def _build(self, key: tuple, make) -> Board:
        started = self.started[key] = time.monotonic()
        tag, body = make(self.memos.setdefault(key, {}))  # failing, leaves the newest as it was
        board = Board(tag, etag_order(tag), body)
        with self.guard:
            self.builds += 1
            self.took[key] = time.monotonic() - started
            current = self.newest.get(key)
            if current is None or board.order >= current.order:
                self.newest[key] = board
        return self.newest[key]
