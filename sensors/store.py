"""Turn a batch of received messages into stored readings, in one transaction.

``store_batch`` is what every ingest path calls (MQTT consumer, HTTP endpoint): it
parses each message with its format, keeps what cannot be parsed in the
dead-letter table with the reason, inserts readings idempotently (unique sensor +
instant, ``ON CONFLICT DO NOTHING``), keeps the 5-minute rollups and each sensor's
last state up to date, and leaves the commit to the caller — who acknowledges the
messages only after that commit.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Mapping

from sqlalchemy import Row, bindparam, delete, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sensors import formats
from sensors.formats import PayloadError
from sensors.models import (DeadLetter, Delivery, DeviceState, IngestSession, Reading, Rollup,
                            Sensor)

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
ROLLUP_SECONDS = 300
#: A device clock this far ahead of ours is wrong; use the receive time instead.
MAX_FUTURE_SKEW = dt.timedelta(minutes=2)
#: A device timestamp older than this is a clock that was never set (or a very stale buffer).
MAX_DEVICE_AGE = dt.timedelta(days=7)
DEAD_LETTER_KEEP_BYTES = 4096
DEAD_LETTER_TOPIC_CHARS = 500
#: Formats whose payload is a bare number in the device's own unit (its Sensor.temp_unit).
BARE_NUMBER_FORMATS = (formats.shelly_gen1, formats.esphome)
#: (session, sensor id) -> the sensor's offsets as ordered (since, offset °C) pairs.
OffsetHistory = Callable[[object, int], list[tuple[dt.datetime, float]]]


@dataclass(frozen=True, slots=True)
class Message:
    """What a paho callback hands over: nothing but bytes and when they came."""

    topic: str
    payload: bytes
    received_at: dt.datetime
    dup: bool = False
    mid: int = 0
    qos: int = 0
    source: str = "mqtt"
    #: The MQTT session (ingest's client id) whose packet ``mid`` this is; None over HTTP.
    session: str | None = None
    #: The payload's size as it arrived, when it was too large and cut at receive time to
    #: what a dead letter keeps (so a flood of huge payloads cannot fill ingest's memory).
    size: int | None = None
    #: The topic's length as it arrived, when it was too long and cut at receive time.
    topic_size: int | None = None


#: No format takes a topic this long (a sensor id is at most 200 characters): a longer one is
#: cut at receive time, like a payload over formats.MAX_PAYLOAD_BYTES.
MAX_TOPIC_CHARS = 1024
#: The most memory one message can hold while it waits in ingest's queue: the largest payload
#: kept, the longest topic kept (4 bytes a character at worst) and the objects around them.
QUEUED_MESSAGE_MAX_BYTES = formats.MAX_PAYLOAD_BYTES + 4 * MAX_TOPIC_CHARS + 512


def received(topic: str, payload: bytes, received_at: dt.datetime, **fields) -> Message:
    """A message as ingest keeps it: a payload or a topic over what any format accepts is cut
    now, to what a dead letter keeps (so a message never holds more than
    QUEUED_MESSAGE_MAX_BYTES while it waits)."""
    if len(topic) > MAX_TOPIC_CHARS:
        return Message(topic[:DEAD_LETTER_TOPIC_CHARS], payload[:DEAD_LETTER_KEEP_BYTES],
                       received_at, size=len(payload), topic_size=len(topic), **fields)
    if len(payload) > formats.MAX_PAYLOAD_BYTES:
        return Message(topic, payload[:DEAD_LETTER_KEEP_BYTES], received_at, size=len(payload),
                       **fields)
    return Message(topic, payload, received_at, **fields)


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    sensors_seen: set[int] = field(default_factory=set)
    #: Sensor id -> the earliest measured_at among its readings this batch stored.
    earliest: dict[int, dt.datetime] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    #: Digest -> how many of the messages known to be resent (``store_batch(resent=)``) this
    #: batch recognised as such.
    resent_taken: Counter = field(default_factory=Counter)


def _insert(session, model):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def bucket_of(moment: dt.datetime) -> dt.datetime:
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % ROLLUP_SECONDS, UTC)


#: Topics longer than this are routed afresh each time: the cache holds at most
#: 4,096 × 256 characters (~1 MB), whatever a client publishes on.
ROUTE_CACHE_MAX_TOPIC = 256


@functools.lru_cache(maxsize=4096)
def _cached_route(topic: str):
    return formats.route(topic)


def _route(topic):
    """formats.route, remembered per topic: a sensor publishes on the same topic all its life."""
    if isinstance(topic, str) and len(topic) <= ROUTE_CACHE_MAX_TOPIC:
        return _cached_route(topic)
    return formats.route(topic)


def choose_time(measured_at: dt.datetime | None, received_at: dt.datetime) -> tuple[dt.datetime, str]:
    """The device's timestamp when present and sane, else the receive time."""
    if measured_at is not None and \
            received_at - MAX_DEVICE_AGE <= measured_at <= received_at + MAX_FUTURE_SKEW:
        return measured_at, "device"
    return received_at, "received"


