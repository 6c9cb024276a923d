"""When checklist runs are due: schedules in site-local time, turned into UTC slots.

Pure functions: no database, no clock. Wall-clock times are interpreted in the
site's zone on each local date, so a run "at 11:00" stays at 11:00 across DST.
A time that does not exist on a spring-forward day moves forward by the gap; a
time that occurs twice on a fall-back day means its first occurrence.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleError(ValueError):
    """A schedule in a checklist definition is malformed."""


@dataclass(frozen=True)
class Slot:
    schedule_key: str
    name: dict
    start: dt.datetime      # UTC
    deadline: dt.datetime   # UTC

    def status(self, now: dt.datetime, submitted: bool, verified: bool, started: bool) -> str:
        """upcoming · due · in_progress · overdue · submitted · verified."""
        if verified:
            return "verified"
        if submitted:
            return "submitted"
        if now < self.start:
            return "upcoming"
        if now >= self.deadline:
            return "overdue"
        return "in_progress" if started else "due"


def parse_hhmm(value, where: str) -> dt.time:
    try:
        hours, minutes = str(value).split(":")
        return dt.time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise ScheduleError(f"{where}: {value!r} is not a time like 11:00") from None


def validate(schedule: dict, where: str) -> dict:
    """Check one schedule entry and return it normalised; raise ScheduleError."""
    if not isinstance(schedule, dict) or not schedule.get("key"):
        raise ScheduleError(f"{where}: each schedule needs a key")
    where = f"{where} schedule {schedule['key']!r}"
    out = {"key": str(schedule["key"]), "name": schedule.get("name") or {"en": schedule["key"]}}
    window = schedule.get("window_minutes", 30)
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise ScheduleError(f"{where}: window_minutes must be a positive whole number")
    out["window_minutes"] = window
    if "at" in schedule:
        out["at"] = parse_hhmm(schedule["at"], where).strftime("%H:%M")
    elif "every_minutes" in schedule:
        every = schedule["every_minutes"]
        if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
            raise ScheduleError(f"{where}: every_minutes must be a positive whole number")
        start = parse_hhmm(schedule.get("from"), where)
        until = parse_hhmm(schedule.get("until"), where)
        if until < start:
            raise ScheduleError(f"{where}: until is before from")
        out.update(every_minutes=every, **{"from": start.strftime("%H:%M"),
                                           "until": until.strftime("%H:%M")})
    else:
        raise ScheduleError(f"{where}: give either 'at' or 'every_minutes' with 'from' and 'until'")
    days = schedule.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise ScheduleError(f"{where}: days must be a list drawn from {', '.join(DAYS)}")
    out["days"] = [d for d in DAYS if d in days]
    return out


def local_to_utc(day: dt.date, wall: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock time on a local date (gaps move forward)."""
    naive = dt.datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # In a spring-forward gap the wall time does not round-trip: fold=0 reads it with
    # the pre-transition offset, which lands after the gap; that is the forward shift.
    return first


def slots_for_day(schedules: list[dict], day: dt.date, timezone: str) -> list[Slot]:
    """All slots of the given schedules on one site-local date, in time order."""
    tz = ZoneInfo(timezone)
    slots = []
    for schedule in schedules:
        if DAYS[day.weekday()] not in schedule.get("days", DAYS):
            continue
        window = dt.timedelta(minutes=schedule["window_minutes"])
        if "at" in schedule:
            walls = [parse_hhmm(schedule["at"], schedule["key"])]
        else:
            start = parse_hhmm(schedule["from"], schedule["key"])
            until = parse_hhmm(schedule["until"], schedule["key"])
            step = dt.timedelta(minutes=schedule["every_minutes"])
            cursor, end = dt.datetime.combine(day, start), dt.datetime.combine(day, until)
            walls = []
            while cursor <= end:
                walls.append(cursor.time())
                cursor += step
        for wall in walls:
            start_utc = local_to_utc(day, wall, tz)
            slots.append(Slot(schedule["key"], schedule["name"], start_utc, start_utc + window))
    return sorted(slots, key=lambda s: (s.start, s.schedule_key))


def local_date(now: dt.datetime, timezone: str) -> dt.date:
    return now.astimezone(ZoneInfo(timezone)).date()
