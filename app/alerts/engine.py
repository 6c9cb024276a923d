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
from sqlalchemy import func, select

from app.alerts import breach
from app.alerts.operations import mark_recovered, open_state, raise_alert
from app.models import HoldTimer, Site, TimerOutcome, utcnow
from app.models.units import Unit
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
    since = now - lookback(settings)
    rows = session.execute(
        select(Reading.measured_at, Reading.temperature_c).join(Sensor, Sensor.id == Reading.sensor_id)
        .where(Sensor.unit_id == unit.id, Reading.measured_at >= since, Reading.measured_at <= now)
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


def _limit_for(tier: str, unit: Unit) -> float | None:
    return {"critical": unit.critical_max_c, "high": unit.target_max_c, "low": unit.min_c}[tier]


def apply_unit_state(session, unit: Unit, state: breach.UnitState, now: dt.datetime) -> list:
    """Open, raise or mark recovered the unit's temperature and offline alerts."""
    changed = []
    subject = f"unit:{unit.id}:temperature"
    exc = state.breach
    if exc is not None:
        tier = "critical" if exc.tier == "critical" else "alarm"
        detail = {"title": f"{unit.name} {'too cold' if exc.tier == 'low' else 'too warm'}",
                  "unit": unit.name, "direction": exc.tier, "limit_c": _limit_for(exc.tier, unit),
                  "peak_c": exc.peak, "value_c": state.last_value,
                  "excursion_started": exc.started.isoformat(),
                  "alarmed_at": exc.alarmed_at.isoformat()}
        alert = raise_alert(session, site_id=unit.site_id, kind="temperature", subject=subject,
                            tier=tier, unit_id=unit.id, detail=detail, now=now)
        if alert is not None:
            changed.append(alert)
    elif not state.excursions:
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
    elif state.last_reading_at is not None and state.state != breach.OFFLINE:
        if mark_recovered(session, offline_subject, now):
            changed.append(offline_subject)
    return changed


def evaluate_units(session, unit_ids, now: dt.datetime | None = None) -> list:
    """Evaluate the given units now (ingest calls this after each committed batch)."""
    now = now or utcnow()
    changed = []
    for unit in session.execute(select(Unit).where(Unit.id.in_(list(unit_ids)))).scalars():
        site = session.get(Site, unit.site_id)
        changed += apply_unit_state(session, unit, unit_state(session, unit, site, now), now)
    return changed


def units_for_sensors(session, sensor_ids) -> set[int]:
    return set(session.execute(select(Sensor.unit_id).where(Sensor.id.in_(list(sensor_ids)),
                                                            Sensor.unit_id.is_not(None))).scalars())


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
    definitions = current_definitions(session)
    for site in session.execute(select(Site)).scalars():
        for entry in due_today(session, site, now, definitions):
            subject = (f"site:{site.id}:checklist:{entry.definition.key}:{entry.slot.schedule_key}:"
                       f"{entry.slot.start.isoformat()}")
            if entry.status == "overdue":
                alert = raise_alert(session, site_id=site.id, kind="checklist_overdue",
                                    subject=subject, now=now, detail={
                                        "title": f"{entry.definition.title_en} overdue",
                                        "checklist": entry.definition.key,
                                        "schedule": entry.slot.schedule_key,
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
    timers = session.execute(select(HoldTimer).where(HoldTimer.expires_at <= now,
                                                     HoldTimer.expires_at >= recent)).scalars()
    settled = set(session.execute(select(TimerOutcome.timer_id)).scalars())
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


def evaluate_after_ingest(session, sensor_ids) -> None:
    """Evaluate, and commit, the units of sensors whose new readings were just committed."""
    if not sensor_ids:
        return
    units = units_for_sensors(session, sensor_ids)
    if units:
        evaluate_units(session, units)
        session.commit()


def after_ingest(app):
    """The ingest hook: evaluate the units a committed batch touched, at once."""
    from app.models import db

    def hook(result) -> None:
        if not result.sensors_seen:
            return
        with app.app_context():
            evaluate_after_ingest(db.session, result.sensors_seen)
    return hook