def store_batch(session, messages: list[Message], site_id: int | None = None, *,
                offset_history: OffsetHistory | None = None,
                resent: Mapping[str, int] | None = None) -> BatchResult:
    """Parse and store a batch; the caller commits, then acknowledges.

    ``site_id``: whose dead letters these are (HTTP ingest knows its token's site; MQTT not).
    ``offset_history(session, sensor_id)``: the sensor's calibration offsets as ordered
    (since, offset °C) pairs, asked only for a reading measured before the sensor's current
    offset was set. The web app keeps that history (its calibration log) and passes it in.

    ``resent``: digest (:func:`digest_of`) -> how many messages with that topic and payload
    ingest committed on a connection that ended before their acks were sent, so the broker
    will resend them — with new packet ids, for brokers that renumber (see ``_Redeliveries``).
    Read only: ``result.resent_taken`` says how many this batch recognised, for the caller to
    deduct once it has committed.

    A database error — also one while looking something up to parse a message — fails the
    whole batch, so the caller keeps it and retries; only a bad message becomes a dead letter.
    """
    result = BatchResult()
    parsed: list[tuple[Message, formats.Reading]] = []
    dead: list[dict] = []
    fahrenheit = None
    for message in messages:
        if message.topic_size is not None:
            dead.append(dead_letter_row(message, f"topic too long: {message.topic_size} characters",
                                        site_id))
            continue
        if message.size is not None:
            dead.append(dead_letter_row(message, f"payload too large: {message.size} bytes",
                                        site_id))
            continue
        parser = _route(message.topic)
        if parser in BARE_NUMBER_FORMATS and fahrenheit is None:
            # Once per batch, only when needed — and outside the try below: a database that
            # cannot answer now is not the message's fault.
            fahrenheit = set(session.execute(
                select(Sensor.key).where(Sensor.temp_unit == "F")).scalars())
        try:
            if parser is None:
                raise formats.base.unknown_topic(message.topic)
            if parser in BARE_NUMBER_FORMATS:
                readings = _parse_bare(parser, message, fahrenheit)
            else:
                readings = parser.parse(message.topic, message.payload)
            parsed.extend((message, reading) for reading in readings)
        except PayloadError as exc:
            dead.append(dead_letter_row(message, str(exc), site_id))
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop ingest
            logger.exception("parser failed on %s", message.topic)
            dead.append(dead_letter_row(message, f"internal parser error: {type(exc).__name__}",
                                        site_id))

    sensors = _sensors_for(session, {r.sensor for _, r in parsed if r.temperature_c is not None})
    offsets = _Offsets(session, offset_history)
    redeliveries = _Redeliveries(session, [m for m, _ in parsed if m.dup and m.session], resent)
    delivered: dict[tuple[str, int], dict] = {}
    devices: dict[str, dict] = {}
    rows = []
    for message, reading in parsed:
        if reading.battery_pct is not None or reading.online is not None:
            _report(devices, reading, message.received_at)
        if reading.temperature_c is None:
            continue
        sensor = sensors[reading.sensor]
        raw = reading.temperature_c
        measured_at, source = choose_time(reading.measured_at, message.received_at)
        if source == "received" and message.session and message.qos:
            key, digest = (message.session, message.mid), digest_of(message)
            if message.dup and redeliveries.already_stored(message, digest):
                result.duplicates += 1  # committed before a crash, redelivered since
                continue
            delivered[key] = {"session_key": message.session, "mid": message.mid,
                              "digest": digest, "committed_at": message.received_at}
        offset = offsets.at(sensor, measured_at)  # the calibration correction, if any
        rows.append({"sensor_id": sensor.id, "measured_at": measured_at,
                     "temperature_c": round(raw + offset, 3) if offset else raw,
                     "received_at": message.received_at, "time_source": source,
                     "offset_c": offset})
    if devices:
        _device_states(session, devices)
    if rows:
        inserted = _insert_readings(session, rows)
        result.stored = len(inserted)
        result.duplicates += len(rows) - len(inserted)
        _update_rollups(session, inserted)
        _update_last_values(session, inserted)
        for row in inserted:
            first = result.earliest.get(row["sensor_id"])
            if first is None or row["measured_at"] < first:
                result.earliest[row["sensor_id"]] = row["measured_at"]
        result.sensors_seen = set(result.earliest)
    result.resent_taken = redeliveries.taken
    if delivered:
        _record_deliveries(session, list(delivered.values()))
    if dead:
        session.execute(_insert(session, DeadLetter), dead)
        result.rejected = len(dead)
        result.reasons = [d["reason"] for d in dead]
    return result


