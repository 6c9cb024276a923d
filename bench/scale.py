#!/usr/bin/env python3
"""Scale benchmark: does any page or job slow down as a kitchen's records grow?

Builds two SQLite kitchens in one run, migrated with the app's own migrations and seeded as the
demo kitchen (its people, units, checklists) with more fridges up to ``--sensors``:

- **small** (the baseline, measured in the same run): one day of readings, 20 runs awaiting
  sign-off, an alert opened a day ago, about 1,000 audit links;
- **year**: ``--days`` (365) of readings at one a minute for every sensor (~10.5 M rows, with
  their 5-minute rollups), ``--runs`` (5,000) submitted runs awaiting the head chef's sign-off,
  an alert opened 90 days ago and still open, and ``--links`` (100,000) audit links in all
  (runs, submissions, and settled hold timers with their outcomes).

Bulk rows are written straight into the tables with the audit links ``append`` would have made
(``flask audit verify`` must find nothing wrong, or the bench stops). Then, for each kitchen:

- server time (the app's ``Server-Timing`` header; Flask's test client in this process, so no
  network) of the head chef's ``/records`` (the sign-off queue), the old alert's page, the
  units page and the cook's tablet home: 3 warm-ups, then ``--requests`` (15) each; median, p95;
- the retention job's chunks (``sensors.store.purge_readings``, 5,000 readings per chunk,
  committed one by one as the hourly job does) deleting the oldest week (half a day for the
  small kitchen): median and worst chunk;
- ``flask --app app audit verify`` as its own process: wall time and its peak RSS (VmHWM).

Prints a table (small | year | target) and writes it with machine facts to
``bench/results/scale.json``. ``--keep DIR`` keeps the built databases there and reuses them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "scale.json"
UTC = dt.timezone.utc
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
#: Pages ≤ 100 ms server time, retention ≤ 50 ms a chunk, verify of 100,000 links ≤ 200 MB.
TARGETS = {"page_ms": 100.0, "chunk_ms": 50.0, "verify_mib": 200.0}


def environment(folder: Path) -> dict:
    return dict(os.environ, BRIGADE_DATABASE_URL=f"sqlite:///{folder / 'brigade.db'}",
                BRIGADE_INSTANCE_PATH=str(folder / "instance"), BRIGADE_SECRET_KEY="bench",
                BRIGADE_AUDIT_KEY="bench-audit", BRIGADE_LOG_LEVEL="WARNING")


def make_app(folder: Path):
    os.environ.update(environment(folder))
    from app import create_app
    return create_app({"WTF_CSRF_ENABLED": False})


# --- building a kitchen ---------------------------------------------------------------------

class Chain:
    """Links as ``app.audit.append`` makes them, for rows written in bulk."""

    def __init__(self, session, key: bytes):
        from app.audit import ensure_head
        from app.models import AuditHead
        ensure_head(session)
        head = session.get(AuditHead, 1)
        self.seq, self.prev, self.key, self.links = head.seq, head.hash, key, []

    def add(self, record, action: str) -> None:
        from app.audit import canonical, link_hash
        payload = canonical(record.audit_payload())
        entity = type(record).__tablename__
        self.seq += 1
        digest = link_hash(self.key, self.seq, self.prev, action, entity, record.id, payload)
        self.links.append({"seq": self.seq, "at": dt.datetime.now(UTC), "action": action,
                           "entity": entity, "entity_id": record.id, "payload": payload,
                           "prev_hash": self.prev, "hash": digest, "actor_id": None,
                           "device_id": None})
        self.prev = digest

    def write(self, session) -> None:
        from app.models import AuditHead, AuditRecord
        for start in range(0, len(self.links), 20_000):
            session.execute(AuditRecord.__table__.insert(), self.links[start:start + 20_000])
        head = session.get(AuditHead, 1)
        head.seq, head.hash = self.seq, self.prev
        self.links = []


def _row(record) -> dict:
    return {c.key: getattr(record, c.key) for c in type(record).__table__.columns}


def build(folder: Path, days: float, sensors: int, runs: int, links: int, alert_age_days: float,
          now: dt.datetime) -> dict:
    """Create and fill one kitchen; returns what the measurements need."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app.alerts.operations import raise_alert
    from app.checklists.definitions import current_definitions, load_all
    from app.demo import seed
    from app.models import (HoldTimer, Role, Run, Site, Staff, Submission, TimerOutcome, db)
    from app.models.units import PRESETS, Unit
    from sensors.models import Sensor

    folder.mkdir(parents=True, exist_ok=True)
    app = make_app(folder)
    started = time.perf_counter()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        credentials = seed(db.session, "Europe/London")
        load_all(db.session)
        db.session.commit()
        site = db.session.execute(select(Site)).scalar_one()
        have = db.session.execute(select(Sensor).where(Sensor.unit_id.is_not(None))).scalars().all()
        for n in range(len(have), sensors):
            unit = Unit(site_id=site.id, name=f"Fridge {n + 1}", kind="fridge",
                        **PRESETS[("uk", "fridge")])
            db.session.add(unit)
            db.session.flush()
            db.session.add(Sensor(key=f"bench/fridge-{n + 1}", name=f"Fridge {n + 1}",
                                  unit_id=unit.id))
        db.session.commit()
        sensor_ids = db.session.execute(select(Sensor.id).where(Sensor.unit_id.is_not(None))
                                        .order_by(Sensor.id)).scalars().all()[:sensors]
        chef = db.session.execute(select(Staff).where(Staff.role == Role.HEAD_CHEF)).scalars().first()
        cook = db.session.execute(select(Staff).where(Staff.role == Role.COOK)).scalars().first()
        definition = current_definitions(db.session)[0]
        chain = Chain(db.session, app.config["BRIGADE_AUDIT_KEY"].encode())
        # Submitted runs awaiting sign-off, one per slot going back from now.
        run_rows, submission_rows = [], []
        for n in range(runs):
            slot = now - dt.timedelta(hours=6 * (n + 1))
            run = Run(id=n + 1, site_id=site.id, definition_id=definition.id,
                      checklist_key=definition.key, schedule_key=f"bench-{n}", slot_start=slot,
                      deadline=slot + dt.timedelta(minutes=45), opened_by_id=cook.id,
                      opened_at=slot, device_id=None)
            submission = Submission(id=n + 1, run_id=run.id, submitted_by_id=cook.id,
                                    submitted_at=slot + dt.timedelta(minutes=20), device_id=None)
            chain.add(run, "run.opened")
            chain.add(submission, "run.submitted")
            run_rows.append(_row(run))
            submission_rows.append(_row(submission))
        db.session.execute(Run.__table__.insert(), run_rows) if run_rows else None
        db.session.execute(Submission.__table__.insert(), submission_rows) if submission_rows else None
        # Settled hold timers fill the chain up to ``links``.
        timer_rows, outcome_rows = [], []
        for n in range(max(0, (links - 2 * runs) // 2)):
            started_at = now - dt.timedelta(minutes=7 * (n + 1))
            timer = HoldTimer(id=n + 1, site_id=site.id, kind="plated", rule_code="R3",
                              dish=f"Dish {n % 50}", started_by_id=cook.id, started_at=started_at,
                              expires_at=started_at + dt.timedelta(minutes=15), device_id=None)
            outcome = TimerOutcome(id=n + 1, timer_id=timer.id, outcome="served",
                                   supersedes_id=None, reason=None, recorded_by_id=cook.id,
                                   recorded_at=started_at + dt.timedelta(minutes=5), device_id=None)
            chain.add(timer, "timer.started")
            chain.add(outcome, "timer.outcome")
            timer_rows.append(_row(timer))
            outcome_rows.append(_row(outcome))
        for rows, model in ((timer_rows, HoldTimer), (outcome_rows, TimerOutcome)):
            for start in range(0, len(rows), 20_000):
                db.session.execute(model.__table__.insert(), rows[start:start + 20_000])
        chain.write(db.session)
        db.session.commit()
        first_unit = db.session.get(Sensor, sensor_ids[0]).unit_id
        opened = now - dt.timedelta(days=alert_age_days)
        alert = raise_alert(db.session, site_id=site.id, kind="temperature",
                            subject=f"unit:{first_unit}:temperature", unit_id=first_unit,
                            detail={"direction": "high", "limit_c": 5.0}, now=opened)
        db.session.commit()
        alert_id = alert.id
        chef_login = next(c for c in credentials if c.get("email") and c["role"] == "head_chef")
        cook_pin = next(c["pin"] for c in credentials if c["name"] == cook.name)
        ids = {"alert": alert_id, "cook": cook.id, "chef_email": chef_login["email"],
               "chef_password": chef_login["password"], "cook_pin": cook_pin, "chef": chef.id}
        db.session.remove()
        db.engine.dispose()
    write_readings(folder / "brigade.db", sensor_ids, now, days, opened)
    return {**ids, "build_s": round(time.perf_counter() - started, 1)}


def write_readings(path: Path, sensor_ids: list[int], now: dt.datetime, days: float,
                   alert_opened: dt.datetime) -> None:
    """One reading a minute per sensor with their 5-minute rollups, straight into SQLite.
    Fridges sit at 3–4.5 °C; the alert's unit is warm from the alert's opening on."""
    from sensors.store import sqlite_timestamp
    minutes = int(days * 24 * 60)
    start = (now - dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    start -= dt.timedelta(minutes=start.minute % 5)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    stamps = [sqlite_timestamp(start + dt.timedelta(minutes=m)) for m in range(minutes)]
    warm_from = int((alert_opened - start).total_seconds() // 60)
    for index, sensor_id in enumerate(sensor_ids):
        values = [round(3.0 + ((m * 7 + index) % 16) / 10, 1) for m in range(minutes)]
        if index == 0:
            values[warm_from:] = [round(6.5 + (m % 30) / 10, 1) for m in range(minutes - warm_from)]
        db.executemany("INSERT INTO readings (sensor_id, measured_at, temperature_c, received_at, "
                       "time_source, offset_c) VALUES (?, ?, ?, ?, 'device', 0.0)",
                       ((sensor_id, stamp, value, stamp) for stamp, value in zip(stamps, values)))
        db.executemany("INSERT INTO rollups (sensor_id, bucket_start, count, min_c, max_c, sum_c) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       ((sensor_id, stamps[b], len(values[b:b + 5]), min(values[b:b + 5]),
                         max(values[b:b + 5]), sum(values[b:b + 5]))
                        for b in range(0, minutes, 5)))
        db.execute("UPDATE sensors SET last_reading_at = ?, last_temperature_c = ? WHERE id = ?",
                   (stamps[-1], values[-1], sensor_id))
        db.commit()
    db.execute("PRAGMA synchronous=FULL")
    db.execute("ANALYZE")
    db.close()


# --- measuring ------------------------------------------------------------------------------

def server_ms(response) -> float:
    match = SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
    if match is None or response.status_code != 200:
        raise RuntimeError(f"{response.request.path}: {response.status_code}, no timing")
    return float(match.group(1))


def time_pages(app, ids: dict, requests: int) -> dict:
    from app.models import set_clock
    chef, cook = app.test_client(), app.test_client()
    login = chef.post("/login", data={"email": ids["chef_email"], "password": ids["chef_password"]})
    assert login.status_code == 302, login.status_code
    assert cook.post(f"/pin/{ids['cook']}", data={"pin": ids["cook_pin"]}).status_code == 302
    pages = {"/records (sign-off queue)": (chef, "/records"),
             "alert page": (chef, f"/alerts/{ids['alert']}"),
             "units page": (chef, "/units"),
             "tablet home": (cook, "/")}
    results = {}
    set_clock(None)
    for name, (client, path) in pages.items():
        for _ in range(3):
            server_ms(client.get(path))
        times = sorted(server_ms(client.get(path)) for _ in range(requests))
        results[name] = {"median_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
                         "bytes": len(client.get(path).data)}
    return results


def time_retention(app, week_of: dt.datetime) -> dict:
    from app.models import db
    from sensors.store import purge_readings
    with app.app_context():
        chunks, deleted = [], 0
        started = time.perf_counter()
        for gone in purge_readings(db.session, week_of):
            db.session.commit()
            now = time.perf_counter()
            chunks.append((now - started) * 1000)
            deleted += gone
            started = now
        db.session.remove()
    return {"chunks": len(chunks), "deleted": deleted,
            "median_chunk_ms": round(statistics.median(chunks), 1) if chunks else None,
            "worst_chunk_ms": round(max(chunks), 1) if chunks else None}


#: Runs ``flask --app app audit verify`` and, at exit, writes the process's own peak RSS
#: (VmHWM: per address space, so it starts afresh at exec; getrusage's ru_maxrss would count
#: this large parent process, whose memory the child shares until it execs).
VERIFY = ("import atexit, sys\n"
          "atexit.register(lambda: sys.stderr.write(next(line for line in open('/proc/self/status')"
          " if line.startswith('VmHWM'))))\n"
          "from flask.cli import main\n"
          "sys.argv = ['flask', '--app', 'app', 'audit', 'verify']\n"
          "main()\n")


def time_verify(folder: Path) -> dict:
    """``flask audit verify`` in its own process: wall time and that process's peak RSS."""
    import subprocess
    env = dict(environment(folder), PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", VERIFY], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    said = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise RuntimeError("audit verify found problems in the bench's data:\n"
                           + "\n".join(said[-20:]))
    peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", done.stderr).group(1))
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024, 1),
            "said": next(line for line in said if "audit chain" in line)}


