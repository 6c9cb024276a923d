"""Readings made tamper-evident without a link per reading: a chained seal per sensor per hour.

Ingest stores readings as fast as it can and never touches the chain. The scheduler's
``audit-seal`` job (every 5 minutes) seals each hour that has closed: for every sensor with
readings in it, one ``ReadingSeal`` (count and sha256 of the hour's readings) is chained. A
reading edited, deleted or inserted in a sealed hour then no longer matches its seal, and
``flask audit verify`` names the sensor and the hour.

Readings that arrive after their hour was sealed (a device sending its buffer late; device
times up to 7 days old are accepted) are not taken into the sealed hour: the job notices them
(the hour's rollup counts more readings than its seals) and covers them with a later seal of
the same hour marked ``late``, so the hour's first seal still verifies and the report can say
how many readings came late.

A seal covers the hour's readings *received* up to its ``received_through`` (the job's time
less ``RECEIVE_LAG``, so a batch ingest received just before but committed just after is not
split) and after the hour's previous seal.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import logging

from sqlalchemy import DateTime, func, select, type_coerce

from app import audit
from app.models.audit import ReadingSeal
from sensors.models import Reading, Rollup, Sensor

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
#: Readings received this recently may still be in a batch ingest has not committed (a batch
#: held through a database outage longer than this, committed just after a seal of its hour,
#: would be named by verify as inserted: see the README).
RECEIVE_LAG = dt.timedelta(minutes=10)
#: How far back the job looks for readings that arrived late: ingest accepts device times up
#: to 7 days old (sensors.store.MAX_DEVICE_AGE), plus a day.
LOOK_BACK = dt.timedelta(days=8)
#: Rows fetched at a time while verifying.
BATCH = 1000


def floor_hour(at: dt.datetime) -> dt.datetime:
    """The UTC hour ``at`` falls in (a naive time is taken as UTC, as SQLite stores it)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.replace(minute=0, second=0, microsecond=0)


_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(at: dt.datetime) -> int:
    """Microseconds since 1970 UTC (a naive time is UTC, as SQLite stores it): exact, and
    cheaper than formatting a date, which verify does twice for every reading it reads."""
    return (at - (_EPOCH if at.tzinfo is None else _EPOCH_UTC)) // _MICROSECOND


def _raw(column):
    """The column as the driver returns it, without UTCDateTime's conversion per row (naive
    UTC on SQLite, aware on PostgreSQL): ``_micros`` takes either, and verify reads millions."""
    return type_coerce(column, DateTime(timezone=True))


def reading_line(measured_at, temperature_c, offset_c, time_source, received_at) -> bytes:
    """One reading as a seal digests it: everything it says, its receive time included."""
    return (f"{_micros(measured_at)}|{temperature_c!r}|{offset_c!r}|{time_source}|"
            f"{_micros(received_at)}\n").encode()


def seal_readings(session, now: dt.datetime) -> str:
    """Seal every closed hour's new readings, each sensor apart; idempotent (what a seal
    covers is never sealed again). The caller commits."""
    through = now - RECEIVE_LAG
    last_closed = floor_hour(through) - HOUR  # hours H with H + 1 h <= through
    since = floor_hour(through) - LOOK_BACK
    if last_closed < since:
        return "nothing to seal"
    stored: dict[tuple[int, dt.datetime], int] = {}
    for sensor_id, bucket_start, count in session.execute(
            select(Rollup.sensor_id, Rollup.bucket_start, Rollup.count)
            .where(Rollup.bucket_start >= since, Rollup.bucket_start < last_closed + HOUR)):
        key = (sensor_id, floor_hour(bucket_start))
        stored[key] = stored.get(key, 0) + count
    sealed: dict[tuple[int, dt.datetime], tuple[int, dt.datetime]] = {
        (sensor_id, hour): (count, through_at) for sensor_id, hour, count, through_at in
        session.execute(select(ReadingSeal.sensor_id, ReadingSeal.hour_start,
                               func.sum(ReadingSeal.count), func.max(ReadingSeal.received_through))
                        .where(ReadingSeal.hour_start >= since)
                        .group_by(ReadingSeal.sensor_id, ReadingSeal.hour_start))}
    previous_run = session.scalar(select(func.max(ReadingSeal.received_through)))
    seals = late = 0
    for (sensor_id, hour), count in sorted(stored.items()):
        done, after = sealed.get((sensor_id, hour), (0, None))
        if count <= done:
            continue
        query = (select(Reading.measured_at, Reading.temperature_c, Reading.offset_c,
                        Reading.time_source, Reading.received_at)
                 .where(Reading.sensor_id == sensor_id, Reading.measured_at >= hour,
                        Reading.measured_at < hour + HOUR, Reading.received_at <= through)
                 .order_by(Reading.measured_at))
        if after is not None:
            query = query.where(Reading.received_at > after)
        digest, covered = hashlib.sha256(), 0
        for row in session.execute(query):
            digest.update(reading_line(*row))
            covered += 1
        if not covered:
            continue
        is_late = after is not None or (previous_run is not None and hour + HOUR <= previous_run)
        audit.append(session, ReadingSeal(sensor_id=sensor_id, hour_start=hour,
                                          received_through=through, count=covered,
                                          digest=digest.hexdigest(), late=is_late, sealed_at=now),
                     "readings.sealed_late" if is_late else "readings.sealed", None, None)
        seals += 1
        late += covered if is_late else 0
    if seals:
        logger.info("sealed %s sensor-hours (%s late readings)", seals, late)
    return f"sealed {seals} sensor-hours, {late} late readings"


