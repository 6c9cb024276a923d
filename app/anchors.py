"""The chain's head, anchored outside the database.

Anyone who can write the database *and* holds the audit key can re-chain it: rewrite a
record, recompute every later link, move the head. The chain alone then verifies. An anchor
is a copy of the head (sequence and hash) kept where the database cannot rewrite it: a line
appended to an anchor file (``BRIGADE_AUDIT_ANCHOR_FILE``, owner-only, best on another mount
or a log host), the head printed in each day's summary email, and (with
``BRIGADE_AUDIT_ANCHOR_TOPIC``) a retained MQTT message through the outbox. ``flask audit verify``
reads the anchor file by itself: every anchored link must still be in the chain with the
same hash, so a re-chain reaching back before the newest anchor is named.

The scheduler's ``audit-seal`` job anchors the head when it has moved and the newest anchor
is older than ``BRIGADE_AUDIT_ANCHOR_SECONDS`` (an hour): at most that much of the chain's
end can be re-chained unseen.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.models import AuditHead, AuditRecord, utcnow

logger = logging.getLogger(__name__)

#: Anchored links looked up per query while verifying.
BATCH = 500


@dataclass(frozen=True)
class Anchor:
    at: dt.datetime
    seq: int
    hash: str

    def line(self) -> str:
        return f"{self.at.astimezone(dt.timezone.utc).isoformat(timespec='seconds')} " \
               f"{self.seq}:{self.hash}\n"

    @property
    def head(self) -> str:
        return f"{self.seq}:{self.hash}"


def anchor_path() -> Path | None:
    value = current_app.config.get("BRIGADE_AUDIT_ANCHOR_FILE")
    return Path(value) if value else None


def head(session) -> tuple[int, str]:
    row = session.get(AuditHead, 1)
    return (row.seq, row.hash) if row is not None else (0, "0" * 64)


def parse(line: str) -> Anchor | None:
    """One anchor line ("<UTC time> SEQ:HASH"), or None when it is not one."""
    try:
        when, value = line.split()
        seq, digest = value.split(":")
        if len(digest) != 64:
            return None
        int(digest, 16)
        return Anchor(dt.datetime.fromisoformat(when), int(seq), digest)
    except ValueError:
        return None


def last_anchor(path: Path) -> Anchor | None:
    """The newest anchor in the file (its last line), read from the end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        anchor = parse(line)
        if anchor is not None:
            return anchor
    return None


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one line; the file is created owner-only (0600) and only ever appended to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, anchor.line().encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def anchor_head(session, now: dt.datetime | None = None, *, force: bool = False) -> str:
    """Append the committed head to the anchor file if it moved and the newest anchor is due
    (``force``: whenever it moved). Call after committing: an anchor must never name a head
    that a rollback took back."""
    path = anchor_path()
    if path is None:
        return "no anchor file configured"
    now = now or utcnow()
    seq, digest = head(session)
    if seq == 0:
        return "nothing to anchor"
    last = last_anchor(path)
    if last is not None and (last.seq, last.hash) == (seq, digest):
        return f"head #{seq} already anchored"
    every = dt.timedelta(seconds=current_app.config.get("BRIGADE_AUDIT_ANCHOR_SECONDS", 3600))
    if not force and last is not None and now - last.at < every:
        return f"head #{seq} anchored next after {(last.at + every).isoformat(timespec='minutes')}"
    anchor = Anchor(now, seq, digest)
    append_anchor(path, anchor)
    logger.info("audit head #%s anchored in %s", seq, path)
    topic = current_app.config.get("BRIGADE_AUDIT_ANCHOR_TOPIC")
    if topic:
        publish_anchor(session, topic, anchor)
        return f"head #{seq} anchored (and queued, retained, for {topic})"
    return f"head #{seq} anchored"


def publish_anchor(session, topic: str, anchor: Anchor) -> None:
    """Queue the anchor for the MQTT outbox, retained: the broker keeps the newest head for any
    subscriber (a log host, another site) whatever happens to this server. The caller commits."""
    from app.models import Notification
    session.add(Notification(channel="mqtt", target=topic, next_attempt_at=anchor.at, body={
        "kind": "audit_anchor", "seq": anchor.seq, "hash": anchor.hash,
        "at": anchor.at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "retain": True}))


def check_anchors(session, path: Path | None = None) -> tuple[list, list[str]]:
    """Every anchor in the file against the chain: (problems, notes). Streams the file and
    looks anchored links up in batches: constant memory at any number of anchors."""
    from app.audit import Problem
    path = path or anchor_path()
    if path is None:
        return [], ["no anchor file configured (BRIGADE_AUDIT_ANCHOR_FILE)"]
    if not path.exists():
        return [], [f"no anchors yet in {path}"]
    problems, count, bad = [], 0, 0

    def settle(batch):
        found = dict(session.execute(select(AuditRecord.seq, AuditRecord.hash)
                                     .where(AuditRecord.seq.in_([a.seq for a in batch]))).all())
        for anchor in batch:
            when = anchor.at.isoformat(timespec="seconds")
            if anchor.seq not in found:
                problems.append(Problem(f"audit record #{anchor.seq}", (
                    f"is gone, but it was the head anchored at {when} in {path} (links removed "
                    "from the end)"), {"table": "audit_records", "id": anchor.seq},
                    "removed (an anchored head)", None, anchor.at))
            elif found[anchor.seq] != anchor.hash:
                problems.append(Problem(f"audit record #{anchor.seq}", (
                    f"does not match the head anchored at {when} in {path} (the chain was "
                    "rewritten and re-chained with the key)"),
                    {"table": "audit_records", "id": anchor.seq},
                    "hash differs from the anchored head (re-chained)", None, anchor.at))

    batch = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            anchor = parse(line)
            if anchor is None:
                bad += 1
                continue
            count += 1
            batch.append(anchor)
            if len(batch) >= BATCH:
                settle(batch)
                batch = []
    if batch:
        settle(batch)
    if bad:
        problems.append(Problem(f"anchor file {path}", f"{bad} line(s) are not anchors (edited)",
                                {"file": str(path)}, f"{bad} line(s) edited"))
    return problems, [f"{count} anchor(s) in {path} checked"]
