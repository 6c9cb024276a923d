"""From stored readings and records to alerts: what ingest calls after each batch, and the sweeps.

Ingest evaluates the units a batch touched right after its commit, so an alarm opens
as soon as its condition holds; the scheduled sweep handles what time alone changes
(a delay running out with no new reading, a sensor going silent, an overdue checklist,
an expired hold timer). Both are idempotent: one open alert per subject.
"""
from __future__ import annotations

import datetime as dt
import logging

from flask import current_app
from sqlalchemy import Integer, column, func, select, values

from app.alerts import breach
from app.alerts.operations import mark_recovered, open_state, overdue_subject, raise_alert
from app.models import AlertState, HoldTimer, Site, TimerOutcome, utcnow
from app.live.changes import mark_changed
from app.models.units import Unit
from sensors.db import UTCDateTime
from sensors.models import Reading, Sensor

logger = logging.getLogger(__name__)


def unit_settings(unit: Unit, site: Site) -> breach.Settings:
    windows = []
    for w in unit.defrost or []:
        hours, minutes = map(int, str(w["start"]).split(":"))
        windows.append(breach.DefrostWindow(dt.time(hours, minutes), int(w["minutes"])))
    return breach.Settings(
        target_max_c=unit.target_max_c, critical_max_c=unit.critical_max_c, min_c=unit.min_c,
        alert_delay_s=unit.alert_delay_s, critical_delay_s=unit.critical_delay_s,
        hysteresis_c=unit.hysteresis_c, expected_interval_s=unit.expected_interval_s,
        offline_after=unit.offline_after, defrost=tuple(windows), timezone=site.timezone)


def lookback(settings: breach.Settings) -> dt.timedelta:
    """How far back to read so that any delay still running is seen from its start."""
    longest = max(settings.alert_delay_s, settings.critical_delay_s,
                  settings.expected_interval_s * settings.offline_after)
    defrost = max((w.minutes * 60 for w in settings.defrost), default=0)
    return dt.timedelta(seconds=2 * longest + defrost + 600)


def unit_state(session, unit: Unit, site: Site, now: dt.datetime) -> breach.UnitState:
    """Evaluate one unit from its sensors' recent readings."""
    settings = unit_settings(unit, site)
    rows = session.execute(
        select(Reading.measured_at, Reading.temperature_c).join(Sensor, Sensor.id == Reading.sensor_id)
        .where(Sensor.unit_id == unit.id, Reading.measured_at >= now - lookback(settings),
               Reading.measured_at <= now)
        .order_by(Reading.measured_at)).all()
    readings = [(at, value) for at, value in rows]
    if not readings:
        # Nothing in the window: the last reading ever decides "offline" and its value holds.
        last = session.execute(
            select(Reading.measured_at, Reading.temperature_c)
            .join(Sensor, Sensor.id == Reading.sensor_id).where(Sensor.unit_id == unit.id)
            .order_by(Reading.measured_at.desc()).limit(1)).first()
        readings = [tuple(last)] if last else []
    watched_since = None
    if not readings:  # never reported: silent since the unit or its first sensor appeared
        first_seen = session.execute(select(func.min(Sensor.first_seen))
                                     .where(Sensor.unit_id == unit.id)).scalar_one_or_none()
        watched_since = max(filter(None, (unit.created_at, first_seen)), default=None)
    return breach.evaluate(settings, readings, now, watched_since=watched_since)