def _seal_stream(session, since: dt.datetime):
    """Seals of hours from ``since`` in (sensor, hour, received_through) order, fetched a page
    at a time along the (sensor_id, hour_start) index on queries of their own (the readings
    are being streamed on the session's cursor). A later seal of an hour has a later id."""
    for sensor_id in session.execute(select(ReadingSeal.sensor_id).distinct()
                                     .order_by(ReadingSeal.sensor_id)).scalars().all():
        hour, last_id = since, None
        while True:
            query = (select(ReadingSeal.sensor_id, ReadingSeal.hour_start,
                            ReadingSeal.received_through, ReadingSeal.id, ReadingSeal.count,
                            ReadingSeal.digest)
                     .where(ReadingSeal.sensor_id == sensor_id, ReadingSeal.hour_start >= hour)
                     .order_by(ReadingSeal.hour_start, ReadingSeal.id).limit(BATCH))
            if last_id is not None:
                query = query.where((ReadingSeal.hour_start > hour) | (ReadingSeal.id > last_id))
            rows = session.execute(query).all()
            yield from rows
            if len(rows) < BATCH:
                break
            hour, last_id = rows[-1][1], rows[-1][3]


def verify_seals(session, now: dt.datetime, keep_days: int) -> list:
    """Every sealed hour's readings against its seals, in constant memory: seals and readings
    are streamed side by side in (sensor, hour) order, one hour's digests held at a time.

    Hours whose readings retention may have deleted (older than ``keep_days``) are not
    checked; readings in a closed hour that no seal covers although the job has sealed past
    their receive time are named as inserted."""
    from app.audit import Problem
    keep_from = floor_hour(now - dt.timedelta(days=keep_days)) + HOUR
    first = session.scalar(select(func.min(ReadingSeal.hour_start))
                           .where(ReadingSeal.hour_start >= keep_from))
    if first is None:
        return []
    sealed_through = session.scalar(select(func.max(ReadingSeal.received_through)))
    keys = dict(session.execute(select(Sensor.id, Sensor.key)).all())
    problems: list[Problem] = []

    def where(sensor_id, hour):
        return (f"sensor {keys.get(sensor_id, sensor_id)} "
                f"hour {hour.astimezone(UTC):%Y-%m-%dT%H}:00 UTC")

    def finding(sensor_id, hour, what, change):
        """A finding naming the sensor and the sealed hour (the time range affected)."""
        hour = hour.astimezone(UTC)
        return Problem(where(sensor_id, hour), what,
                       {"sensor": keys.get(sensor_id, sensor_id), "sensor_id": sensor_id,
                        "hour": hour.isoformat(timespec="seconds")},
                       change, hour, hour + HOUR)

    def settle(group, hashers, counts, strays):
        for (seal_id, count, digest), hasher, found in zip(group[1], hashers, counts):
            if (found, hasher.hexdigest()) != (count, digest):
                change = ("readings removed" if found < count else
                          "readings inserted" if found > count else "readings altered")
                problems.append(finding(*group[0],
                                        f"{change} since it was sealed ({count} sealed, {found} "
                                        f"now; reading seal {seal_id})",
                                        f"{change}: {count} sealed, {found} now"
                                        if found != count else
                                        "readings' content differs from what was sealed"))
        if strays:
            problems.append(finding(*group[0], f"{strays} reading(s) in no seal although "
                                    "the hour was sealed after they were received (inserted "
                                    "behind the app's back)", f"{strays} reading(s) inserted"))

    seals = _seal_stream(session, first)
    pending = next(seals, None)
    readings = session.execute(
        select(Reading.sensor_id, _raw(Reading.measured_at), Reading.temperature_c,
               Reading.offset_c, Reading.time_source, _raw(Reading.received_at))
        .where(Reading.measured_at >= first)
        .order_by(Reading.sensor_id, Reading.measured_at).execution_options(yield_per=BATCH))
    # Times are compared as the driver returns them (naive UTC on SQLite): no conversion per row.
    naive = session.get_bind().dialect.name == "sqlite"

    def raw(at):
        return at.astimezone(UTC).replace(tzinfo=None) if naive else at

    group = None  # ((sensor_id, hour), [(seal id, count, digest)...]) with cutoffs below
    cutoffs: list = []
    hashers: list = []
    counts: list = []
    strays = 0
    sensor, low, high, closed = None, None, None, False
    sealed_raw = raw(sealed_through) if sealed_through is not None else None

    def open_group(key):
        nonlocal pending
        members, bounds = [], []
        while pending is not None and (pending[0], pending[1]) < key:
            # A sealed hour with no readings left at all.
            problems.append(finding(pending[0], pending[1],
                                    f"readings removed since it was sealed ({pending[4]} "
                                    f"sealed, 0 now; reading seal {pending[3]})",
                                    f"readings removed: {pending[4]} sealed, 0 now"))
            pending = next(seals, None)
        while pending is not None and (pending[0], pending[1]) == key:
            members.append((pending[3], pending[4], pending[5]))
            bounds.append(raw(pending[2]))
            pending = next(seals, None)
        return (key, members), bounds

    for sensor_id, measured_at, temperature_c, offset_c, time_source, received_at in readings:
        if sensor_id != sensor or not low <= measured_at < high:
            if group is not None:
                settle(group, hashers, counts, strays)
            hour = floor_hour(measured_at)
            sensor, low, high = sensor_id, raw(hour), raw(hour + HOUR)
            closed = sealed_through is not None and hour + HOUR <= sealed_through
            group, cutoffs = open_group((sensor_id, hour))
            hashers = [hashlib.sha256() for _ in cutoffs]
            counts = [0] * len(cutoffs)
            strays = 0
        index = bisect.bisect_left(cutoffs, received_at)
        if index < len(cutoffs):
            hashers[index].update(reading_line(measured_at, temperature_c, offset_c, time_source,
                                               received_at))
            counts[index] += 1
        elif closed and received_at <= sealed_raw:
            strays += 1  # received before a later seal run, yet in none of this hour's seals
    if group is not None:
        settle(group, hashers, counts, strays)
    while pending is not None:
        problems.append(finding(pending[0], pending[1],
                                f"readings removed since it was sealed ({pending[4]} sealed, "
                                f"0 now; reading seal {pending[3]})",
                                f"readings removed: {pending[4]} sealed, 0 now"))
        pending = next(seals, None)
    return problems


def sealed_hours(session, now: dt.datetime, keep_days: int) -> int:
    """How many sensor-hours verify_seals checks (those retention has not reached)."""
    keep_from = floor_hour(now - dt.timedelta(days=keep_days)) + HOUR
    hours = select(ReadingSeal.sensor_id, ReadingSeal.hour_start) \
        .where(ReadingSeal.hour_start >= keep_from).distinct().subquery()
    return int(session.scalar(select(func.count()).select_from(hours)) or 0)


def late_readings(session) -> tuple[int, int]:
    """(late seals, readings in them): readings that arrived after their hour was sealed."""
    seals, count = session.execute(
        select(func.count(), func.coalesce(func.sum(ReadingSeal.count), 0))
        .where(ReadingSeal.late.is_(True))).one()
    return int(seals), int(count)
