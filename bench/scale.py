#!/usr/bin/env python3
"""Scale benchmark: do the pages and jobs stay fast as a kitchen's records grow to a year?

Builds two kitchens in one run, each migrated with the app's own migrations
(``flask --app app db upgrade``) and seeded as the demo kitchen (``app.demo``: its people, its
four units with their sensors, the serving-hygiene checklist), with more fridges added up to
``--sensors`` sensors on units:

- **small**, the baseline measured in the same run (the machine is noisy): one day of
  readings, 20 runs awaiting sign-off, an alert opened 3 hours ago, about 1,000 audit links;
- **year**: ``--days`` (365) of readings at one a minute for every sensor (20: ~10.5 M
  readings with their ~2.1 M 5-minute rollups), ``--runs`` (5,000) submitted runs awaiting the
  head chef's sign-off, an alert opened 90 days ago and still open, and ``--links`` (100,000)
  audit links in all, besides the reading seals: every closed hour of every sensor sealed as
  the ``audit-seal`` job seals it (``app.seals``; ~175,000 seals, a chained link each), so
  verify streams every reading beside its seal.

The data is what a kitchen accumulates. Readings follow each unit's compressor cycle (fridges
about 2.6-4.6 °C, the freezer about -21 to -19 °C with a nightly defrost, the cold well 3-5 °C),
with door openings during service and a few short excursions that stay under the alarm delay;
each reading is received 2 s after it was measured. Runs are the serving-hygiene checklist's
real slots (7 a day, so 5,000 reach back about two years), newest first, each with every
item answered through ``app.checklists.operations.judge`` (a few fails with a corrective
action) and a submission, nothing signed off. Hold timers, one started every 15 minutes of
service (11:00-22:00) and settled unless still on the clock, fill the audit chain up to
``--links``. Each kitchen is built as it stands at 12:40 site-local time (Europe/London,
mid-lunch: checklists due, dishes on the clock), the latest before the run. The old alert is a real one: the cold-dish fridge went warm,
``raise_alert`` opened the alert after the 30-minute delay, ``notify_due`` escalated it, and
``mark_recovered`` recorded the fridge cooling down 2 hours later; nobody acknowledged it.
Rows are written in bulk, straight into the tables: readings and rollups through the DBAPI
(``sqlite3`` executemany; ``COPY`` on PostgreSQL), the checklist records and timers through
Core inserts with the audit links ``app.audit.append`` would have made. ``flask audit verify``
must find nothing wrong, or the bench stops: a problem means its data is wrong. SQLite gets no
``ANALYZE`` (Brigade never runs one, so a kitchen's database has no statistics either);
PostgreSQL gets ``VACUUM ANALYZE``, as autovacuum would have done over a year.

Then, for both kitchens (interleaved request by request, so drift in the machine's load
affects both alike):

- server time, from the ``Server-Timing: app;dur=`` header the app sets on every response, of
  the head chef's ``/records`` (the sign-off queue, first page), the old alert's page
  ``/alerts/<id>``, the units page ``/units`` and the cook's tablet home ``/`` after a PIN
  login: ``--warmups`` (3) untimed requests, then ``--requests`` (15); median and p95 (with 15
  requests, p95 is the slowest). The app runs in this process under Flask's test client (no
  network, no WSGI server), with the app's clock pinned a minute after the moment the kitchen
  was built as, so a kitchen kept with ``--keep`` looks the same on every run. CSRF is off, as in the tests;
- ``flask --app app audit verify`` as its own process: wall time and its peak RSS, read from
  ``getrusage(RUSAGE_CHILDREN)`` in a small helper process that starts it (this process's own
  peak, large after a build, would otherwise be counted into the child's);
- the retention job (``app.scheduler._retention``, 5,000 readings per chunk, each chunk
  committed) run with a clock that puts the horizon (``BRIGADE_RETENTION_DAYS``) one week after
  the oldest reading (half a day for the small kitchen): the time of each chunk (its delete and
  commit) and of the whole job. It runs 3 times on the same readings (they are saved first and
  put back after each run); the table gives the median chunk of all runs and, as "worst", the
  median of the 3 runs' worst chunks (each run's worst is listed too, and kept in the JSON).

Targets: every page <= 100 ms server time (median) at year size; a retention chunk <= 50 ms
(worst, as above); verify of 100,000 links <= 200 MB peak. Prints a table (measurement | small | year-size |
target | met?) and writes it with machine facts to ``bench/results/scale.json``.

SQLite (the default) builds in a temporary folder (about 1.6 GB for the year kitchen, 1.7 GB
on PostgreSQL).
``--database-url postgresql://user@host:port/db`` builds both kitchens in that PostgreSQL
database instead, each in a schema of its own (``bench_scale_small``, ``bench_scale_year``,
replaced if present, dropped at the end). ``--keep DIR`` keeps what was built (SQLite files
under DIR; PostgreSQL schemas, noted in DIR) and reuses the year-size kitchen when the options
match (the small one is rebuilt every run, in seconds). Exit status 1 when a year-size target
is missed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "scale.json"
UTC = dt.timezone.utc
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
TIMEZONE = "Europe/London"
#: Every page's median <= 100 ms, a retention chunk <= 50 ms, verify <= 200 MB (10^6 bytes).
TARGETS = {"page_ms": 100.0, "chunk_ms": 50.0, "verify_mb": 200.0}
#: The baseline kitchen, the same every run.
SMALL = {"days": 1.0, "runs": 20, "links": 1_000, "alert_age_h": 3.0, "purge_days": 0.5}
#: The year kitchen's alert age and how much of its oldest data the retention step purges.
YEAR_ALERT_AGE_H = 90 * 24.0
YEAR_PURGE_DAYS = 7.0
#: The alerted fridge recovers this long after the alert opened (30 minutes after going warm).
RECOVERED_AFTER = dt.timedelta(hours=2)
#: Readings are received this long after they were measured.
RECEIVE_DELAY = dt.timedelta(seconds=2)
#: A kitchen is built as it stands at this site-local time (mid-lunch: checklists due, dishes
#: on the clock), the latest before the bench starts; the app's clock is pinned there.
SERVICE_TIME = dt.time(12, 40)
SCHEMA_VERSION = 3  # of what ``build`` makes: a kept kitchen of another version is rebuilt


# --- where a kitchen lives ------------------------------------------------------------------

class Store:
    """One kitchen's database: a SQLite file in ``folder``, or a schema in a PostgreSQL database."""

    def __init__(self, name: str, folder: Path, database_url: str | None):
        from sqlalchemy.engine import make_url
        self.name, self.folder = name, folder
        if database_url:
            self.kind = "postgresql"
            self.schema = f"bench_scale_{name}"
            self.server = make_url(database_url).set(drivername="postgresql+psycopg")
            self.url = self.server.update_query_dict({"options": f"-csearch_path={self.schema}"})
        else:
            self.kind = "sqlite"
            self.schema = None
            self.path = folder / "brigade.db"
            self.url = make_url(f"sqlite:///{self.path}")

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return f"{self.server.render_as_string(hide_password=True)} schema {self.schema}"

    def env(self) -> dict:
        return dict(os.environ, BRIGADE_DATABASE_URL=self.url_text,
                    BRIGADE_INSTANCE_PATH=str(self.folder / "instance"),
                    BRIGADE_SECRET_KEY="bench-scale", BRIGADE_AUDIT_KEY="bench-scale-audit",
                    BRIGADE_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))

    def connect(self, autocommit: bool = False):
        """A raw DBAPI connection (sqlite3, or psycopg with the kitchen's schema first)."""
        if self.kind == "sqlite":
            return sqlite3.connect(self.path, isolation_level=None if autocommit else "DEFERRED")
        import psycopg
        args = self.server.translate_connect_args(username="user", database="dbname")
        return psycopg.connect(**args, options=f"-csearch_path={self.schema}", autocommit=autocommit)

    def reset(self) -> None:
        """Start empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        if self.kind == "postgresql":
            with self.connect(autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{self.schema}"')

    def drop(self) -> None:
        if self.kind == "postgresql":
            with self.connect(autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        shutil.rmtree(self.folder, ignore_errors=True)

    def size_mib(self) -> float:
        if self.kind == "sqlite":
            files = [self.path, self.path.with_name(self.path.name + "-wal")]
            return sum(f.stat().st_size for f in files if f.exists()) / 2**20
        with self.connect() as conn:
            size = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,)).fetchone()[0]
        return float(size or 0) / 2**20

    def counts(self) -> dict:
        conn = self.connect()
        try:
            out = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for t in ("readings", "rollups", "runs", "answers", "hold_timers",
                             "audit_records")}
            out["awaiting_sign_off"] = conn.execute(
                "SELECT count(*) FROM runs JOIN submissions s ON s.run_id = runs.id "
                "LEFT JOIN verifications v ON v.run_id = runs.id WHERE v.id IS NULL").fetchone()[0]
        finally:
            conn.close()
        return out


def make_app(store: Store):
    """The app on the kitchen's database, as ``flask`` would create it from the environment."""
    os.environ.update(store.env())
    from app import create_app
    return create_app({"WTF_CSRF_ENABLED": False})  # as the tests do


