"""The yearly review of the kitchen's rules (seed appendix 3): the reminder side.

The review itself (walking each rule with the year's evidence) is its own feature; this
module decides when it is due: a year after the rule set last changed, with a reminder
a month before. The alert escalates like any other until someone acts on it.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from app.alerts.operations import raise_alert
from app.models import Rule, Site

REVIEW_EVERY = dt.timedelta(days=365)
REMIND_BEFORE = dt.timedelta(days=30)


def last_review(session) -> dt.datetime | None:
    """When the rule set last got a new version (the last sign-off of a review)."""
    return session.execute(select(func.max(Rule.loaded_at))).scalar_one_or_none()


def remind_review(session, now: dt.datetime) -> list:
    """Job: raise a "review due" alert per site from a month before the year is up."""
    last = last_review(session)
    if last is None or now < last + REVIEW_EVERY - REMIND_BEFORE:
        return []
    due = last + REVIEW_EVERY
    opened = []
    for site in session.execute(select(Site)).scalars():
        alert = raise_alert(session, site_id=site.id, kind="review_due",
                            subject=f"site:{site.id}:review:{due.date().isoformat()}", now=now,
                            detail={"title": "Yearly review of the kitchen rules",
                                    "due": due.isoformat(), "last_review": last.isoformat()})
        if alert is not None:
            opened.append(alert)
    return opened
