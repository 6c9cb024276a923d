"""Compliance figures for a site over a range of site-local days. Reads only; writes nothing.

Each figure keeps the ids of the records behind it, so every number on the report links to
them. Times are UTC here; the site's zone is applied for days (a day is the site's midnight to
midnight, 23 or 25 hours across a DST change) and at the edges.

Units are read from the 5-minute rollups first: a bucket whose readings are all inside the
limits by the hysteresis, and as many as the sensor's interval promises, can hold neither an
excursion nor a silence, so only the other buckets (and the range's ends) are read reading by
reading. A year of a quiet fridge is one rollup query and a few raw ones; the figures are the
same as from every reading (tests/test_reports.py holds them to it).
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import joinedload, selectinload

from app.alerts.engine import unit_settings
from app.checklists.definitions import definitions_by_key
from app.checklists.schedules import local_to_utc, slots_for_day
from app.models import (Alert, AlertEvent, Answer, ChecklistDefinition, ChecklistItem, HoldTimer,
                        Run, Site, Staff, Submission, TimerOutcome, Verification)
from app.models.units import Unit
from sensors.db import UTCDateTime
from sensors.models import Reading, Rollup, Sensor
from sensors.store import ROLLUP_SECONDS
from sensors.temperature import Limits

UTC = dt.timezone.utc
PRESETS = ("today", "yesterday", "last_7_days", "this_month", "last_month", "custom")
#: The longest range a report covers (a year and a bit: last year's inspection).
MAX_DAYS = 400


class RangeError(ValueError):
    """A custom range that cannot be reported (bad dates, end before start, too long)."""


# --- the range ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Site-local days ``first`` to ``last`` inclusive, and the UTC instants they span."""

    preset: str
    first: dt.date
    last: dt.date
    timezone: str

    @property
    def start(self) -> dt.datetime:
        return day_start(self.first, self.timezone)

    @property
    def end(self) -> dt.datetime:
        return day_start(self.last + dt.timedelta(days=1), self.timezone)

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def day_start(day: dt.date, timezone: str) -> dt.datetime:
    """The UTC instant of a site-local midnight."""
    return local_to_utc(day, dt.time(0, 0), ZoneInfo(timezone))