# --- building a kitchen ---------------------------------------------------------------------

class Chain:
    """Audit links as ``app.audit.append`` makes them, for records written in bulk."""

    def __init__(self, session, key: bytes):
        from app.audit import ensure_head
        from app.models import AuditHead
        ensure_head(session)
        head = session.get(AuditHead, 1)
        self.seq, self.prev, self.key, self.links = head.seq, head.hash, key, []

    def add(self, record, action: str, actor_id: int | None, device_id: str | None,
            at: dt.datetime) -> None:
        from app.audit import LINK_FORMAT, canonical, link_hash
        payload = canonical(record.audit_payload())
        entity = type(record).__tablename__
        self.seq += 1
        digest = link_hash(self.key, self.seq, self.prev, action, entity, record.id, payload,
                           format=LINK_FORMAT, at=at, actor_id=actor_id, device_id=device_id)
        self.links.append({"seq": self.seq, "at": at, "action": action, "entity": entity,
                           "entity_id": record.id, "payload": payload, "prev_hash": self.prev,
                           "hash": digest, "actor_id": actor_id, "device_id": device_id,
                           "format": LINK_FORMAT})
        self.prev = digest

    def write(self, session) -> None:
        from app.models import AuditHead, AuditRecord
        insert_rows(session, AuditRecord, self.links)
        head = session.get(AuditHead, 1)
        head.seq, head.hash = self.seq, self.prev
        self.links = []


def insert_rows(session, model, rows: list[dict]) -> None:
    for start in range(0, len(rows), 10_000):
        session.execute(model.__table__.insert(), rows[start:start + 10_000])


def _row(record) -> dict:
    return {c.key: getattr(record, c.key) for c in type(record).__table__.columns}


def past_slots(definition, now: dt.datetime, count: int):
    """The newest ``count`` slots of the checklist whose run was submitted by ``now``."""
    from app.checklists.schedules import local_date, slots_for_day
    day, found = local_date(now, TIMEZONE), []
    while len(found) < count:
        for slot in reversed(slots_for_day(definition.schedules, day, TIMEZONE)):
            if slot.start + dt.timedelta(minutes=30) <= now and len(found) < count:
                found.append(slot)
        day -= dt.timedelta(days=1)
    return found


def service_starts(now: dt.datetime, every: dt.timedelta):
    """Moments ``every`` apart going back from ``now``, in service hours (11:00-22:00)."""
    tz = ZoneInfo(TIMEZONE)
    at = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    while True:
        if 11 <= at.astimezone(tz).hour < 22:
            yield at
        at -= every


def kitchen_now(real: dt.datetime) -> dt.datetime:
    """The moment a kitchen is built at: the latest SERVICE_TIME (site-local) before ``real``,
    so that every run sees the same point of a working day, in the middle of lunch service."""
    tz = ZoneInfo(TIMEZONE)
    local = real.astimezone(tz)
    at = local.replace(hour=SERVICE_TIME.hour, minute=SERVICE_TIME.minute, second=0,
                       microsecond=0)
    if at > local:
        at -= dt.timedelta(days=1)
    return at.astimezone(UTC)


