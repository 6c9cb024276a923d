"""Storing readings: idempotent, unit-correct, dead letters for bad input, rollups."""
import datetime as dt
import json

from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.models import db
from sensors.models import DeadLetter, Reading, Rollup, Sensor
from sensors.store import Message, bucket_of, choose_time, sqlite_timestamp, store_batch

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def msg(topic, payload, at=T0, **kw):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode() if not isinstance(payload, str) else payload.encode()
    return Message(topic, payload, at, **kw)


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_readings_are_stored_once_even_when_redelivered(ctx):
    batch = [msg("brigade/fridge1/reading", {"t": 4.0 + i / 10, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()})
             for i in range(20)]
    first = store_batch(db.session, batch)
    db.session.commit()
    again = store_batch(db.session, batch[5:] + [m for m in batch[:5]])
    db.session.commit()
    assert (first.stored, again.stored, again.duplicates) == (20, 0, 20)
    assert count(Reading) == 20
    sensor = db.session.execute(select(Sensor)).scalar_one()
    assert sensor.key.startswith("brigade/") and sensor.unit_id is None  # appears unassigned
    assert sensor.last_temperature_c == pytest.approx(5.9)
    assert sensor.last_reading_at == T0 + dt.timedelta(seconds=19)


def test_redelivered_message_without_device_time_is_not_stored_twice(ctx):
    def shelly(at, mid, dup=False, value="4.5", session="broker:1883/brigade-ingest"):
        return msg("shellies/ht-1/sensor/temperature", value, at=at, dup=dup, mid=mid, qos=1,
                   session=session)
    first = store_batch(db.session, [shelly(T0, 7), shelly(T0 + dt.timedelta(seconds=30), 8)])
    db.session.commit()
    # Committed, then a crash before the acknowledgement: both come back, DUP, same ids,
    # however long the outage lasted.
    later = T0 + dt.timedelta(hours=2)
    again = store_batch(db.session, [shelly(later, 7, dup=True), shelly(later, 8, dup=True)])
    db.session.commit()
    assert (first.stored, again.stored, again.duplicates) == (2, 0, 2)
    # Ingest now acknowledges them and the broker confirms it (see IngestSession).
    from sensors.store import confirm_acks
    confirm_acks(db.session, "broker:1883/brigade-ingest", later)
    db.session.commit()
    # The same value again is a new reading: a steady fridge repeats itself.
    steady = store_batch(db.session, [shelly(later + dt.timedelta(seconds=30), 9),
                                      shelly(later + dt.timedelta(seconds=60), 10, dup=True)])
    # A reused packet id (the broker had our ack) with another payload, or another session's.
    reused = store_batch(db.session, [shelly(later + dt.timedelta(seconds=90), 7, dup=True, value="4.6"),
                                      shelly(later + dt.timedelta(seconds=95), 8, dup=True,
                                             session="other:1883/brigade-ingest-2")])
    db.session.commit()
    assert (steady.stored, reused.stored) == (2, 2)
    assert db.session.execute(select(Reading.time_source)).scalars().all() == ["received"] * 6


@pytest.mark.parametrize("device_time,used", [
    (T0 - dt.timedelta(minutes=5), "device"),
    (T0 + dt.timedelta(minutes=1), "device"),
    (T0 + dt.timedelta(minutes=3), "received"),     # clock ahead of ours
    (T0 - dt.timedelta(days=30), "received"),       # clock never set / absurdly old
    (None, "received")])
def test_device_time_is_used_only_when_sane(device_time, used):
    moment, source = choose_time(device_time, T0)
    assert source == used and moment == (device_time if used == "device" else T0)


def test_fahrenheit_bare_numbers_follow_the_sensors_setting(ctx):
    store_batch(db.session, [msg("shellies/ht-2/sensor/temperature", "40")])
    db.session.commit()
    sensor = db.session.execute(select(Sensor)).scalar_one()
    sensor.temp_unit = "F"
    db.session.commit()
    store_batch(db.session, [msg("shellies/ht-2/sensor/temperature", "41", at=T0 + dt.timedelta(minutes=1))])
    db.session.commit()
    assert db.session.get(Sensor, sensor.id).last_temperature_c == pytest.approx(5.0)