def period(preset: str, now: dt.datetime, timezone: str, first: str | None = None,
           last: str | None = None) -> Period:
    """The days a preset means at ``now`` in the site's zone; ``custom`` takes ISO dates."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    if preset == "today":
        return Period(preset, today, today, timezone)
    if preset == "yesterday":
        day = today - dt.timedelta(days=1)
        return Period(preset, day, day, timezone)
    if preset == "last_7_days":
        return Period(preset, today - dt.timedelta(days=6), today, timezone)
    if preset == "this_month":
        return Period(preset, today.replace(day=1), today, timezone)
    if preset == "last_month":
        end = today.replace(day=1) - dt.timedelta(days=1)
        return Period(preset, end.replace(day=1), end, timezone)
    if preset != "custom":
        raise RangeError(f"unknown range {preset!r}")
    try:
        start_day, end_day = dt.date.fromisoformat(first or ""), dt.date.fromisoformat(last or "")
    except ValueError:
        raise RangeError("dates must look like 2026-11-27") from None
    if end_day < start_day:
        raise RangeError("the range ends before it starts")
    if (end_day - start_day).days >= MAX_DAYS:
        raise RangeError(f"a report covers {MAX_DAYS} days at most")
    if start_day.year < 2000 or end_day.year > 2200:
        raise RangeError("dates out of range")
    return Period(preset, start_day, end_day, timezone)


# --- checklists -----------------------------------------------------------------------------

@dataclass
class SlotEntry:
    """One scheduled occurrence of a checklist in the range, and what became of it."""

    checklist_key: str
    title: dict
    schedule_key: str
    schedule_name: dict
    day: dt.date
    start: dt.datetime
    deadline: dt.datetime
    run: Run | None
    #: on_time · late · missed · pending (its window is still open, or not yet begun)
    status: str

    @property
    def submitted_by(self) -> Staff | None:
        return self.run.submission.submitted_by if self.run and self.run.submission else None


def _in_force(versions: list[ChecklistDefinition], until: dt.datetime) -> ChecklistDefinition:
    """The version loaded last before ``until`` (the oldest if none was loaded by then)."""
    chosen = versions[0]
    for version in versions:
        if version.loaded_at <= until:
            chosen = version
    return chosen


def slot_entries(session, site: Site, span: Period, now: dt.datetime) -> list[SlotEntry]:
    """Every slot of every checklist on the range's days, with its run; runs whose slot the
    schedules no longer have (a schedule changed since) are listed as they were opened."""
    tz = site.timezone
    runs = session.execute(
        select(Run).where(Run.site_id == site.id, Run.slot_start >= span.start,
                          Run.slot_start < span.end)
        .options(joinedload(Run.submission).joinedload(Submission.submitted_by),
                 joinedload(Run.verification))).scalars().all()
    by_slot = {(r.checklist_key, r.schedule_key, r.slot_start): r for r in runs}
    entries = []
    for key, versions in sorted(definitions_by_key(session, site.id).items()):
        for day in span.days:
            definition = _in_force(versions, day_start(day + dt.timedelta(days=1), tz))
            if not definition.items:
                continue  # not used at this site then (its rules all retired there)
            names = {s["key"]: s.get("name") or {"en": s["key"]} for s in definition.schedules}
            for slot in slots_for_day(definition.schedules, day, tz):
                run = by_slot.pop((key, slot.schedule_key, slot.start), None)
                if run is None and slot.deadline <= site.created_at:
                    continue  # over before the site existed: never due there
                entries.append(SlotEntry(key, {"en": definition.title_en, "zh": definition.title_zh},
                                         slot.schedule_key, names[slot.schedule_key], day,
                                         slot.start, slot.deadline, run,
                                         _slot_status(run, slot.deadline, now)))
    for run in by_slot.values():
        entries.append(SlotEntry(run.checklist_key, {"en": run.definition.title_en,
                                                     "zh": run.definition.title_zh},
                                 run.schedule_key, {"en": run.schedule_key}, 
                                 run.slot_start.astimezone(ZoneInfo(tz)).date(), run.slot_start,
                                 run.deadline, run, _slot_status(run, run.deadline, now)))
    return sorted(entries, key=lambda e: (e.start, e.checklist_key, e.schedule_key))


def _slot_status(run: Run | None, deadline: dt.datetime, now: dt.datetime) -> str:
    if run is not None and run.submission is not None:
        return "on_time" if run.submission.submitted_at <= deadline else "late"
    return "missed" if deadline <= now else "pending"


@dataclass
class Tally:
    """Due, on time, late and missed slots; ``pending`` ones are not due yet."""

    on_time: int = 0
    late: int = 0
    missed: int = 0
    pending: int = 0

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    @property
    def due(self) -> int:
        return self.on_time + self.late + self.missed

    @property
    def done(self) -> int:
        return self.on_time + self.late

    @property
    def completion(self) -> float | None:
        """Done of due, as a fraction (None when nothing was due)."""
        return self.done / self.due if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.due if self.due else None


def tally(entries, key) -> dict:
    """Tallies of the entries grouped by ``key(entry)``, in first-seen order."""
    out: dict = {}
    for entry in entries:
        out.setdefault(key(entry), Tally()).add(entry.status)
    return out


def checklist_figures(session, site: Site, span: Period, now: dt.datetime) -> dict:
    entries = slot_entries(session, site, span, now)
    total = Tally()
    for entry in entries:
        total.add(entry.status)
    people: dict[str, Tally] = {}
    for entry in entries:
        if entry.status in ("on_time", "late"):
            people.setdefault(entry.submitted_by.name, Tally()).add(entry.status)
    return {
        "entries": entries, "total": total,
        "by_day": tally(entries, lambda e: e.day),
        "by_slot": tally(entries, lambda e: (e.checklist_key, e.schedule_key)),
        "by_checklist": tally(entries, lambda e: e.checklist_key),
        "by_person": dict(sorted(people.items())),
        "slot_names": {(e.checklist_key, e.schedule_key): e.schedule_name for e in entries},
        "titles": {e.checklist_key: e.title for e in entries},
        "awaiting": [e for e in entries if e.run is not None and e.run.submission is not None
                     and e.run.verification is None],
    }


def _answers_in_force(site: Site, span: Period):
    """The id of the answer in force (the last recorded) for each item of each run in range."""
    return (select(func.max(Answer.id)).join(Run, Run.id == Answer.run_id)
            .where(Run.site_id == site.id, Run.slot_start >= span.start,
                   Run.slot_start < span.end)
            .group_by(Answer.run_id, Answer.item_id))


def rule_figures(session, site: Site, span: Period) -> list[dict]:
    """Per rule (R1–R8 and any store rule): answers in force that passed, failed or were N/A."""
    counts = session.execute(
        select(ChecklistItem.rule_code, Answer.outcome, func.count())
        .join(ChecklistItem, ChecklistItem.id == Answer.item_id)
        .where(Answer.id.in_(_answers_in_force(site, span)))
        .group_by(ChecklistItem.rule_code, Answer.outcome)).all()
    by_rule: dict[str, Counter] = defaultdict(Counter)
    for code, outcome, n in counts:
        by_rule[code][outcome] += n
    from app.rules.operations import rules_in_force
    rules = rules_in_force(session, site)  # the site's rules: store rules where they prevail
    out = []
    for code in sorted(set(rules) | set(by_rule), key=lambda c: (rules[c]["number"] if c in rules
                                                                  else 999, c)):
        c = by_rule[code]
        judged = c["pass"] + c["fail"]
        rule = rules.get(code)
        out.append({"code": code, "rule": rule["title"] if rule else None,
                    "source": rule["source"] if rule else None, "pass": c["pass"],
                    "fail": c["fail"], "na": c["na"],
                    "fail_rate": c["fail"] / judged if judged else None})
    return out


def rules_status(session, site: Site, now: dt.datetime) -> dict:
    """The rules themselves: the version in force, when the yearly review is due, a review
    under way, who has not read the last version's changes, suggestions not answered."""
    from app.models import RuleSuggestion, SuggestionAnswer
    from app.rules.operations import newest_version, open_review, training_status
    from app.rules_review import review_due
    version = newest_version(session, site.id)
    due, _last = review_due(session, site)
    unanswered = session.scalar(select(func.count()).select_from(RuleSuggestion).outerjoin(
        SuggestionAnswer, SuggestionAnswer.suggestion_id == RuleSuggestion.id).where(
        RuleSuggestion.site_id == site.id, SuggestionAnswer.id.is_(None)))
    training = training_status(session, site, version) if version else []
    return {"version": version, "due": due,
            "overdue": now.astimezone(ZoneInfo(site.timezone)).date() > due,
            "review": open_review(session, site) is not None,
            "not_read": [row["person"] for row in training if row["read"] < row["of"]],
            "unanswered": unanswered}


