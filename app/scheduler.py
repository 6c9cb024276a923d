"""The scheduled work, and the lock that makes exactly one scheduler act per deployment.

Jobs are declared once, in ``_jobs()``, with stable ids. Any number of processes may run
``flask scheduler run`` (and ``flask serve`` runs one beside the web server); only the
holder of the database lock runs jobs — a PostgreSQL advisory lock held on its own
connection, or on SQLite a lease row renewed every few seconds. When the holder dies,
its lock goes with its connection (PostgreSQL) or its lease expires (SQLite), and a
standby takes over well within a minute. Each run is also claimed in ``job_runs`` by job
id and due time, so a hand-over never runs the same due time twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import delete, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app.models import JobRun, SchedulerLease, db, utcnow

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
EPOCH = dt.datetime(2020, 1, 1, tzinfo=UTC)
#: PostgreSQL advisory lock key: "BRIGADE" in ASCII, as a 64-bit number.
ADVISORY_KEY = 0x42524947414445
LEASE_SECONDS = 30
RENEW_SECONDS = 10


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable          # func(session, now) -> anything; the wrapper commits
    seconds: int
    grace: int = 30         # misfire grace: a run late by more than this is skipped


def _retention(session, now):
    from flask import current_app

    from app.units.ingest import purge_idempotency_keys
    from sensors.models import DeadLetter
    from sensors.store import purge_readings
    keep = dt.timedelta(days=current_app.config["BRIGADE_RETENTION_DAYS"])
    # Raw readings past retention go, a chunk per transaction; their 5-minute rollups stay for
    # long reports.
    gone = 0
    for count in purge_readings(session, now - keep):
        session.commit()
        gone += count
    letters = session.execute(delete(DeadLetter).where(
        DeadLetter.received_at < now - dt.timedelta(days=90))).rowcount
    keys = purge_idempotency_keys(session, now)
    return f"removed {gone} readings, {letters} dead letters, {keys} idempotency keys"


def _review_reminder(session, now):
    from app.rules_review import remind_review
    return remind_review(session, now)


def _audit_seal(session, now):
    """Seal the closed hours' readings, chain what the chain has not seen yet, and anchor the
    head outside the database when it is due."""
    from app.audit import adopt_unchained
    from app.seals import seal_readings
    from app.anchors import anchor_head
    adopted = adopt_unchained(session)
    sealed = seal_readings(session, now)
    session.commit()  # an anchor names a committed head only
    return f"{sealed}; {adopted} adopted; {anchor_head(session, now)}"


def _jobs() -> list[Job]:
    from app.alerts import engine, operations
    jobs = [
        Job("sweep-units", engine.sweep_units, 30),
        Job("sweep-checklists", engine.sweep_checklists, 60),
        Job("sweep-timers", engine.sweep_timers, 30),
        Job("sweep-batteries", engine.sweep_batteries, 900, grace=300),
        Job("notify-due", operations.notify_due, 30),
        Job("retention", _retention, 3600, grace=1800),
        Job("review-reminder", _review_reminder, 3600, grace=1800),
        Job("audit-seal", _audit_seal, 300, grace=240),
    ]
    from app.alerts.dispatch import dispatch_due
    from app.alerts.summary import daily_summary
    jobs.append(Job("dispatch", dispatch_due, 10))
    jobs.append(Job("daily-summary", daily_summary, 3600, grace=1800))
    return jobs


def due_time(now: dt.datetime, seconds: int) -> dt.datetime:
    """The grid time this run is for: every process computes the same one."""
    elapsed = int((now - EPOCH).total_seconds())
    return EPOCH + dt.timedelta(seconds=elapsed - elapsed % seconds)


class Leadership:
    """Hold (or wait for) the deployment's scheduler lock."""

    def __init__(self, app, holder: str | None = None):
        self.app = app
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._conn = None  # PostgreSQL: the connection that holds the advisory lock

    def try_acquire(self) -> bool:
        """Take or keep the lock; False when someone else holds it."""
        with self.app.app_context():
            if db.engine.dialect.name == "postgresql":
                return self._advisory()
            return self._lease()

    def _advisory(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - the connection (and with it the lock) is gone
                logger.warning("scheduler lock connection lost")
                self._conn = None
                return False
        conn = db.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        conn.commit()
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def _lease(self) -> bool:
        now = utcnow()
        until = now + dt.timedelta(seconds=LEASE_SECONDS)
        session = db.session
        try:
            taken = session.execute(
                update(SchedulerLease).where(SchedulerLease.name == "scheduler")
                .where((SchedulerLease.holder == self.holder) | (SchedulerLease.expires_at < now))
                .values(holder=self.holder, expires_at=until)).rowcount
            if not taken:
                insert = sqlite.insert(SchedulerLease).values(name="scheduler", holder=self.holder,
                                                              expires_at=until)
                taken = session.execute(insert.on_conflict_do_nothing()).rowcount
            session.commit()
            return bool(taken)
        finally:
            session.remove()

    def release(self) -> None:
        with self.app.app_context():
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                    self._conn.close()
                finally:
                    self._conn = None
            elif db.engine.dialect.name != "postgresql":
                db.session.execute(update(SchedulerLease).where(
                    SchedulerLease.name == "scheduler", SchedulerLease.holder == self.holder)
                    .values(expires_at=utcnow()))
                db.session.commit()
                db.session.remove()


def run_job(app, job: Job, holder: str, now: dt.datetime | None = None) -> str | None:
    """Claim this job's due time, run it, record the outcome; None when already claimed."""
    now = now or utcnow()
    due = due_time(now, job.seconds)
    with app.app_context():
        session = db.session
        insert = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)
        # RETURNING, not rowcount: psycopg reports -1 for a skipped INSERT ... ON CONFLICT.
        claimed = session.execute(insert(JobRun).values(job_id=job.id, due_at=due, holder=holder,
                                                        started_at=now)
                                  .on_conflict_do_nothing().returning(JobRun.job_id)).first()
        session.commit()
        if not claimed:
            return None
        try:
            outcome = job.func(session, now)
            session.commit()
            outcome = "ok" if outcome is None else str(outcome if not isinstance(outcome, list)
                                                       else f"{len(outcome)} changed")
        except Exception as exc:  # noqa: BLE001 - one failing job must not stop the others
            session.rollback()
            logger.exception("job %s failed", job.id)
            outcome = f"error: {type(exc).__name__}: {exc}"[:500]
        session.execute(update(JobRun).where(JobRun.job_id == job.id, JobRun.due_at == due)
                        .values(finished_at=utcnow(), outcome=outcome))
        session.commit()
        session.remove()
        return outcome


