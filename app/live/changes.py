"""What moves a site's change counter on: every commit that changes what a live screen shows.

A commit that adds or changes an alert, an alert's state, a hold timer or its outcome, a
checklist submission, a unit, a sensor or a site moves the counter of the site concerned on in
the same transaction (a listener on every ORM session, so the alert engine, the scheduler, the
tablet's views and ingest need not remember to). Readings are stored in bulk below the ORM, so
ingest's alert hook marks their sites with :func:`mark_changed`. The counter lives in the
database: a change committed by ingest or the scheduler in another process reaches screens
served by any web worker.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Callable, Iterable

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from app.models import (Alert, AlertState, HoldTimer, LiveVersion, Run, Site, Submission,
                        TimerOutcome, Unit, utcnow)
from sensors.models import Sensor

logger = logging.getLogger(__name__)

_PENDING = "brigade_live_sites"
_BUMPED = "brigade_live_bumped"
#: ETags also change every this many seconds: ages and time-driven states are refreshed
#: even on a quiet site (a defrost window starting, a delay running out).
REFRESH_SECONDS = 30
_ETAG = re.compile(r'"?v([0-9]{1,18})\.([0-9]{1,18})"?')


def mark_changed(session: Session, site_ids: Iterable[int | None]) -> None:
    """Move these sites' counters on when ``session`` next commits."""
    pending = session.info.setdefault(_PENDING, set())
    pending.update(s for s in site_ids if s is not None)


def site_version(session: Session, site_id: int) -> int:
    """The site's change counter (0 before its first change)."""
    return session.execute(select(LiveVersion.version).where(LiveVersion.site_id == site_id)
                           ).scalar_one_or_none() or 0


def etag(version: int, now: float | None = None) -> str:
    """The (unquoted) ETag a screen sends back: the version and the refresh period."""
    bucket = int((time.time() if now is None else now) // REFRESH_SECONDS)
    return f"v{version}.{bucket}"


def etag_order(tag: str) -> tuple[int, int] | None:
    """(version, refresh period) of an ETag, quoted or not, to tell which of two is newer;
    None if it is not one of :func:`etag`'s. The counter only moves on, so a tag made later
    never orders before one made earlier, in any process."""
    match = _ETAG.fullmatch(tag.strip())
    return (int(match[1]), int(match[2])) if match else None


def conditional_headers(response, tag: str):
    """What every live answer carries: its ETag, no caching, and the server's time (ms), from
    which a screen reckons ages without trusting its own clock."""
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Brigade-Now"] = str(int(utcnow().timestamp() * 1000))
    return response


def _site_of(session: Session, obj) -> int | None:
    if isinstance(obj, (Alert, AlertState, HoldTimer, Unit)):
        return obj.site_id
    if isinstance(obj, Site):
        return obj.id
    if isinstance(obj, Sensor):
        return _unit_site(session, obj.unit_id)
    if isinstance(obj, TimerOutcome):
        return session.execute(select(HoldTimer.site_id).where(HoldTimer.id == obj.timer_id)
                               ).scalar_one_or_none()
    if isinstance(obj, Submission):
        return session.execute(select(Run.site_id).where(Run.id == obj.run_id)).scalar_one_or_none()
    return None


def _unit_site(session: Session, unit_id: int | None) -> int | None:
    if unit_id is None:
        return None
    return session.execute(select(Unit.site_id).where(Unit.id == unit_id)).scalar_one_or_none()


_WATCHED = (Alert, AlertState, HoldTimer, TimerOutcome, Submission, Unit, Sensor, Site)


@event.listens_for(Session, "after_flush")
def _collect(session, _flush_context) -> None:
    sites = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, _WATCHED):
            continue
        sites.add(_site_of(session, obj))
        if isinstance(obj, Sensor):  # moved off a unit: that unit's board changes too
            for unit_id in inspect(obj).attrs.unit_id.history.deleted:
                sites.add(_unit_site(session, unit_id))
    if sites:
        mark_changed(session, sites)


#: Called with the sites whose counters a commit in this process moved on, after it: the live
#: socket (app.live.socket) is woken by it instead of waiting for its next look.
_listeners: list[Callable[[set[int]], None]] = []


def on_commit(listener: Callable[[set[int]], None]) -> Callable[[], None]:
    """Call ``listener(site_ids)`` after each commit in this process that moved counters on
    (in the committing thread: it must be quick). Returns what removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


@event.listens_for(Session, "before_commit")
def _bump(session) -> None:
    if session.new or session.dirty or session.deleted:
        session.flush()  # what is still pending is collected by _collect
    sites = session.info.pop(_PENDING, None)
    if sites:
        _upsert(session, sorted(sites))
        session.info[_BUMPED] = sites


@event.listens_for(Session, "after_commit")
def _tell(session) -> None:
    sites = session.info.pop(_BUMPED, None)
    if sites:
        for listener in list(_listeners):
            try:
                listener(sites)
            except Exception:  # a listener's trouble is not the commit's
                logger.exception("a live-change listener failed")


@event.listens_for(Session, "after_rollback")
def _forget(session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_BUMPED, None)


def _upsert(session: Session, site_ids: list[int]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(LiveVersion).values([{"site_id": s, "version": 1} for s in site_ids])
    session.execute(statement.on_conflict_do_update(
        index_elements=[LiveVersion.site_id], set_={"version": LiveVersion.version + 1}))