def failed_items(session, site: Site, span: Period) -> list[Answer]:
    """Fails in force in the range, with their run, item, who recorded and who verified."""
    return session.execute(
        select(Answer).where(Answer.id.in_(_answers_in_force(site, span)),
                             Answer.outcome == "fail")
        .options(joinedload(Answer.item), joinedload(Answer.recorded_by),
                 joinedload(Answer.run).joinedload(Run.verification)
                 .joinedload(Verification.verified_by),
                 joinedload(Answer.run).selectinload(Run.definition))
        .order_by(Answer.recorded_at, Answer.id)).scalars().all()


# --- units ----------------------------------------------------------------------------------

@dataclass
class Excursion:
    """One continuous time out of range: from the first reading beyond a limit to the first
    back inside by the hysteresis (``end`` None: still out at the range's end)."""

    tier: str                     # high · low · critical (critical if it went that far)
    start: dt.datetime
    end: dt.datetime | None
    peak_c: float
    #: Only the target tier, inside a defrost window: the engine does not alarm on it.
    in_defrost: bool = False
    alert: Alert | None = None
    acknowledgement: AlertEvent | None = None

    def duration(self, until: dt.datetime) -> dt.timedelta:
        return (self.end or until) - self.start


@dataclass
class UnitFigures:
    unit: Unit
    start: dt.datetime
    end: dt.datetime              # the range's end, or now if sooner
    observed_s: float = 0.0       # seconds with readings (the range less its offline time)
    out_s: float = 0.0            # of those, seconds in an excursion (not in a defrost window)
    excursions: list[Excursion] = field(default_factory=list)
    offline: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    defrosts: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    readings: int = 0             # from the rollups: every reading in the range
    min_c: float | None = None
    max_c: float | None = None

    @property
    def time_in_range(self) -> float | None:
        """The share of the observed time not in an excursion (None: nothing observed)."""
        if self.observed_s <= 0:
            return None
        return (self.observed_s - self.out_s) / self.observed_s

    @property
    def offline_s(self) -> float:
        return sum((b - a).total_seconds() for a, b in self.offline)

    @property
    def alarmed(self) -> list[Excursion]:
        """Every excursion but the defrosts'."""
        return [e for e in self.excursions if not e.in_defrost]

    @property
    def notable(self) -> list[Excursion]:
        """Those an inspector asks about: critical, alerted, or out longer than the alarm delay
        (a door opened for a delivery is an excursion too, and a year has thousands)."""
        delay = dt.timedelta(seconds=self.unit.alert_delay_s)
        return [e for e in self.alarmed if e.tier == "critical" or e.alert is not None
                or e.duration(self.end) >= delay]


def _epoch_sql(session, column: str) -> str:
    if session.get_bind().dialect.name == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    return f"CAST(strftime('%s', {column}) AS INTEGER)"


def _sql(statement: str):
    """A text query whose :a and :b are timestamps, bound as the models store them."""
    query = text(statement)
    names = [n for n in ("a", "b") if f":{n}" in statement]
    return query.bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))


