"""Append records to the keyed hash chain, and verify the chain against the tables.

Every compliance record (run, answer, photo, submission, verification, hold timer,
timer outcome) gets one audit link when it is inserted. A link holds the record's
canonical content and an HMAC over it and the previous link, so an edit, a
deletion or an insertion made behind the app's back shows up in ``verify``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.orm import Session

from app.models import AuditHead, AuditRecord, Change, Immutable, db, utcnow

logger = logging.getLogger(__name__)

GENESIS = "0" * 64


def _default(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def canonical(payload: dict) -> str:
    """Canonical JSON: sorted keys, no spaces, UTC ISO timestamps."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_default)


#: The format new links are written in (``AuditRecord.format``); older links verify their way.
LINK_FORMAT = 2


def link_hash(key: bytes, seq: int, prev_hash: str, action: str, entity: str, entity_id: int,
              payload: str, *, format: int = 1, at: dt.datetime | None = None,
              actor_id: int | None = None, device_id: str | None = None,
              context: str | None = None) -> str:
    """The link's HMAC. Format 1 covers (seq, prev_hash, action, entity, entity_id, payload);
    format 2 covers all of the link: also its time, actor, device and context, so none of them
    can be rewritten without the key."""
    parts = [str(seq), prev_hash, action, entity, str(entity_id), payload]
    if format == 2:
        parts = ["brigade-link-2", *parts, canonical({"at": at, "actor_id": actor_id,
                                                      "device_id": device_id,
                                                      "context": context})]
    elif format != 1:
        raise ValueError(f"unknown audit link format {format!r}")
    message = "\x1f".join(parts)
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _key() -> bytes:
    key = current_app.config.get("BRIGADE_AUDIT_KEY")
    if not key:
        raise RuntimeError("BRIGADE_AUDIT_KEY is not set (run `python -m app.instance init-secrets`)")
    return key.encode()


#: The action of the link that hands the chain from one key to the next.
KEY_CHANGED = "audit.key_changed"


def fingerprint(key: bytes) -> str:
    """A key's public name: enough to tell keys apart, nothing to recover one from."""
    return hashlib.sha256(b"brigade-audit-key\x1f" + key).hexdigest()[:16]


def _keys(current: bytes) -> dict[str, bytes]:
    """Every key the chain may have been hashed with, by fingerprint: the current one and
    BRIGADE_AUDIT_PREVIOUS_KEYS."""
    keys = {fingerprint(current): current}
    for old in current_app.config.get("BRIGADE_AUDIT_PREVIOUS_KEYS") or []:
        keys.setdefault(fingerprint(old.encode()), old.encode())
    return keys


def _link_key(link: AuditRecord, keys: dict[str, bytes]) -> bytes | None:
    """The key (of ``keys``) that hashed this link, if any did."""
    for key in keys.values():
        if link_hash(key, link.seq, link.prev_hash, link.action, link.entity, link.entity_id,
                     link.payload, format=link.format, at=link.at, actor_id=link.actor_id,
                     device_id=link.device_id, context=link.context) == link.hash:
            return key
    return None


def rotate_key(session, actor_id: int | None = None) -> Change:
    """Hand the chain to the current key (BRIGADE_AUDIT_KEY): one chained change, hashed with
    the key of the chain so far (found among BRIGADE_AUDIT_PREVIOUS_KEYS), that names the new
    key's fingerprint. Links after it are hashed with the new key; verify follows the hand-over.
    Refused (OperationError) when the chain is already on the current key or its key is not
    configured. The caller commits."""
    from app.errors import OperationError
    current = _key()
    serialize(session)
    last = session.execute(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).scalar()
    if last is None:
        raise OperationError("The chain is empty: it starts with the current key, nothing to "
                             "hand over.")
    old = _link_key(last, _keys(current))
    if old is None:
        raise OperationError("The chain's last link verifies with none of the keys given: put "
                             "the key it was made with in BRIGADE_AUDIT_PREVIOUS_KEYS.")
    if old == current:
        raise OperationError("The chain is already on the current key (BRIGADE_AUDIT_KEY): "
                             "set the new key there and the old one in "
                             "BRIGADE_AUDIT_PREVIOUS_KEYS.")
    change = Change(subject="audit:key", action=KEY_CHANGED, actor_id=actor_id, at=utcnow(),
                    data=canonical({"fingerprint": [fingerprint(old), fingerprint(current)]}))
    append(session, change, KEY_CHANGED, actor_id, None, key=old)
    return change