def _parse_bare(parser, message: Message, fahrenheit: set[str]) -> list[formats.Reading]:
    """A bare number is in the device's own unit: °F for sensors the admin set to °F."""
    try:
        readings = parser.parse(message.topic, message.payload)
    except PayloadError:
        # 165 (°F) is out of range read as °C; retry as °F for a sensor set to °F.
        if not fahrenheit:
            raise
        readings = parser.parse(message.topic, message.payload, temp_unit="F")
        if not all(r.sensor in fahrenheit for r in readings):
            raise
        return readings
    if any(r.sensor in fahrenheit for r in readings):
        return parser.parse(message.topic, message.payload, temp_unit="F")
    return readings


def clean_text(text: str) -> str:
    """Text safe for any database: no NUL or other control characters, no lone surrogates
    (PostgreSQL refuses NUL in text; a bad topic must still become a dead letter)."""
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)


def dead_letter_row(message: Message, reason: str, site_id: int | None = None) -> dict:
    """The dead-letter table's row for a message that will not become readings."""
    payload = bytes(message.payload or b"")
    return {"received_at": message.received_at, "source": message.source, "site_id": site_id,
            "topic": clean_text((message.topic or "")[:DEAD_LETTER_TOPIC_CHARS]),
            "payload": payload[:DEAD_LETTER_KEEP_BYTES],
            "payload_size": message.size if message.size is not None else len(payload),
            "reason": clean_text(reason[:500])}


