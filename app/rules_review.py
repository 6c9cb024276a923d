"""When the yearly review of a site's rules is due (seed appendix 3), and the reminders.

A year after the site's last published version — or after it first used its rules — the head
chef is reminded 30 days before, 7 days before and on the day, each once, by a "review_due"
alert; the day after, the review is overdue and the alert goes straight to the owners (the
last escalation level). All by the site's calendar, in its time zone. Signing the review off
resolves the open reminders (``rules.operations.publish_review``) and starts the next year.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.alerts.operations import escalate_now, raise_alert
from app.models import Alert, Site

#: (days before the due date, name, tier); the overdue one escalates to the owners at once.
MILESTONES = ((30, "30_days", "warning"), (7, "7_days", "warning"), (0, "due", "alarm"),
              (-1, "overdue", "critical"))
OVERDUE_LEVEL = 2


def year_after(day: dt.date) -> dt.date:
    """The same date a year on; 29 February goes to 28 February."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def review_due(session, site: Site) -> tuple[dt.date, dt.datetime | None]:
    """The site-local date the next review is due, and when the rules last changed (None: the
    site has not used its rules yet, so the clock runs from the site's creation)."""
    tz = ZoneInfo(site.timezone)
    from app.rules.operations import newest_version
    version = newest_version(session, site.id)
    last = version.published_at if version else None
    start = last or site.created_at
    return year_after(start.astimezone(tz).date()), last


def remind_review(session, now: dt.datetime) -> list[Alert]:
    """Job (hourly): for each site, the newest reminder whose day has come, once."""
    opened = []
    for site in session.execute(select(Site).order_by(Site.id)).scalars():
        due, last = review_due(session, site)
        today = now.astimezone(ZoneInfo(site.timezone)).date()
        reached = [m for m in MILESTONES if today >= due - dt.timedelta(days=m[0])]
        if not reached:
            continue
        _days, name, tier = reached[-1]
        subject = f"site:{site.id}:review:{due.isoformat()}:{name}"
        if session.execute(select(Alert.id).where(Alert.subject == subject)).first():
            continue  # this reminder was given (and perhaps already dealt with)
        alert = raise_alert(session, site_id=site.id, kind="review_due", subject=subject,
                            tier=tier, now=now,
                            detail={"title": "Yearly review of the kitchen rules",
                                    "due": due.isoformat(), "reminder": name,
                                    "last_review": last.isoformat() if last else None})
        if alert is None:
            continue
        if name == "overdue":
            escalate_now(session, alert, OVERDUE_LEVEL, now)
        opened.append(alert)
    return opened