BAD = [
    ("brigade/f/reading", b"{not json", "not JSON"),
    ("brigade/f/reading", b"\xff\xfe\xfa", "not UTF-8"),
    ("brigade/f/temperature", b"NaN", ""),
    ("brigade/f/temperature", b"inf", ""),
    ("brigade/f/temperature", b"-300", "-300"),
    ("brigade/f/temperature", b"1000", "1000"),
    ("brigade/f/temperature", b"4" * (1024 * 1024), "too large"),
    ("some/random/topic/x", b"4.2", "unknown topic"),
]


def test_bad_input_is_dead_lettered_and_good_readings_around_it_land(ctx):
    batch = [msg("brigade/f/temperature", "3.5", at=T0)]
    batch += [msg(topic, payload, at=T0 + dt.timedelta(seconds=i + 1)) for i, (topic, payload, _) in enumerate(BAD)]
    batch += [msg("brigade/f/temperature", "3.7", at=T0 + dt.timedelta(seconds=30))]
    result = store_batch(db.session, batch)
    db.session.commit()
    assert (result.stored, result.rejected) == (2, len(BAD))
    letters = db.session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars().all()
    for letter, (topic, payload, reason) in zip(letters, BAD):
        assert letter.topic == topic and reason in letter.reason
        assert letter.payload_size == len(payload) and len(letter.payload) <= 4096


def test_a_topic_longer_than_any_format_takes_is_cut_at_receive_and_dead_lettered(ctx):
    """5,000 distinct 60 KB topics held 300 MB: a topic, like a payload, is cut when it arrives,
    so that no message waiting in ingest's queue holds more than QUEUED_MESSAGE_MAX_BYTES."""
    import sys

    from sensors import formats
    from sensors.store import MAX_TOPIC_CHARS, QUEUED_MESSAGE_MAX_BYTES, received
    topic = "brigade/" + "x" * 60_000 + "/temperature"
    message = received(topic, b"4.0", T0)
    assert len(message.topic) == 500 and message.topic_size == len(topic)
    assert received("brigade/f/temperature", b"4.0", T0).topic_size is None
    worst = received("\U0001f9ca" * MAX_TOPIC_CHARS, b"4" * formats.MAX_PAYLOAD_BYTES, T0)
    assert worst.topic_size is None and worst.size is None  # kept whole: the most a message holds
    assert sum(map(sys.getsizeof, (worst, worst.topic, worst.payload, worst.received_at))) \
        <= QUEUED_MESSAGE_MAX_BYTES
    result = store_batch(db.session, [message, received("brigade/f/temperature", b"4.0", T0)])
    db.session.commit()
    assert (result.stored, result.rejected) == (1, 1)
    letter = db.session.execute(select(DeadLetter)).scalar_one()
    assert letter.reason == f"topic too long: {len(topic)} characters" and letter.topic == topic[:500]


def test_rollups_merge_across_batches(ctx):
    values = [4.0, 6.0, 2.0, 5.0]
    for i, v in enumerate(values):
        store_batch(db.session, [msg("brigade/r/reading", {"t": v, "ts": (T0 + dt.timedelta(seconds=30 * i)).isoformat()})])
        db.session.commit()
    store_batch(db.session, [msg("brigade/r/reading", {"t": 9.0, "ts": (T0 + dt.timedelta(minutes=5)).isoformat()}, at=T0 + dt.timedelta(minutes=5))])
    db.session.commit()
    rollups = db.session.execute(select(Rollup).order_by(Rollup.bucket_start)).scalars().all()
    assert [(r.count, r.min_c, r.max_c, r.avg_c) for r in rollups] == [(4, 2.0, 6.0, 4.25), (1, 9.0, 9.0, 9.0)]
    assert rollups[0].bucket_start == bucket_of(T0 + dt.timedelta(seconds=299)) == T0


def test_availability_and_battery_reach_sensors_even_before_their_first_reading(ctx):
    store_batch(db.session, [msg("tele/kitchen1/LWT", "Online")])
    db.session.commit()
    store_batch(db.session, [msg("tele/kitchen1/SENSOR", {"Time": "2026-11-27T12:00:00", "DS18B20": {"Temperature": 3.1}, "TempUnit": "C"}, at=T0 + dt.timedelta(seconds=5))])
    db.session.commit()
    sensor = db.session.execute(select(Sensor)).scalar_one()
    assert sensor.online is True
    store_batch(db.session, [msg("tele/kitchen1/LWT", "Offline", at=T0 + dt.timedelta(minutes=1))])
    db.session.commit()
    db.session.refresh(sensor)
    assert sensor.online is False and sensor.online_changed_at == T0 + dt.timedelta(minutes=1)
    store_batch(db.session, [msg("zigbee2mqtt/coldwell", {"temperature": 2.5, "battery": 81, "linkquality": 90})])
    db.session.commit()
    z2m = db.session.execute(select(Sensor).where(Sensor.key.contains("coldwell"))).scalar_one()
    assert z2m.battery_pct == 81 and z2m.last_temperature_c == 2.5