class _Offsets:
    """The calibration correction in force for a sensor at a moment.

    Usually the sensor's current offset. A reading measured before that offset was set (a
    device's buffer, a broker's backlog) gets the one in force then, from the caller's
    ``offset_history`` — looked up once per sensor and batch, and only then.
    """

    def __init__(self, session, history: OffsetHistory | None):
        self.session = session
        self.lookup = history
        self.history: dict[int, list[tuple[dt.datetime, float]]] = {}

    def at(self, sensor: Row, moment: dt.datetime) -> float:
        if sensor.offset_since is None or moment >= sensor.offset_since:
            return sensor.offset_c
        if sensor.id not in self.history:
            if self.lookup is None:
                # Guessing would store a wrong temperature in a record: refuse, loudly.
                raise RuntimeError(f"sensor {sensor.id} has a calibration history; store_batch "
                                   "needs offset_history= to store a reading from before it")
            self.history[sensor.id] = list(self.lookup(self.session, sensor.id))
        offset = 0.0
        for since, after in self.history[sensor.id]:
            if since > moment:
                break
            offset = after
        return offset


def _sensors_for(session, keys: set[str]) -> dict[str, Row]:
    """(key, id, offset) of each key's Sensor, creating those never seen before (unassigned)."""
    if not keys:
        return {}
    # Columns, not ORM objects: loading (and later expiring) 50 Sensors per batch costs more
    # than the readings' insert.
    columns = (Sensor.key, Sensor.id, Sensor.offset_c, Sensor.offset_since)
    found = {s.key: s for s in session.execute(select(*columns).where(Sensor.key.in_(keys)))}
    new = keys - found.keys()
    if new:
        now = dt.datetime.now(UTC)
        states = _inherited_states(session, new)
        # Another ingest worker may create the same sensor at the same moment: do nothing then.
        session.execute(_insert(session, Sensor).on_conflict_do_nothing(index_elements=["key"]),
                        [{"key": key, "first_seen": now, "temp_unit": "C", **states.get(key, {})}
                         for key in sorted(new)])
        for sensor in session.execute(select(*columns).where(Sensor.key.in_(new))):
            found[sensor.key] = sensor
            logger.info("new sensor %s (unassigned)", sensor.key)
    return found


def _prefixes(key: str) -> list[str]:
    parts = key.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]


def _inherited_states(session, keys: set[str]) -> dict[str, dict]:
    """Battery and online state already reported for a new sensor's device."""
    wanted = {p for key in keys for p in _prefixes(key)}
    states = {d.key: d for d in session.execute(
        select(DeviceState).where(DeviceState.key.in_(wanted))).scalars()}
    out = {}
    for key in keys:
        # The longest known prefix is the most specific report for this sensor.
        for prefix in reversed(_prefixes(key)):
            state = states.get(prefix)
            if state is not None:
                out[key] = {"battery_pct": state.battery_pct, "online": state.online,
                            "online_changed_at": state.changed_at}
                break
    return out


def _report(devices: dict[str, dict], reading: formats.Reading, at: dt.datetime) -> None:
    """Merge a battery / availability report into the batch's newest state per device."""
    state = devices.setdefault(reading.sensor, {})
    if reading.battery_pct is not None:
        state["battery_pct"] = reading.battery_pct
    if reading.online is not None:
        state["online"] = reading.online
        state["online_changed_at"] = at
    state["changed_at"] = at


