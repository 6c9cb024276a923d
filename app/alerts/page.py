"""What the alert pages show: the facts recorded, the timeline, the readings around it."""
from __future__ import annotations

import datetime as dt
import math

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import selectinload

from app.alerts.breach import OFFLINE
from app.alerts.engine import unit_state
from app.alerts.labels import overdue_slot
from app.formatting import local_time, show_temp
from app.models import Alert, AlertState, Notification, Site, db
from app.models.units import Unit
from sensors import temperature
from sensors.models import Reading, Rollup, Sensor
from sensors.store import ROLLUP_SECONDS, bucket_of

#: More readings than this around an alert are thinned, keeping the worst of each group.
MAX_READING_ROWS = 120
#: Readings shown from this long before the alert opened.
READINGS_BEFORE = dt.timedelta(hours=1)
#: Longer spans are read from the 5-minute rollups (MAX_READING_ROWS × 5 minutes = 10 hours).
RAW_SPAN = dt.timedelta(seconds=MAX_READING_ROWS * ROLLUP_SECONDS)


def banner_alerts(session, site_id: int) -> list[Alert]:
    """The site's unresolved alerts for the tablet banner: unacknowledged first, newest first."""
    rows = session.execute(
        select(Alert).join(AlertState).where(Alert.site_id == site_id,
                                             AlertState.status.in_(("open", "acknowledged")))
        .options(selectinload(Alert.state), selectinload(Alert.events))
        .order_by(Alert.opened_at.desc())).scalars().all()
    rows.sort(key=lambda a: a.state.status != "open")  # stable: keeps newest first
    return rows


def still_out(alert: Alert, site: Site, now: dt.datetime) -> bool:
    """Whether the alert's condition still holds, so that it may not be resolved yet."""
    unit = db.session.get(Unit, alert.unit_id) if alert.unit_id else None
    if unit is not None and alert.kind == "temperature":
        return bool(unit_state(db.session, unit, site, now).excursions)
    if unit is not None and alert.kind == "offline":
        return unit_state(db.session, unit, site, now).state == OFFLINE
    return alert.state.recovered_at is None


def _time(value: str | None, site: Site) -> str:
    try:
        return local_time(dt.datetime.fromisoformat(value), site.timezone, "d MMM HH:mm")
    except (TypeError, ValueError):
        return value or ""


FACTS = (  # detail key, label, how to show it
    ("value_c", lazy_gettext("Reading at the alarm"), "temp"),
    ("peak_c", lazy_gettext("Peak"), "temp"),
    ("limit_c", lazy_gettext("Limit"), "temp"),
    ("excursion_started", lazy_gettext("Out of range since"), "time"),
    ("alarmed_at", lazy_gettext("Alarmed at"), "time"),
    ("last_reading_at", lazy_gettext("Last reading"), "time"),
    ("sensor", lazy_gettext("Sensor"), "text"),
    ("battery_pct", lazy_gettext("Battery"), "pct"),
    ("schedule", lazy_gettext("Slot"), "slot"),
    ("deadline", lazy_gettext("Deadline"), "time"),
    ("dish", lazy_gettext("Dish"), "text"),
    ("timer_kind", lazy_gettext("Timer"), "text"),
    ("expired_at", lazy_gettext("Expired at"), "time"),
    ("due", lazy_gettext("Due"), "time"),
    ("last_review", lazy_gettext("Last review"), "time"),
)
#: Shown by the headline instead.
_IN_HEADLINE = {"title", "unit", "direction", "checklist", "slot_name", "slot_start",
                "target_c", "critical_c"}
ABOUT = lazy_gettext("This alert is about")


