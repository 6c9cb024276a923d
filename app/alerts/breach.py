"""Breach logic: a unit's state from its settings and readings. Pure: no database, no clock.

States: ok · warning (out of target, within the delay) · alarm (out of target past the
delay, or below the lower limit past the delay) · critical (past the critical limit for
its short delay) · offline (no reading for N × the expected interval) · defrost (inside a
defrost window, where the target tier is suppressed — the critical tier never is).

An excursion starts when a reading is strictly beyond a limit and lasts until a
reading is back inside the limit by the hysteresis; readings in between do not reset
the delay, so a fridge hovering at its limit still alarms. Between readings the last
value is taken to hold, so a delay can run out with no new reading.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from zoneinfo import ZoneInfo

from sensors.temperature import Limits

OK, WARNING, ALARM, CRITICAL, OFFLINE, DEFROST = (
    "ok", "warning", "alarm", "critical", "offline", "defrost")
#: Which state shows when several hold at once.
PRECEDENCE = (CRITICAL, ALARM, OFFLINE, DEFROST, WARNING, OK)


@dataclass(frozen=True)
class DefrostWindow:
    """A daily defrost cycle in site-local wall-clock time."""

    start: dt.time
    minutes: int


@dataclass(frozen=True)
class Settings:
    target_max_c: float
    critical_max_c: float
    min_c: float | None = None
    alert_delay_s: int = 1800
    critical_delay_s: int = 300
    hysteresis_c: float = 0.5
    expected_interval_s: int = 60
    offline_after: int = 5          # intervals of silence before "offline"
    defrost: tuple[DefrostWindow, ...] = ()
    timezone: str = "UTC"

    @cached_property
    def limits(self) -> Limits:
        """The one set of rules every page colours readings by (once, not once per reading)."""
        return Limits.of(self)

    def defrost_windows(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """Defrost windows (UTC) overlapping [start, end], in time order."""
        if not self.defrost:
            return []
        tz = ZoneInfo(self.timezone)
        first = start.astimezone(tz).date() - dt.timedelta(days=1)
        last = end.astimezone(tz).date()
        days = min((last - first).days, 400)  # a unit silent for longer is offline anyway
        windows = []
        for n in range(days + 1):
            day = first + dt.timedelta(days=n)
            for window in self.defrost:
                ws = dt.datetime.combine(day, window.start, tzinfo=tz).astimezone(dt.timezone.utc)
                we = ws + dt.timedelta(minutes=window.minutes)
                if we > start and ws <= end:
                    windows.append((ws, we))
        return sorted(windows)

    def in_defrost(self, at: dt.datetime) -> bool:
        return any(ws <= at < we for ws, we in self.defrost_windows(at, at))


@dataclass
class Excursion:
    """One continuous time beyond a limit."""

    tier: str                 # "high", "low" or "critical"
    started: dt.datetime      # first reading beyond the limit
    peak: float
    alarmed_at: dt.datetime | None = None


@dataclass
class UnitState:
    state: str
    at: dt.datetime
    last_reading_at: dt.datetime | None
    last_value: float | None
    excursions: dict[str, Excursion] = field(default_factory=dict)
    #: For a unit that never reported: since when it has been watched (its sensors appeared
    #: or it was created). Silence counts from then, not from the beginning of time.
    watched_since: dt.datetime | None = None

    @property
    def breach(self) -> Excursion | None:
        """The alarmed excursion of the highest tier, if any."""
        for tier in ("critical", "high", "low"):
            exc = self.excursions.get(tier)
            if exc is not None and exc.alarmed_at is not None:
                return exc
        return None


def evaluate(settings: Settings, readings: list[tuple[dt.datetime, float]],
             now: dt.datetime, previous: UnitState | None = None,
             watched_since: dt.datetime | None = None) -> UnitState:
    """The unit's state at ``now`` from readings in time order (newer than ``previous.at``).

    ``watched_since``: when a unit without any reading started being watched; it is offline
    only once it has been silent that long since then.
    """
    state = previous or UnitState(OK, readings[0][0] if readings else now, None, None,
                                  watched_since=watched_since)
    if previous is not None:
        state = UnitState(previous.state, previous.at, previous.last_reading_at,
                          previous.last_value, {k: Excursion(**vars(v)) for k, v in
                                                previous.excursions.items()},
                          previous.watched_since)
    for at, value in readings:
        if state.last_reading_at is not None and at <= state.last_reading_at:
            continue  # late or repeated readings do not rewrite the past
        _advance(settings, state, at)
        _observe(settings, state, at, value)
    # What is shown depends on nothing but the state at the end (settling after each reading
    # too cost a time-zone conversion per reading and changed nothing).
    _advance(settings, state, now)
    _settle(settings, state, now)
    return state


def _observe(settings: Settings, state: UnitState, at: dt.datetime, value: float) -> None:
    state.last_reading_at, state.last_value = at, value
    limits = settings.limits
    for tier in limits.tiers:
        exc = state.excursions.get(tier)
        if exc is None and limits.beyond(tier, value):
            state.excursions[tier] = Excursion(tier, at, value)
        elif exc is not None:
            if limits.recovered(tier, value):
                del state.excursions[tier]
            else:
                exc.peak = max(exc.peak, value) if tier != "low" else min(exc.peak, value)


def _advance(settings: Settings, state: UnitState, at: dt.datetime) -> None:
    """Let time pass to ``at`` with the last value holding: delays may run out."""
    for tier, exc in state.excursions.items():
        if exc.alarmed_at is None:
            due = _due(settings, exc, at)
            if due is not None and due <= at:
                exc.alarmed_at = due


def _due(settings: Settings, exc: Excursion, until: dt.datetime) -> dt.datetime | None:
    """When the excursion's delay runs out; the target tier's delay does not run in defrost."""
    if exc.tier == "critical":
        return exc.started + dt.timedelta(seconds=settings.critical_delay_s)
    remaining = dt.timedelta(seconds=settings.alert_delay_s)
    moment = exc.started
    if exc.tier == "high":
        for ws, we in settings.defrost_windows(exc.started, until):
            if ws > moment:
                if ws - moment >= remaining:
                    return moment + remaining
                remaining -= ws - moment
            moment = max(moment, we)
    return moment + remaining


def _settle(settings: Settings, state: UnitState, at: dt.datetime) -> None:
    state.state = _shown(settings, state, at)
    state.at = at


def _shown(settings: Settings, state: UnitState, at: dt.datetime) -> str:
    holding = set()
    breach = state.breach
    if breach is not None:
        holding.add(CRITICAL if breach.tier == "critical" else ALARM)
    heard = state.last_reading_at or state.watched_since
    if heard is None or at - heard > dt.timedelta(seconds=settings.expected_interval_s
                                                  * settings.offline_after):
        holding.add(OFFLINE)
    if settings.in_defrost(at):
        holding.add(DEFROST)
    if state.excursions and breach is None:
        holding.add(WARNING)
    return next(s for s in PRECEDENCE if s in holding or s == OK)
