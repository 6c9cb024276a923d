"""The report's tables as CSV rows (streamed), a unit's readings raw or per 5 minutes or hour,
and the inspector's PDF (WeasyPrint, from the printable page).

Rows are generated, never held: the readings of a year are written as they are read.
Temperatures are in the site's unit and times in its zone, with the zone named in the header.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import select

from app.formatting import bilingual, slot_label
from app.models import Site
from app.models.units import Unit
from app.reports.operations import (Period, _epoch_sql, _sql, alert_figures, calibration_figures,
                                    checklist_figures, failed_items, rule_figures, timer_figures,
                                    units_figures)
from sensors.models import Reading, Sensor
from sensors.temperature import from_celsius

UTC = dt.timezone.utc
GRAINS = {"raw": None, "5min": 300, "hour": 3600}
#: Rows fetched from the database at a time while streaming readings.
STREAM_BATCH = 5000


def csv_lines(rows):
    """Each row as one CSV line (a UTF-8 BOM first, so spreadsheets read Chinese right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _time(moment: dt.datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _temp(celsius: float | None, site: Site) -> str:
    return "" if celsius is None else f"{from_celsius(celsius, site.temp_unit):.2f}"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def slots(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Day"), _("Checklist"), _("Slot"), _("Opens") + f" ({site.timezone})",
           _("Deadline"), _("Status"), _("Submitted by"), _("Submitted at"), _("Verified by"),
           _("Verified at"), _("Run")]
    for e in checklist_figures(session, site, span, now)["entries"]:
        run = e.run
        sub = run.submission if run else None
        ver = run.verification if run else None
        yield [e.day.isoformat(), bilingual(e.title, ""), bilingual(e.schedule_name, ""),
               _time(e.start, tz), _time(e.deadline, tz), status_label(e.status),
               sub.submitted_by.name if sub else "", _time(sub.submitted_at if sub else None, tz),
               ver.verified_by.name if ver else "", _time(ver.verified_at if ver else None, tz),
               run.id if run else ""]


def status_label(status: str) -> str:
    return {"on_time": _("On time"), "late": _("Late"), "missed": _("Missed"),
            "pending": _("Not due yet")}.get(status, status)


def fails(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Recorded at"), _("Checklist"), _("Slot"), _("Rule"), _("Item"), _("Value"),
           _("Corrective action"), _("Recorded by"), _("Verified by"), _("Verified at"), _("Run")]
    for a in failed_items(session, site, span):
        ver = a.run.verification
        yield [_time(a.recorded_at, tz), bilingual(a.run.definition, "title"),
               slot_label(a.run.definition.schedules, a.run.schedule_key, None, site.timezone),
               a.item.rule_code, a.item.text(_locale()), a.value, a.corrective_action or "",
               a.recorded_by.name, ver.verified_by.name if ver else "",
               _time(ver.verified_at if ver else None, tz), a.run_id]


def _locale() -> str:
    from flask_babel import get_locale
    return str(get_locale() or "en")


def rules(session, site: Site, span: Period, now: dt.datetime):
    yield [_("Rule"), _("Title"), _("Pass"), _("Fail"), _("N/A"), _("Fail rate (%)")]
    for r in rule_figures(session, site, span):
        yield [r["code"], bilingual(r["rule"], "title") if r["rule"] else "", r["pass"], r["fail"],
               r["na"], _rate(r["fail_rate"])]


def units(session, site: Site, span: Period, now: dt.datetime):
    yield [_("Unit"), _("Time in range (%)"), _("Observed (h)"), _("Out of range (h)"),
           _("Excursions"), _("Offline periods"), _("Offline (h)"), _("Lowest"), _("Highest"),
           _("Readings")]
    for f in units_figures(session, site, span.start, span.end, now):
        offline = sum((b - a).total_seconds() for a, b in f.offline) / 3600
        yield [f.unit.name, _rate(f.time_in_range), f"{f.observed_s / 3600:.2f}",
               f"{f.out_s / 3600:.2f}", len(f.alarmed), len(f.offline), f"{offline:.2f}",
               _temp(f.min_c, site), _temp(f.max_c, site), f.readings]


def excursions(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Unit"), _("Start"), _("End"), _("Minutes"), _("Peak") + f" (°{site.temp_unit})",
           _("Tier"), _("Defrost"), _("Alert"), _("Acknowledged by"), _("Acknowledged at"),
           _("Corrective action"), _("Food")]
    for f in units_figures(session, site, span.start, span.end, now):
        for e in f.excursions:
            ack = e.acknowledgement
            data = ack.data if ack else {}
            yield [f.unit.name, _time(e.start, tz), _time(e.end, tz),
                   f"{e.duration(f.end).total_seconds() / 60:.1f}", _temp(e.peak_c, site),
                   e.tier, _("yes") if e.in_defrost else "", e.alert.id if e.alert else "",
                   ack.actor.name if ack and ack.actor else "", _time(ack.at if ack else None, tz),
                   data.get("corrective_action", ""), data.get("food_outcome", "")]


def offline(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Unit"), _("From"), _("To"), _("Minutes")]
    for f in units_figures(session, site, span.start, span.end, now):
        for a, b in f.offline:
            yield [f.unit.name, _time(a, tz), _time(b, tz), f"{(b - a).total_seconds() / 60:.1f}"]


def timers(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Started"), _("Dish"), _("Rule"), _("Started by"), _("Expires"), _("Outcome"),
           _("Recorded by"), _("Recorded at")]
    for row in timer_figures(session, site, span, now, every_row=True)["rows"]:
        t, o = row["timer"], row["outcome"]
        yield [_time(t.started_at, tz), t.dish, t.rule_code, t.started_by.name,
               _time(t.expires_at, tz), timer_label(row["status"]),
               o.recorded_by.name if o else "", _time(o.recorded_at if o else None, tz)]


def timer_label(status: str) -> str:
    return {"served": _("Served in time"), "served_late": _("Served late"),
            "discarded": _("Discarded"), "expired": _("Expired, unanswered"),
            "running": _("Running")}.get(status, status)


def alerts(session, site: Site, span: Period, now: dt.datetime):
    tz = ZoneInfo(site.timezone)
    yield [_("Alert"), _("Opened"), _("Kind"), _("Tier"), _("Status"), _("Acknowledged at"),
           _("Minutes to acknowledge"), _("Acknowledged by"), _("Corrective action"), _("Food"),
           _("Escalated"), _("Resolved at")]
    for row in alert_figures(session, site, span)["rows"]:
        a, ack = row["alert"], row["ack"]
        data = ack.data if ack else {}
        yield [a.id, _time(a.opened_at, tz), a.kind, a.tier, a.state.status,
               _time(ack.at if ack else None, tz),
               f"{row['wait'].total_seconds() / 60:.1f}" if row["wait"] else "",
               ack.actor.name if ack and ack.actor else "", data.get("corrective_action", ""),
               data.get("food_outcome", ""), _("yes") if row["escalated"] else "",
               _time(a.state.resolved_at, tz)]


def calibration(session, site: Site, span: Period, now: dt.datetime):
    from flask import current_app
    tz = ZoneInfo(site.timezone)
    yield [_("When"), _("Thermometer"), _("Method"), _("Reference"), _("Measured"), _("Passed"),
           _("Action")]
    figures = calibration_figures(session, site, span, now,
                                  current_app.config["BRIGADE_CALIBRATION_DAYS"])
    for c in figures["checks"]:
        yield [_time(c.performed_at, tz), c.subject, c.method, _temp(c.reference_c, site),
               _temp(c.measured_c, site), _("yes") if c.passed else _("no"), c.action]


TABLES = {"slots": slots, "fails": fails, "rules": rules, "units": units,
          "excursions": excursions, "offline": offline, "timers": timers, "alerts": alerts,
          "calibration": calibration}


def readings(session, unit: Unit, site: Site, span: Period, grain: str):
    """The unit's readings in the range: every one, or per 5 minutes / hour (min, mean, max)."""
    tz = ZoneInfo(site.timezone)
    symbol = f"°{site.temp_unit}"
    sensor_ids = session.execute(select(Sensor.id).where(Sensor.unit_id == unit.id)).scalars().all()
    names = {s.id: s.name or s.key for s in session.execute(
        select(Sensor).where(Sensor.unit_id == unit.id)).scalars()}
    if GRAINS[grain] is None:
        yield [_("Time") + f" ({site.timezone})", _("Sensor"), _("Temperature") + f" ({symbol})",
               _("Calibration offset") + " (°C)"]
        if not sensor_ids:
            return
        rows = session.execute(
            select(Reading.measured_at, Reading.sensor_id, Reading.temperature_c,
                   Reading.offset_c)
            .where(Reading.sensor_id.in_(sensor_ids), Reading.measured_at >= span.start,
                   Reading.measured_at < span.end)
            .order_by(Reading.measured_at, Reading.sensor_id)
            .execution_options(yield_per=STREAM_BATCH))
        for at, sensor_id, celsius, offset in rows:
            yield [_time(at, tz), names[sensor_id], _temp(celsius, site), f"{offset:g}"]
        return
    width = GRAINS[grain]
    yield [_("From") + f" ({site.timezone})", _("Readings"), _("Lowest") + f" ({symbol})",
           _("Mean") + f" ({symbol})", _("Highest") + f" ({symbol})"]
    if not sensor_ids:
        return
    ids = ",".join(str(int(i)) for i in sensor_ids)
    epoch = _epoch_sql(session, "bucket_start")
    first = int(span.start.timestamp()) // width * width
    rows = session.execute(_sql(
        f"SELECT ({epoch} - :first) / :width AS g, SUM(count), MIN(min_c), SUM(sum_c), "
        f"MAX(max_c) FROM rollups WHERE sensor_id IN ({ids}) AND bucket_start >= :a "
        "AND bucket_start < :b GROUP BY g ORDER BY g"),
        {"first": first, "width": width, "a": span.start, "b": span.end})
    for g, count, low, total, high in rows:
        at = dt.datetime.fromtimestamp(first + int(g) * width, UTC)
        yield [_time(at, tz), count, _temp(low, site), _temp(total / count, site),
               _temp(high, site)]


def pdf_bytes(html: str, base_url: str, static_folder: str) -> bytes:
    """The printable report as PDF (WeasyPrint). Its stylesheet is read from the app's static
    folder, never fetched: nothing leaves the machine, not even to itself. Fonts: Noto (CJK
    for Chinese), as installed on the server (.ci/system-deps)."""
    from pathlib import Path
    from urllib.parse import urlsplit

    from weasyprint import HTML

    root = Path(static_folder).resolve()

    def local(url: str) -> tuple[bytes, str] | None:
        path = urlsplit(url).path
        if url.startswith(base_url) and path.startswith("/static/"):
            file = (root / path[len("/static/"):]).resolve()
            if file.is_relative_to(root) and file.is_file():
                return file.read_bytes(), _mime(file.suffix)
        return None

    try:  # WeasyPrint 68+: a fetcher object returning responses
        from weasyprint.urls import URLFetcher, URLFetcherResponse

        class StaticOnly(URLFetcher):
            def fetch(self, url, headers=None):
                found = local(url)
                if found is None:
                    raise ValueError(f"not fetched for the PDF: {url}")
                return URLFetcherResponse(url, found[0], {"Content-Type": found[1]})

        fetcher = StaticOnly()
    except ImportError:  # older WeasyPrint: a function returning a dict
        def fetcher(url: str):
            found = local(url)
            if found is None:
                raise ValueError(f"not fetched for the PDF: {url}")
            return {"string": found[0], "mime_type": found[1], "redirected_url": url}

    return HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf()


def _mime(suffix: str) -> str:
    return {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}.get(
        suffix, "application/octet-stream")