def test_a_fahrenheit_sensor_above_150_is_read_as_fahrenheit(ctx):
    store_batch(db.session, [msg("walkin/sensor/probe/state", "40")])
    db.session.commit()
    sensor = db.session.execute(select(Sensor)).scalar_one()
    sensor.temp_unit = "F"
    db.session.commit()
    result = store_batch(db.session, [msg("walkin/sensor/probe/state", "165", at=T0 + dt.timedelta(minutes=1))])
    db.session.commit()
    assert result.stored == 1
    assert db.session.get(Sensor, sensor.id).last_temperature_c == pytest.approx(73.89, abs=0.01)
    # A °C sensor saying 165 is still refused.
    bad = store_batch(db.session, [msg("other/sensor/probe/state", "165")])
    assert bad.rejected == 1


def test_a_batch_of_new_and_already_stored_readings_counts_only_the_new_ones(ctx):
    def at(i, value):
        return msg("brigade/mix/reading", {"t": value, "ts": (T0 + dt.timedelta(seconds=10 * i)).isoformat()})
    store_batch(db.session, [at(i, 4.0) for i in range(5)])
    db.session.commit()
    # Redelivered old readings (whatever they say now), two new ones, one of them twice.
    batch = [at(0, 9.9), at(5, 3.0), at(3, -5.0), at(6, 2.0), at(5, 3.0), at(4, 9.9)]
    result = store_batch(db.session, batch)
    db.session.commit()
    assert (result.stored, result.duplicates) == (2, 4)
    assert count(Reading) == 7
    rollup = db.session.execute(select(Rollup)).scalar_one()
    assert (rollup.count, rollup.min_c, rollup.max_c) == (7, 2.0, 4.0)
    assert rollup.sum_c == pytest.approx(5 * 4.0 + 3.0 + 2.0)
    sensor = db.session.execute(select(Sensor)).scalar_one()
    assert (sensor.last_temperature_c, sensor.last_reading_at) == (2.0, T0 + dt.timedelta(seconds=60))
    # Nothing new at all: nothing counted, nothing moved.
    again = store_batch(db.session, batch)
    db.session.commit()
    assert (again.stored, again.duplicates) == (0, 6)
    assert db.session.execute(select(Rollup.count)).scalar_one() == 7


@given(moment=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1),
                           timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=8)),
                                                      dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
                                                      ZoneInfo("Europe/London")])))
def test_the_fast_sqlite_insert_writes_timestamps_exactly_as_sqlalchemy_does(moment):
    # The unique (sensor, instant) constraint compares these strings: one format, always.
    from sqlalchemy.dialects import sqlite

    from app.models.base import UTCDateTime
    dialect = sqlite.dialect()
    sqlalchemy_text = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)(moment)
    assert sqlite_timestamp(moment) == sqlalchemy_text


TOPICS = st.sampled_from(["brigade/f1/reading", "brigade/f1/temperature", "tele/k1/SENSOR",
                          "tele/k1/LWT", "zigbee2mqtt/fridge", "zigbee2mqtt/fridge/availability",
                          "shellies/ht-1/sensor/temperature", "shellies/ht-1/sensor/battery",
                          "shellies/ht-1/online", "shellyhtg3-1/events/rpc",
                          "walkin/sensor/t/state", "walkin/status"]) | st.text(max_size=40)
PAYLOADS = st.binary(max_size=300) | st.sampled_from(
    [b"4.5", b"-300", b"nan", b"inf", b"1e308", b'{"t": 4}', b'{"temperature": "x"}', b"",
     b'{"Time": "2026-11-27T12:00:00", "DS18B20": {"Temperature": 1e400}}', b"\xff\xfe"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(TOPICS, PAYLOADS, st.booleans(), st.integers(1, 65535)),
                      min_size=1, max_size=8),
       fahrenheit=st.booleans())