def audited_models() -> dict[str, type]:
    """Table name -> model for every record kind the chain vouches for."""
    return {mapper.class_.__tablename__: mapper.class_
            for mapper in db.Model.registry.mappers
            if issubclass(mapper.class_, Immutable) and hasattr(mapper.class_, "audit_payload")}


def ensure_head(session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        session.flush()


_INSERT_LINK = insert(AuditRecord)
_MOVE_HEAD = (update(AuditHead).where(AuditHead.id == 1)
              .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")))

#: session.info key: the chain head (seq, hash) this transaction has locked and moved on.
_HEAD = "brigade_audit_head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session, transaction) -> None:
    # Committed or rolled back (a savepoint too): the next append locks and reads it again.
    # A flush's own inner subtransaction ending changes nothing.
    if transaction.nested or transaction.parent is None:
        session.info.pop(_HEAD, None)


def serialize(session) -> None:
    """Take the chain's lock now, before reading what a new record depends on.

    Operations that read then write (the answer an answer supersedes, whether a run
    was submitted) call this first, so two tablets acting at once are applied one
    after the other instead of both building on the same stale state. The UPDATE takes
    the head's row lock (PostgreSQL) or the write lock (SQLite), and returns the head as
    it is once locked; appends in this transaction then build on it without reading again.
    """
    row = session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq)
                          .returning(AuditHead.seq, AuditHead.hash)).one_or_none()
    if row is None:
        ensure_head(session)
        row = (0, GENESIS)
    session.info[_HEAD] = (row[0], row[1])


def append(session, record, action: str, actor_id: int | None, device_id: str | None,
           context: dict | None = None, key: bytes | None = None) -> str:
    """Add ``record`` to the session and chain it; returns the link's hash. The caller commits.

    ``context`` is chained with the link (under its hash) but not compared with any row: what a
    reader of the record needs as it was when it was recorded."""
    session.add(record)
    session.flush()  # the record needs its id before it can be vouched for
    if _HEAD not in session.info:
        serialize(session)
    seq, prev_hash = session.info[_HEAD]
    seq += 1
    payload = canonical(record.audit_payload())
    entity = type(record).__tablename__
    at = utcnow()
    context = _context(session, record, entity, actor_id, context)
    context = canonical(context) if context else None
    digest = link_hash(key or _key(), seq, prev_hash, action, entity, record.id, payload,
                       format=LINK_FORMAT, at=at, actor_id=actor_id, device_id=device_id,
                       context=context)
    # Prepared Core statements on the session's connection: a link is never read back in
    # this transaction, and the tablet's tick-off pays for every statement built.
    connection = session.connection()
    connection.execute(_INSERT_LINK, {
        "seq": seq, "at": at, "action": action, "entity": entity,
        "entity_id": record.id, "actor_id": actor_id, "device_id": device_id,
        "payload": payload, "prev_hash": prev_hash, "format": LINK_FORMAT, "context": context,
        "hash": digest})
    connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    session.info[_HEAD] = (seq, digest)
    logger.debug("audit %s: %s %s %s", seq, action, entity, record.id)
    return digest



def _context(session, record, entity: str, actor_id: int | None, extra: dict | None) -> dict:
    """What a reader of this record needs as it was, chained with its link: the actor's name,
    an answer's item (text and limits), an alert's or a calibrated sensor's unit and its limits.
    Read from the session's identity map where the operation has them loaded already."""
    from app.models import Alert, ChecklistItem, Staff, Unit
    context = {}
    if actor_id is not None:
        person = session.get(Staff, actor_id)
        if person is not None:
            context["actor"] = person.name
    unit_id = None
    if entity == "answers":
        item = session.get(ChecklistItem, record.item_id)
        if item is not None:
            context["item"] = {"definition_id": item.definition_id, "key": item.key,
                               "kind": item.kind, "text_en": item.text_en,
                               "text_zh": item.text_zh, "min_c": item.temp_min_c,
                               "max_c": item.temp_max_c, "critical": item.critical}
    elif entity == "alerts":
        unit_id = record.unit_id
    elif entity == "alert_events":
        alert = session.get(Alert, record.alert_id)
        unit_id = alert.unit_id if alert is not None else None
    elif entity == "calibrations" and getattr(record, "sensor_id", None) is not None:
        from sensors.models import Sensor
        sensor = session.get(Sensor, record.sensor_id)
        if sensor is not None:
            context["sensor"] = sensor.key
            unit_id = sensor.unit_id
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is not None:
            context["unit"] = unit_limits(unit)
    context.update(extra or {})
    return context