def limits(alert: Alert) -> dict | None:
    """A temperature alert's limits as recorded (target, critical, lower) and which one it is
    about now: the critical limit once it became critical, else the one it opened on.

    Alerts recorded before both limits were kept have only the limit they opened on, and a
    'became critical' event's; the unit's current limits fill in what neither recorded.
    """
    if alert.kind != "temperature":
        return None
    detail = alert.detail or {}
    raised = [e.data for e in alert.events if e.kind == "tier_raised" and e.data]
    unit = db.session.get(Unit, alert.unit_id) if alert.unit_id else None
    if detail.get("direction") == "low":
        lower = detail.get("limit_c", unit.min_c if unit else None)
        return {"target": None, "critical": None, "lower": lower, "about": "lower"}
    target = detail.get("target_c")
    if target is None:
        target = detail.get("limit_c") if alert.tier != "critical" else None
    critical = detail.get("critical_c")
    if critical is None:
        critical = next((d.get("limit_c") for d in raised), None)
    if critical is None and alert.tier == "critical":
        critical = detail.get("limit_c")
    target = target if target is not None or unit is None else unit.target_max_c
    critical = critical if critical is not None or unit is None else unit.critical_max_c
    tier = alert.state.tier if alert.state is not None else alert.tier
    return {"target": target, "critical": critical, "lower": None,
            "about": "critical" if tier == "critical" else "target"}


LIMIT_NAMES = {"target": lazy_gettext("Target limit"), "critical": lazy_gettext("Critical limit"),
               "lower": lazy_gettext("Lower limit")}


def facts(alert: Alert, site: Site) -> list[tuple[str, str]]:
    """The facts recorded at opening, formatted for people; unknown keys are shown as they are."""
    detail = alert.detail or {}
    shown = []
    bounds = limits(alert)
    for key, name, how in FACTS:
        value = detail.get(key)
        if key == "limit_c" and bounds is not None:
            # Both limits, and which one this alert is about (a critical alert that opened on
            # the target limit would otherwise read "Limit 5.0 °C").
            for which in ("target", "critical", "lower"):
                if bounds[which] is not None:
                    shown.append((str(LIMIT_NAMES[which]), show_temp(bounds[which], site.temp_unit)))
            about = bounds["about"]
            shown.append((str(ABOUT), _("%(limit)s, %(value)s", limit=str(LIMIT_NAMES[about]),
                                        value=show_temp(bounds[about], site.temp_unit))))
            continue
        if value is None:
            continue
        if how == "temp":
            text = show_temp(value, site.temp_unit)
        elif how == "time":
            text = _time(value, site)
        elif how == "slot":
            text = overdue_slot(alert)
        elif how == "pct":
            text = f"{value:.0f} %"
        else:
            text = str(value)
        shown.append((str(name), text))
    known = {key for key, _name, _how in FACTS} | _IN_HEADLINE
    shown += [(key, str(value)) for key, value in detail.items() if key not in known]
    return shown


def timeline(alert: Alert) -> list[dict]:
    """Opening, lifecycle events and notifications of an alert, oldest first."""
    entries = [{"at": alert.opened_at, "type": "event", "kind": "opened", "who": None,
                "data": {"tier": alert.tier}}]
    for event in alert.events:
        entries.append({"at": event.at, "type": "event", "kind": event.kind,
                        "who": event.actor.name if event.actor else None,
                        "device": event.device_id, "data": event.data or {},
                        "late_at": late_submission(event)})
    for note in db.session.execute(select(Notification).where(Notification.alert_id == alert.id)
                                   .order_by(Notification.created_at, Notification.id)).scalars():
        entries.append({"at": note.created_at, "type": "notification", "n": note})
    return sorted(entries, key=lambda e: (e["at"], e["type"] == "notification"))


def late_submission(event) -> dt.datetime | None:
    """When the late checklist that resolved an overdue alert was submitted (else None)."""
    value = (event.data or {}).get("submitted_late_at") if event.kind == "resolved" else None
    try:
        return dt.datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def readings(alert: Alert, unit: Unit, until: dt.datetime) -> dict:
    """The unit's readings from an hour before the alert to ``until``, at most MAX_READING_ROWS.

    Up to RAW_SPAN they are read one by one (thinned, keeping the worst of each group); over a
    longer span, from the 5-minute rollups grouped in SQL, so that the page costs the same for an
    alert open a day or a year.
    """
    start = alert.opened_at - READINGS_BEFORE
    if until - start > RAW_SPAN:
        rows, step = _grouped_rollups(alert, unit, start, until)
        fmt = "d MMM HH:mm"
    else:
        rows, step = _raw_readings(alert, unit, start, until)
        fmt = "HH:mm:ss"
    marks = [(alert.opened_at, "opened")]
    if alert.state.resolved_at:
        marks.append((alert.state.resolved_at, "resolved"))
    items = []
    for at, value, _sensor_id, name, key, band in rows:
        while marks and marks[0][0] <= at:
            items.append({"mark": marks.pop(0)})
        items.append({"at": at, "value": value, "state": band, "sensor": name or key})
    items += [{"mark": m} for m in marks]
    return {"items": items, "step": step, "count": len(rows), "format": fmt,
            "sensors": len({r[2] for r in rows}) > 1, "start": start, "end": until}