def test_any_batch_is_stored_or_dead_lettered_and_never_raises(ctx, batch, fahrenheit):
    if fahrenheit:  # bare numbers read in °F for this sensor
        db.session.add(Sensor(key="shelly/ht-1", temp_unit="F", first_seen=T0))
        db.session.flush()
    messages = [Message(topic, payload, T0, dup=dup, mid=mid, qos=1, session="s")
                for topic, payload, dup, mid in batch]
    result = store_batch(db.session, messages)
    db.session.flush()
    letters = db.session.scalar(select(func.count()).select_from(DeadLetter))
    assert result.rejected == letters <= len(messages)
    assert all(-100 <= t <= 200 for t in db.session.execute(select(Reading.temperature_c)).scalars())
    db.session.rollback()


def test_a_topic_with_nul_or_broken_unicode_is_still_dead_lettered(ctx):
    # PostgreSQL refuses NUL in text: the dead letter must still be written, the batch stored.
    result = store_batch(db.session, [msg("brigade/a\x00b/what", b"1"), msg("x/\udc80/y", b"1"),
                                      msg("brigade/ok/temperature", b"4.0")])
    db.session.commit()
    assert (result.stored, result.rejected) == (1, 2)
    topics = db.session.execute(select(DeadLetter.topic).order_by(DeadLetter.id)).scalars().all()
    assert topics == ["brigade/a\ufffdb/what", "x/\ufffd/y"]


