"""HTTP ingest: a JSON body becomes the same ``Message``s MQTT delivers, stored by ``store_batch``.

A body is one item or a list of up to :data:`MAX_ITEMS` items, each either an MQTT message
``{"topic": "tele/kitchen1/SENSOR", "payload": {...} or "text"}`` or Brigade's short form
``{"sensor": "fridge1", "t": 4.2, "ts": "2026-11-27T10:00:00Z", "unit": "C", "battery": 88}``,
which is the message ``brigade/fridge1/reading`` with the other fields as its JSON payload.
Parsing, idempotent storage and dead letters are therefore the MQTT path's own. What cannot
become a message at all (a body that is not JSON, an item of the wrong shape, a body too large)
is dead-lettered here with the reason, so nothing is dropped unseen.

A token belongs to a site and posts only for sensors that are unassigned or attached to a unit
of that site: an item that would touch a sensor of another site's unit (a reading, a battery
level or an availability) is dead-lettered with that reason before ``store_batch`` sees it, and
the rest of the body is stored. Every dead letter of a request carries the token's site, so the
admin of one site does not read another's. (MQTT is not checked here: which device may publish
on which topic is the broker's business, through its ACLs.)

Send ``ts``: a reading without the device's time is stored at the receive time, so posting it
twice stores it twice, as it would over MQTT — unless the request carries an
``Idempotency-Key``. The first request with a key is processed and its response (status and
body) remembered with the key, per token, in the same transaction as its readings; a repeat of
the key by the same token within :data:`IDEMPOTENCY_WINDOW` gets that response again (with
``Idempotent-Replayed: true``) and stores nothing. The same key with another body is refused
(422). A body refused as too large before it was read is never fingerprinted, so its key is
neither checked nor remembered.

Two requests with one key racing: each checks for the key, finds none, stores its readings and
inserts the key; the unique constraint (token, key) lets only one insert through. The loser
does not see the conflict until the winner has committed — PostgreSQL makes an insert of a
duplicate key wait for the transaction holding it, and SQLite lets one writer at a time — so
the loser rolls back its readings and replays the winner's response: exactly what it would
have got a moment later. A 409 ("in progress, retry") would only make the client ask again for
that same answer, so it is kept for a winner that cannot be read after the conflict, which
these databases at their default isolation (read committed; serial writes) do not produce.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select

from sensors import formats
from sensors.formats import PayloadError
from sensors.formats.base import kind, loads, show
from app.calibration.operations import offset_history
from app.models.ingest import IdempotencyKey
from app.models.units import Unit
from sensors.models import DeadLetter, Sensor
from sensors.store import (BARE_NUMBER_FORMATS, DEAD_LETTER_KEEP_BYTES, Message, clean_text,
                           store_batch)

#: Largest body accepted; 1,000 short-form readings take about 80 KB.
MAX_BODY_BYTES = 512 * 1024
MAX_ITEMS = 1000
SOURCE = "http"
#: The topic recorded for a dead letter that never became a message (the body itself).
BODY_TOPIC = "/api/readings"
_MESSAGE_FIELDS = {"topic", "payload"}
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a key's response is replayed; the retention job purges older keys.
IDEMPOTENCY_WINDOW = dt.timedelta(hours=24)
_KEY = re.compile(r"[\x20-\x7e]{1,200}")


@dataclass
class Outcome:
    """What the endpoint answers: the HTTP status and the counts."""

    status: int = 200
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    #: Sensors that got a new reading: their units are evaluated for alerts after the commit.
    sensors_seen: set[int] = field(default_factory=set)

    def body(self) -> dict:
        body = {"stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "reasons": self.reasons}
        if self.error:
            body["error"] = self.error
        return body


def dead_letter(session, site_id: int, received_at: dt.datetime, topic: str, payload: bytes,
                size: int, reason: str) -> None:
    """Keep what will not become readings, as ``store_batch`` keeps unparsable messages."""
    session.add(DeadLetter(received_at=received_at, source=SOURCE, topic=clean_text(topic)[:500],
                           payload=bytes(payload[:DEAD_LETTER_KEEP_BYTES]), payload_size=size,
                           reason=reason[:500], site_id=site_id))


def refuse_body(session, site_id: int, received_at: dt.datetime, payload: bytes, size: int,
                reason: str, status: int) -> Outcome:
    """Dead-letter a whole body and say why."""
    dead_letter(session, site_id, received_at, BODY_TOPIC, payload, size, reason)
    return Outcome(status=status, rejected=1, reasons=[reason], error=reason)


def too_large(session, site_id: int, received_at: dt.datetime, head: bytes, size: int) -> Outcome:
    return refuse_body(session, site_id, received_at, head, size,
                       f"body too large: {size} bytes (at most {MAX_BODY_BYTES})", 413)


def message_for(item: object, received_at: dt.datetime) -> Message:
    """The MQTT message an item stands for; PayloadError when it is neither shape."""
    if not isinstance(item, dict):
        raise PayloadError(f"expected an object, got {kind(item)}")
    if "topic" in item:
        unknown = sorted(set(item) - _MESSAGE_FIELDS)
        if unknown:
            raise PayloadError(f"unknown field(s) beside topic: {show(', '.join(unknown), 60)}")
        if "payload" not in item:
            raise PayloadError("missing field: payload")
        topic, payload = item["topic"], item["payload"]
        if not isinstance(topic, str) or not topic:
            raise PayloadError(f"topic must be a non-empty string, not {show(topic)}")
        # A string is the payload's text as a device would publish it ("4.2", "online");
        # anything else is JSON. Lone surrogates stay invalid UTF-8 for the parser to refuse.
        data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else \
            _dumps(payload)
    elif "sensor" in item:
        sensor = item["sensor"]
        if not isinstance(sensor, str) or not sensor:
            raise PayloadError(f"sensor must be a non-empty string, not {show(sensor)}")
        topic = f"brigade/{sensor}/reading"
        data = _dumps({k: v for k, v in item.items() if k != "sensor"})
    else:
        raise PayloadError('expected "topic" and "payload", or "sensor" and "t"')
    if clean_text(topic) != topic:
        raise PayloadError(f"topic has control characters: {show(topic, 80)}")
    return Message(topic=topic, payload=data, received_at=received_at, source=SOURCE)


def _dumps(value: object) -> bytes:
    try:
        return json.dumps(value, allow_nan=False).encode("utf-8")
    except RecursionError:  # json.loads took it, json.dumps needs a few more frames
        raise PayloadError("nested too deeply") from None


def _item_topic(item: object, index: int) -> str:
    if isinstance(item, dict):
        if isinstance(item.get("topic"), str):
            return item["topic"]
        if isinstance(item.get("sensor"), str):
            return f"brigade/{item['sensor']}/reading"
    return f"{BODY_TOPIC}#{index}"


def sensors_touched(message: Message) -> tuple[set[str], set[str]]:
    """The sensor keys a message's readings carry: (exact keys, keys also reaching below).

    A battery level or availability updates every sensor under its key (a Tasmota LWT on
    ``tasmota/kitchen1`` reaches ``tasmota/kitchen1/DS18B20/…``), a temperature only its own.
    A message that does not parse touches nothing: ``store_batch`` dead-letters it.
    """
    parser = formats.route(message.topic)
    if parser is None:
        return set(), set()
    try:
        try:
            readings = parser.parse(message.topic, message.payload)
        except PayloadError:
            if parser not in BARE_NUMBER_FORMATS:
                raise
            # store_batch reads "41" as °F for a sensor set to °F: the keys are the same.
            readings = parser.parse(message.topic, message.payload, temp_unit="F")
    except Exception:  # noqa: BLE001 - refused (or a parser bug caught) by store_batch
        return set(), set()
    exact = {r.sensor for r in readings}
    below = {r.sensor for r in readings if r.battery_pct is not None or r.online is not None}
    return exact, below


def _other_sites_sensors(session, site_id: int, exact: set[str],
                         below: set[str]) -> tuple[set[str], dict[str, str]]:
    """Of the keys a post touches, those on other sites' units, and each parent key (of the
    ones reaching below) with one such sensor under it."""
    touched = or_(Sensor.key.in_(exact),
                  *(Sensor.key.startswith(key + "/", autoescape=True) for key in below))
    keys = set(session.execute(select(Sensor.key).join(Unit, Sensor.unit_id == Unit.id)
                               .where(Unit.site_id != site_id, touched)).scalars())
    under: dict[str, str] = {}
    for key in sorted(keys):
        parts = key.split("/")
        for n in range(1, len(parts)):
            under.setdefault("/".join(parts[:n]), key)
    return keys, under


def _belonging_elsewhere(exact: set[str], below: set[str], theirs: set[str],
                         under: dict[str, str]) -> str | None:
    """The first sensor of another site's unit a message would touch, or None."""
    for key in sorted(exact):
        if key in theirs:
            return key
        if key in below and key in under:
            return under[key]
    return None