#: A unit's fields chained by its changes and snapshotted with its alerts: what made a
#: reading "in range" and when an alarm was due.
UNIT_FIELDS = ("name", "kind", "target_max_c", "critical_max_c", "min_c", "alert_delay_s",
               "hysteresis_c", "critical_delay_s", "expected_interval_s", "offline_after",
               "defrost")


def unit_limits(unit) -> dict:
    return {"id": unit.id, **{field: getattr(unit, field) for field in UNIT_FIELDS}}


def record_change(session, *, subject: str, action: str, actor_id: int | None,
                  data: dict, site_id: int | None = None, device_id: str | None = None,
                  reason: str | None = None) -> Change:
    """Chain a change to something records are read against (a person, a site, a unit's
    limits, a sensor's unit, a checklist's definition).

    ``subject`` is "<table>:<id>" (e.g. "staff:12"), ``data`` maps each changed field to
    ``[before, after]`` (never a secret), ``reason`` is the why, chained with the link.
    ``flask audit verify`` checks every column named in ``data`` against the newest chained
    ``after``: a row changed behind the app's back (a renamed person, a unit's limits) is
    named. The actor's name as it is now is chained with the link. The caller commits."""
    change = Change(site_id=site_id, subject=subject, action=action, data=canonical(data),
                    actor_id=actor_id, device_id=device_id, at=utcnow())
    append(session, change, action, actor_id, device_id,
           context={"reason": reason} if reason else None)
    return change


def adopt_unchained(session) -> int:
    """Chain the state of every person, unit, sensor assignment and checklist version the
    chain has never seen (rows from before changes were chained, or made outside the app), so
    from now on any change to them must be chained to pass verify. Idempotent; returns how
    many it chained. Run by the scheduler's audit-seal job; the caller commits."""
    from app.checklists.definitions import definition_digest
    from app.models import Change, ChecklistDefinition, Staff, Unit
    from sensors.models import Sensor
    chained = set(session.execute(select(Change.subject)).scalars())
    reason = "first recorded by the chain as it stood"
    count = 0

    def adopt(subject, action, data, site_id=None):
        nonlocal count
        if subject not in chained:
            record_change(session, subject=subject, action=action, actor_id=None, site_id=site_id,
                          data={field: [None, _scalar(value)] for field, value in data.items()},
                          reason=reason)
            count += 1

    for unit in session.execute(select(Unit).order_by(Unit.id)).scalars():
        adopt(f"units:{unit.id}", "unit.recorded",
              {f: getattr(unit, f) for f in UNIT_FIELDS}, unit.site_id)
    for sensor_id, unit_id in session.execute(select(Sensor.id, Sensor.unit_id)
                                              .where(Sensor.unit_id.is_not(None))
                                              .order_by(Sensor.id)):
        adopt(f"sensors:{sensor_id}", "sensor.recorded", {"unit_id": unit_id})
    for person in session.execute(select(Staff).order_by(Staff.id)).scalars():
        adopt(f"staff:{person.id}", "staff.recorded",
              {"name": person.name, "role": person.role, "active": person.active},
              person.site_id)
    for definition in session.execute(select(ChecklistDefinition)
                                      .where(ChecklistDefinition.id.not_in(
                                          [int(i) for t, _, i in (c.partition(":") for c in chained)
                                           if t == "checklist_definitions" and i.isdigit()]))
                                      .order_by(ChecklistDefinition.id)).scalars():
        if definition_digest(definition) == definition.content_hash:  # else verify names it
            adopt(f"checklist_definitions:{definition.id}", "checklist.recorded",
                  {"key": definition.key, "version": definition.version,
                   "content_hash": definition.content_hash})
    return count


