"""Chart data for plotly.js: a unit's temperatures at the grain its window needs, the
completion heatmap and the failures by rule. Plain dicts; static/reports.js draws them.

A window up to RAW_SPAN is sent reading by reading; a longer one from the 5-minute rollups,
grouped in SQL into at most MAX_POINTS buckets (min, max and mean of each), so a year is as
light as a day. Zooming in asks again for the narrower window, at a finer grain.
"""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import select

from app.alerts.engine import unit_settings
from app.formatting import bilingual
from app.models import Alert, AlertEvent, Site
from app.models.units import Unit
from app.reports.operations import Period, _epoch_sql, _sql, unit_figures
from sensors.models import Reading, Sensor
from sensors.store import ROLLUP_SECONDS
from sensors.temperature import from_celsius

UTC = dt.timezone.utc
#: Readings one by one up to this window (two days at one a minute per sensor: 2,880 points).
RAW_SPAN = dt.timedelta(hours=48)
#: At most this many buckets for a longer window.
MAX_POINTS = 1500
#: The widest window a chart asks for.
MAX_WINDOW = dt.timedelta(days=400)
#: More excursions than this in a window: only the notable ones are shaded.
MAX_SHADED = 200
WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7),
           "30d": dt.timedelta(days=30), "1y": dt.timedelta(days=365)}


