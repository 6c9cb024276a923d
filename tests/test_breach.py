"""The breach function at its edges, and its properties."""
import datetime as dt

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from app.alerts.breach import (ALARM, CRITICAL, DEFROST, OFFLINE, OK, WARNING, DefrostWindow,
                               Settings, evaluate)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
FRIDGE = Settings(target_max_c=5.0, critical_max_c=8.0, min_c=0.0, alert_delay_s=1800,
                  critical_delay_s=300, hysteresis_c=0.5, expected_interval_s=60, offline_after=5)


def trace(*points, start=T0, step=60):
    """Readings every ``step`` seconds from ``start``."""
    return [(start + dt.timedelta(seconds=i * step), v) for i, v in enumerate(points)]


def at(seconds):
    return T0 + dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("value,expected", [(5.0, OK), (5.01, WARNING), (0.0, OK), (-0.01, WARNING),
                                            (8.0, WARNING), (8.01, WARNING)])
def test_exactly_at_a_limit_is_inside(value, expected):
    assert evaluate(FRIDGE, [(T0, value)], T0).state == expected


@pytest.mark.parametrize("elapsed,expected", [(1799, WARNING), (1800, ALARM)])
def test_target_alarms_only_after_its_delay(elapsed, expected):
    # Readings every minute, so the unit is not offline: the delay alone decides.
    readings = [(at(s), 6.0) for s in range(0, elapsed + 1, 60)]
    assert evaluate(FRIDGE, readings, at(elapsed)).state == expected


def _shown_along(settings, readings):
    """The state shown after each reading, fed one at a time as ingest does."""
    shown, state = [], None
    for reading in readings:
        state = evaluate(settings, [reading], reading[0], previous=state)
        shown.append(state.state)
    return shown


def test_the_delay_runs_out_with_no_new_reading():
    """The sweep: time alone turns a warning into an alarm (last value holds)."""
    settings = Settings(target_max_c=5.0, critical_max_c=8.0, alert_delay_s=600,
                        expected_interval_s=3600)
    assert evaluate(settings, [(T0, 6.0)], at(599)).state == WARNING
    state = evaluate(settings, [(T0, 6.0)], at(601))
    assert state.state == ALARM and state.breach.alarmed_at == at(600)


@pytest.mark.parametrize("elapsed,expected", [(299, WARNING), (300, CRITICAL)])
def test_critical_alarms_after_its_short_delay(elapsed, expected):
    readings = [(at(s), 9.0) for s in range(0, elapsed + 1, 60)] + [(at(elapsed), 9.0)]
    assert evaluate(FRIDGE, readings, at(elapsed)).state == expected


def test_critical_at_once_when_its_delay_is_zero():
    settings = Settings(target_max_c=5.0, critical_max_c=8.0, critical_delay_s=0)
    assert evaluate(settings, [(T0, 8.5)], T0).state == CRITICAL


def test_a_door_opening_does_not_alarm():
    spike = [4.0] * 5 + [7.5, 7.9, 6.0, 5.2, 4.6, 4.4] + [4.0] * 40
    assert ALARM not in _shown_along(FRIDGE, trace(*spike))
    assert evaluate(FRIDGE, trace(*spike), at(60 * (len(spike) - 1))).state == OK


@pytest.mark.parametrize("recovery,expected", [(4.5, OK), (4.51, ALARM), (4.9, ALARM)])
def test_recovery_needs_the_hysteresis(recovery, expected):
    readings = [(at(s), 6.0) for s in range(0, 1801, 60)] + [(at(1860), recovery)]
    assert evaluate(FRIDGE, readings, at(1860)).state == expected