def chained_names(session, entity: str, ids) -> dict[int, str]:
    """The actor's name as it was when each record was chained (format 2 links), by record
    id: what pages show as "who", which renaming a person must not change."""
    ids = list(ids)
    if not ids:
        return {}
    rows = session.execute(select(AuditRecord.entity_id, AuditRecord.context)
                           .where(AuditRecord.entity == entity, AuditRecord.entity_id.in_(ids),
                                  AuditRecord.context.is_not(None)))
    names = {}
    for entity_id, context in rows:
        name = json.loads(context).get("actor")
        if name is not None:
            names[entity_id] = name
    return names


@dataclass(frozen=True)
class Problem:
    """One finding of verify: ``where``/``what`` are the line printed; ``record`` names the
    record for machines ({"table", "id"}, or {"sensor", "hour"} for readings), ``change`` says
    in a few words what changed, and ``start``–``end`` is the time affected (the record's time,
    or the sealed hour)."""
    where: str
    what: str
    record: dict | None = None
    change: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"

    def as_dict(self) -> dict:
        """The finding as ``flask audit verify --json`` prints it."""
        def iso(at):
            return at.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if at else None
        return {"record": self.record or {"name": self.where}, "where": self.where,
                "change": self.change or self.what, "detail": self.what,
                "time_range": {"from": iso(self.start), "to": iso(self.end or self.start)}}


def _row_time(row) -> dt.datetime | None:
    """The time a record is about (when it was recorded, submitted, performed...)."""
    for name in ("recorded_at", "submitted_at", "performed_at", "verified_at", "uploaded_at",
                 "at", "opened_at", "started_at", "created_at", "loaded_at"):
        value = getattr(row, name, None)
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return None


def _utc(at):
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.timezone.utc)


#: Rows fetched at a time while verifying: memory stays the same at any chain length.
VERIFY_BATCH = 1000


def verify(session, key: bytes | None = None, notes: list[str] | None = None,
           anchor_files=None, counts: dict | None = None) -> tuple[int, list[Problem]]:
    """Check the chain and every audited table; return (links checked, problems). ``counts``,
    if given, receives how many links and sealed hours were checked.

    In constant memory: the chain is streamed once in order; each audited table is streamed
    once joined to its links (one per record, by the unique (entity, entity_id) index), and
    links whose record is gone are found by an anti-join in the database.
    """
    key = key or _key()
    problems: list[Problem] = []
    count, last_seq, prev = _walk_chain(session, _keys(key), problems)
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq, head.hash) != (last_seq, prev):
        problems.append(Problem("audit chain head", _head_mismatch(head.seq, last_seq),
                                {"table": "audit_head", "seq": head.seq},
                                f"head says #{head.seq}, chain ends at #{last_seq}"))
    for entity, model in audited_models().items():
        problems.extend(_check_table(session, entity, model))
    problems.extend(_sensor_offsets(session))
    problems.extend(_alert_states(session))
    problems.extend(_changed_rows(session))
    problems.extend(_definitions(session))
    from app.seals import sealed_hours, verify_seals
    now, keep_days = utcnow(), current_app.config["BRIGADE_RETENTION_DAYS"]
    problems.extend(verify_seals(session, now, keep_days))
    if counts is not None:  # what was checked, for the summary line
        counts.update(links=count, sealed_hours=sealed_hours(session, now, keep_days))
    # The heads anchored outside the database (app/anchors.py): a re-chain with the key in
    # hand rewrites links the anchors still name.
    from app.anchors import check_anchors
    for path in anchor_files or [None]:
        found, said = check_anchors(session, path)
        problems.extend(found)
        if notes is not None:
            notes.extend(said)
    return count, problems