def test_a_database_error_while_parsing_fails_the_batch_and_dead_letters_nothing(ctx):
    """Shelly Gen1 / ESPHome need the sensor's unit: a database that cannot say (a lock
    timeout, an outage) must fail the batch for a retry, not turn readings into dead letters."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError
    engine = db.engine

    def lock_timeout(conn, cursor, statement, *args):
        if "temp_unit" in statement:
            raise OperationalError(statement, {}, Exception("canceling statement due to lock timeout"))
    event.listen(engine, "before_cursor_execute", lock_timeout)
    try:
        with pytest.raises(OperationalError):
            store_batch(db.session, [Message("shellies/fridge/sensor/temperature", b"4.5", T0),
                                     Message("brigade/pass/temperature", b"3.0", T0)])
    finally:
        event.remove(engine, "before_cursor_execute", lock_timeout)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(DeadLetter)) == 0
    # Once the database answers, the same batch is stored whole.
    result = store_batch(db.session, [Message("shellies/fridge/sensor/temperature", b"4.5", T0),
                                      Message("brigade/pass/temperature", b"3.0", T0)])
    db.session.commit()
    assert result.stored == 2 and result.rejected == 0


def test_the_route_cache_stays_small_whatever_the_topics(ctx):
    """5,000 distinct 60 KB topics once took 300 MB of cache; long topics are not remembered."""
    from sensors import store
    store._cached_route.cache_clear()
    for i in range(5000):
        store._route(f"brigade/{i}/" + "x" * 60_000)
    assert store._cached_route.cache_info().currsize == 0
    store._route("brigade/pass/temperature")
    store._route("brigade/pass/temperature")
    assert store._cached_route.cache_info().hits == 1


def test_a_reading_from_before_a_correction_needs_the_calibration_log(ctx):
    """Without the history the store cannot know the offset in force then: it refuses, never guesses."""
    store_batch(db.session, [Message("brigade/pass/temperature", b"3.0", T0)])
    sensor = db.session.execute(select(Sensor)).scalar_one()
    sensor.offset_c, sensor.offset_since = 0.5, T0 + dt.timedelta(hours=1)
    db.session.commit()
    late = Message("brigade/pass/reading",
                   json.dumps({"t": 3.0, "ts": (T0 + dt.timedelta(minutes=30)).isoformat()}).encode(),
                   T0 + dt.timedelta(hours=2))
    with pytest.raises(RuntimeError, match="offset_history"):
        store_batch(db.session, [late])
    db.session.rollback()
    result = store_batch(db.session, [late],
                         offset_history=lambda session, sensor_id: [(T0 + dt.timedelta(hours=1), 0.5)])
    db.session.commit()
    assert result.stored == 1
    stored = db.session.execute(select(Reading).order_by(Reading.measured_at.desc())).scalars().first()
    assert stored.offset_c == 0.0 and stored.temperature_c == 3.0


# --- redeliveries after the packet ids wrap ------------------------------------------------------

def _bare(mid, at, value="4.0", dup=False):
    return Message("brigade/steady/temperature", value.encode(), at, dup, mid, 1, "mqtt", "s1")


def test_after_the_packet_ids_wrap_a_redelivery_is_not_taken_for_the_old_message(ctx):
    """70,000 readings of a steady sensor, ingest killed: the in-flight ones came back with ids
    whose previous, acknowledged owner had the same topic and value — and were dropped."""
    from sensors.store import confirm_acks
    store_batch(db.session, [_bare(7, T0)])
    db.session.commit()
    confirm_acks(db.session, "s1", T0)  # the broker has that ack: id 7 is free for a new message
    db.session.commit()
    # 65,536 deliveries later id 7 names a new reading, received, not committed, redelivered.
    result = store_batch(db.session, [_bare(7, T0 + dt.timedelta(minutes=20), dup=True)])
    db.session.commit()
    assert result.stored == 1 and result.duplicates == 0


def test_a_redelivery_whose_ack_was_lost_is_still_recognised(ctx):
    store_batch(db.session, [_bare(7, T0)])
    db.session.commit()
    result = store_batch(db.session, [_bare(7, T0 + dt.timedelta(seconds=30), dup=True)])
    assert result.stored == 0 and result.duplicates == 1


def test_two_readings_of_the_same_value_in_flight_are_not_taken_for_one(ctx):
    store_batch(db.session, [_bare(1, T0)])
    db.session.commit()
    # The broker resends both: the committed one (its ack lost) and one never committed.
    result = store_batch(db.session, [_bare(1, T0 + dt.timedelta(seconds=30), dup=True),
                                      _bare(2, T0 + dt.timedelta(seconds=30), dup=True)])
    db.session.commit()
    assert (result.duplicates, result.stored) == (1, 1)


# --- brokers that renumber what they resend (RabbitMQ, NATS JetStream) ------------------------

def _resent(mid, at, value="4.0", session="s1"):
    return Message("brigade/steady/temperature", value.encode(), at, True, mid, 1, "mqtt", session)


def _known_unacked(*messages):
    """What ingest passes as ``resent``: messages it committed and never acknowledged."""
    from collections import Counter
    from sensors.store import digest_of
    return Counter(digest_of(m) for m in messages)


def test_a_message_committed_without_its_ack_is_recognised_under_a_new_packet_id(ctx):
    """The connection to a NATS node ended after ingest committed a reading and before its ack
    went out: another node resends it as id 1, not 7. By packet id alone it was stored twice."""
    first = _bare(7, T0)
    store_batch(db.session, [first])
    db.session.commit()
    later = T0 + dt.timedelta(seconds=30)
    by_id = store_batch(db.session, [_resent(1, later)])
    db.session.rollback()
    known = store_batch(db.session, [_resent(1, later)], resent=_known_unacked(first))
    db.session.commit()
    assert (by_id.stored, by_id.duplicates) == (1, 0)
    assert (known.stored, known.duplicates) == (0, 1)
    assert dict(known.resent_taken) == dict(_known_unacked(first))
    assert db.session.scalar(select(func.count(Reading.id))) == 1


def test_each_unacknowledged_message_stands_for_one_resent_message(ctx):
    """Committed, never acked: one 4.0. In flight, never received: another 4.0 and a 4.5. All
    three come back renumbered: one is the committed one, the other two are new."""
    first = _bare(40, T0)
    store_batch(db.session, [first])
    db.session.commit()
    later = T0 + dt.timedelta(seconds=30)
    result = store_batch(db.session, [_resent(1, later), _resent(2, later + dt.timedelta(seconds=1)),
                                      _resent(3, later, value="4.5")], resent=_known_unacked(first))
    db.session.commit()
    assert (result.stored, result.duplicates) == (2, 1)


def test_a_resent_message_matched_by_its_packet_id_is_not_counted_twice(ctx):
    """A broker that keeps its ids: id 2 (4.0, committed, never acked) and id 3 (4.0, never
    received) come back as themselves. Id 2 is recognised by its id and uses up what ingest
    expected, so id 3 is not taken for it."""
    first = _bare(2, T0)
    store_batch(db.session, [first])
    db.session.commit()
    later = T0 + dt.timedelta(seconds=30)
    result = store_batch(db.session, [_resent(2, later), _resent(3, later + dt.timedelta(seconds=1))],
                         resent=_known_unacked(first))
    assert (result.stored, result.duplicates) == (1, 1)


def test_only_resent_messages_are_recognised_by_content(ctx):
    """Not a DUP, or nothing known unacknowledged: the same topic and value is a new reading."""
    first = _bare(7, T0)
    store_batch(db.session, [first])
    db.session.commit()
    later = T0 + dt.timedelta(seconds=30)
    new = store_batch(db.session, [_bare(8, later)], resent=_known_unacked(first))
    assert (new.stored, new.duplicates) == (1, 0)
    nothing_known = store_batch(db.session, [_resent(9, later + dt.timedelta(seconds=1))])
    assert (nothing_known.stored, nothing_known.duplicates) == (1, 0)


def test_device_reports_cost_statements_per_batch_not_per_reading(ctx):
    """Devices send battery with every reading: storing a batch of them must not run an upsert
    and an UPDATE per reading (that cut ingest 14×), and each device's newest report wins."""
    from sqlalchemy import event

    def level(i):
        return 100 - i % 61

    def batch(start, n):
        return [msg(f"zigbee2mqtt/fridge{i % 5}",
                    {"temperature": 3.0, "battery": level(i), "linkquality": 100,
                     "last_seen": (T0 + dt.timedelta(seconds=start + i)).isoformat()},
                    at=T0 + dt.timedelta(seconds=start + i)) for i in range(n)]

    store_batch(db.session, batch(0, 5))  # the sensors appear
    db.session.commit()
    statements = []

    def count_statement(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count_statement)
    try:
        store_batch(db.session, batch(10, 10))
        small = len(statements)
        result = store_batch(db.session, batch(100, 500))
        large = len(statements) - small
    finally:
        event.remove(db.engine, "before_cursor_execute", count_statement)
    db.session.commit()
    assert result.stored == 500
    assert large == small, statements[small:]
    batteries = dict(db.session.execute(select(Sensor.key, Sensor.battery_pct)).all())
    assert batteries == {f"z2m/fridge{k}": level(495 + k) for k in range(5)}