def _worst(alert: Alert):
    return min if (alert.detail or {}).get("direction") == "low" else max


def _raw_readings(alert: Alert, unit: Unit, start: dt.datetime, until: dt.datetime):
    rows = db.session.execute(
        select(Reading.measured_at, Reading.temperature_c, Sensor.id, Sensor.name, Sensor.key)
        .join(Sensor, Sensor.id == Reading.sensor_id)
        .where(Sensor.unit_id == unit.id, Reading.measured_at >= start,
               Reading.measured_at <= until)
        .order_by(Reading.measured_at)).all()
    # Coloured by the breach rules (hysteresis included), over every reading, before thinning:
    # a reading back under the limit but not by the hysteresis is still out, as for the alarm.
    bands = temperature.classify(temperature.Limits.of(unit), [r[1] for r in rows])
    rows = [(*row, band) for row, band in zip(rows, bands)]
    step = max(1, math.ceil(len(rows) / MAX_READING_ROWS))
    if step > 1:  # keep the reading furthest out of range in each group
        pick = _worst(alert)
        rows = [pick(rows[i:i + step], key=lambda r: r[1]) for i in range(0, len(rows), step)]
    return rows, step


def _grouped_rollups(alert: Alert, unit: Unit, start: dt.datetime, until: dt.datetime):
    """One row per group of 5-minute buckets (at most MAX_READING_ROWS groups): the worst value
    of the group — the highest maximum, or the lowest minimum for a low alert — and its sensor."""
    first = bucket_of(start)
    width = ROLLUP_SECONDS * max(1, math.ceil((until - first).total_seconds()
                                              / ROLLUP_SECONDS / MAX_READING_ROWS))
    group = (_epoch(Rollup.bucket_start) - int(first.timestamp())) // width
    low = _worst(alert) is min
    worst = func.min(Rollup.min_c) if low else func.max(Rollup.max_c)
    found = db.session.execute(
        select(group.label("g"), Rollup.sensor_id, worst, func.sum(Rollup.count))
        .join(Sensor, Sensor.id == Rollup.sensor_id)
        .where(Sensor.unit_id == unit.id, Rollup.bucket_start >= first,
               Rollup.bucket_start <= until)
        .group_by("g", Rollup.sensor_id)).all()
    names = {s.id: (s.name, s.key) for s in db.session.execute(
        select(Sensor).where(Sensor.unit_id == unit.id)).scalars()}
    pick = _worst(alert)
    by_group: dict[int, tuple] = {}
    counted = 0
    for g, sensor_id, value, count in found:
        counted += count
        held = by_group.get(int(g))
        if held is None or pick(held[1], value) != held[1]:
            by_group[int(g)] = (sensor_id, value)
    rows = []
    for g in sorted(by_group):
        sensor_id, value = by_group[g]
        rows.append((first + dt.timedelta(seconds=g * width), value, sensor_id, *names[sensor_id]))
    # Coloured by the breach rules over the groups' worst values (the raw sequence is not read).
    bands = temperature.classify(temperature.Limits.of(unit), [r[1] for r in rows])
    rows = [(*row, band) for row, band in zip(rows, bands)]
    return rows, max(1, round(counted / len(rows))) if rows else 1


def _epoch(column):
    """Whole seconds since 1970 of a UTC timestamp column, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", column)).cast(Integer)
    return func.cast(func.strftime("%s", column), Integer)