def _walk_chain(session, keys: dict[str, bytes], problems: list[Problem]
                ) -> tuple[int, int, str]:
    """Every link in order: no gap, each follows the previous, each hash matches its content.

    ``keys`` by fingerprint: the chain starts on the key its first link verifies with, and a
    key-change link (itself hashed with the key before) hands it to the key it names."""
    prev, expected, count, newest_format = GENESIS, 1, 0, 1
    prev_at = None
    first = session.execute(select(AuditRecord).order_by(AuditRecord.seq).limit(1)).scalar()
    key = (_link_key(first, keys) if first is not None else None) or next(iter(keys.values()))
    links = session.execute(
        select(AuditRecord.seq, AuditRecord.prev_hash, AuditRecord.action, AuditRecord.entity,
               AuditRecord.entity_id, AuditRecord.payload, AuditRecord.hash, AuditRecord.format,
               AuditRecord.at, AuditRecord.actor_id, AuditRecord.device_id, AuditRecord.context)
        .order_by(AuditRecord.seq).execution_options(yield_per=VERIFY_BATCH))
    for (seq, prev_hash, action, entity, entity_id, payload, digest, fmt, at, actor_id, device_id,
         context) in links:
        count += 1
        where = f"audit record #{seq} ({entity} {entity_id})"
        link = {"table": "audit_records", "id": seq, "of": {"table": entity, "id": entity_id}}
        when = _utc(at)
        if seq != expected:
            problems.append(Problem(f"audit records #{expected}–#{seq - 1}",
                                    "missing from the chain (removed)",
                                    {"table": "audit_records", "ids": [expected, seq - 1]},
                                    "links removed", prev_at, when))
        if prev_hash != prev:
            problems.append(Problem(where, "does not follow the previous link", link,
                                    "link inserted, removed or reordered", when))
        if fmt not in (1, 2) or fmt < newest_format:
            # Links are only ever written in the newest format: an older one after a newer
            # one is a link moved back to the format that leaves its time and actor unsealed.
            problems.append(Problem(where, f"altered: format {fmt} after format {newest_format} "
                                           "links (its time, actor and device would be unsealed)",
                                    link, f"format changed to {fmt}", when))
        elif key is None:
            pass  # hashed with a key not given (named once, at the hand-over)
        elif link_hash(key, seq, prev_hash, action, entity, entity_id, payload, format=fmt,
                       at=at, actor_id=actor_id, device_id=device_id, context=context) != digest:
            problems.append(Problem(where, "altered: its hash does not match its content"
                                    + (" (time, actor, device or record)" if fmt >= 2 else ""),
                                    link, "link content differs from what was hashed", when))
        elif action == KEY_CHANGED:
            # A hand-over the key in force vouches for: the links after it are the next key's.
            new = json.loads(json.loads(payload)["data"])["fingerprint"][1]
            if new not in keys:
                problems.append(Problem(
                    f"audit records #{seq + 1} onward",
                    f"hashed with the key {new}, which is not given: set it as "
                    "BRIGADE_AUDIT_KEY (or in BRIGADE_AUDIT_PREVIOUS_KEYS)", link,
                    "key not configured", when))
            key = keys.get(new)
        prev_at = when
        newest_format = max(newest_format, fmt if fmt in (1, 2) else newest_format)
        prev, expected = digest, seq + 1
    return count, expected - 1, prev


def _head_mismatch(head_seq: int, last_seq: int) -> str:
    if head_seq > last_seq:
        return f"says #{head_seq} but the chain ends at #{last_seq} (links removed from the end)"
    if head_seq < last_seq:
        return (f"says #{head_seq} but the chain goes on to #{last_seq} "
                "(links added behind the app's back)")
    return f"its hash is not that of the last link, #{last_seq} (the head or that link was replaced)"


def _check_table(session, entity: str, model) -> list[Problem]:
    """Each row of an audited table against its link, and each link against its row."""
    problems = []
    rows = session.execute(
        select(model, AuditRecord.seq, AuditRecord.payload, AuditRecord.at, AuditRecord.context)
        .outerjoin(AuditRecord, (AuditRecord.entity == entity)
                   & (AuditRecord.entity_id == model.id))
        .order_by(model.id).execution_options(yield_per=VERIFY_BATCH))
    for row, seq, payload, at, context in rows:
        record = {"table": entity, "id": row.id}
        if seq is None:
            problems.append(Problem(f"{entity} {row.id}",
                                    "is not in the audit chain (inserted behind the app's back)",
                                    record, "inserted", _row_time(row)))
        elif canonical(row.audit_payload()) != payload:
            problems.append(Problem(f"{entity} {row.id}", f"altered since it was recorded"
                                    f"{_by(at, context)} (audit record #{seq})",
                                    record, _differs(payload, row.audit_payload()),
                                    _utc(at) or _row_time(row)))
        session.expunge(row)
    removed = session.execute(
        select(AuditRecord.seq, AuditRecord.entity_id, AuditRecord.at, AuditRecord.context)
        .where(AuditRecord.entity == entity,
               ~select(model.id).where(model.id == AuditRecord.entity_id).exists())
        .order_by(AuditRecord.entity_id).execution_options(yield_per=VERIFY_BATCH))
    problems += [Problem(f"{entity} {entity_id}",
                         f"removed (recorded{_by(at, context)} in audit record #{seq})",
                         {"table": entity, "id": entity_id}, "removed", _utc(at))
                 for seq, entity_id, at, context in removed]
    return problems