class UnitMemory:
    """An ingest worker's memory of each unit's last evaluations, kept between batches.

    After a batch a remembered unit reads only its readings newer than those an earlier
    evaluation had seen and carries on from that evaluation (``breach.evaluate(previous=...)``)
    instead of re-reading its whole look-back window — thousands of rows per batch when a
    backlog or a burst arrives. It carries on from the newest of its last few evaluations that
    saw nothing as new as the batch's earliest reading, so a reading a little late (a
    device-timed sensor beside one stored at its receive time) is taken in order, as a whole
    evaluation would. It is evaluated from its window again, as the sweep always does, when
    nothing is remembered, its settings changed, no remembered evaluation is old enough, time
    went backwards, or ``refresh`` has passed since its last whole evaluation (readings that
    another process stored late).
    """

    KEEP = 4

    def __init__(self, refresh: dt.timedelta = dt.timedelta(minutes=1)):
        self.refresh = refresh
        self.units: dict[int, tuple[breach.Settings, list[breach.UnitState], dt.datetime]] = {}
        self.whole = self.incremental = self.rows_read = 0

    def previous(self, unit_id: int, settings: breach.Settings, now: dt.datetime,
                 earliest: dt.datetime | None) -> breach.UnitState | None:
        """The remembered evaluation to carry on from, or None: evaluate the whole window."""
        was, states, whole_at = self.units.get(unit_id, (None, [], now))
        if was != settings or earliest is None or now - whole_at >= self.refresh:
            return None
        return next((s for s in reversed(states) if s.last_reading_at is not None
                     and s.last_reading_at < earliest and s.at <= now), None)

    def remember(self, unit_id: int, settings: breach.Settings, state: breach.UnitState,
                 now: dt.datetime, *, whole: bool) -> None:
        if whole:
            self.units[unit_id] = (settings, [state], now)
            self.whole += 1
        else:
            _, states, whole_at = self.units[unit_id]
            self.units[unit_id] = (settings, (states + [state])[-self.KEEP:], whole_at)
            self.incremental += 1

    def states(self, session, units: list[Unit], sites: dict[int, Site], now: dt.datetime,
               earliest: dict[int, dt.datetime]) -> dict[int, breach.UnitState]:
        """Each unit's state at ``now``: carried on where it can be, with one query for the
        new readings of all those units; else from its whole window."""
        settings = {u.id: unit_settings(u, sites[u.site_id]) for u in units}
        carry = {u.id: p for u in units
                 if (p := self.previous(u.id, settings[u.id], now, earliest.get(u.id)))}
        new: dict[int, list[tuple[dt.datetime, float]]] = {unit_id: [] for unit_id in carry}
        if carry:
            # Each unit from its own last reading on (a unit whose device clock lags must not
            # make the others re-read what they have seen).
            after = values(column("unit_id", Integer), column("after", UTCDateTime()),
                           name="after").data([(u, p.last_reading_at) for u, p in carry.items()]
                                              ).cte("after")
            rows = session.execute(
                select(Sensor.unit_id, Reading.measured_at, Reading.temperature_c)
                .join(Sensor, Sensor.id == Reading.sensor_id)
                .join(after, after.c.unit_id == Sensor.unit_id)
                .where(Reading.measured_at > after.c.after, Reading.measured_at <= now)
                .order_by(Reading.measured_at))
            for unit_id, at, value in rows:
                new[unit_id].append((at, value))
        out = {}
        for unit in units:
            if unit.id in carry:
                state = breach.evaluate(settings[unit.id], new[unit.id], now,
                                        previous=carry[unit.id])
                self.rows_read += len(new[unit.id])
            else:
                state = unit_state(session, unit, sites[unit.site_id], now)
            self.remember(unit.id, settings[unit.id], state, now, whole=unit.id not in carry)
            out[unit.id] = state
        return out

    def state(self, session, unit: Unit, site: Site, now: dt.datetime,
              earliest: dt.datetime | None) -> breach.UnitState:
        """One unit's state at ``now`` (see ``states``)."""
        return self.states(session, [unit], {site.id: site}, now,
                           {unit.id: earliest} if earliest else {})[unit.id]


def _limit_for(tier: str, unit: Unit) -> float | None:
    return {"critical": unit.critical_max_c, "high": unit.target_max_c, "low": unit.min_c}[tier]