def _ts(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.fromtimestamp(moment, UTC) if isinstance(moment, (int, float)) else moment


def _quiet_bounds(limits: Limits) -> tuple[float, float]:
    """Readings in [low, high] end every excursion and start none."""
    high = min(limits.target_max_c, limits.critical_max_c) - limits.hysteresis_c
    low = limits.min_c + limits.hysteresis_c if limits.min_c is not None else -1e9
    return low, high


def unit_figures(session, unit: Unit, site: Site, start: dt.datetime, end: dt.datetime,
                 now: dt.datetime, sensor_ids: list[int] | None = None) -> UnitFigures:
    """Time in range, excursions, offline periods and defrost windows of one unit."""
    settings = unit_settings(unit, site)
    limits = settings.limits
    until = min(end, now)
    figures = UnitFigures(unit, start, until)
    if until <= start:
        return figures
    figures.defrosts = settings.defrost_windows(start, until - dt.timedelta(microseconds=1))
    if sensor_ids is None:
        sensor_ids = session.execute(select(Sensor.id).where(Sensor.unit_id == unit.id)).scalars().all()
    silence = dt.timedelta(seconds=settings.expected_interval_s * settings.offline_after)
    if not sensor_ids:
        figures.offline = [(start, until)]
        return figures
    low, high = _quiet_bounds(limits)
    # Beyond these a reading starts an excursion; within [low, high] it ends any.
    over = min(limits.target_max_c, limits.critical_max_c)
    under = limits.min_c if limits.min_c is not None else -1e9
    first_bucket = _bucket(start)
    # Where to begin reading so that an excursion under way at ``start`` is seen whole: the
    # last quiet bucket before it (per sensor, each an index scan backwards).
    quiet_before = max(filter(None, (session.execute(
        select(Rollup.bucket_start).where(Rollup.sensor_id == sensor_id,
                                          Rollup.bucket_start < first_bucket,
                                          Rollup.max_c <= high, Rollup.min_c >= low)
        .order_by(Rollup.bucket_start.desc()).limit(1)).scalar() for sensor_id in sensor_ids)),
        default=None)
    scan_from = _bucket(quiet_before) if quiet_before is not None else first_bucket
    lower, upper = int(scan_from.timestamp()), int(until.timestamp())
    step = ROLLUP_SECONDS
    full = step // max(1, settings.expected_interval_s)
    ids = ",".join(str(int(i)) for i in sensor_ids)
    epoch = _epoch_sql(session, "bucket_start")
    stats = session.execute(
        select(func.sum(Rollup.count), func.min(Rollup.min_c), func.max(Rollup.max_c))
        .where(Rollup.sensor_id.in_(sensor_ids), Rollup.bucket_start >= first_bucket,
               Rollup.bucket_start < until)).one()
    figures.readings, figures.min_c, figures.max_c = int(stats[0] or 0), stats[1], stats[2]
    params = {"a": scan_from, "b": until, "over": over, "under": under, "low": low,
              "high": high, "full": full}
    # Only the buckets that matter, merged per 5 minutes: with a reading beyond a limit, fewer
    # readings than the interval promises, or none that would end an excursion. (Per sensor,
    # so a bucket another sensor settles may be read as not settled: more is read, not less.)
    found: dict[int, list] = {}
    for e, lo, hi, n in session.execute(_sql(
            f"SELECT {epoch}, min_c, max_c, count FROM rollups WHERE sensor_id IN ({ids}) "
            "AND bucket_start >= :a AND bucket_start < :b AND (max_c > :over OR min_c < :under "
            "OR count < :full OR min_c > :high OR max_c < :low)"), params):
        held = found.get(int(e))
        if held is None:
            found[int(e)] = [lo, hi, n]
        else:
            held[0], held[1], held[2] = min(held[0], lo), max(held[1], hi), held[2] + n
    present = session.execute(_sql(
        "SELECT COUNT(DISTINCT bucket_start), MIN(bucket_start), MAX(bucket_start) FROM rollups "
        f"WHERE sensor_id IN ({ids}) AND bucket_start >= :a AND bucket_start < :b"), params).one()
    wanted = [(lower, upper)] if not present[0] else []
    if present[0]:
        first_e, last_e = (int(_as_utc(present[1]).timestamp()),
                           int(_as_utc(present[2]).timestamp()))
        wanted += [(lower - step, first_e + 2 * step), (last_e - step, upper)]
        if present[0] < (last_e - first_e) // step + 1:  # buckets missing: where?
            wanted += [(int(prev) - step, int(nxt) + 2 * step) for prev, nxt in session.execute(_sql(
                f"SELECT prev, e FROM (SELECT e, LAG(e) OVER (ORDER BY e) AS prev FROM "
                f"(SELECT DISTINCT {epoch} AS e FROM rollups WHERE sensor_id IN ({ids}) "
                "AND bucket_start >= :a AND bucket_start < :b) AS present) AS steps "
                f"WHERE e - prev > {step}"), params)]
    wanted += _spans_to_read(found, over, under, low, high, full)
    for moment in (start, until - dt.timedelta(microseconds=1)):  # the range's own ends
        e = int(_bucket(moment).timestamp())
        wanted.append((e - step, e + 2 * step))
    spans = [(max(a, lower), min(z, upper)) for a, z in _merge(wanted)]
    spans = [(a, z) for a, z in spans if a < z]
    before = session.execute(
        select(func.max(Reading.measured_at)).where(Reading.sensor_id.in_(sensor_ids),
                                                   Reading.measured_at < start,
                                                   Reading.measured_at >= start - silence)).scalar()
    walker = _Walker(limits, start, until, silence, before)
    for index, (a, z), rows in _read_spans(session, sensor_ids, spans):
        if not rows:  # raw readings gone (past retention): the buckets' extremes stand in
            rows = _from_rollups(session, sensor_ids, _ts(a), _ts(z), low, high)
        # Between spans every bucket is present, full and within the limits, and the one
        # before closed any excursion: heard all along, nothing open.
        walker.feed(rows, _ts(a) if a > lower else None)
    walker.finish()
    figures.excursions = walker.excursions
    figures.offline = walker.offline
    _mark_defrost(figures, settings.alert_delay_s)
    figures.observed_s = (until - start).total_seconds() - sum(
        (b - a).total_seconds() for a, b in figures.offline)
    out = _clip([(e.start, e.end or until) for e in figures.excursions if not e.in_defrost],
                start, until)
    out = _subtract(out, figures.offline)
    figures.out_s = sum((b - a).total_seconds() for a, b in out)
    return figures


def _bucket(moment: dt.datetime) -> dt.datetime:
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % ROLLUP_SECONDS, UTC)