def measure(folder: Path, ids: dict, requests: int, purge_before: dt.datetime) -> dict:
    app = make_app(folder)
    pages = time_pages(app, ids, requests)  # no app context around: each request has its own
    return {"pages": pages, "verify": time_verify(folder),
            "retention": time_retention(app, purge_before)}


def count(folder: Path) -> dict:
    db = sqlite3.connect(folder / "brigade.db")
    tables = ("readings", "rollups", "runs", "audit_records")
    sizes = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    db.close()
    sizes["database_mib"] = round((folder / "brigade.db").stat().st_size / 2**20)
    return sizes


def table(result: dict) -> str:
    small, year = result["small"], result["year"]
    lines = [f"{'':42} {'small':>12} {'year':>12}   target",
             f"{'readings':42} {small['rows']['readings']:>12,} {year['rows']['readings']:>12,}",
             f"{'rollups':42} {small['rows']['rollups']:>12,} {year['rows']['rollups']:>12,}",
             f"{'audit links':42} {small['rows']['audit_records']:>12,} "
             f"{year['rows']['audit_records']:>12,}",
             f"{'runs awaiting sign-off':42} {small['rows']['runs']:>12,} {year['rows']['runs']:>12,}",
             f"{'database MiB':42} {small['rows']['database_mib']:>12,} "
             f"{year['rows']['database_mib']:>12,}"]
    for name in year["pages"]:
        a, b = small["pages"][name], year["pages"][name]
        ok = "ok" if b["median_ms"] <= TARGETS["page_ms"] else "MISSED"
        lines.append(f"{name + ' (median/p95 ms)':42} {a['median_ms']:>6}/{a['p95_ms']:<5} "
                     f"{b['median_ms']:>6}/{b['p95_ms']:<5}  <= 100 ms {ok}")
    a, b = small["retention"], year["retention"]
    ok = "ok" if (b["worst_chunk_ms"] or 0) <= TARGETS["chunk_ms"] else "MISSED"
    lines.append(f"{'retention chunk (median/worst ms)':42} {a['median_chunk_ms']:>6}/"
                 f"{a['worst_chunk_ms']:<5} {b['median_chunk_ms']:>6}/{b['worst_chunk_ms']:<5}"
                 f"  <= 50 ms {ok}")
    a, b = small["verify"], year["verify"]
    ok = "ok" if b["peak_rss_mib"] <= TARGETS["verify_mib"] else "MISSED"
    lines.append(f"{'audit verify (s / peak MiB)':42} {a['seconds']:>6}/{a['peak_rss_mib']:<5} "
                 f"{b['seconds']:>6}/{b['peak_rss_mib']:<5}  <= 200 MiB {ok}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=365, help="days of readings (default 365)")
    parser.add_argument("--sensors", type=int, default=20, help="sensors on units (default 20)")
    parser.add_argument("--runs", type=int, default=5000, help="runs awaiting sign-off (5,000)")
    parser.add_argument("--links", type=int, default=100_000, help="audit links (100,000)")
    parser.add_argument("--requests", type=int, default=15, help="timed requests per page (15)")
    parser.add_argument("--keep", type=Path, help="build the kitchens here and reuse them")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    work = args.keep or Path(tempfile.mkdtemp(prefix="brigade-bench-scale-"))
    plans = {"small": dict(days=1, runs=20, links=1_000, alert_age_days=1),
             "year": dict(days=args.days, runs=args.runs, links=args.links, alert_age_days=90)}
    result = {"machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                          "sqlite": sqlite3.sqlite_version, "load_at_start": os.getloadavg()},
              "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        for name, plan in plans.items():
            folder = work / name
            built = folder / "built.json"
            if built.exists():
                ids = json.loads(built.read_text())
            else:
                shutil.rmtree(folder, ignore_errors=True)
                print(f"building {name}: {plan}", flush=True)
                ids = build(folder, sensors=args.sensors, now=now, **plan)
                ids["oldest"] = (now - dt.timedelta(days=plan["days"])).isoformat()
                built.write_text(json.dumps(ids))
                print(f"  built in {ids['build_s']} s", flush=True)
            rows = count(folder)
            oldest = dt.datetime.fromisoformat(ids["oldest"])
            measured = measure(folder, ids, args.requests,
                               oldest + dt.timedelta(days=min(7, plan["days"] / 2)))
            result[name] = {"rows": rows, "build_s": ids["build_s"], **measured}
            print(f"measured {name}: {json.dumps(measured)}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