def test_hovering_at_the_limit_does_not_reset_the_delay():
    readings = [(at(s), 5.2 if (s // 60) % 2 else 4.8) for s in range(0, 1861, 60)]
    assert evaluate(FRIDGE, readings, at(1860)).state == ALARM


def test_a_fridge_that_freezes_the_salad_alarms_low():
    readings = [(at(s), -1.0) for s in range(0, 1801, 60)]
    state = evaluate(FRIDGE, readings, at(1800))
    assert state.state == ALARM and state.breach.tier == "low" and state.breach.peak == -1.0


@pytest.mark.parametrize("silence,expected", [(300, OK), (301, OFFLINE)])
def test_offline_after_n_intervals_of_silence(silence, expected):
    assert evaluate(FRIDGE, [(T0, 4.0)], at(silence)).state == expected


LONDON_DEFROST = Settings(target_max_c=-18.0, critical_max_c=-12.0, alert_delay_s=900,
                          critical_delay_s=0, expected_interval_s=60,
                          defrost=(DefrostWindow(dt.time(2, 0), 30),), timezone="Europe/London")


def night(hh, mm, ss=0, day=27, month=11):
    from zoneinfo import ZoneInfo
    return dt.datetime(2026, month, day, hh, mm, ss, tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)


@pytest.mark.parametrize("moment,expected", [((1, 59, 59), OK), ((2, 0, 0), DEFROST),
                                             ((2, 29, 59), DEFROST), ((2, 30, 0), WARNING),
                                             ((2, 44, 59), WARNING), ((2, 45, 0), ALARM)])
def test_defrost_suppresses_the_target_tier_at_its_edges(moment, expected):
    """Warm from 02:00; the 15-minute delay only starts counting when defrost ends at 02:30."""
    readings = [(night(1, m), -19.0) for m in range(50, 60)] + [(night(2, m), -14.0) for m in range(60)]
    now = night(*moment)
    state = evaluate(LONDON_DEFROST, [r for r in readings if r[0] <= now], now)
    assert state.state == expected


def test_defrost_never_suppresses_the_critical_tier():
    readings = [(night(2, 0), -19.0), (night(2, 5), -10.0)]
    assert evaluate(LONDON_DEFROST, readings, night(2, 5)).state == CRITICAL


def test_defrost_windows_follow_local_time_across_dst():
    # Summer: 02:00 BST is 01:00 UTC.
    summer = night(2, 10, day=1, month=7)
    assert summer.hour == 1 and LONDON_DEFROST.in_defrost(summer)
    assert not LONDON_DEFROST.in_defrost(summer - dt.timedelta(hours=1, minutes=11))
    # The autumn change day: 02:00 local happens once (after 01:00 BST repeats).
    change = night(2, 15, day=25, month=10)
    assert LONDON_DEFROST.in_defrost(change)


def test_late_readings_do_not_rewrite_the_past():
    first = evaluate(FRIDGE, trace(4.0, 4.1, 4.2), at(120))
    again = evaluate(FRIDGE, [(at(30), 12.0)], at(120), previous=first)
    assert again.state == OK and again.last_value == 4.2


def test_incremental_evaluation_matches_one_pass():
    readings = trace(*([4.0] * 3 + [6.0] * 40 + [4.0] * 5))
    whole = evaluate(FRIDGE, readings, readings[-1][0])
    state = None
    for i in range(0, len(readings), 7):
        chunk = readings[i:i + 7]
        state = evaluate(FRIDGE, chunk, chunk[-1][0], previous=state)
    assert state.state == whole.state
    assert (state.last_value, state.last_reading_at) == (whole.last_value, whole.last_reading_at)


values = st.floats(min_value=-5, max_value=5.0, allow_nan=False)


@hsettings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=200))
def test_a_trace_inside_the_limits_never_alarms(points):
    points = [max(p, 0.0) for p in points]
    readings = trace(*points)
    state = evaluate(FRIDGE, readings, readings[-1][0])
    assert state.state == OK
    assert not {ALARM, CRITICAL, WARNING} & set(_shown_along(FRIDGE, readings))


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=8.01, max_value=60, allow_nan=False), min_size=7, max_size=100),
       st.integers(min_value=0, max_value=600))
def test_above_critical_for_longer_than_its_delay_always_alarms(points, delay):
    settings = Settings(target_max_c=5.0, critical_max_c=8.0, critical_delay_s=delay)
    readings = trace(*points, step=max(1, (delay // 5) + 1))
    now = readings[0][0] + dt.timedelta(seconds=delay)
    readings = [r for r in readings if r[0] <= now] or readings[:1]
    assert evaluate(settings, readings, now).state == CRITICAL


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-30, max_value=30, allow_nan=False), min_size=1, max_size=120),
       st.integers(min_value=1, max_value=7))
def test_chunked_evaluation_agrees_with_one_pass(points, chunk):
    readings = trace(*points)
    whole = evaluate(FRIDGE, readings, readings[-1][0])
    state = None
    for i in range(0, len(readings), chunk):
        part = readings[i:i + chunk]
        state = evaluate(FRIDGE, part, part[-1][0], previous=state)
    assert state.state == whole.state
    assert (state.breach and state.breach.tier) == (whole.breach and whole.breach.tier)
