#!/usr/bin/env python3
"""Reports benchmark: is the head chef's report fast on a year of a busy kitchen's records?

Builds two kitchens with ``bench/scale.py``'s builder (the app's migrations, the demo kitchen,
fridges added up to ``--sensors``, readings one a minute for every sensor following each unit's
compressor cycle, door openings and short excursions, with their 5-minute rollups written in
bulk through the DBAPI; the serving-hygiene checklist's real slots as submitted runs; hold
timers; an alert 90 days old):

- **small**, the baseline measured in the same run: 2 days of readings for the same sensors;
- **year**: ``--days`` (365) of readings for ``--sensors`` (50) — about 26 M readings with
  5.3 M rollups — and a year of checklist runs (7 a day).

Then, for both kitchens (interleaved request by request), the server time (``Server-Timing``)
of: the report over the whole range for one unit (``/reports?unit=``) and over the last month
for every unit; a unit's page; its chart data at each window (24 h, 7 d, 30 d, 1 y) and zoomed
in to one hour (raw readings); and, as wall time of the whole streamed body, the CSV of one
unit's readings over the range and the PDF of the last month. Median of ``--requests`` after
``--warmups``. Chart payloads are measured in bytes.

Targets (SQLite): every page and chart request <= 1,000 ms server time (aim 200 ms); chart
payloads <= 500 KB; the PDF of a month for 10 units <= 10 s (the issue's kitchen; all 50 are
timed too). Prints a table and writes
``bench/results/reports.json``. Exit status 1 when a year-size target is missed.

The year kitchen takes a few minutes to build and ~4 GB of disk for 50 sensors; ``--keep DIR``
keeps it for the next run. ``--sensors 10`` (or ``--days 30``) makes a quicker, smaller run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import scale  # noqa: E402  (bench/scale.py: the kitchen builder)

RESULTS = ROOT / "bench" / "results" / "reports.json"
TARGETS = {"page_ms": 1000.0, "aim_ms": 200.0, "payload_kb": 500.0, "pdf_s": 10.0}
SCHEMA_VERSION = 1


def plans(args) -> dict:
    return {"small": {"days": 2.0, "runs": 14, "links": 2_000, "alert_age_h": 3.0},
            "year": {"days": args.days, "runs": int(args.days * 7),
                     "links": args.links, "alert_age_h": scale.YEAR_ALERT_AGE_H}}


def requests_for(ids: dict, now: dt.datetime, days: float) -> list[tuple[str, str, str]]:
    """(name, kind, path): kind "page" is timed by Server-Timing, "file" by wall time."""
    tz = scale.ZoneInfo(scale.TIMEZONE)
    today = now.astimezone(tz).date()
    first = today - dt.timedelta(days=max(0, int(days) - 1))
    whole = f"range=custom&first={first}&last={today}"
    unit = ids["unit"]
    hour_end = now.astimezone(tz).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    hour = f"start={hour_end - dt.timedelta(hours=1)}&end={hour_end}"
    return [
        ("report, whole range, one unit", "page", f"/reports?{whole}&unit={unit}"),
        ("report, last month, all units", "page", "/reports?range=last_month"),
        ("unit page /units/<id>", "page", f"/units/{unit}"),
        ("chart data 1 y", "page", f"/reports/units/{unit}/chart.json?window=1y"),
        ("chart data 30 d", "page", f"/reports/units/{unit}/chart.json?window=30d"),
        ("chart data 7 d", "page", f"/reports/units/{unit}/chart.json?window=7d"),
        ("chart data 24 h", "page", f"/reports/units/{unit}/chart.json?window=24h"),
        ("chart data zoomed to 1 h", "page", f"/reports/units/{unit}/chart.json?{hour}"),
        ("CSV, one unit's readings, whole range", "file",
         f"/reports/units/{unit}/readings.csv?{whole}&grain=raw"),
        ("PDF, last month, 10 units", "file",
         "/reports/report.pdf?range=last_month&" + "&".join(f"unit={u}" for u in ids["units"][:10])),
        ("PDF, last month, all units", "file", "/reports/report.pdf?range=last_month"),
    ]


def measure(kitchens: dict, warmups: int, requests: int, file_requests: int) -> dict:
    from app.models import set_clock
    clients, results = {}, {name: {} for name in kitchens}
    for name, kitchen in kitchens.items():
        set_clock(kitchen["clock"])
        client = kitchen["app"].test_client()
        response = client.post("/login", data={"email": kitchen["ids"]["chef_email"],
                                               "password": kitchen["ids"]["chef_password"]})
        if response.status_code != 302:
            raise RuntimeError(f"{name}: the head chef's login answered {response.status_code}")
        clients[name] = client
    try:
        names = [r[0] for r in requests_for(kitchens["year"]["ids"], kitchens["year"]["now"], 1)]
        for index, label in enumerate(names):
            samples = {name: [] for name in kitchens}
            sizes = {}
            kind = None
            is_file = index >= len(names) - 3  # the CSV and the PDFs: fewer, and one warm-up
            count = file_requests if is_file else requests
            warm = min(warmups, 1) if is_file else warmups
            for n in range(warm + count):
                for name, kitchen in kitchens.items():
                    set_clock(kitchen["clock"])
                    _label, kind, path = requests_for(kitchen["ids"], kitchen["now"],
                                                      kitchen["days"])[index]
                    started = time.perf_counter()
                    response = clients[name].get(path)
                    body = response.get_data()  # a streamed body is produced here
                    wall = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(f"{name} {path}: HTTP {response.status_code}")
                    sizes[name] = len(body)
                    ms = scale.server_ms(response) if kind == "page" else wall
                    if n >= warm:
                        samples[name].append(ms)
            for name, times in samples.items():
                ordered = sorted(times)
                results[name][label] = {"kind": kind, "median_ms": statistics.median(ordered),
                                        "max_ms": ordered[-1], "bytes": sizes[name],
                                        "samples": len(ordered)}
    finally:
        set_clock(None)
    return results


def table(result: dict) -> str:
    small, year, cfg = result["kitchens"]["small"], result["kitchens"]["year"], result["config"]
    rows = []
    for key, label in (("readings", "readings"), ("rollups", "rollups (5 min)"),
                       ("runs", "checklist runs"), ("audit_records", "audit links")):
        rows.append((label, f"{small['rows'][key]:,}", f"{year['rows'][key]:,}", "", ""))
    rows.append(("database size (MiB)", f"{small['database_mib']:,.0f}",
                 f"{year['database_mib']:,.0f}", "", ""))
    rows.append(("build (s)", f"{small['build_s']:.0f}", f"{year['build_s']:.0f}", "", ""))
    for label, b in year["timings"].items():
        a = small["timings"][label]
        if b["kind"] == "page":
            target, met = "<= 1000 ms", b["median_ms"] <= TARGETS["page_ms"]
            if label.startswith("chart"):
                target += ", <= 500 KB"
                met = met and b["bytes"] <= TARGETS["payload_kb"] * 1000
            what = "server ms"
        else:
            what = "wall ms"
            target, met = ("<= 10 s", b["median_ms"] <= TARGETS["pdf_s"] * 1000) \
                if label.startswith("PDF, last month, 10") else ("", None)
        rows.append((f"{label}: {what} (KB)", f"{a['median_ms']:.0f} ({a['bytes'] / 1000:,.0f})",
                     f"{b['median_ms']:.0f} ({b['bytes'] / 1000:,.0f})", target,
                     "" if met is None else ("yes" if met else "NO")))
    header = ("measurement", "small (baseline)", "year-size", "target", "met?")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    line = "  ".join(["{:<%d}" % widths[0]] + ["{:>%d}" % w for w in widths[1:3]] +
                     ["{:<%d}" % widths[3], "{:<%d}" % widths[4]])
    m = result["machine"]
    out = [f"Brigade's reports on {cfg['database']}: small (2 days) against year-size "
           f"({cfg['days']:g} days x {cfg['sensors']} sensors at 1/min, a year of runs)",
           f"median of {cfg['requests']} requests ({cfg['file_requests']} for the CSV and PDFs) "
           f"after warm-ups, interleaved; {m['nproc']} CPUs, {m['cpu_model']}, load "
           f"{' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])} at start",
           "", line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in rows]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Exit status 1 when a year-size target is missed.")
    parser.add_argument("--days", type=float, default=365, help="days of readings (365)")
    parser.add_argument("--sensors", type=int, default=50, help="sensors on units (50)")
    parser.add_argument("--links", type=int, default=70_000,
                        help="audit links in the year kitchen: hold timers fill up to this")
    parser.add_argument("--database-url", metavar="URL", help="PostgreSQL instead of SQLite")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the kitchens in DIR and reuse the year one next time")
    parser.add_argument("--requests", type=int, default=5, help="timed requests per page (5)")
    parser.add_argument("--file-requests", type=int, default=2,
                        help="timed requests for the CSV and the PDF (2)")
    parser.add_argument("--warmups", type=int, default=1, help="untimed requests first (1)")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.days, args.sensors, args.requests, args.file_requests) <= 0:
        parser.error("--days, --sensors and the request counts must be positive")

    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="brigade-bench-reports-"))
    now = scale.kitchen_now(dt.datetime.now(scale.UTC))
    result = {"benchmark": "reports", "config": {
        "days": args.days, "sensors": args.sensors, "links": args.links,
        "requests": args.requests, "file_requests": args.file_requests,
        "warmups": args.warmups, "database": "PostgreSQL" if args.database_url else "SQLite"},
        "kitchens": {}}
    kitchens = {}
    for name, plan in plans(args).items():
        store = scale.Store(name, work / name, args.database_url)
        marker = work / f"{name}.json"
        wanted = dict(plan, sensors=args.sensors, schema=SCHEMA_VERSION, kind=store.kind)
        kept = json.loads(marker.read_text()) if marker.exists() and args.keep else None
        if kept and kept["plan"] == wanted:
            ids, built_at = kept["ids"], dt.datetime.fromisoformat(kept["now"])
            print(f"{name}: reusing {store.describe()}", flush=True)
        else:
            print(f"{name}: building {plan['days']:g} days x {args.sensors} sensors in "
                  f"{store.describe()} ...", flush=True)
            built_at = now
            ids = scale.build(store, plan["days"], args.sensors, plan["runs"], plan["links"],
                              plan["alert_age_h"], now)
            if args.keep:
                marker.write_text(json.dumps({"plan": wanted, "ids": ids, "now": now.isoformat()}))
            print(f"{name}: built in {ids['build_s']:.0f} s", flush=True)
        app = scale.make_app(store)
        with app.app_context():
            from sqlalchemy import select

            from app.models import db
            from sensors.models import Sensor
            ids["units"] = list(dict.fromkeys(db.session.scalars(select(Sensor.unit_id).where(
                Sensor.unit_id.is_not(None)).order_by(Sensor.id))))
            ids["unit"] = ids["units"][0]
            db.session.remove()
        clock = built_at + dt.timedelta(minutes=1)
        kitchens[name] = {"app": app, "ids": ids, "now": clock, "days": plan["days"],
                          "clock": (lambda moment: (lambda: moment))(clock), "store": store}
        result["kitchens"][name] = {"build_s": ids["build_s"], "rows": store.counts(),
                                    "database_mib": store.size_mib()}
    result["machine"] = scale.machine(kitchens["year"]["store"])
    timings = measure(kitchens, args.warmups, args.requests, args.file_requests)
    for name in kitchens:
        result["kitchens"][name]["timings"] = timings[name]
    print()
    print(table(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(scale.rounded(result), indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    if not args.keep:
        for kitchen in kitchens.values():
            kitchen["store"].drop()
    missed = []
    for label, b in result["kitchens"]["year"]["timings"].items():
        if b["kind"] == "page" and (b["median_ms"] > TARGETS["page_ms"] or (
                label.startswith("chart") and b["bytes"] > TARGETS["payload_kb"] * 1000)):
            missed.append(label)
        if label.startswith("PDF, last month, 10") and b["median_ms"] > TARGETS["pdf_s"] * 1000:
            missed.append(label)
    if missed:
        print("missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