class Scheduler:
    """APScheduler 3 in the background, acting only while this process holds the lock."""

    def __init__(self, app, holder: str | None = None, jobs: list[Job] | None = None):
        self.app = app
        self.leadership = Leadership(app, holder)
        self.jobs = jobs if jobs is not None else _jobs()
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._campaign, name="brigade-scheduler-lock",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _campaign(self) -> None:
        while not self._stop.is_set():
            try:
                leader = self.leadership.try_acquire()
            except Exception:  # noqa: BLE001 - database unreachable: not the leader now
                logger.exception("scheduler lock check failed")
                leader = False
            if leader and self.scheduler is None:
                self._start_jobs()
            elif not leader and self.scheduler is not None:
                logger.warning("scheduler lock lost; stopping jobs")
                self._stop_jobs()
            self._stop.wait(RENEW_SECONDS)
        self._stop_jobs()
        self.leadership.release()

    def _start_jobs(self) -> None:
        # APScheduler logs every run at INFO; job outcomes are in job_runs (`flask scheduler jobs`).
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True,
                                                                    "max_instances": 1})
        for job in self.jobs:
            scheduler.add_job(run_job, IntervalTrigger(seconds=job.seconds, start_date=EPOCH),
                              args=(self.app, job, self.leadership.holder), id=job.id,
                              misfire_grace_time=job.grace, next_run_time=utcnow())
        scheduler.start()
        self.scheduler = scheduler
        logger.info("scheduler %s holds the lock; %s jobs", self.leadership.holder, len(self.jobs))

    def _stop_jobs(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