def _device_states(session, devices: dict[str, dict]) -> None:
    """Record each device's battery / availability and apply it to its sensors: the sensor
    with the device's key and those under it (``<key>/…``).

    A few statements per batch, not two per reading (devices send battery with every
    reading): one upsert and one UPDATE per set of fields reported, each an executemany over
    the batch's devices, and each UPDATE an index range scan rather than a LIKE.
    """
    groups: dict[tuple[str, ...], list[tuple[str, dict]]] = defaultdict(list)
    for key, state in sorted(devices.items()):
        groups[tuple(sorted(state))].append((key, state))
    states, sensors = DeviceState.__table__, Sensor.__table__
    # In byte order "<key>/" ≤ k < "<key>0" is exactly "k starts with <key>/" ("0" follows
    # "/"). SQLite compares text by bytes; on PostgreSQL, whose collation may sort "/" anywhere,
    # the byte-order operators ~>=~ and ~<~ use the text_pattern_ops index ix_sensors_key_bytes.
    key = sensors.c.key
    if session.get_bind().dialect.name == "postgresql":
        at_least, below = key.op("~>=~", is_comparison=True), key.op("~<~", is_comparison=True)
    else:
        at_least, below = key.__ge__, key.__lt__
    for fields, group in groups.items():
        device_fields = [f for f in fields if f != "online_changed_at"]
        stmt = _insert(session, states)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["key"], set_={f: stmt.excluded[f] for f in device_fields}),
            [{"key": key_, **{f: state[f] for f in device_fields}} for key_, state in group])
        sensor_fields = [f for f in fields if f != "changed_at"]
        session.execute(
            update(sensors)
            .where(at_least(bindparam("b_key")), below(bindparam("b_end")),
                   or_(key == bindparam("b_key"), at_least(bindparam("b_under"))))
            .values({f: bindparam(f"b_{f}") for f in sensor_fields}),
            [{"b_key": key_, "b_under": key_ + "/", "b_end": key_ + "0",
              **{f"b_{f}": state[f] for f in sensor_fields}} for key_, state in group])
    # Core UPDATEs leave Sensor objects already in the session stale: expire those fields.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Sensor):
            session.expire(obj, ["battery_pct", "online", "online_changed_at"])


#: Readings the retention job deletes per statement: each holds SQLite's write lock briefly.
PURGE_CHUNK = 5000


def purge_readings(session, before: dt.datetime, *, chunk: int = PURGE_CHUNK):
    """Delete readings measured before ``before``, in chunks, yielding each chunk's count so
    that the caller commits between them (ingest and the tablets write in the gaps).

    Sensor by sensor, oldest first, along the (sensor_id, measured_at) index: ``measured_at``
    alone has no index, and a plain ``DELETE … WHERE measured_at < …`` scanned every reading
    ever kept under one long write lock. Rollups are kept: long reports read them.
    """
    for sensor_id in session.execute(select(Sensor.id).order_by(Sensor.id)).scalars().all():
        while True:
            oldest = (select(Reading.id)
                      .where(Reading.sensor_id == sensor_id, Reading.measured_at < before)
                      .order_by(Reading.measured_at).limit(chunk))
            gone = session.execute(delete(Reading).where(Reading.id.in_(oldest.scalar_subquery()))
                                   .execution_options(synchronize_session=False)).rowcount
            if gone:
                yield gone
            if gone < chunk:
                break


def digest_of(message: Message) -> str:
    """What identifies a message stored at its receive time: its topic and payload."""
    return hashlib.blake2b(message.topic.encode("utf-8", "surrogateescape") + b"\0" +
                           bytes(message.payload or b""), digest_size=8).hexdigest()


class _Redeliveries:
    """Which DUP messages of a batch were committed already (see ``Delivery``).

    By packet id: a DUP message was committed before when a delivery of its session with its
    packet id and the same topic and payload was committed and its acknowledgement is not
    confirmed yet: once the broker has the ack, it may give that id to a new message (ids wrap
    after 65,535), and a steady sensor's new reading would look the same.

    By what ingest knows it never acknowledged (``resent``): the MQTT rule is that a broker
    resends with the original packet id, but some renumber what they resend (RabbitMQ on every
    reconnection, NATS JetStream on another node after a restart). A message that ingest
    committed on a connection that ended before its ack was sent is certain to come back; a
    DUP message with its topic and payload that no packet id matched is taken for it — once
    per such message, so two in-flight readings of the same value are still two. A packet-id
    match counts against them too (it is one of them, resent as itself).
    """

    def __init__(self, session, redelivered: list[Message],
                 resent: Mapping[str, int] | None = None):
        self.by_mid: dict[str, dict[int, str]] = {}
        self.resent = resent or {}
        #: digest -> how many of ``resent`` this batch recognised.
        self.taken: Counter[str] = Counter()
        wanted: dict[str, set[int]] = defaultdict(set)
        for message in redelivered:
            wanted[message.session].add(message.mid)
        for key, mids in wanted.items():
            through = session.scalar(select(IngestSession.acks_confirmed_through)
                                     .where(IngestSession.session_key == key))
            query = select(Delivery.mid, Delivery.digest).where(Delivery.session_key == key,
                                                                Delivery.mid.in_(mids))
            if through is not None:
                query = query.where(Delivery.committed_at > through)
            self.by_mid[key] = {mid: digest for mid, digest in session.execute(query)}

    def _take(self, digest: str) -> bool:
        if self.resent.get(digest, 0) > self.taken[digest]:
            self.taken[digest] += 1
            return True
        return False

    def already_stored(self, message: Message, digest: str) -> bool:
        """Whether this DUP message is one committed before."""
        if self.by_mid.get(message.session, {}).get(message.mid) == digest:
            self._take(digest)
            return True
        return self._take(digest)


