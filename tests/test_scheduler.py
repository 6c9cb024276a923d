"""One scheduler acts per deployment; each job runs once per due time; a standby takes over."""
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from app.models import JobRun, db, set_clock
from app.scheduler import Job, Leadership, due_time, run_job

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_due_times_are_the_same_grid_everywhere():
    assert due_time(T0, 30) == dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert due_time(T0 + dt.timedelta(seconds=24), 30) == due_time(T0, 30)
    assert due_time(T0 + dt.timedelta(seconds=25), 30) == dt.datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC)


def test_a_due_time_runs_once_whoever_asks(app):
    calls = []
    job = Job("count", lambda session, now: calls.append(now), 30)
    assert run_job(app, job, "a", T0) == "ok"
    assert run_job(app, job, "b", T0 + dt.timedelta(seconds=3)) is None
    assert run_job(app, job, "b", T0 + dt.timedelta(seconds=30)) == "ok"
    assert len(calls) == 2
    with app.app_context():
        holders = db.session.execute(select(JobRun.holder).order_by(JobRun.due_at)).scalars().all()
    assert holders == ["a", "b"]


def test_a_failing_job_is_recorded_and_does_not_stop_the_next(app):
    def boom(session, now):
        raise RuntimeError("smtp down")
    assert run_job(app, Job("boom", boom, 30), "a", T0).startswith("error: RuntimeError: smtp down")
    assert run_job(app, Job("fine", lambda s, n: None, 30), "a", T0) == "ok"


def test_only_one_holder_and_takeover_after_death(app):
    first, second = Leadership(app, "first"), Leadership(app, "second")
    set_clock(lambda: T0)
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert first.try_acquire() is True  # renewal
    if first._conn is not None:
        first._conn.invalidate()  # PostgreSQL: the holder's connection dies, and its lock with it
        first._conn = None
    else:
        set_clock(lambda: T0 + dt.timedelta(seconds=31))  # SQLite: its lease runs out
    assert second.try_acquire() is True
    assert first.try_acquire() is False
    second.release()


def _scheduler_process(app, tmp_path, name):
    env = dict(os.environ, BRIGADE_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               BRIGADE_SECRET_KEY="x", BRIGADE_AUDIT_KEY="y", BRIGADE_INSTANCE_PATH=str(tmp_path))
    log = tmp_path / f"{name}.log"
    flask = Path(sys.executable).with_name("flask")
    proc = subprocess.Popen([str(flask), "--app", "app", "scheduler", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    return proc, log


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_two_scheduler_processes_one_acts_and_the_other_takes_over(app, tmp_path):
    a, a_log = _scheduler_process(app, tmp_path, "a")
    b, b_log = _scheduler_process(app, tmp_path, "b")
    try:
        assert _wait_for(lambda: "holds the lock" in a_log.read_text() + b_log.read_text(), 30)
        time.sleep(3)
        logs = {"a": a_log.read_text(), "b": b_log.read_text()}
        leaders = [n for n, text in logs.items() if "holds the lock" in text]
        assert len(leaders) == 1, logs
        leader, standby = (a, b) if leaders == ["a"] else (b, a)
        standby_log = b_log if leaders == ["a"] else a_log
        with app.app_context():
            holders = set(db.session.execute(select(JobRun.holder)).scalars())
            per_due = db.session.execute(select(JobRun.job_id, JobRun.due_at, func.count())
                                         .group_by(JobRun.job_id, JobRun.due_at)).all()
        assert len(holders) == 1 and all(n == 1 for _, _, n in per_due)
        killed = time.monotonic()
        leader.kill()  # no goodbye: the lock must pass by itself
        leader.wait()
        assert _wait_for(lambda: "holds the lock" in standby_log.read_text(), 60), "no takeover"
        took = time.monotonic() - killed
        assert took < 60
        with app.app_context():
            assert _wait_for(lambda: len(set(db.session.execute(select(JobRun.holder)).scalars())) == 2, 40)
    finally:
        for proc in (a, b):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