def build(store: Store, days: float, sensors: int, runs: int, links: int, alert_age_h: float,
          now: dt.datetime) -> dict:
    """Create and fill one kitchen; returns what the measurements need."""
    from sqlalchemy import select

    from app.alerts.operations import mark_recovered, notify_due, raise_alert
    from app.checklists.definitions import current_definitions, load_all
    from app.checklists.operations import judge
    from app.demo import seed
    from app.models import (Answer, Device, HoldTimer, Role, Run, Site, Staff, Submission,
                            TimerOutcome, db, set_clock)
    from app.models.units import PRESETS, Unit
    from app.timers.operations import presets
    from sensors.models import Sensor

    started = time.perf_counter()
    store.reset()
    migrated = subprocess.run([str(Path(sys.executable).with_name("flask")), "--app", "app", "db",
                               "upgrade"], cwd=ROOT, env=store.env(), capture_output=True, text=True)
    if migrated.returncode:
        raise RuntimeError(f"flask db upgrade failed:\n{migrated.stderr[-2000:]}")
    app = make_app(store)
    set_clock(lambda: now)
    try:
        with app.app_context():
            session = db.session
            credentials = seed(session, TIMEZONE, history=False)
            load_all(session)
            site = session.execute(select(Site)).scalar_one()
            session.add(Device(id="benchtablet0001", label="Pass tablet", user_agent="bench tablet"))
            session.flush()
            attached = session.execute(select(Sensor).where(Sensor.unit_id.is_not(None))
                                       .order_by(Sensor.id)).scalars().all()
            for n in range(len(attached), sensors):
                unit = Unit(site_id=site.id, name=f"Fridge {n + 1}", kind="fridge",
                            **PRESETS[("uk", "fridge")])
                session.add(unit)
                session.flush()
                session.add(Sensor(key=f"zigbee2mqtt/fridge-{n + 1}", name=f"Fridge {n + 1}",
                                   unit_id=unit.id))
            session.commit()
            kinds = dict(session.execute(select(Unit.id, Unit.kind)).all())
            sensor_rows = [(s.id, kinds[s.unit_id]) for s in session.execute(
                select(Sensor).where(Sensor.unit_id.is_not(None)).order_by(Sensor.id)).scalars()
            ][:sensors]
            cooks = session.execute(select(Staff).where(Staff.role == Role.COOK)
                                    .order_by(Staff.id)).scalars().all()
            definition = next(d for d in current_definitions(session) if d.items)
            items = definition.items
            chain = Chain(session, app.config["BRIGADE_AUDIT_KEY"].encode())
            device = "benchtablet0001"

            # Submitted runs awaiting sign-off: the checklist's real slots, newest first.
            run_rows, answer_rows, submission_rows = [], [], []
            answer_id = 0
            tz = ZoneInfo(TIMEZONE)
            for n, slot in enumerate(past_slots(definition, now, runs)):
                cook = cooks[n % len(cooks)]
                opened = slot.start + dt.timedelta(minutes=3)
                run = Run(id=n + 1, site_id=site.id, definition_id=definition.id,
                          checklist_key=definition.key, schedule_key=slot.schedule_key,
                          slot_start=slot.start, deadline=slot.deadline, opened_by_id=cook.id,
                          opened_at=opened, device_id=device)
                chain.add(run, "run.opened", cook.id, device, opened)
                run_rows.append(_row(run))
                for k, item in enumerate(items):
                    at = opened + dt.timedelta(minutes=1 + k)
                    failed = item.kind == "passfail" and not item.critical and (n + k) % 29 == 0
                    raw = {"passfail": "fail" if failed else "pass",
                           "temperature": f"{3.0 + (n % 17) / 10:.1f}",
                           "time": at.astimezone(tz).strftime("%H:%M")}.get(item.kind, "ok")
                    value, outcome, celsius = judge(item, raw, "C")
                    actions = item.suggested_actions or [{"en": "Put right"}]
                    answer_id += 1
                    answer = Answer(id=answer_id, run_id=run.id, item_id=item.id, value=value,
                                    outcome=outcome, temperature_c=celsius, note=None,
                                    corrective_action=actions[0]["en"] if failed else None,
                                    photo_id=None, supersedes_id=None, reason=None,
                                    recorded_by_id=cook.id, recorded_at=at, device_id=device)
                    chain.add(answer, "answer.recorded", cook.id, device, at)
                    answer_rows.append(_row(answer))
                submitted = opened + dt.timedelta(minutes=len(items) + 2)
                submission = Submission(id=n + 1, run_id=run.id, submitted_by_id=cook.id,
                                        submitted_at=submitted, device_id=device)
                chain.add(submission, "run.submitted", cook.id, device, submitted)
                submission_rows.append(_row(submission))
            # Hold timers fill the chain up to ``links`` (the alert adds 4): one started every
            # 15 minutes of service, settled (2 links) unless still on the clock (1 link).
            timer_rows, outcome_rows = [], []
            kinds_of_timer = list(presets().values())
            for n, start in enumerate(service_starts(now, dt.timedelta(minutes=15))):
                preset = kinds_of_timer[n % len(kinds_of_timer)]
                done = start + dt.timedelta(minutes=max(2, preset.minutes * 2 // 5))
                if len(chain.links) + 4 + (1 if done > now else 2) > links:
                    break
                cook = cooks[n % len(cooks)]
                timer = HoldTimer(id=n + 1, site_id=site.id, kind=preset.key,
                                  rule_code=preset.rule, dish=f"Dish {n % 40 + 1}",
                                  started_by_id=cook.id, started_at=start,
                                  expires_at=start + dt.timedelta(minutes=preset.minutes),
                                  device_id=device)
                chain.add(timer, "timer.started", cook.id, device, start)
                timer_rows.append(_row(timer))
                if done > now:
                    continue  # still on the clock
                outcome = TimerOutcome(id=len(outcome_rows) + 1, timer_id=timer.id,
                                       outcome="discarded" if n % 31 == 0 else "served",
                                       supersedes_id=None, reason=None, recorded_by_id=cook.id,
                                       recorded_at=done, device_id=device)
                chain.add(outcome, "timer.outcome", cook.id, device, done)
                outcome_rows.append(_row(outcome))
            if outcome_rows and len(chain.links) + 4 < links:
                # One link short: a cook corrects a recorded outcome (a correction supersedes).
                last = outcome_rows[-1]
                fixed = TimerOutcome(id=len(outcome_rows) + 1, timer_id=last["timer_id"],
                                     outcome="served" if last["outcome"] == "discarded"
                                     else "discarded", supersedes_id=last["id"],
                                     reason="Wrong dish ticked", recorded_by_id=last["recorded_by_id"],
                                     recorded_at=last["recorded_at"] + dt.timedelta(minutes=1),
                                     device_id=device)
                chain.add(fixed, "timer.corrected", fixed.recorded_by_id, device, fixed.recorded_at)
                outcome_rows.append(_row(fixed))
            for model, rows in ((Run, run_rows), (Answer, answer_rows),
                                (Submission, submission_rows), (HoldTimer, timer_rows),
                                (TimerOutcome, outcome_rows)):
                insert_rows(session, model, rows)
            chain.write(session)
            session.commit()
            if store.kind == "postgresql":  # ids were given: move the sequences past them
                for table in ("runs", "answers", "submissions", "hold_timers", "timer_outcomes"):
                    session.execute(db.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                            f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"))
                session.commit()

            # The alert: the cold-dish fridge went warm, alarmed after the delay, escalated,
            # cooled down two hours later; nobody has acknowledged it.
            alert_sensor, _kind = sensor_rows[0]
            unit = session.get(Unit, session.get(Sensor, alert_sensor).unit_id)
            opened = (now - dt.timedelta(hours=alert_age_h)).replace(second=0, microsecond=0)
            warm_from = opened - dt.timedelta(seconds=unit.alert_delay_s)
            detail = {"title": f"{unit.name} too warm", "unit": unit.name, "direction": "high",
                      "limit_c": unit.target_max_c, "peak_c": 7.6, "value_c": 6.9,
                      "excursion_started": warm_from.isoformat(), "alarmed_at": opened.isoformat()}
            alert = raise_alert(session, site_id=site.id, kind="temperature",
                                subject=f"unit:{unit.id}:temperature", unit_id=unit.id,
                                detail=detail, now=opened)
            for minutes in (0, 10, 30):  # BRIGADE_ESCALATION_MINUTES' defaults
                notify_due(session, opened + dt.timedelta(minutes=minutes))
            mark_recovered(session, alert.subject, opened + RECOVERED_AFTER, value_c=4.4)
            session.commit()
            chef = next(c for c in credentials if c["role"] == "head_chef" and c.get("email"))
            ids = {"alert": alert.id, "alert_opened": opened.isoformat(),
                   "warm_from": warm_from.isoformat(),
                   "cook": cooks[0].id, "cook_pin": next(c["pin"] for c in credentials
                                                         if c["name"] == cooks[0].name),
                   "chef_email": chef["email"], "chef_password": chef["password"],
                   "sensors": len(sensor_rows), "runs_built": len(run_rows),
                   "timers_built": len(timer_rows)}
            db.session.remove()
            db.engine.dispose()
    finally:
        set_clock(None)
    loaded = time.perf_counter()
    write_readings(store, sensor_rows, now, days, dt.datetime.fromisoformat(ids["warm_from"]),
                   dt.datetime.fromisoformat(ids["alert_opened"]) + RECOVERED_AFTER)
    ids["readings_s"] = round(time.perf_counter() - loaded, 1)
    sealing = time.perf_counter()
    ids["seals"] = write_seals(store, now)
    ids["seals_s"] = round(time.perf_counter() - sealing, 1)
    ids["build_s"] = round(time.perf_counter() - started, 1)
    return ids


def write_seals(store: Store, now: dt.datetime) -> int:
    """Every closed hour of every sensor sealed as the scheduler's audit-seal job seals it
    (app.seals: count and sha256 of the hour's readings, one chained link per seal), read back
    from the database a day at a time."""
    import hashlib

    from app.models import db
    from app.models.audit import ReadingSeal
    from app.seals import HOUR, RECEIVE_LAG, _raw, floor_hour, reading_line
    from sensors.models import Reading, Sensor
    app = make_app(store)
    sealed_through = now - RECEIVE_LAG
    last = floor_hour(sealed_through)  # hours before this one have closed
    seal_id = 0
    with app.app_context():
        session = db.session
        chain = Chain(session, app.config["BRIGADE_AUDIT_KEY"].encode())
        for sensor_id in session.execute(db.select(Sensor.id).order_by(Sensor.id)).scalars().all():
            first = session.scalar(db.select(db.func.min(Reading.measured_at))
                                   .where(Reading.sensor_id == sensor_id))
            if first is None:
                continue
            rows, day = [], floor_hour(first)
            while day < last:
                upto = min(day + dt.timedelta(days=1), last)
                hours: dict = {}
                for reading in session.execute(
                        db.select(_raw(Reading.measured_at), Reading.temperature_c,
                                  Reading.offset_c, Reading.time_source, _raw(Reading.received_at))
                        .where(Reading.sensor_id == sensor_id, Reading.measured_at >= day,
                               Reading.measured_at < upto).order_by(Reading.measured_at)):
                    hour = floor_hour(reading[0])
                    if hour not in hours:
                        hours[hour] = [hashlib.sha256(), 0]
                    hours[hour][0].update(reading_line(*reading))
                    hours[hour][1] += 1
                for hour, (digest, count) in hours.items():
                    seal_id += 1
                    through = hour + HOUR + RECEIVE_LAG
                    seal = ReadingSeal(id=seal_id, sensor_id=sensor_id, hour_start=hour,
                                       received_through=through, count=count,
                                       digest=digest.hexdigest(), late=False, sealed_at=through)
                    chain.add(seal, "readings.sealed", None, None, through)
                    rows.append(_row(seal))
                day = upto
            insert_rows(session, ReadingSeal, rows)
            chain.write(session)
            session.commit()
        if store.kind == "postgresql":
            session.execute(db.text("SELECT setval(pg_get_serial_sequence('reading_seals', 'id'), "
                                    "coalesce((SELECT max(id) FROM reading_seals), 0) + 1, false)"))
            session.commit()
        db.session.remove()
        db.engine.dispose()
    return seal_id


def trace(kind: str, index: int, start: dt.datetime, minutes: int) -> list[float]:
    """A unit's temperature every minute from ``start``: its compressor cycle, door openings in
    service, a few short excursions (under the 30-minute alarm delay), the freezer's defrost."""
    rng = random.Random(index)
    if kind == "freezer":
        low, high, period = -21.4, -18.9, 28 + index % 5
    elif kind == "cold_well":
        low, high, period = 3.0, 4.8, 13 + index % 3
    else:
        low, high, period = 2.6 + (index % 4) / 10, 4.4 + (index % 4) / 10, 18 + index % 9
    warming = period * 2 // 3  # compressor off: it warms slowly; on: it pulls down faster
    cycle = [round(low + (high - low) * k / warming, 1) for k in range(warming)] + \
            [round(high - (high - low) * k / (period - warming), 1) for k in range(period - warming)]
    phase = rng.randrange(period)
    values = (cycle * (minutes // period + 2))[phase:phase + minutes]

    def bump(at: int, rises: list[float]) -> None:
        for k, rise in enumerate(rises):
            if 0 <= at + k < minutes:
                values[at + k] = round(values[at + k] + rise, 1)

    first_midnight = -(start.hour * 60 + start.minute)
    for day in range(minutes // 1440 + 2):
        midnight = first_midnight + day * 1440
        if kind == "freezer":  # the nightly defrost: up to about -16 °C for 20 minutes
            bump(midnight + 120, [min(5.5, 0.6 * k) for k in range(12)] + [4.0, 2.5, 1.2, 0.5])
        openings = rng.randint(0, 2) if kind == "freezer" else rng.randint(5, 11)
        for _ in range(openings):
            at = midnight + rng.choice((rng.randint(660, 870), rng.randint(1020, 1320)))
            bump(at, [0.8, 1.1, 0.7, 0.4, 0.2])
        if kind != "freezer" and rng.random() < 1 / 40:  # a door left ajar: 12-20 min warm
            length = rng.randint(12, 20)
            bump(midnight + rng.randint(600, 1300),
                 [min(2.8, 0.5 * (k + 1)) for k in range(length)] + [1.2, 0.5])
    return values


def write_readings(store: Store, sensor_rows: list[tuple[int, str]], now: dt.datetime,
                   days: float, warm_from: dt.datetime, cooled_at: dt.datetime) -> None:
    """One reading a minute for every sensor, with their 5-minute rollups and the sensors' last
    values, through the DBAPI in large batches. The first sensor's fridge is warm (6.5-7.6 °C)
    from ``warm_from`` to ``cooled_at``: the alert's excursion."""
    from sensors.store import sqlite_timestamp
    minutes = int(days * 24 * 60)
    start = (now - dt.timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    start -= dt.timedelta(minutes=start.minute % 5)  # buckets start on the 5 minutes
    minutes = int((now - start).total_seconds() // 60) + 1
    moments = [start + dt.timedelta(minutes=m) for m in range(minutes)]
    if store.kind == "sqlite":
        stamps = [sqlite_timestamp(m) for m in moments]
        received = [sqlite_timestamp(m + RECEIVE_DELAY) for m in moments]
    else:
        stamps = [m.isoformat(" ") for m in moments]
        received = [(m + RECEIVE_DELAY).isoformat(" ") for m in moments]
    del moments
    warm = (int((warm_from - start).total_seconds() // 60),
            int((cooled_at - start).total_seconds() // 60))
    conn = store.connect()
    try:
        if store.kind == "sqlite":
            conn.execute("PRAGMA synchronous=OFF")
        for index, (sensor_id, kind) in enumerate(sensor_rows):
            values = trace(kind, index, start, minutes)
            if index == 0:
                for m in range(max(0, warm[0]), min(minutes, warm[1])):
                    values[m] = round(min(6.5 + (m - warm[0]) * 0.1, 7.6) - (m % 7) / 10, 1)
            rollups = [(sensor_id, stamps[b], len(v), min(v), max(v), math.fsum(v))
                       for b in range(0, minutes, 5) for v in (values[b:b + 5],)]
            if store.kind == "sqlite":
                conn.executemany(
                    "INSERT INTO readings (sensor_id, measured_at, temperature_c, received_at, "
                    "time_source, offset_c) VALUES (?, ?, ?, ?, 'device', 0.0)",
                    zip([sensor_id] * minutes, stamps, values, received))
                conn.executemany("INSERT INTO rollups (sensor_id, bucket_start, count, min_c, "
                                 "max_c, sum_c) VALUES (?, ?, ?, ?, ?, ?)", rollups)
                update = "UPDATE sensors SET last_reading_at = ?, last_temperature_c = ?, " \
                         "battery_pct = ?, online = 1, online_changed_at = ? WHERE id = ?"
            else:
                with conn.cursor().copy("COPY readings (sensor_id, measured_at, temperature_c, "
                                        "received_at, time_source, offset_c) FROM STDIN") as copy:
                    for b in range(0, minutes, 100_000):
                        copy.write("".join(f"{sensor_id}\t{s}\t{v}\t{r}\tdevice\t0\n" for s, v, r in
                                           zip(stamps[b:b + 100_000], values[b:b + 100_000],
                                               received[b:b + 100_000])))
                with conn.cursor().copy("COPY rollups (sensor_id, bucket_start, count, min_c, "
                                        "max_c, sum_c) FROM STDIN") as copy:
                    copy.write("".join("\t".join(map(str, row)) + "\n" for row in rollups))
                update = "UPDATE sensors SET last_reading_at = %s, last_temperature_c = %s, " \
                         "battery_pct = %s, online = true, online_changed_at = %s WHERE id = %s"
            conn.execute(update, (received[-1], values[-1], 55 + index * 7 % 45, stamps[0],
                                  sensor_id))
            conn.commit()
    finally:
        conn.close()
    if store.kind == "postgresql":  # what autovacuum would have done over a year
        with store.connect(autocommit=True) as conn:
            tables = [t for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (store.schema,))]
            for table in tables:
                conn.execute(f'VACUUM ANALYZE "{store.schema}"."{table}"')


# --- measuring ------------------------------------------------------------------------------

def server_ms(response) -> float:
    match = SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
    if response.status_code != 200 or match is None:
        raise RuntimeError(f"{response.request.path}: HTTP {response.status_code}")
    return float(match.group(1))


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


#: (name in the table, who asks, path); the alert's id is filled in per kitchen.
PAGES = (("/records (sign-off queue)", "chef", "/records"),
         ("alert page /alerts/<id>", "chef", "/alerts/{alert}"),
         ("units page /units", "chef", "/units"),
         ("tablet home / (cook)", "cook", "/"))


def time_pages(kitchens: dict, warmups: int, requests: int) -> dict:
    """Every page of every kitchen, requests interleaved kitchen by kitchen."""
    from app.models import set_clock
    clients = {}
    for name, kitchen in kitchens.items():
        app, ids = kitchen["app"], kitchen["ids"]
        set_clock(kitchen["clock"])
        chef, cook = app.test_client(), app.test_client()
        response = chef.post("/login", data={"email": ids["chef_email"],
                                             "password": ids["chef_password"]})
        if response.status_code != 302:
            raise RuntimeError(f"{name}: the head chef's login answered {response.status_code}")
        response = cook.post(f"/pin/{ids['cook']}", data={"pin": ids["cook_pin"]})
        if response.status_code != 302:
            raise RuntimeError(f"{name}: the cook's PIN login answered {response.status_code}")
        clients[name] = {"chef": chef, "cook": cook}
    results = {name: {} for name in kitchens}
    try:
        for page, who, path in PAGES:
            samples = {name: [] for name in kitchens}
            for n in range(warmups + requests):
                for name, kitchen in kitchens.items():
                    set_clock(kitchen["clock"])
                    response = clients[name][who].get(path.format(**kitchen["ids"]))
                    ms = server_ms(response)
                    if n >= warmups:
                        samples[name].append(ms)
            for name, times in samples.items():
                ordered = sorted(times)
                results[name][page] = {"median_ms": statistics.median(ordered),
                                       "p95_ms": percentile(ordered, 95), "max_ms": ordered[-1]}
            for name, kitchen in kitchens.items():  # the size of what each one sent
                set_clock(kitchen["clock"])
                results[name][page]["bytes"] = len(
                    clients[name][who].get(path.format(**kitchen["ids"])).data)
    finally:
        set_clock(None)
    return results


class ChunkClock:
    """The session the retention job is handed: notes the time of every commit (one a chunk)."""

    def __init__(self, session):
        self._session, self.commits = session, []

    def __getattr__(self, name):
        return getattr(self._session, name)

    def commit(self) -> None:
        self._session.commit()
        self.commits.append(time.perf_counter())


#: The retention job is run this many times on each kitchen, on the same readings.
RETENTION_REPEATS = 3


def time_retention(kitchen: dict, purge_days: float) -> dict:
    """``app.scheduler._retention`` with its horizon ``purge_days`` after the oldest reading,
    RETENTION_REPEATS times: the readings it deletes are saved first and put back after each
    run, so every run does the same work and a kept kitchen stays whole."""
    from sqlalchemy import Column, MetaData, Table, func, select, text

    from app.models import db, set_clock
    from app.scheduler import _retention
    from sensors.models import Reading, Sensor
    app, readings = kitchen["app"], Reading.__table__
    names = [c.name for c in readings.columns]
    saved = Table("bench_purged", MetaData(), *[Column(c.name, c.type) for c in readings.columns])
    runs = []
    with app.app_context():
        sensor_ids = db.session.scalars(select(Sensor.id)).all()
        oldest = min(db.session.scalar(select(func.min(Reading.measured_at))
                                       .where(Reading.sensor_id == sensor_id)) or kitchen["now"]
                     for sensor_id in sensor_ids)
        cut = oldest + dt.timedelta(days=purge_days)
        job_now = cut + dt.timedelta(days=app.config["BRIGADE_RETENTION_DAYS"])
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_purged"))
            conn.execute(text("CREATE TABLE bench_purged AS SELECT * FROM readings WHERE 1 = 0"))
            for sensor_id in sensor_ids:
                conn.execute(saved.insert().from_select(names, select(readings).where(
                    readings.c.sensor_id == sensor_id, readings.c.measured_at < cut)))
            due = conn.execute(select(func.count()).select_from(saved)).scalar_one()
        try:
            for _ in range(RETENTION_REPEATS):
                session = ChunkClock(db.session)
                set_clock(lambda: job_now)
                try:
                    started = time.perf_counter()
                    said = _retention(session, job_now)
                    db.session.commit()
                    ended = time.perf_counter()
                finally:
                    set_clock(None)
                    db.session.remove()
                with db.engine.begin() as conn:  # put them back
                    conn.execute(readings.insert().from_select(names, select(saved)))
                if f"removed {due} readings" not in said:
                    raise RuntimeError(f"{kitchen['store'].name}: retention said {said!r}, "
                                       f"{due} readings were due")
                marks = [started] + session.commits
                chunks = [(b - a) * 1000 for a, b in zip(marks, marks[1:])]
                runs.append({"chunks": len(chunks), "worst_chunk_ms": max(chunks, default=None),
                             "job_s": ended - started, "chunk_ms": chunks})
        finally:
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS bench_purged"))
    every = [c for run in runs for c in run["chunk_ms"]]
    worst = [run["worst_chunk_ms"] for run in runs if run["chunks"]]
    return {"horizon": cut.isoformat(), "said": said, "deleted": due, "runs": runs,
            "chunks": runs[0]["chunks"],
            "median_chunk_ms": statistics.median(every) if every else None,
            "worst_chunk_ms": statistics.median(worst) if worst else None,
            "max_chunk_ms": max(worst, default=None),
            "job_s": statistics.median(run["job_s"] for run in runs)}


#: Runs the command in its arguments and reports its peak RSS: getrusage(RUSAGE_CHILDREN) of
#: this small process is the command's own. (Started straight from the bench, the command's
#: ru_maxrss would also count the bench's own peak, carried over when the child execs.)
PEAK_OF = ("import resource, subprocess, sys\n"
           "code = subprocess.call(sys.argv[1:])\n"
           "sys.stderr.write('\\nru_maxrss_kib=%d\\n' % "
           "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
           "sys.exit(code)\n")


def time_verify(store: Store) -> dict:
    """``flask --app app audit verify`` in its own process: wall time and peak RSS."""
    flask = str(Path(sys.executable).with_name("flask"))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_OF, flask, "--app", "app", "audit",
                           "verify"], cwd=ROOT, env=store.env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    said = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        raise RuntimeError(f"{store.name}: audit verify found the bench's data wrong:\n"
                           + "\n".join(said[-25:]))
    kib = int(re.search(r"ru_maxrss_kib=(\d+)", done.stderr).group(1))
    return {"seconds": seconds, "peak_rss_mib": kib / 1024, "peak_rss_mb": kib * 1024 / 1e6,
            "said": next((line for line in said if "audit chain" in line), said[0] if said else "")}


# --- reporting ------------------------------------------------------------------------------

def machine(store: Store) -> dict:
    import sqlalchemy
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    facts = {"nproc": len(os.sched_getaffinity(0)), "cpu_model": cpu,
             "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
             "loadavg_at_start": os.getloadavg(), "platform": platform.platform(),
             "python": platform.python_version(), "sqlalchemy": sqlalchemy.__version__,
             "sqlite": sqlite3.sqlite_version}
    if store.kind == "postgresql":
        with store.connect() as conn:
            facts["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return facts


def rounded(value):
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def table(result: dict) -> str:
    small, year, cfg = result["kitchens"]["small"], result["kitchens"]["year"], result["config"]
    rows = []  # (measurement, small, year, target, met)

    def count_row(label, key):
        rows.append((label, f"{small['rows'][key]:,}", f"{year['rows'][key]:,}", "", ""))

    count_row("readings", "readings")
    count_row("rollups (5 min)", "rollups")
    count_row("runs awaiting sign-off", "awaiting_sign_off")
    count_row("answers", "answers")
    count_row("audit links", "audit_records")
    rows.append(("database size (MiB)", f"{small['database_mib']:,.0f}",
                 f"{year['database_mib']:,.0f}", "", ""))
    rows.append(("build (s)", f"{small['build_s']:.1f}", f"{year['build_s']:.1f}", "", ""))
    for page in year["pages"]:
        a, b = small["pages"][page], year["pages"][page]
        rows.append((f"{page}: median (p95) ms", f"{a['median_ms']:.1f} ({a['p95_ms']:.1f})",
                     f"{b['median_ms']:.1f} ({b['p95_ms']:.1f})", "<= 100 ms",
                     "yes" if b["median_ms"] <= TARGETS["page_ms"] else "NO"))
    a, b = small["retention"], year["retention"]

    def chunk(r):
        return (f"{r['median_chunk_ms']:.1f} ({r['worst_chunk_ms']:.1f})" if r["chunks"]
                else "no chunks")

    def worsts(r):
        return "/".join(f"{run['worst_chunk_ms']:.0f}" for run in r["runs"] if run["chunks"])
    rows.append(("retention chunk: median (worst) ms", chunk(a), chunk(b), "<= 50 ms",
                 "yes" if b["chunks"] and b["worst_chunk_ms"] <= TARGETS["chunk_ms"] else "NO"))
    rows.append((f"  worst chunk of each of {RETENTION_REPEATS} runs, ms", worsts(a), worsts(b),
                 "", ""))
    rows.append(("retention job: s (chunks, readings)",
                 f"{a['job_s']:.2f} ({a['chunks']}, {a['deleted']:,})",
                 f"{b['job_s']:.2f} ({b['chunks']}, {b['deleted']:,})", "", ""))
    a, b = small["verify"], year["verify"]
    rows.append(("audit verify: peak RSS MB (MiB)", f"{a['peak_rss_mb']:.0f} ({a['peak_rss_mib']:.0f})",
                 f"{b['peak_rss_mb']:.0f} ({b['peak_rss_mib']:.0f})", "<= 200 MB",
                 "yes" if b["peak_rss_mb"] <= TARGETS["verify_mb"] else "NO"))
    rows.append(("audit verify: wall s", f"{a['seconds']:.1f}", f"{b['seconds']:.1f}", "", ""))
    header = ("measurement", "small (baseline)", "year-size", "target", "met?")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    line = "  ".join(["{:<%d}" % widths[0]] + ["{:>%d}" % w for w in widths[1:3]] +
                     ["{:<%d}" % widths[3], "{:<%d}" % widths[4]])
    m = result["machine"]
    out = [f"Brigade at scale on {cfg['database']}: small (1 day, {SMALL['runs']} runs, "
           f"{SMALL['links']:,} links, alert {SMALL['alert_age_h']:g} h old) against year-size "
           f"({cfg['days']:g} days x {cfg['sensors']} sensors, {cfg['runs']:,} runs, "
           f"{cfg['links']:,} links, alert 90 days old)",
           f"server time (Server-Timing) after {cfg['warmups']} warm-ups, {cfg['requests']} "
           f"requests per page, interleaved; machine: {m['nproc']} CPUs, {m['cpu_model']}, "
           f"load {' '.join(f'{x:.2f}' for x in m['loadavg_at_start'])} at start",
           "", line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in rows]
    out += ["", f"audit verify, year: {year['verify']['said']}"]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        epilog="Exit status 1 when a year-size target is missed.",
        description="Build a small kitchen (1 day of readings, 20 runs, ~1,000 audit links) and "
                    "a year-size one (default: 365 days x 20 sensors at 1/min = 10.5 M readings "
                    "with rollups, 5,000 runs awaiting sign-off, an alert open 90 days, 100,000 "
                    "audit links), then measure on both: server time of /records, the alert "
                    "page, /units and the tablet home; the retention job's chunks; flask audit "
                    "verify's time and peak RSS. Prints a table and writes "
                    f"{RESULTS.relative_to(ROOT)}. See the module docstring for the details.")
    parser.add_argument("--days", type=float, default=365,
                        help="days of readings in the year-size kitchen (default 365); its "
                             "retention step purges the oldest week (at most half of them)")
    parser.add_argument("--sensors", type=int, default=20,
                        help="sensors on units, reading once a minute, in both kitchens "
                             "(default 20: the demo's 4 and 16 more fridges)")
    parser.add_argument("--runs", type=int, default=5000,
                        help="submitted runs awaiting sign-off in the year-size kitchen "
                             "(default 5000), 12 audit links each")
    parser.add_argument("--links", type=int, default=100_000,
                        help="audit links in the year-size kitchen: after the runs' own and the "
                             "alert's 4, hold timers fill the chain up to this (default 100000; "
                             "never fewer than the runs need)")
    parser.add_argument("--database-url", metavar="URL",
                        help="build both kitchens in this PostgreSQL database instead of SQLite "
                             "(postgresql:// or postgresql+psycopg://, e.g. postgresql://"
                             "postgres@127.0.0.1:5432/scale_bench), in schemas bench_scale_small "
                             "and bench_scale_year, replaced if present and dropped at the end "
                             "(unless --keep); default: SQLite files in a temporary folder")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the built kitchens (SQLite files in DIR; with --database-url "
                             "the schemas, noted in DIR) and reuse the year-size one on the next "
                             "run with the same options (the small one is rebuilt, in seconds)")
    parser.add_argument("--requests", type=int, default=15,
                        help="timed requests per page and kitchen (default 15)")
    parser.add_argument("--warmups", type=int, default=3,
                        help="untimed requests per page and kitchen first (default 3)")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS,
                        help=f"JSON results (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if min(args.days, args.sensors, args.runs, args.requests) <= 0 or args.warmups < 0:
        parser.error("--days, --sensors, --runs and --requests must be positive")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a postgresql:// URL")

    began = time.perf_counter()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="brigade-bench-scale-"))
    plans = {"small": dict(SMALL, sensors=args.sensors),
             "year": {"days": args.days, "runs": args.runs, "links": args.links,
                      "alert_age_h": YEAR_ALERT_AGE_H,
                      "purge_days": min(YEAR_PURGE_DAYS, args.days / 2),
                      "sensors": args.sensors}}
    stores = {name: Store(name, work / name, args.database_url) for name in plans}
    result = {"benchmark": "scale",
              "measured_at": dt.datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(stores["year"]),
              "config": {"days": args.days, "sensors": args.sensors, "runs": args.runs,
                         "links": args.links, "requests": args.requests, "warmups": args.warmups,
                         "database": "PostgreSQL" if args.database_url else "SQLite (WAL)",
                         "server": "Flask test client in the bench's process (no network)",
                         "csrf": False, "small": SMALL},
              "targets": TARGETS, "kitchens": {}}
    kitchens = {}
    try:
        for name, plan in plans.items():
            store = stores[name]
            marker = store.folder / "built.json"
            wanted = {"version": SCHEMA_VERSION, "plan": plan, "database": store.describe()}
            ids = json.loads(marker.read_text()) if marker.exists() and name == "year" else None
            if ids is None or ids.get("wanted") != json.loads(json.dumps(wanted)):
                now = kitchen_now(dt.datetime.now(UTC))
                print(f"building {name} ({store.describe()}): {plan}", flush=True)
                ids = build(store, plan["days"], plan["sensors"], plan["runs"], plan["links"],
                            plan["alert_age_h"], now)
                ids.update(wanted=wanted, now=now.isoformat())
                marker.write_text(json.dumps(ids, indent=1))
                print(f"  built in {ids['build_s']} s (readings {ids['readings_s']} s)", flush=True)
            else:
                print(f"reusing {name} built {ids['now']} ({store.describe()})", flush=True)
            built_at = dt.datetime.fromisoformat(ids["now"])
            clock = built_at + dt.timedelta(minutes=1)
            kitchens[name] = {"store": store, "ids": ids, "app": make_app(store), "now": built_at,
                              "clock": (lambda at=clock: at)}
            result["kitchens"][name] = {"built_at": ids["now"], "build_s": ids["build_s"],
                                        "rows": store.counts(), "database_mib": store.size_mib()}
        print("timing pages …", flush=True)
        pages = time_pages(kitchens, args.warmups, args.requests)
        for name, kitchen in kitchens.items():
            print(f"{name}: audit verify …", flush=True)
            verify = time_verify(kitchen["store"])
            print(f"{name}: retention …", flush=True)
            retention = time_retention(kitchen, plans[name]["purge_days"])
            result["kitchens"][name].update(pages=pages[name], verify=verify, retention=retention)
            with kitchen["app"].app_context():
                from app.models import db
                db.session.remove()
                db.engine.dispose()
    finally:
        if args.keep is None:
            for store in stores.values():
                store.drop()
            shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    result["wall_s"] = time.perf_counter() - began
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rounded(result), indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(result))
    print(f"\nwall time {result['wall_s']:.0f} s; written to {args.output}")
    year = result["kitchens"]["year"]
    met = (all(p["median_ms"] <= TARGETS["page_ms"] for p in year["pages"].values())
           and year["retention"]["chunks"] and year["retention"]["worst_chunk_ms"] <= TARGETS["chunk_ms"]
           and year["verify"]["peak_rss_mb"] <= TARGETS["verify_mb"])
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