def apply_unit_state(session, unit: Unit, state: breach.UnitState, now: dt.datetime,
                     open_subjects: set[str] | None = None) -> list:
    """Open, raise or mark recovered the unit's temperature and offline alerts.

    ``open_subjects``: the subjects known to have an open alert (None: look each one up).
    """
    def maybe_open(subject):
        return open_subjects is None or subject in open_subjects

    changed = []
    subject = f"unit:{unit.id}:temperature"
    exc = state.breach
    if exc is not None:
        tier = "critical" if exc.tier == "critical" else "alarm"
        detail = {"title": f"{unit.name} {'too cold' if exc.tier == 'low' else 'too warm'}",
                  "unit": unit.name, "direction": exc.tier, "limit_c": _limit_for(exc.tier, unit),
                  "target_c": unit.target_max_c, "critical_c": unit.critical_max_c,
                  "peak_c": exc.peak, "value_c": state.last_value,
                  "excursion_started": exc.started.isoformat(),
                  "alarmed_at": exc.alarmed_at.isoformat()}
        alert = raise_alert(session, site_id=unit.site_id, kind="temperature", subject=subject,
                            tier=tier, unit_id=unit.id, detail=detail, now=now)
        if alert is not None:
            changed.append(alert)
    elif not state.excursions and maybe_open(subject):
        if mark_recovered(session, subject, now, value_c=state.last_value):
            changed.append(subject)
    offline_subject = f"unit:{unit.id}:offline"
    if state.state == breach.OFFLINE and state.breach is None:
        alert = raise_alert(session, site_id=unit.site_id, kind="offline", subject=offline_subject,
                            unit_id=unit.id, now=now,
                            detail={"title": f"{unit.name}: no readings", "unit": unit.name,
                                    "last_reading_at": state.last_reading_at.isoformat()
                                    if state.last_reading_at else None})
        if alert is not None:
            changed.append(alert)
    elif (state.last_reading_at is not None and state.state != breach.OFFLINE
          and maybe_open(offline_subject)):
        if mark_recovered(session, offline_subject, now):
            changed.append(offline_subject)
    return changed


def evaluate_units(session, unit_ids, now: dt.datetime | None = None, *,
                   earliest: dict[int, dt.datetime] | None = None,
                   memory: UnitMemory | None = None) -> list:
    """Evaluate the given units now (ingest calls this after each committed batch).

    ``memory`` and ``earliest`` (unit id -> the earliest reading just stored for it): carry
    on from each unit's remembered evaluation where that gives the same result.
    """
    now = now or utcnow()
    units = session.execute(select(Unit).where(Unit.id.in_(list(unit_ids)))).scalars().all()
    # One query for which of these units' alerts are open, not two per unit.
    subjects = [f"unit:{u.id}:{what}" for u in units for what in ("temperature", "offline")]
    open_subjects = set(session.execute(select(AlertState.open_subject)
                                        .where(AlertState.open_subject.in_(subjects))).scalars())
    # Held here: the session's identity map alone would let a Site go (it keeps weak
    # references) and load it again for every unit.
    sites = {s.id: s for s in session.execute(
        select(Site).where(Site.id.in_({u.site_id for u in units}))).scalars()}
    if memory is not None:
        states = memory.states(session, units, sites, now, earliest or {})
    else:
        states = {u.id: unit_state(session, u, sites[u.site_id], now) for u in units}
    changed = []
    for unit in units:
        changed += apply_unit_state(session, unit, states[unit.id], now, open_subjects)
    return changed


def sweep_units(session, now: dt.datetime | None = None) -> list:
    """Job: every unit, for what time alone changes (delays running out, silence)."""
    now = now or utcnow()
    return evaluate_units(session, session.execute(select(Unit.id)).scalars().all(), now)


def sweep_batteries(session, now: dt.datetime | None = None) -> list:
    """Job: a low battery alert per assigned sensor below the threshold."""
    now = now or utcnow()
    threshold = current_app.config["BRIGADE_LOW_BATTERY_PCT"]
    changed = []
    rows = session.execute(select(Sensor, Unit).join(Unit, Unit.id == Sensor.unit_id)).all()
    for sensor, unit in rows:
        subject = f"sensor:{sensor.id}:battery"
        if sensor.battery_pct is not None and sensor.battery_pct < threshold:
            alert = raise_alert(session, site_id=unit.site_id, kind="low_battery", subject=subject,
                                unit_id=unit.id, now=now,
                                detail={"title": f"{unit.name}: sensor battery low",
                                        "sensor": sensor.key, "battery_pct": sensor.battery_pct})
            if alert is not None:
                changed.append(alert)
        elif sensor.battery_pct is not None and open_state(session, subject) is not None:
            if mark_recovered(session, subject, now, battery_pct=sensor.battery_pct):
                changed.append(subject)
    return changed