def refuse_other_sites(session, site_id: int, items: list[tuple[int, Message]],
                       outcome: Outcome) -> list[Message]:
    """The messages that touch no sensor of another site's unit; the others dead-lettered."""
    touched = [(index, message, *sensors_touched(message)) for index, message in items]
    if not any(exact for _index, _message, exact, _below in touched):
        return [message for _index, message, _exact, _below in touched]
    theirs, under = _other_sites_sensors(
        session, site_id, set().union(*(exact for _i, _m, exact, _b in touched)),
        set().union(*(below for _i, _m, _e, below in touched)))
    kept = []
    for index, message, exact, below in touched:
        foreign = _belonging_elsewhere(exact, below, theirs, under)
        if foreign is None:
            kept.append(message)
            continue
        reason = f"item {index}: sensor {foreign} belongs to another site"
        dead_letter(session, site_id, message.received_at, message.topic, message.payload,
                    len(message.payload), reason)
        outcome.rejected += 1
        outcome.reasons.append(reason)
    return kept


def ingest_body(session, site_id: int, raw: bytes, received_at: dt.datetime) -> Outcome:
    """Store what a site's token posted; dead-letter what it cannot. The caller commits."""
    size = len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return refuse_body(session, site_id, received_at, raw, size,
                           f"not UTF-8: bad byte at offset {exc.start}", 400)
    if not text.strip():
        return refuse_body(session, site_id, received_at, raw, size, "empty body", 400)
    try:
        body = loads(text)
    except PayloadError as exc:
        return refuse_body(session, site_id, received_at, raw, size, str(exc), 400)
    if isinstance(body, dict):
        items = [body]
    elif isinstance(body, list):
        items = body
        if len(items) > MAX_ITEMS:
            return refuse_body(session, site_id, received_at, raw, size,
                               f"too many items: {len(items)} (at most {MAX_ITEMS})", 413)
    else:
        return refuse_body(session, site_id, received_at, raw, size,
                           f"expected a JSON object or a list of objects, got {kind(body)}", 400)

    outcome = Outcome()
    messages = []
    for index, item in enumerate(items):
        try:
            messages.append((index, message_for(item, received_at)))
        except PayloadError as exc:
            try:
                data = _dumps(item)
            except PayloadError:
                data = b""
            reason = f"item {index}: {exc}"
            dead_letter(session, site_id, received_at, _item_topic(item, index), data, len(data),
                        reason)
            outcome.rejected += 1
            outcome.reasons.append(reason)
    messages = refuse_other_sites(session, site_id, messages, outcome) if messages else []
    if messages:
        result = store_batch(session, messages, site_id, offset_history=offset_history)
        outcome.stored, outcome.duplicates = result.stored, result.duplicates
        outcome.sensors_seen = result.sensors_seen
        outcome.rejected += result.rejected
        outcome.reasons.extend(result.reasons)
    return outcome