def test_a_device_report_reaches_exactly_the_sensors_under_its_key(ctx):
    keys = ["tasmota/kitchen", "tasmota/kitchen2", "tasmota/kitchen-x"]
    for n, topic in enumerate(keys):
        name = topic.split("/")[1]
        store_batch(db.session, [msg(f"tele/{name}/SENSOR",
                                     {"Time": "2026-11-27T12:00:00", "TempUnit": "C",
                                      "DS18B20-1": {"Temperature": 3.1},
                                      "DS18B20-2": {"Temperature": 3.2}})])
    db.session.commit()
    store_batch(db.session, [msg("tele/kitchen/LWT", "Online"),
                             msg("tele/kitchen2/LWT", "Online", at=T0 + dt.timedelta(seconds=1)),
                             msg("tele/kitchen/LWT", "Offline", at=T0 + dt.timedelta(seconds=2))])
    db.session.commit()
    online = dict(db.session.execute(select(Sensor.key, Sensor.online)).all())
    assert online == {"tasmota/kitchen/DS18B20-1": False, "tasmota/kitchen/DS18B20-2": False,
                      "tasmota/kitchen2/DS18B20-1": True, "tasmota/kitchen2/DS18B20-2": True,
                      "tasmota/kitchen-x/DS18B20-1": None, "tasmota/kitchen-x/DS18B20-2": None}
    changed = db.session.scalar(select(Sensor.online_changed_at)
                                .where(Sensor.key == "tasmota/kitchen/DS18B20-1"))
    assert changed == T0 + dt.timedelta(seconds=2)


def test_retention_deletes_old_readings_in_chunks_along_the_index(ctx):
    from sqlalchemy import event
    from sensors.store import purge_readings
    for name in ("a", "b"):
        store_batch(db.session, [msg(f"brigade/{name}/reading",
                                     {"t": 4.0, "ts": (T0 + dt.timedelta(minutes=m)).isoformat()},
                                     at=T0 + dt.timedelta(minutes=m)) for m in range(10)])
    db.session.commit()
    cut = T0 + dt.timedelta(minutes=7)
    chunks, deletes = [], []

    def seen(conn, cursor, statement, parameters, *args):
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for gone in purge_readings(db.session, cut, chunk=3):
            db.session.commit()  # the caller commits between chunks
            chunks.append(gone)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert chunks == [3, 3, 1, 3, 3, 1]
    left = db.session.execute(select(Sensor.key, Reading.measured_at).join(Sensor)).all()
    assert sorted(left) == [(k, T0 + dt.timedelta(minutes=m)) for k in ("brigade/a", "brigade/b")
                            for m in (7, 8, 9)]
    assert count(Rollup) > 0  # rollups stay for long reports
    if db.engine.dialect.name == "sqlite":
        # Each chunk is found by the (sensor_id, measured_at) index, never a scan of readings.
        statement, parameters = deletes[0]
        plan = db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                       parameters).all()
        assert not any(row[-1].startswith("SCAN readings") for row in plan), plan