def _differs(chained: str, now: dict) -> str:
    """What changed in a record, field by field: "temperature_c differs: chained 9.0, now 4.0"."""
    before, after = json.loads(chained), json.loads(canonical(now))
    fields = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if not fields:
        return "content differs from what was chained"
    return "; ".join(f"{k} differs: chained {before.get(k)!r}, now {after.get(k)!r}"
                     for k in fields)


def _by(at, context: str | None) -> str:
    """" by <name as chained> at <time>" for a finding: the who and when an inspector reads."""
    name = json.loads(context).get("actor") if context else None
    return (f" by {name}" if name else "") + (f" at {_shown(at)}" if at is not None else "")


def _scalar(value):
    """A column's value as chained JSON holds it (enums by value, times as canonical text)."""
    return json.loads(canonical({"v": value.value if hasattr(value, "value") else value}))["v"]


def _changed_rows(session) -> list[Problem]:
    """Every row a chained change is about (a person, a unit's limits, a sensor's unit, a
    definition) must still hold, in each column a change named, the newest chained value:
    a person renamed or a unit's limits changed behind the app's back is named. Changes are
    few (people and settings, not records): their newest values are held per subject."""
    from app.models import Change
    newest: dict[str, dict] = {}
    for subject, data, at in session.execute(select(Change.subject, Change.data, Change.at)
                                             .order_by(Change.id)
                                             .execution_options(yield_per=VERIFY_BATCH)):
        for field, value in json.loads(data).items():
            if isinstance(value, list) and len(value) == 2:
                newest.setdefault(subject, {})[field] = (value[1], _utc(at))
    models = {mapper.class_.__tablename__: mapper.class_ for mapper in db.Model.registry.mappers}
    by_table: dict[str, dict[int, dict]] = {}
    for subject, fields in newest.items():
        table, _, ident = subject.partition(":")
        if table in models and ident.isdigit():
            by_table.setdefault(table, {})[int(ident)] = fields
    problems = []
    for table, subjects in sorted(by_table.items()):
        model = models[table]
        columns = {c.key for c in model.__mapper__.column_attrs}
        present = set()
        for row in session.execute(select(model).where(model.id.in_(list(subjects)))
                                   .order_by(model.id)).scalars():
            present.add(row.id)
            for field, (chained, at) in sorted(subjects[row.id].items()):
                now = _scalar(getattr(row, field)) if field in columns else None
                if field in columns and now != chained:
                    problems.append(Problem(
                        f"{table} {row.id}", f"{field} is {now!r} but "
                        f"its chained changes say {chained!r} (changed behind the app's back)",
                        {"table": table, "id": row.id},
                        f"{field} differs: chained {chained!r}, now {now!r}", at, None))
            session.expunge(row)
        problems += [Problem(f"{table} {ident}", "removed (its changes are in the audit chain)",
                             {"table": table, "id": ident}, "removed",
                             max(at for _, at in subjects[ident].values()))
                     for ident in sorted(set(subjects) - present)]
    return problems


def _definitions(session) -> list[Problem]:
    """Each checklist definition version as its rows read now (items' text, limits, kinds)
    must hash to the content chained when it was loaded: what past answers were answers to."""
    from sqlalchemy.orm import selectinload

    from app.checklists.definitions import definition_digest
    from app.models import ChecklistDefinition
    problems = []
    for definition in session.execute(select(ChecklistDefinition)
                                      .options(selectinload(ChecklistDefinition.items))
                                      .order_by(ChecklistDefinition.id)).scalars():
        if definition_digest(definition) != definition.content_hash:
            problems.append(Problem(
                f"checklist {definition.key} version {definition.version} "
                f"(checklist_definitions {definition.id})",
                "its items or title differ from what was loaded and chained (what past answers "
                "answered was rewritten)",
                {"table": "checklist_definitions", "id": definition.id, "key": definition.key,
                 "version": definition.version},
                "items or title differ from what was chained", _row_time(definition), None))
    return problems