class KeyRefused(ValueError):
    """An ``Idempotency-Key`` header that is not 1–200 printable ASCII characters."""


@dataclass(frozen=True)
class Reply:
    """A response to send: status and JSON body, and whether it is a remembered one."""

    status: int
    body: dict
    replayed: bool = False


def idempotency_key(value: str | None) -> str | None:
    """The header's key, None when absent; KeyRefused when malformed."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise KeyRefused(f"{IDEMPOTENCY_HEADER} must be 1 to 200 printable ASCII characters")
    return value


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def remembered(session, token_id: int, key: str, now: dt.datetime) -> IdempotencyKey | None:
    """The token's key if used within the window; a stale one is purged so the key is free."""
    row = session.execute(select(IdempotencyKey).where(
        IdempotencyKey.token_id == token_id, IdempotencyKey.key == key)).scalar_one_or_none()
    if row is not None and row.created_at <= now - IDEMPOTENCY_WINDOW:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row.id))
        session.expunge(row)
        return None
    return row


def remember(session, token_id: int, key: str, digest: str, outcome: Outcome,
             now: dt.datetime) -> None:
    """Keep the key with the response; IntegrityError at the flush when a racer got there first."""
    session.add(IdempotencyKey(token_id=token_id, key=key, body_sha256=digest,
                               status=outcome.status, response=outcome.body(), created_at=now))
    session.flush()


def replay(row: IdempotencyKey | None, digest: str) -> Reply:
    """The remembered response for a repeated key, or why it cannot be given."""
    if row is None:
        return Reply(409, {"error": f"a request with this {IDEMPOTENCY_HEADER} is still in "
                                    "progress; retry shortly"})
    if row.body_sha256 != digest:
        return Reply(422, {"error": f"this {IDEMPOTENCY_HEADER} was already used with a "
                                    "different body; use a new key for a new request"})
    return Reply(row.status, row.response, replayed=True)


def purge_idempotency_keys(session, now: dt.datetime) -> int:
    """Delete keys past the replay window (the retention job's share of HTTP ingest)."""
    return session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.created_at <= now - IDEMPOTENCY_WINDOW)).rowcount