def sweep_checklists(session, now: dt.datetime | None = None) -> list:
    """Job: an alert for each of today's checklist slots past its deadline and not submitted."""
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import due_today
    now = now or utcnow()
    changed = []
    from app.models import ChecklistDefinition
    defaults = current_definitions(session)
    # Sites with checklists of their own (few) ask for theirs; the others share the defaults.
    own = set(session.execute(select(ChecklistDefinition.site_id).where(
        ChecklistDefinition.site_id.is_not(None)).distinct()).scalars())
    for site in session.execute(select(Site)).scalars():
        definitions = current_definitions(session, site.id) if site.id in own else defaults
        for entry in due_today(session, site, now, definitions):
            subject = overdue_subject(site.id, entry.definition.key, entry.slot.schedule_key,
                                      entry.slot.start)
            if entry.status == "overdue":
                alert = raise_alert(session, site_id=site.id, kind="checklist_overdue",
                                    subject=subject, now=now, detail={
                                        "title": f"{entry.definition.title_en} overdue",
                                        "checklist": entry.definition.key,
                                        "schedule": entry.slot.schedule_key,
                                        "slot_name": entry.slot.name,
                                        "slot_start": entry.slot.start.isoformat(),
                                        "deadline": entry.slot.deadline.isoformat()})
                if alert is not None:
                    changed.append(alert)
            elif entry.status in ("submitted", "verified"):
                if mark_recovered(session, subject, now):
                    changed.append(subject)
    return changed


def sweep_timers(session, now: dt.datetime | None = None) -> list:
    """Job: an alert for each hold timer past expiry with no outcome recorded."""
    now = now or utcnow()
    changed = []
    recent = now - dt.timedelta(days=2)
    # started_at bounds the scan (its index; no hold window is near a week), expires_at decides.
    timers = session.execute(select(HoldTimer).where(
        HoldTimer.started_at >= recent - dt.timedelta(days=7), HoldTimer.expires_at <= now,
        HoldTimer.expires_at >= recent)).scalars().all()
    # The outcomes of these timers only (by the timer_id index), not every outcome ever.
    settled = set(session.execute(select(TimerOutcome.timer_id).where(
        TimerOutcome.timer_id.in_([t.id for t in timers]))).scalars()) if timers else set()
    for timer in timers:
        subject = f"timer:{timer.id}"
        if timer.id not in settled:
            alert = raise_alert(session, site_id=timer.site_id, kind="timer_expired", subject=subject,
                                now=now, detail={"title": f"{timer.dish}: served or discarded?",
                                                 "dish": timer.dish, "timer_kind": timer.kind,
                                                 "expired_at": timer.expires_at.isoformat()})
            if alert is not None:
                changed.append(alert)
        elif mark_recovered(session, subject, now):
            changed.append(subject)
    return changed


def evaluate_after_ingest(session, sensor_ids, earliest: dict[int, dt.datetime] | None = None,
                          memory: UnitMemory | None = None) -> None:
    """Evaluate, and commit, the units of sensors whose new readings were just committed.

    ``earliest``: sensor id -> its earliest reading just stored; with ``memory``, units carry
    on from their last evaluation (see UnitMemory).
    """
    if not sensor_ids:
        return
    rows = session.execute(select(Sensor.id, Sensor.unit_id).where(
        Sensor.id.in_(list(sensor_ids)), Sensor.unit_id.is_not(None))).all()
    if not rows:
        return
    # New readings change what live screens show: their sites' counters move on at the commit.
    mark_changed(session, session.execute(select(Unit.site_id).where(
        Unit.id.in_({unit_id for _, unit_id in rows}))).scalars())
    first: dict[int, dt.datetime] = {}
    for sensor_id, unit_id in rows:
        at = (earliest or {}).get(sensor_id)
        if at is not None and (unit_id not in first or at < first[unit_id]):
            first[unit_id] = at
    evaluate_units(session, {unit_id for _, unit_id in rows}, earliest=first, memory=memory)
    session.commit()


def after_ingest(app):
    """The ingest hook: evaluate the units a committed batch touched, at once, carrying on
    from the worker's memory of their last evaluation."""
    from app.models import db
    memory = UnitMemory()

    def hook(result) -> None:
        if not result.sensors_seen:
            return
        with app.app_context():
            evaluate_after_ingest(db.session, result.sensors_seen, result.earliest, memory)
    hook.memory = memory
    return hook
