"""Schedules in site-local time, across DST."""
import datetime as dt

import pytest

from app.checklists.schedules import ScheduleError, Slot, local_to_utc, slots_for_day, validate
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
LONDON = "Europe/London"
SCHEDULES = [validate(s, "test") for s in [
    {"key": "before_lunch", "at": "11:00", "window_minutes": 45},
    {"key": "lunch", "every_minutes": 120, "from": "12:30", "until": "14:30", "window_minutes": 30},
    {"key": "closing", "at": "22:30", "window_minutes": 60, "days": ["fri", "sat"]},
]]


def test_slots_on_a_winter_day_are_utc_equal_to_local():
    day = dt.date(2026, 11, 27)  # a Friday, GMT
    slots = slots_for_day(SCHEDULES, day, LONDON)
    assert [(s.schedule_key, s.start.strftime("%H:%M")) for s in slots] == [
        ("before_lunch", "11:00"), ("lunch", "12:30"), ("lunch", "14:30"), ("closing", "22:30")]
    assert slots[0].deadline - slots[0].start == dt.timedelta(minutes=45)


def test_summer_time_shifts_utc_but_not_wall_clock():
    slots = slots_for_day(SCHEDULES, dt.date(2026, 7, 1), LONDON)  # a Wednesday, BST
    assert slots[0].start == dt.datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert all(s.schedule_key != "closing" for s in slots)


def test_spring_forward_gap_moves_forward():
    # 2026-03-29 01:30 does not exist in London; it happens at 02:30 BST = 01:30 UTC.
    start = local_to_utc(dt.date(2026, 3, 29), dt.time(1, 30), ZoneInfo(LONDON))
    assert start == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert start.astimezone(ZoneInfo(LONDON)).strftime("%H:%M") == "02:30"


def test_fall_back_ambiguous_time_is_the_first():
    start = local_to_utc(dt.date(2026, 10, 25), dt.time(1, 30), ZoneInfo(LONDON))
    assert start == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST


def test_every_day_has_its_slots_across_dst_changes():
    for day in (dt.date(2026, 3, 29), dt.date(2026, 10, 25)):
        slots = slots_for_day(SCHEDULES[:2], day, LONDON)
        assert [s.start.astimezone(ZoneInfo(LONDON)).strftime("%H:%M") for s in slots] == \
            ["11:00", "12:30", "14:30"]


@pytest.mark.parametrize("minutes_after,started,expected", [
    (-1, False, "upcoming"), (0, False, "due"), (10, True, "in_progress"),
    (44, False, "due"), (45, False, "overdue"), (45, True, "overdue")])
def test_slot_status_edges(minutes_after, started, expected):
    start = dt.datetime(2026, 11, 27, 11, tzinfo=UTC)
    slot = Slot("x", {}, start, start + dt.timedelta(minutes=45))
    now = start + dt.timedelta(minutes=minutes_after)
    assert slot.status(now, submitted=False, verified=False, started=started) == expected
    assert slot.status(now, submitted=True, verified=False, started=True) == "submitted"
    assert slot.status(now, submitted=True, verified=True, started=True) == "verified"


@pytest.mark.parametrize("bad,message", [
    ({"key": "a", "at": "25:00"}, "not a time"),
    ({"key": "a"}, "either 'at' or 'every_minutes'"),
    ({"key": "a", "at": "11:00", "window_minutes": 0}, "window_minutes"),
    ({"key": "a", "every_minutes": 60, "from": "14:00", "until": "12:00"}, "until is before from"),
    ({"key": "a", "at": "11:00", "days": ["funday"]}, "days"),
    ({"at": "11:00"}, "needs a key")])
def test_bad_schedules_are_refused_with_a_reason(bad, message):
    with pytest.raises(ScheduleError, match=message):
        validate(bad, "file.yaml")