def _derive_alert_state(alert, events) -> dict:
    """What an alert's working state must say, from the alert and its chained events in order."""
    status, acknowledged_at, resolved_at, recovered_at = "open", None, None, None
    tier, level = alert.tier, 0
    for kind, at, data in events:
        data = data or {}
        if kind == "acknowledged":
            status, acknowledged_at = "acknowledged", at
        elif kind == "resolved":
            status, resolved_at = "resolved", at
        elif kind == "recovered":
            recovered_at = at
        elif kind in ("relapsed", "tier_raised"):
            recovered_at = None
            if data.get("tier") == "critical":
                tier = "critical"
        elif kind == "escalated":
            level = max(level, int(data.get("level") or 0))
    return {"status": status, "acknowledged_at": acknowledged_at, "resolved_at": resolved_at,
            "recovered_at": recovered_at, "tier": tier, "escalation_level": level,
            "open_subject": None if status == "resolved" else alert.subject}


def _alert_states(session) -> list[Problem]:
    """Each alert's stored working state (status, times, tier, escalation) against what its
    chained events say: a state row edited behind the app's back — an open alert made to read
    resolved, which also stops its escalation — is named. States and events are streamed side
    by side in alert order: constant memory."""
    from app.models import Alert, AlertEvent, AlertState
    problems = []
    states = session.execute(
        select(Alert, AlertState).join(AlertState, AlertState.alert_id == Alert.id)
        .order_by(Alert.id).execution_options(yield_per=VERIFY_BATCH))
    events = _event_stream(session, AlertEvent)
    pending = next(events, None)
    for alert, state in states:
        mine = []
        while pending is not None and pending[0] < alert.id:
            pending = next(events, None)
        while pending is not None and pending[0] == alert.id:
            mine.append(pending[1:])
            pending = next(events, None)
        derived = _derive_alert_state(alert, mine)
        for field, expected in derived.items():
            stored = getattr(state, field)
            if stored != expected:
                problems.append(Problem(
                    f"alert {alert.id}", f"its state says {field} {_shown(stored)} but its "
                    f"chained events say {_shown(expected)} (state edited behind the app's back)",
                    {"table": "alerts", "id": alert.id},
                    f"{field} differs: chained {_shown(expected)}, now {_shown(stored)}",
                    _row_time(alert), None))
        session.expunge(alert)
        session.expunge(state)
    return problems


def _event_stream(session, model):
    """(alert_id, kind, at, data) of every alert event in alert order, fetched in batches on a
    connection of its own (the states are being streamed on the session's)."""
    last = (0, 0)
    while True:
        rows = session.execute(
            select(model.alert_id, model.id, model.kind, model.at, model.data)
            .where((model.alert_id > last[0]) | ((model.alert_id == last[0]) & (model.id > last[1])))
            .order_by(model.alert_id, model.id).limit(VERIFY_BATCH)).all()
        if not rows:
            return
        for alert_id, event_id, kind, at, data in rows:
            yield alert_id, kind, at, data
        last = (rows[-1][0], rows[-1][1])


def _shown(value) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    return repr(value)


def _sensor_offsets(session) -> list[Problem]:
    """A sensor's correction changes every later reading: it must be the one its last
    calibration (a chained record) left it with, or 0 if it was never calibrated."""
    from app.models.calibration import Calibration
    from sensors.models import Sensor
    latest = select(func.max(Calibration.id)).where(Calibration.sensor_id.is_not(None)) \
        .group_by(Calibration.sensor_id)
    expected = dict(session.execute(select(Calibration.sensor_id, Calibration.offset_after_c)
                                    .where(Calibration.id.in_(latest))).all())
    return [Problem(f"sensor {key}", f"correction {offset:+g} °C does not match its calibration "
                    f"log ({expected.get(sensor_id, 0.0):+g} °C)",
                    {"table": "sensors", "id": sensor_id, "sensor": key},
                    f"offset_c differs: chained {expected.get(sensor_id) or 0.0:+g}, "
                    f"now {offset:+g}")
            for sensor_id, key, offset in session.execute(select(Sensor.id, Sensor.key,
                                                                 Sensor.offset_c))
            if abs(offset - (expected.get(sensor_id) or 0.0)) > 1e-9]