def _as_utc(value) -> dt.datetime:
    """A timestamp as a driver returns it from a text query (SQLite: text) as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _spans_to_read(found: dict, over, under, low, high, full) -> list[tuple[int, int]]:
    """The [a, b) epoch spans to read reading by reading, from the buckets that matter
    (``found``: epoch -> [lowest, highest, readings]; every other bucket is full and settles
    any excursion): each run of buckets with a reading beyond a limit, through the next bucket
    (which settles it; nothing can be open before the run, whose bucket before settled or
    started nothing); each bucket short of readings, with a bucket either side."""
    step = ROLLUP_SECONDS
    wanted = []
    run_from = run_last = None
    for e in sorted(found):
        lo, hi, n = found[e]
        if n < full:
            wanted.append((e - step, e + 2 * step))
        beyond = hi > over or lo < under
        unsettled = lo > high or hi < low
        if run_from is not None and e == run_last + step and (beyond or unsettled):
            run_last = e
            continue
        if run_from is not None:  # the bucket after the run settled it: read through it
            wanted.append((run_from, run_last + 2 * step))
            run_from = None
        if beyond:
            run_from = run_last = e
    if run_from is not None:
        wanted.append((run_from, run_last + 2 * step))
    return wanted


#: Spans read by one statement (three parameters each).
SPANS_PER_QUERY = 1000


def _read_spans(session, sensor_ids, spans):
    """(index, span, readings in time order) for each span: one statement per thousand spans,
    the spans a VALUES list joined to the readings by their (sensor, time) index."""
    from sensors.store import sqlite_timestamp
    sqlite = session.get_bind().dialect.name == "sqlite"
    ids = ",".join(str(int(i)) for i in sensor_ids)

    def stamp(epoch: int):
        moment = dt.datetime.fromtimestamp(epoch, UTC)
        return sqlite_timestamp(moment) if sqlite else moment

    for first in range(0, len(spans), SPANS_PER_QUERY):
        chunk = spans[first:first + SPANS_PER_QUERY]
        params, rows = {}, []
        for i, (a, z) in enumerate(chunk):
            params.update({f"i{i}": i, f"a{i}": stamp(a), f"z{i}": stamp(z)})
            rows.append(f"(:i{i}, :a{i}, :z{i})")
        found: dict[int, list] = defaultdict(list)
        for i, at, value in session.execute(text(
                f"WITH spans (i, a, z) AS (VALUES {', '.join(rows)}) "
                "SELECT spans.i, readings.measured_at, readings.temperature_c FROM spans "
                f"JOIN readings ON readings.sensor_id IN ({ids}) "
                "AND readings.measured_at >= spans.a AND readings.measured_at < spans.z"), params):
            found[int(i)].append((_as_utc(at), value))
        for i, span in enumerate(chunk):
            readings = found.get(i, [])
            readings.sort(key=lambda r: r[0])
            yield first + i, span, readings


def _from_rollups(session, sensor_ids, a, b, low, high):
    rows = session.execute(
        select(Rollup.bucket_start, Rollup.min_c, Rollup.max_c)
        .where(Rollup.sensor_id.in_(sensor_ids), Rollup.bucket_start >= a, Rollup.bucket_start < b)
        .order_by(Rollup.bucket_start)).all()
    return [(at, lo if lo < low and hi <= high else hi) for at, lo, hi in rows]


class _Walker:
    """Readings in time order through the breach rules: excursions and silences."""

    def __init__(self, limits: Limits, start, until, silence, before):
        self.limits, self.start, self.until, self.silence = limits, start, until, silence
        self.open: frozenset = frozenset()
        self.current: Excursion | None = None
        self.excursions: list[Excursion] = []
        self.offline: list[tuple[dt.datetime, dt.datetime]] = []
        #: The last reading taken (ordering) and the last one heard (silences).
        self.last: dt.datetime | None = None
        self.heard: dt.datetime | None = before

    def feed(self, rows, heard_until: dt.datetime | None = None) -> None:
        if heard_until is not None and (self.heard is None or heard_until > self.heard):
            self.heard = heard_until
        for at, value in rows:
            if self.last is not None and at <= self.last:
                continue  # the same instant from another sensor: the first one counts
            self.last = at
            if at > self.start:
                self._silence(at)
            self.heard = at if self.heard is None or at > self.heard else self.heard
            self._step(at, value)

    def _silence(self, at: dt.datetime) -> None:
        if self.heard is None:
            self.offline.append((self.start, at))  # nothing heard before the range
        elif at - self.heard > self.silence:
            self.offline.append((max(self.start, self.heard + self.silence), at))

    def _step(self, at: dt.datetime, value: float) -> None:
        now_open = self.limits.step(self.open, value)
        if now_open and not self.open:
            tier = "critical" if "critical" in now_open else ("low" if "low" in now_open
                                                               else "high")
            self.current = Excursion(tier, at, None, value)
        elif now_open and self.current is not None:
            if "critical" in now_open:
                self.current.tier = "critical"
            if self.current.tier == "low":
                self.current.peak_c = min(self.current.peak_c, value)
            else:
                self.current.peak_c = max(self.current.peak_c, value)
        if self.open and not now_open and self.current is not None:
            self.current.end = at
            if at > self.start:
                self.excursions.append(self.current)
            self.current = None
        self.open = now_open

    def finish(self) -> None:
        if self.current is not None:
            self.excursions.append(self.current)
        if self.heard is None:
            self.offline.append((self.start, self.until))
        elif self.until - self.heard > self.silence:
            self.offline.append((max(self.start, self.heard + self.silence), self.until))
        self.offline = [(a, b) for a, b in _merge(self.offline) if a < b]


def _merge(intervals):
    out: list[list] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _clip(intervals, start, end):
    return [(max(a, start), min(b, end)) for a, b in intervals if b > start and a < end]


def _subtract(intervals, holes):
    out = []
    for a, b in intervals:
        pieces = [(a, b)]
        for ha, hb in holes:
            pieces = [p for x, y in pieces for p in ((x, min(y, ha)), (max(x, hb), y)) if p[0] < p[1]]
        out += pieces
    return out


def _mark_defrost(figures: UnitFigures, delay_s: int) -> None:
    """A target-tier excursion that began in a defrost window and ended within the alarm
    delay of its close is the defrost itself, not a fault (the engine does not alarm on it)."""
    grace = dt.timedelta(seconds=delay_s)
    for exc in figures.excursions:
        if exc.tier != "high" or exc.end is None:
            continue
        exc.in_defrost = any(ws <= exc.start < we and exc.end <= we + grace
                             for ws, we in figures.defrosts)


def link_alerts(session, figures: list[UnitFigures]) -> None:
    """Each excursion's temperature alert (the one opened during it) and its acknowledgement."""
    unit_ids = [f.unit.id for f in figures if f.excursions]
    if not unit_ids:
        return
    first = min(e.start for f in figures for e in f.excursions)
    alerts = session.execute(
        select(Alert).where(Alert.unit_id.in_(unit_ids), Alert.kind == "temperature",
                            Alert.opened_at >= first)
        .options(selectinload(Alert.events).joinedload(AlertEvent.actor))
        .order_by(Alert.opened_at)).scalars().all()
    by_unit = defaultdict(list)
    for alert in alerts:
        by_unit[alert.unit_id].append(alert)
    for f in figures:
        for exc in f.excursions:
            stop = exc.end or f.end
            exc.alert = next((a for a in by_unit[f.unit.id] if exc.start <= a.opened_at <= stop),
                             None)
            if exc.alert is not None:
                exc.acknowledgement = next((e for e in exc.alert.events
                                            if e.kind == "acknowledged"), None)