def parse_window(args, timezone: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """``window`` (24h, 7d, 30d, 1y: up to now) or ``start``/``end`` as ISO times; a time
    without an offset is the site's wall clock (what plotly's axis gives back)."""
    if args.get("window"):
        if args["window"] not in WINDOWS:
            raise ValueError("window must be one of " + ", ".join(WINDOWS))
        return now - WINDOWS[args["window"]], now
    start, end = _instant(args.get("start"), timezone), _instant(args.get("end"), timezone)
    if end <= start:
        raise ValueError("end must be after start")
    if end - start > MAX_WINDOW:
        start = end - MAX_WINDOW
    return start, end


def _instant(raw: str | None, timezone: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat((raw or "").strip().replace(" ", "T"))
    except ValueError:
        raise ValueError("start and end must be ISO times") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


def _local(moment: dt.datetime, tz: ZoneInfo) -> str:
    """Wall-clock time for plotly's date axis (it has no zones): the site's."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def unit_series(session, unit: Unit, site: Site, start: dt.datetime, end: dt.datetime,
                now: dt.datetime) -> dict:
    """One unit's chart over [start, end): temperatures, limits, excursions, defrosts, alerts."""
    tz = ZoneInfo(site.timezone)
    shown = site.temp_unit

    def temp(value):
        return None if value is None else round(from_celsius(value, shown), 2)

    sensor_ids = session.execute(select(Sensor.id).where(Sensor.unit_id == unit.id)).scalars().all()
    out = {"unit": unit.name, "symbol": f"°{shown}", "start": _local(start, tz),
           "end": _local(end, tz), "limits": {
               "target": temp(unit.target_max_c), "critical": temp(unit.critical_max_c),
               "min": temp(unit.min_c)},
           "labels": {"temperature": _("Temperature"), "target": _("Limit"),
                      "critical": _("Critical"), "min": _("Lower limit"),
                      "range": _("Lowest–highest"), "alert": _("Alert"),
                      "ack": _("Acknowledged"), "excursion": _("Out of range"),
                      "defrost": _("Defrost")}}
    if end - start <= RAW_SPAN:
        rows = session.execute(
            select(Reading.measured_at, Reading.temperature_c)
            .where(Reading.sensor_id.in_(sensor_ids), Reading.measured_at >= start,
                   Reading.measured_at < end).order_by(Reading.measured_at)).all() \
            if sensor_ids else []
        out.update(grain="raw", step_s=None, t=[_local(at, tz) for at, _v in rows],
                   avg=[temp(v) for _a, v in rows], min=[], max=[])
    else:
        width = ROLLUP_SECONDS * max(1, math.ceil((end - start).total_seconds()
                                                  / ROLLUP_SECONDS / MAX_POINTS))
        first = int(start.timestamp()) // ROLLUP_SECONDS * ROLLUP_SECONDS
        rows = []
        if sensor_ids:
            ids = ",".join(str(int(i)) for i in sensor_ids)
            epoch = _epoch_sql(session, "bucket_start")
            rows = session.execute(_sql(
                f"SELECT ({epoch} - :first) / :width AS g, MIN(min_c), MAX(max_c), SUM(sum_c), "
                f"SUM(count) FROM rollups WHERE sensor_id IN ({ids}) AND bucket_start >= :a "
                "AND bucket_start < :b GROUP BY g ORDER BY g"),
                {"first": first, "width": width, "a": start, "b": end}).all()
        out.update(grain="rollup", step_s=width,
                   t=[_local(dt.datetime.fromtimestamp(first + int(g) * width, UTC), tz)
                      for g, *_rest in rows],
                   min=[temp(lo) for _g, lo, _h, _s, _n in rows],
                   max=[temp(hi) for _g, _l, hi, _s, _n in rows],
                   avg=[temp(s / n) for _g, _l, _h, s, n in rows])
    figures = unit_figures(session, unit, site, start, end, now, sensor_ids)
    # Shaded: every excursion while there are few; over a long window the notable ones only.
    shaded = figures.excursions if len(figures.excursions) <= MAX_SHADED else figures.notable
    out["excursions"] = [{"start": _local(max(e.start, start), tz),
                          "end": _local(e.end or figures.end, tz), "tier": e.tier,
                          "defrost": e.in_defrost} for e in shaded]
    out["defrosts"] = [[_local(a, tz), _local(b, tz)] for a, b in
                       unit_settings(unit, site).defrost_windows(start, min(end, now))]
    alerts = session.execute(
        select(Alert).where(Alert.unit_id == unit.id, Alert.opened_at >= start,
                            Alert.opened_at < end).order_by(Alert.opened_at)).scalars().all()
    marks = []
    for alert in alerts:
        value = (alert.detail or {}).get("value_c")
        marks.append({"id": alert.id, "t": _local(alert.opened_at, tz), "y": temp(value),
                      "kind": "alert", "text": _("Alert #%(id)s", id=alert.id)})
    if alerts:
        for event in session.execute(select(AlertEvent).where(
                AlertEvent.alert_id.in_([a.id for a in alerts]),
                AlertEvent.kind == "acknowledged")).scalars():
            marks.append({"id": event.alert_id, "t": _local(event.at, tz), "y": None,
                          "kind": "ack", "text": (event.data or {}).get("corrective_action") or ""})
    out["alerts"] = marks
    return out


def heatmap(figures: dict, span: Period) -> dict:
    """Days × schedule slots: the share of each day's slots done on time (late counts half)."""
    slots = list(dict.fromkeys((e.checklist_key, e.schedule_key) for e in figures["entries"]))
    names = figures["slot_names"]
    cells: dict = {}
    for e in figures["entries"]:
        if e.status == "pending":
            continue
        done, due = cells.get((e.day, e.checklist_key, e.schedule_key), (0.0, 0))
        cells[(e.day, e.checklist_key, e.schedule_key)] = (
            done + {"on_time": 1.0, "late": 0.5}.get(e.status, 0.0), due + 1)
    z = [[(lambda c: round(c[0] / c[1], 3) if c else None)(cells.get((day, *slot)))
          for day in span.days] for slot in slots]
    return {"type": "heatmap", "x": [d.isoformat() for d in span.days],
            "y": [bilingual(names[s], "") for s in slots], "z": z,
            "title": _("Checklists done on time (late counts half)")}


def rules_bars(rules: list[dict]) -> dict:
    """Failures by rule, with passes and N/A beside them."""
    names = [f"{r['code']} {bilingual(r['rule'], 'title') if r['rule'] else ''}".strip()
             for r in rules]
    return {"type": "bars", "x": names, "fail": [r["fail"] for r in rules],
            "pass": [r["pass"] for r in rules], "na": [r["na"] for r in rules],
            "labels": {"fail": _("Fail"), "pass": _("Pass"), "na": _("N/A")},
            "title": _("Answers by rule")}


def sparkline(session, unit: Unit, site: Site, now: dt.datetime, hours: int = 24) -> dict:
    """The last day of a unit, hourly means, for a small line on the glance page."""
    sensor_ids = session.execute(select(Sensor.id).where(Sensor.unit_id == unit.id)).scalars().all()
    if not sensor_ids:
        return {"t": [], "y": []}
    start = now - dt.timedelta(hours=hours)
    width = 1800
    ids = ",".join(str(int(i)) for i in sensor_ids)
    epoch = _epoch_sql(session, "bucket_start")
    first = int(start.timestamp()) // width * width
    rows = session.execute(_sql(
        f"SELECT ({epoch} - :first) / :width AS g, SUM(sum_c), SUM(count) FROM rollups "
        f"WHERE sensor_id IN ({ids}) AND bucket_start >= :a GROUP BY g ORDER BY g"),
        {"first": first, "width": width, "a": start}).all()
    tz = ZoneInfo(site.timezone)
    return {"t": [_local(dt.datetime.fromtimestamp(first + int(g) * width, UTC), tz)
                  for g, _s, _n in rows],
            "y": [round(from_celsius(s / n, site.temp_unit), 2) for _g, s, n in rows],
            "limit": round(from_celsius(unit.target_max_c, site.temp_unit), 2)}


def svg_chart(session, figures, site: Site, width: int = 720, height: int = 170,
              points: int = 240) -> str:
    """A unit's temperatures over its figures' range as a small SVG (for print and PDF, which
    run no script): min–max band and mean per bucket, limits, excursions shaded. Presentation
    attributes only, no style attributes (the CSP refuses those)."""
    from markupsafe import Markup, escape
    unit, start, end = figures.unit, figures.start, figures.end
    if end <= start:
        return Markup("")
    span = (end - start).total_seconds()
    step = ROLLUP_SECONDS * max(1, math.ceil(span / ROLLUP_SECONDS / points))
    sensor_ids = session.execute(select(Sensor.id).where(Sensor.unit_id == unit.id)).scalars().all()
    rows = []
    if sensor_ids:
        ids = ",".join(str(int(i)) for i in sensor_ids)
        epoch = _epoch_sql(session, "bucket_start")
        first = int(start.timestamp()) // ROLLUP_SECONDS * ROLLUP_SECONDS
        rows = [(first + int(g) * step, lo, hi, s / n) for g, lo, hi, s, n in session.execute(_sql(
            f"SELECT ({epoch} - :first) / :width AS g, MIN(min_c), MAX(max_c), SUM(sum_c), "
            f"SUM(count) FROM rollups WHERE sensor_id IN ({ids}) AND bucket_start >= :a "
            "AND bucket_start < :b GROUP BY g ORDER BY g"),
            {"first": first, "width": step, "a": start, "b": end})]
    shown = site.temp_unit
    limits = [v for v in (unit.target_max_c, unit.critical_max_c, unit.min_c) if v is not None]
    values = [v for r in rows for v in (r[1], r[2])] + limits
    low, high = min(values) - 1, max(values) + 1
    left, right, top, bottom = 44, width - 8, 8, height - 22
    t0 = start.timestamp()

    def x(epoch_s: float) -> float:
        return round(left + (epoch_s - t0) / span * (right - left), 1)

    def y(celsius: float) -> float:
        return round(bottom - (celsius - low) / (high - low) * (bottom - top), 1)

    parts = [f'<svg class="chart-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(unit.name)}">',
             f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
             'fill="#ffffff" stroke="#999999" stroke-width="0.5"/>']
    for exc in figures.excursions:
        a = max(exc.start, start).timestamp()
        b = (exc.end or end).timestamp()
        colour = "#9aa0a6" if exc.in_defrost else "#b3261e"
        parts.append(f'<rect x="{x(a)}" y="{top}" width="{max(1.0, x(b) - x(a))}" '
                     f'height="{bottom - top}" fill="{colour}" fill-opacity="0.18"/>')
    if rows:
        band = [f"{x(t)},{y(hi)}" for t, _lo, hi, _m in rows] + \
            [f"{x(t)},{y(lo)}" for t, lo, _hi, _m in reversed(rows)]
        parts.append(f'<polygon points="{" ".join(band)}" fill="#0b57d0" fill-opacity="0.18"/>')
        line = " ".join(f"{x(t)},{y(m)}" for t, _lo, _hi, m in rows)
        parts.append(f'<polyline points="{line}" fill="none" stroke="#0b57d0" stroke-width="1.2"/>')
    for value, colour, dash in ((unit.target_max_c, "#f9ab00", "5,3"),
                                (unit.critical_max_c, "#b3261e", "2,2"),
                                (unit.min_c, "#0b57d0", "5,3")):
        if value is None:
            continue
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(value)}" y2="{y(value)}" '
                     f'stroke="{colour}" stroke-width="1" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{left - 4}" y="{y(value) + 3}" font-size="9" text-anchor="end">'
                     f'{from_celsius(value, shown):.0f}°</text>')
    tz = ZoneInfo(site.timezone)
    for moment, anchor, at in ((start, "start", left), (end, "end", right)):
        parts.append(f'<text x="{at}" y="{height - 6}" font-size="9" text-anchor="{anchor}">'
                     f'{escape(moment.astimezone(tz).strftime("%Y-%m-%d %H:%M"))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
