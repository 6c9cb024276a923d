"""The compliance report: figures from known records, asserted exactly (across a DST change,
from mid-excursion), its pages, chart data and exports."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from app.alerts.operations import acknowledge, raise_alert
from app.checklists.definitions import current_definitions
from app.checklists.operations import open_run, record_answer, submit_run, verify_run
from app.checklists.schedules import slots_for_day
from app.models import Site, Staff, db
from app.models.units import Unit
from app.reports.operations import (_Walker, alert_figures, checklist_figures, period,
                                    rule_figures, timer_figures, unit_figures, units_figures)
from app.timers.operations import record_outcome, start_timer
from sensors.models import Reading
from sensors.store import Message, store_batch
from sensors.temperature import Limits
from tests.factories import at_local, login_password, login_pin, salad_fridge, unavailable

UTC = dt.timezone.utc
#: Europe/London leaves summer time at 01:00 UTC on this Sunday: the local day has 25 hours.
DST_DAY = dt.date(2026, 10, 25)
DST_START = dt.datetime(2026, 10, 24, 23, tzinfo=UTC)     # its local midnight (BST)
AFTER = dt.datetime(2026, 10, 27, 12, tzinfo=UTC)


def feed(values: dict[int, float], start: dt.datetime) -> None:
    """One reading a minute at ``start`` + each key (minutes), as the salad fridge sends them."""
    messages = []
    for minute, value in sorted(values.items()):
        at = start + dt.timedelta(minutes=minute)
        messages.append(Message("brigade/salad/reading",
                                json.dumps({"t": value, "ts": at.isoformat()}).encode(), at))
    store_batch(db.session, messages)
    db.session.commit()


def dst_day_readings() -> dict[int, float]:
    """25 hours at 3 °C, with a 25-minute excursion that went critical and a 21-minute silence."""
    values = {i: 3.0 for i in range(1, 1500)}
    for i in range(150, 170):          # 01:30–01:49 UTC: 6 °C, one reading past critical
        values[i] = 6.0
    values[160] = 8.5
    for i in range(170, 175):          # 4.6 °C: under the limit, not by the hysteresis (0.5)
        values[i] = 4.6
    for i in range(660, 680):          # 10:00–10:19 UTC: nothing heard
        del values[i]
    return values


def test_a_unit_over_the_25_hour_day_when_summer_time_ends(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    unit = salad_fridge(site.id, DST_START)          # its first reading: 4.0 °C at midnight
    feed(dst_day_readings(), DST_START)
    freeze(AFTER)
    span = period("custom", AFTER, site.timezone, "2026-10-25", "2026-10-25")
    assert (span.start, span.end) == (DST_START, dt.datetime(2026, 10, 26, 0, tzinfo=UTC))
    assert span.end - span.start == dt.timedelta(hours=25)

    f = unit_figures(db.session, unit, site, span.start, span.end, AFTER)
    [exc] = f.excursions
    assert (exc.start, exc.end) == (DST_START + dt.timedelta(minutes=150),
                                    DST_START + dt.timedelta(minutes=175))
    assert (exc.tier, exc.peak_c, exc.in_defrost) == ("critical", 8.5, False)
    # Silent from 09:59; offline once 5 × 60 s had passed (10:04) until the next reading, 10:20.
    assert f.offline == [(DST_START + dt.timedelta(minutes=664), DST_START + dt.timedelta(minutes=680))]
    assert f.observed_s == (1500 - 16) * 60
    assert f.out_s == 25 * 60
    assert f.time_in_range == (1484 - 25) / 1484
    assert f.readings == 1500 - 20 and (f.min_c, f.max_c) == (3.0, 8.5)

    # The same as walking every single reading through the breach rules.
    rows = db.session.execute(select(Reading.measured_at, Reading.temperature_c)
                              .order_by(Reading.measured_at)).all()
    walker = _Walker(Limits.of(unit), span.start, span.end, dt.timedelta(minutes=5), None)
    walker.feed(rows)
    walker.finish()
    assert [(e.start, e.end, e.tier, e.peak_c) for e in walker.excursions] == \
        [(exc.start, exc.end, exc.tier, exc.peak_c)]
    assert walker.offline == f.offline


def test_a_range_that_starts_mid_excursion(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    chef = db.session.get(Staff, kitchen["chef"])
    t0 = dt.datetime(2026, 11, 9, 23, tzinfo=UTC)   # London is on UTC in November
    unit = salad_fridge(site.id, t0)
    feed({i: (7.0 if 30 <= i < 105 else 3.0) for i in range(1, 180)}, t0)
    # The alarm went off during it, and the head chef acknowledged it 15 minutes later.
    alert = raise_alert(db.session, site_id=site.id, kind="temperature",
                        subject=f"unit:{unit.id}:temperature", unit_id=unit.id,
                        detail={"value_c": 7.0, "excursion_started": "2026-11-09T23:30:00+00:00"},
                        now=t0 + dt.timedelta(minutes=65))
    acknowledge(db.session, alert, chef, None, corrective_action="Moved the salads",
                food_outcome="moved", now=t0 + dt.timedelta(minutes=80))
    db.session.commit()
    now = freeze(dt.datetime(2026, 11, 10, 2, tzinfo=UTC))
    span = period("today", now, site.timezone)
    assert (span.first, span.start) == (dt.date(2026, 11, 10), t0 + dt.timedelta(hours=1))

    [f] = units_figures(db.session, site, span.start, span.end, now)
    [exc] = f.excursions
    # Seen whole: from 23:30 the day before to 00:45, though the range begins at midnight.
    assert (exc.start, exc.end, exc.tier, exc.peak_c) == (
        t0 + dt.timedelta(minutes=30), t0 + dt.timedelta(minutes=105), "high", 7.0)
    assert exc.alert.id == alert.id
    assert exc.acknowledgement.data["corrective_action"] == "Moved the salads"
    # The range so far is two hours (to now), 45 minutes of them out of range.
    assert (f.end, f.observed_s, f.out_s, f.offline) == (now, 7200, 45 * 60, [])
    assert f.time_in_range == 0.625

    alerts = alert_figures(db.session, site, period("custom", now, site.timezone,
                                                    "2026-11-09", "2026-11-10"))
    assert alerts["counts"]["raised"] == alerts["counts"]["acknowledged"] == 1
    assert alerts["counts"]["open"] == 1 and alerts["median_ack_s"] == 15 * 60


def test_a_silent_unit_is_offline_the_whole_range(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    unit = salad_fridge(site.id, dt.datetime(2026, 11, 1, tzinfo=UTC))
    now = freeze(dt.datetime(2026, 11, 5, 12, tzinfo=UTC))
    span = period("yesterday", now, site.timezone)
    f = unit_figures(db.session, unit, site, span.start, span.end, now)
    assert f.offline == [(span.start, span.end)] and f.observed_s == 0
    assert f.time_in_range is None and f.excursions == []


def _run(site, definition, slot, who, answers, submit_at=None, verify_by=None):
    run = open_run(db.session, site, definition.key, slot, who, None, now=slot.start)
    items = {i.key: i for i in run.definition.items}
    for key, value in answers.items():
        action = "Covered the dishes now" if value == "fail" else None
        record_answer(db.session, run, items[key], who, None, value=value,
                      corrective_action=action, now=slot.start + dt.timedelta(minutes=5))
    if submit_at:
        submit_run(db.session, run, who, None, now=submit_at)
    if verify_by:
        verify_run(db.session, run, verify_by, None, now=submit_at + dt.timedelta(hours=1))
    db.session.commit()
    return run


ALL_PASS = {"covered": "pass", "cold_unit_temp": "3", "cold_held_chilled": "pass",
            "plated_on_time": "pass", "spills_wiped": "pass", "utensils_used": "pass",
            "tableware_handled": "pass", "no_reuse": "pass", "serving_tools_clean": "pass"}


def test_checklist_rates_and_rules_on_the_dst_day(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    site.created_at = at_local(DST_DAY - dt.timedelta(days=30), "09:00")  # open long before
    cook = db.session.get(Staff, kitchen["cook"])
    cook2 = db.session.get(Staff, kitchen["cook2"])
    chef = db.session.get(Staff, kitchen["chef"])
    definition = current_definitions(db.session)[0]
    slots = slots_for_day(definition.schedules, DST_DAY, site.timezone)
    assert len(slots) == 7 and slots[0].start == at_local(DST_DAY, "11:00")
    # Before lunch: on time, with a fail fixed; lunch 12:30: late, one item N/A; lunch 14:30:
    # opened and left; the other four: never opened.
    first = _run(site, definition, slots[0], cook, dict(ALL_PASS, covered="fail"),
                 submit_at=at_local(DST_DAY, "11:30"), verify_by=chef)
    _run(site, definition, slots[1], cook2, dict(ALL_PASS, no_reuse="na"),
         submit_at=at_local(DST_DAY, "13:10"))
    _run(site, definition, slots[2], cook, {})
    now = freeze(AFTER)
    span = period("custom", now, site.timezone, "2026-10-25", "2026-10-25")

    c = checklist_figures(db.session, site, span, now)
    t = c["total"]
    assert (t.due, t.on_time, t.late, t.missed, t.pending) == (7, 1, 1, 5, 0)
    assert t.completion == 2 / 7 and t.on_time_rate == 1 / 7
    assert list(c["by_day"]) == [DST_DAY]
    lunch = c["by_slot"][("serving_hygiene", "lunch_service")]
    assert (lunch.due, lunch.late, lunch.missed) == (2, 1, 1)
    assert {n: (p.on_time, p.late) for n, p in c["by_person"].items()} == \
        {"Cook Sam": (1, 0), "Cook Li": (0, 1)}
    assert [e.run.schedule_key for e in c["awaiting"]] == ["lunch_service"]

    rules = {r["code"]: (r["pass"], r["fail"], r["na"]) for r in rule_figures(db.session, site, span)}
    assert rules == {"R1": (1, 1, 0), "R2": (4, 0, 0), "R3": (2, 0, 0), "R4": (2, 0, 0),
                     "R5": (2, 0, 0), "R6": (2, 0, 0), "R7": (1, 0, 1), "R8": (2, 0, 0)}
    assert next(r for r in rule_figures(db.session, site, span) if r["code"] == "R1")["fail_rate"] == 0.5

    # A day earlier (BST, 24 hours) holds none of it; the day before the change is its own.
    earlier = period("custom", now, site.timezone, "2026-10-24", "2026-10-24")
    assert checklist_figures(db.session, site, earlier, now)["total"].done == 0

    # The failed item, its fix and who verified it, on the page, linked to the run.
    client = _chef_client()
    page = client.get("/reports?range=custom&first=2026-10-25&last=2026-10-25")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Covered the dishes now" in html and f"/records/runs/{first.id}" in html
    assert 'data-testid="completion">28.6 %' in html
    rows = list(csv.reader(io.StringIO(client.get(
        "/reports/export/rules.csv?range=custom&first=2026-10-25&last=2026-10-25")
        .get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[1][:6] == ["R1", "Covering", "1", "1", "0", "50.0"]
    fails = list(csv.reader(io.StringIO(client.get(
        "/reports/export/fails.csv?range=custom&first=2026-10-25&last=2026-10-25")
        .get_data(as_text=True).lstrip("\ufeff"))))
    # The slot as people say it, never the schedule's key.
    assert fails[1][2] == "Before lunch service" and "before_lunch" not in str(fails)


def test_hold_timers_in_the_range(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    cook = db.session.get(Staff, kitchen["cook"])
    t0 = at_local(dt.date(2026, 11, 20), "12:00")
    served = start_timer(db.session, site, cook, None, "plated", "Noodles", now=t0)
    late = start_timer(db.session, site, cook, None, "plated", "Dumplings", now=t0)
    binned = start_timer(db.session, site, cook, None, "cold_out", "Squid", now=t0)
    start_timer(db.session, site, cook, None, "plated", "Buns", now=t0)
    record_outcome(db.session, served, cook, None, "served", now=t0 + dt.timedelta(minutes=5))
    record_outcome(db.session, late, cook, None, "served", now=late.expires_at + dt.timedelta(minutes=1))
    record_outcome(db.session, binned, cook, None, "discarded", now=t0 + dt.timedelta(minutes=30))
    db.session.commit()
    now = freeze(t0 + dt.timedelta(days=1))
    figures = timer_figures(db.session, site, period("yesterday", now, site.timezone), now)
    assert figures["started"] == 4
    assert dict(figures["counts"]) == {"served": 1, "served_late": 1, "discarded": 1, "expired": 1}


def _chef_client():
    from flask import current_app
    client = current_app.test_client()
    assert login_password(client, "chef@test.kitchen", "chef-password").status_code == 302
    return client


def test_reports_are_the_head_chefs_and_admins(app, kitchen):
    client = app.test_client()
    login_pin(client, kitchen["cook"], "2468")
    for url in ("/reports", "/glance", "/reports/export/slots.csv", "/reports/print"):
        assert client.get(url).status_code == 403
    with app.app_context():
        assert _chef_client().get("/reports").status_code == 200
        admin = app.test_client()
        login_password(admin, "admin@test.kitchen", "admin-password")
        assert admin.get("/glance").status_code == 200


def test_chart_data_reads_rollups_for_long_windows_and_readings_when_zoomed(ctx, kitchen, freeze):
    site = db.session.get(Site, kitchen["site"])
    t0 = dt.datetime(2026, 11, 20, 8, tzinfo=UTC)
    unit = salad_fridge(site.id, t0)
    feed({i: 3.0 + (i % 7) / 10 for i in range(1, 600)}, t0)
    freeze(t0 + dt.timedelta(hours=10))
    client = _chef_client()
    year = client.get(f"/reports/units/{unit.id}/chart.json?window=1y")
    assert year.status_code == 200 and year.json["grain"] == "rollup"
    assert len(year.data) < 500_000 and year.json["min"] and year.json["max"]
    # Zoomed in to an hour of wall-clock time (as plotly gives it back): every reading.
    hour = client.get(f"/reports/units/{unit.id}/chart.json?start=2026-11-20 09:00:00"
                      "&end=2026-11-20 10:00:00")
    assert hour.json["grain"] == "raw" and len(hour.json["t"]) == 60
    assert hour.json["t"][0] == "2026-11-20 09:00:00" and hour.json["limits"]["target"] == 5.0
    assert client.get(f"/reports/units/{unit.id}/chart.json?start=x&end=y").status_code == 400
    page = client.get(f"/units/{unit.id}")
    assert page.status_code == 200 and b'data-testid="unit-chart"' in page.data
    raw = client.get(f"/reports/units/{unit.id}/readings.csv?range=today&grain=raw")
    lines = raw.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert len(lines) == 1 + 600 and lines[1].startswith("2026-11-20 08:00:00,")
    hourly = client.get(f"/reports/units/{unit.id}/readings.csv?range=today&grain=hour")
    assert len(hourly.get_data(as_text=True).splitlines()) == 1 + 10


def test_another_sites_unit_is_not_found(app, kitchen):
    with app.app_context():
        other = Site(name="Other", timezone="Asia/Shanghai")
        db.session.add(other)
        db.session.flush()
        unit = Unit(site_id=other.id, name="Theirs", kind="fridge", target_max_c=5,
                    critical_max_c=8)
        db.session.add(unit)
        db.session.commit()
        client = _chef_client()
        assert client.get(f"/units/{unit.id}").status_code == 404
        assert client.get(f"/reports/units/{unit.id}/chart.json?window=24h").status_code == 404


@pytest.mark.parametrize("query", ["range=nonsense", "range=custom&first=2026-01-02&last=2026-01-01",
                                   "range=custom&first=2024-01-01&last=2026-01-01",
                                   "range=custom&first=yesterday&last=today"])
def test_bad_ranges_are_refused(app, kitchen, query):
    with app.app_context():
        assert _chef_client().get(f"/reports?{query}").status_code == 400



@pytest.mark.parametrize("locale,title", [("en", "Compliance report"), ("zh", "合规报告")])
def test_the_inspectors_pdf_in_english_and_chinese(app, kitchen, locale, title, tmp_path):
    """The PDF renders (Chinese in Noto CJK), its first page saved as a PNG for a person to see."""
    import shutil
    import subprocess
    from pathlib import Path
    if not shutil.which("pdftoppm"):
        unavailable("pdftoppm (poppler-utils) is not installed: .ci/system-deps")
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        chef = db.session.get(Staff, kitchen["chef"])
        chef.locale = locale
        t0 = dt.datetime(2026, 11, 20, 8, tzinfo=UTC)
        salad_fridge(site.id, t0)
        feed({i: (6.5 if 200 <= i < 240 else 3.0) for i in range(1, 900)}, t0)
        definition = current_definitions(db.session)[0]
        slot = slots_for_day(definition.schedules, t0.date(), site.timezone)[0]
        _run(site, definition, slot, chef, dict(ALL_PASS, covered="fail"),
             submit_at=slot.start + dt.timedelta(minutes=20))
        db.session.commit()
        client = _chef_client()
        assert b"data-testid=\"audit\"" in client.get("/reports/verify").data
        response = client.get("/reports/report.pdf?range=custom&first=2026-11-20&last=2026-11-20")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data[:5] == b"%PDF-"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.data)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    flat = " ".join(text.split())
    assert title in flat and "Covered the dishes now" in flat and "Salad fridge" in flat, flat[:3000]
    if locale == "en":  # the chain's last check, and the head it was checked against
        assert "Verified:" in flat and "against the chain head #" in flat, flat[:1500]
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    if locale == "zh":
        assert "CJK" in fonts, fonts
    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    out = artifacts / f"report-pdf-{locale}"
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(out)], check=True)
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_printed_reports_give_the_last_check_of_the_chain(app, kitchen):
    with app.app_context():
        client = _chef_client()
        assert b"has not been verified yet" in client.get("/reports/print").data
        client.get("/reports/verify")
        page = client.get("/reports/print").get_data(as_text=True)
        assert "Verified:" in page and "added since" not in page
        # A record made after the check: the document says the chain has moved on.
        site = db.session.get(Site, kitchen["site"])
        cook = db.session.get(Staff, kitchen["cook"])
        start_timer(db.session, site, cook, None, "plated", "Noodles")
        db.session.commit()
        page = client.get("/reports/print").get_data(as_text=True)
        assert "1 links have been added since, not yet checked." in page
        fresh = client.get("/reports/print?verify=1").get_data(as_text=True)
        assert "added since" not in fresh and "Verified:" in fresh
