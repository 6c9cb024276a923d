"""Rejected messages (dead letters), summarised for the site's admin."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_, select

from app.models import Site
from sensors.models import DeadLetter


def preview(payload: bytes | memoryview | None, limit: int = 160) -> str:
    """A payload as one line of text for the admin: invalid UTF-8 replaced, cut short."""
    text = bytes(payload or b"").decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else ("\u2423" if c in "\r\n\t" else "\ufffd") for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def reason_kind(reason: str) -> str:
    """The kind of a rejection ("not JSON", "unknown topic" …) without its details."""
    return reason.split(":", 1)[0].strip() or reason


@dataclass


class ReasonCount:
    kind: str
    total: int
    last_day: int
    latest: dt.datetime


def _seen_at(site: Site):
    """The rejected messages a site's admin sees: its own HTTP tokens' and every MQTT one."""
    return or_(DeadLetter.site_id.is_(None), DeadLetter.site_id == site.id)


def dead_letter_summary(session, site: Site, now: dt.datetime, top: int = 15) -> dict:
    """Counts of rejected messages, overall and in the last 24 h, by kind of reason."""
    since = now - dt.timedelta(hours=24)
    seen = _seen_at(site)
    total = session.scalar(select(func.count()).select_from(DeadLetter).where(seen))
    last_day = session.scalar(select(func.count()).select_from(DeadLetter)
                              .where(seen, DeadLetter.received_at >= since))
    by_kind: dict[str, ReasonCount] = {}
    # Group exact reasons in SQL, fold their details away here (portable across databases).
    rows = session.execute(select(DeadLetter.reason, func.count(), func.max(DeadLetter.received_at))
                           .where(seen).group_by(DeadLetter.reason)
                           .order_by(func.count().desc()).limit(2000))
    for reason, count, latest in rows:
        entry = by_kind.setdefault(reason_kind(reason), ReasonCount(reason_kind(reason), 0, 0, latest))
        entry.total += count
        entry.latest = max(entry.latest, latest)
    recent = session.execute(select(DeadLetter.reason, func.count())
                             .where(seen, DeadLetter.received_at >= since)
                             .group_by(DeadLetter.reason).limit(2000))
    for reason, count in recent:
        if reason_kind(reason) in by_kind:
            by_kind[reason_kind(reason)].last_day += count
    reasons = sorted(by_kind.values(), key=lambda r: (-r.last_day, -r.total, r.kind))[:top]
    return {"total": total, "last_day": last_day, "reasons": reasons}


def latest_dead_letters(session, site: Site, limit: int = 200) -> list[DeadLetter]:
    return session.execute(select(DeadLetter).where(_seen_at(site))
                           .order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
                           .limit(limit)).scalars().all()