def units_figures(session, site: Site, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                  unit_ids: list[int] | None = None) -> list[UnitFigures]:
    query = select(Unit).where(Unit.site_id == site.id).order_by(Unit.name)
    if unit_ids is not None:
        query = query.where(Unit.id.in_(unit_ids))
    units = session.execute(query).scalars().all()
    sensors: dict[int, list[int]] = defaultdict(list)
    for sensor_id, unit_id in session.execute(select(Sensor.id, Sensor.unit_id).where(
            Sensor.unit_id.in_([u.id for u in units]))):
        sensors[unit_id].append(sensor_id)
    out = [unit_figures(session, u, site, start, end, now, sensors[u.id]) for u in units]
    link_alerts(session, out)
    return out


# --- hold timers, alerts, calibration -------------------------------------------------------

def timer_status(expires_at, outcome: str | None, recorded_at, now: dt.datetime) -> str:
    """served (in time) · served_late · discarded · expired (unanswered) · running."""
    if outcome is None:
        return "expired" if expires_at <= now else "running"
    if outcome == "served":
        return "served" if recorded_at <= expires_at else "served_late"
    return "discarded"


def timer_figures(session, site: Site, span: Period, now: dt.datetime,
                  every_row: bool = False, latest: int | None = None) -> dict:
    """Timers started in range: served in time, served late, discarded, expired unanswered.

    Counted from plain rows (a year holds tens of thousands of timers); ``rows`` holds the
    timers loaded whole: all of them with ``every_row``, else those not served in time.
    """
    in_range = (HoldTimer.site_id == site.id, HoldTimer.started_at >= span.start,
                HoldTimer.started_at < span.end)
    last = (select(TimerOutcome.timer_id, func.max(TimerOutcome.id).label("outcome_id"))
            .join(HoldTimer, HoldTimer.id == TimerOutcome.timer_id).where(*in_range)
            .group_by(TimerOutcome.timer_id).subquery())
    found = session.execute(
        select(HoldTimer.id, HoldTimer.expires_at, TimerOutcome.outcome, TimerOutcome.recorded_at)
        .where(*in_range).outerjoin(last, last.c.timer_id == HoldTimer.id)
        .outerjoin(TimerOutcome, TimerOutcome.id == last.c.outcome_id)
        .order_by(HoldTimer.started_at, HoldTimer.id)).all()
    statuses = {tid: timer_status(expires, outcome, at, now)
                for tid, expires, outcome, at in found}
    counts = Counter(statuses.values())
    wanted = list(statuses) if every_row else [t for t, st in statuses.items() if st != "served"]
    if latest is not None and not every_row:
        wanted = wanted[-latest:]
    rows = []
    for start in range(0, len(wanted), 5000):
        for timer in session.execute(
                select(HoldTimer).where(HoldTimer.id.in_(wanted[start:start + 5000]))
                .options(selectinload(HoldTimer.outcomes).joinedload(TimerOutcome.recorded_by),
                         joinedload(HoldTimer.started_by))).scalars():
            rows.append({"timer": timer, "outcome": timer.outcomes[-1] if timer.outcomes else None,
                         "status": statuses[timer.id]})
    rows.sort(key=lambda r: (r["timer"].started_at, r["timer"].id))
    return {"rows": rows, "started": len(statuses), "counts": counts}