def confirm_acks(session, session_key: str, through: dt.datetime) -> None:
    """Record that the broker has ingest's acks for every message received up to ``through``."""
    stmt = _insert(session, IngestSession.__table__).values(session_key=session_key,
                                                            acks_confirmed_through=through)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["session_key"], set_={"acks_confirmed_through": through}))


def _record_deliveries(session, rows: list[dict]) -> None:
    """Remember, in the batch's transaction, which packets were stored at their receive time."""
    stmt = _insert(session, Delivery.__table__)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["session_key", "mid"],
        set_={"digest": stmt.excluded.digest, "committed_at": stmt.excluded.committed_at}), rows)


def sqlite_timestamp(moment: dt.datetime) -> str:
    """An aware datetime as SQLAlchemy stores a UTCDateTime on SQLite (naive UTC, microseconds).

    The same text for the same instant matters: the unique (sensor, instant) constraint
    compares the stored strings. ``tests/test_store.py`` holds it to SQLAlchemy's own.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: store timezone-aware UTC")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


_SQLITE_INSERT_READINGS = (
    "INSERT INTO readings (sensor_id, measured_at, temperature_c, received_at, time_source, "
    "offset_c) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sensor_id, measured_at) DO NOTHING")
_SQLITE_NEWEST_READINGS = (
    "SELECT sensor_id, measured_at, temperature_c FROM readings ORDER BY id DESC LIMIT ?")


def _insert_readings_sqlite(session, rows: list[dict]) -> list[dict]:
    """SQLite: one plain executemany, without SQLAlchemy's per-value bind processing.

    At thousands of readings a second the Core statement's per-row work (type processors,
    parameter dictionaries, RETURNING rows) cost more than SQLite's own insert. The
    connection is the session's, so this is the same transaction and the same writer lock.
    """
    connection = session.connection()
    stamp = sqlite_timestamp
    result = connection.exec_driver_sql(_SQLITE_INSERT_READINGS, [
        (r["sensor_id"], stamp(r["measured_at"]), r["temperature_c"], stamp(r["received_at"]),
         r["time_source"], r["offset_c"]) for r in rows])
    added = result.rowcount
    if added == len(rows):
        return rows  # all new (the usual case)
    if added <= 0:
        return []
    # Some were already stored. This transaction has held SQLite's write lock since the
    # insert began, and a new rowid is always above every existing one, so the rows it
    # added are the table's newest `added` rows.
    return [{"sensor_id": s, "measured_at": dt.datetime.fromisoformat(m).replace(tzinfo=UTC),
             "temperature_c": t}
            for s, m, t in connection.exec_driver_sql(_SQLITE_NEWEST_READINGS, (added,))]


def _insert_readings(session, rows: list[dict]) -> list[dict]:
    """Insert, skipping any (sensor, instant) already stored; return the rows that were new."""
    if session.get_bind().dialect.name == "sqlite":
        return _insert_readings_sqlite(session, rows)
    # Core, one executemany: SQLAlchemy's "insertmanyvalues" sends it as multi-row INSERTs
    # (within SQLite's bound-parameter limit) from one cached statement. Building an
    # ``insert().values(<2000 rows>)`` instead recompiles a huge statement every batch.
    table = Reading.__table__
    stmt = (_insert(session, table)
            .on_conflict_do_nothing(index_elements=["sensor_id", "measured_at"])
            .returning(table.c.id))
    ids = session.execute(stmt, rows).scalars().all()
    if len(ids) == len(rows):
        return rows  # all new (the usual case): no need to read anything back
    # Some were already stored: read back which rows this insert added.
    inserted = []
    for start in range(0, len(ids), 1000):
        inserted.extend({"sensor_id": s, "measured_at": m, "temperature_c": t}
                        for s, m, t in session.execute(
                            select(table.c.sensor_id, table.c.measured_at, table.c.temperature_c)
                            .where(table.c.id.in_(ids[start:start + 1000]))))
    return inserted


def _update_rollups(session, inserted: list[dict]) -> None:
    # Keyed by the bucket's epoch second (bucket_of's arithmetic): one datetime per bucket, not
    # per reading.
    buckets: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in inserted:
        epoch = int(row["measured_at"].timestamp())
        buckets[(row["sensor_id"], epoch - epoch % ROLLUP_SECONDS)].append(row["temperature_c"])
    if not buckets:
        return
    values = [{"sensor_id": s, "bucket_start": dt.datetime.fromtimestamp(b, UTC), "count": len(v),
               "min_c": min(v), "max_c": max(v), "sum_c": math.fsum(v)}
              for (s, b), v in sorted(buckets.items())]
    table = Rollup.__table__  # Core: no ORM bulk-insert bookkeeping per row
    stmt = _insert(session, table)
    excluded = stmt.excluded
    merge = {"count": table.c.count + excluded.count, "sum_c": table.c.sum_c + excluded.sum_c,
             "min_c": _least(session, table.c.min_c, excluded.min_c),
             "max_c": _greatest(session, table.c.max_c, excluded.max_c)}
    session.execute(stmt.on_conflict_do_update(index_elements=["sensor_id", "bucket_start"],
                                               set_=merge), values)


def _least(session, a, b):
    return func.least(a, b) if session.get_bind().dialect.name == "postgresql" else func.min(a, b)


def _greatest(session, a, b):
    return func.greatest(a, b) if session.get_bind().dialect.name == "postgresql" else func.max(a, b)


def _update_last_values(session, inserted: list[dict]) -> None:
    latest: dict[int, dict] = {}
    for row in inserted:
        if row["sensor_id"] not in latest or row["measured_at"] > latest[row["sensor_id"]]["measured_at"]:
            latest[row["sensor_id"]] = row
    if not latest:
        return
    # One Core executemany, not an ORM UPDATE per sensor (each of which evaluated its
    # criteria against every Sensor in the session).
    table = Sensor.__table__
    # Only move forward: a late, older reading must not replace a newer last value.
    stmt = (update(table)
            .where(table.c.id == bindparam("b_id"),
                   or_(table.c.last_reading_at.is_(None), table.c.last_reading_at < bindparam("b_after")))
            .values(last_temperature_c=bindparam("b_temp"), last_reading_at=bindparam("b_at")))
    session.execute(stmt, [{"b_id": sensor_id, "b_after": row["measured_at"],
                            "b_temp": row["temperature_c"], "b_at": row["measured_at"]}
                           for sensor_id, row in sorted(latest.items())])
    # A Core UPDATE leaves Sensor objects already in the session stale: expire those.
    for obj in list(session.identity_map.values()):
        identity = inspect(obj).identity if isinstance(obj, Sensor) else None
        if identity and identity[0] in latest:
            session.expire(obj, ["last_temperature_c", "last_reading_at"])