def alert_figures(session, site: Site, span: Period) -> dict:
    """Alerts opened in range: acknowledged (and how fast), escalated, resolved, still open."""
    alerts = session.execute(
        select(Alert).where(Alert.site_id == site.id, Alert.opened_at >= span.start,
                            Alert.opened_at < span.end)
        .options(selectinload(Alert.events).joinedload(AlertEvent.actor),
                 joinedload(Alert.state))
        .order_by(Alert.opened_at)).scalars().all()
    rows, waits = [], []
    counts = Counter()
    for alert in alerts:
        ack = next((e for e in alert.events if e.kind == "acknowledged"), None)
        escalated = any(e.kind == "escalated" for e in alert.events)
        wait = (ack.at - alert.opened_at) if ack else None
        if wait is not None:
            waits.append(wait.total_seconds())
        counts["raised"] += 1
        counts["acknowledged"] += ack is not None
        counts["escalated"] += escalated
        counts["resolved"] += alert.state.status == "resolved"
        counts["open"] += alert.state.status != "resolved"
        rows.append({"alert": alert, "ack": ack, "escalated": escalated, "wait": wait})
    return {"rows": rows, "counts": counts,
            "median_ack_s": statistics.median(waits) if waits else None,
            "longest_ack_s": max(waits) if waits else None,
            "by_kind": Counter(a.kind for a in alerts)}


def calibration_figures(session, site: Site, span: Period, now: dt.datetime,
                        every_days: int) -> dict:
    from app.calibration.operations import log, subjects
    checks = log(session, site, span.start, span.end)
    due = [s for s in subjects(session, site, now, every_days) if s.due]
    return {"checks": list(reversed(checks)), "passed": sum(c.passed for c in checks),
            "failed": sum(not c.passed for c in checks), "due_now": due}


# --- the whole report -----------------------------------------------------------------------

def compliance_report(session, site: Site, span: Period, now: dt.datetime,
                      calibration_every_days: int = 30,
                      unit_ids: list[int] | None = None, on_screen: bool = False) -> dict:
    """Every figure of the report for one site and range (``unit_ids``: these units only;
    ``on_screen``: the latest timers not served in time only, as the page lists them)."""
    return {
        "site": site, "period": span, "now": now,
        "checklists": checklist_figures(session, site, span, now),
        "rules": rule_figures(session, site, span),
        "fails": failed_items(session, site, span),
        "units": units_figures(session, site, span.start, span.end, now, unit_ids),
        "timers": timer_figures(session, site, span, now, latest=100 if on_screen else None),
        "alerts": alert_figures(session, site, span),
        "calibration": calibration_figures(session, site, span, now, calibration_every_days),
        "rules_status": rules_status(session, site, now),
    }


def group_overview(session, sites: list[Site], preset: str, now: dt.datetime,
                   first: str | None = None, last: str | None = None) -> list[dict]:
    """For an owner or admin: each site's headline figures over the same preset (each in its
    own days and time zone) — checklist slots due, done, on time, missed, failed items, alerts
    raised and still open, and the rules' review date."""
    from app.models import AlertState
    rows = []
    for site in sites:
        span = period(preset, now, site.timezone, first, last)
        checklists = checklist_figures(session, site, span, now)
        alerts = alert_figures(session, site, span)
        open_now = session.scalar(select(func.count()).select_from(AlertState).where(
            AlertState.site_id == site.id, AlertState.status != "resolved"))
        rows.append({"site": site, "span": span, "total": checklists["total"],
                     "fails": len(failed_items(session, site, span)),
                     "awaiting": len(checklists["awaiting"]),
                     "alerts": alerts["counts"]["raised"], "open": open_now,
                     "rules": rules_status(session, site, now)})
    return rows


#: Where the last verification's result is kept (in the instance folder).
VERIFIED_FILE = "audit-verified.json"


def audit_result(session, record_in: str | None = None, now: dt.datetime | None = None) -> dict:
    """``flask audit verify``'s check now: links checked, problems found, the head checked
    against; kept in ``record_in`` (the instance folder) for documents printed after it."""
    import json
    from pathlib import Path

    from app import audit
    from app.models import AuditHead
    head = session.get(AuditHead, 1)
    count, problems = audit.verify(session)
    result = {"at": (now or dt.datetime.now(UTC)).isoformat(), "links": count,
              "seq": head.seq if head else 0, "hash": head.hash if head else "",
              "problems": [str(p) for p in problems][:200], "problem_count": len(problems),
              "ok": not problems}
    if record_in:
        path = Path(record_in) / VERIFIED_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(result))
        temporary.replace(path)
    return dict(result, at=dt.datetime.fromisoformat(result["at"]), since=0, fresh=True)


def last_audit_result(session, record_in: str) -> dict | None:
    """The last verification kept, with how many links were added since (None: never run).

    Verifying re-reads every record and re-hashes every reading: minutes for a year of a big
    kitchen, too long for each printed report. The document says when the chain was last
    checked, up to which link, and how many came after it.
    """
    import json
    from pathlib import Path

    from app.models import AuditHead
    try:
        result = json.loads((Path(record_in) / VERIFIED_FILE).read_text())
    except (OSError, ValueError):
        return None
    head = session.get(AuditHead, 1)
    seq, digest = (head.seq, head.hash) if head else (0, "")
    result["at"] = dt.datetime.fromisoformat(result["at"])
    result["since"] = max(0, seq - result["seq"])
    result["fresh"] = (seq, digest) == (result["seq"], result["hash"])
    return result


# --- a unit's page and today at a glance ----------------------------------------------------

def unit_page_figures(session, unit: Unit, site: Site, now: dt.datetime) -> dict:
    """A unit now (state, last reading, sensors) and its excursions of the last 30 days."""
    from app.alerts.engine import unit_state
    sensors = session.execute(select(Sensor).where(Sensor.unit_id == unit.id)
                              .order_by(Sensor.key)).scalars().all()
    month = unit_figures(session, unit, site, now - dt.timedelta(days=30), now, now,
                         [s.id for s in sensors])
    link_alerts(session, [month])
    return {"state": unit_state(session, unit, site, now), "sensors": sensors, "month": month,
            "excursions": list(reversed(month.notable))[:20]}


def glance_figures(session, site: Site, now: dt.datetime) -> dict:
    """The head chef's morning: what is due or overdue, each unit's state, open alerts, runs to
    verify, timers running and yesterday's score."""
    from app.alerts.engine import unit_state
    from app.alerts.page import banner_alerts
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import due_today
    from app.timers.operations import timers_context
    entries = due_today(session, site, now, current_definitions(session, site.id))
    units = session.execute(select(Unit).where(Unit.site_id == site.id)
                            .order_by(Unit.name)).scalars().all()
    states = {u.id: unit_state(session, u, site, now) for u in units}
    to_verify = session.execute(
        select(Run).join(Submission).outerjoin(Verification)
        .where(Run.site_id == site.id, Verification.id.is_(None))
        .options(joinedload(Run.definition), joinedload(Run.submission)
                 .joinedload(Submission.submitted_by))
        .order_by(Run.slot_start.desc()).limit(10)).scalars().all()
    waiting = session.scalar(select(func.count()).select_from(Run).join(Submission)
                             .outerjoin(Verification)
                             .where(Run.site_id == site.id, Verification.id.is_(None)))
    today = now.astimezone(ZoneInfo(site.timezone)).date()
    yesterday = period("yesterday", now, site.timezone)
    score = Tally()
    for entry in slot_entries(session, site, yesterday, now):
        score.add(entry.status)
    return {"due": [e for e in entries if e.status in ("overdue", "due", "in_progress")],
            "units": units, "states": states, "alerts": banner_alerts(session, site.id),
            "to_verify": to_verify, "waiting": waiting, "today": today,
            "timers": timers_context(session, site, now)["timers"], "yesterday": yesterday,
            "score": score}
