"""The head chef's daily summary: yesterday's checklists and alerts, by email at 06:00 site time."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from app import anchors
from app.checklists.definitions import current_definitions
from app.checklists.operations import due_today
from app.models import Alert, AlertState, Answer, JobRun, Notification, Role, Run, Site, Staff

SEND_AT = dt.time(6, 0)


def summarise(session, site: Site, day: dt.date) -> dict:
    """The figures of one site-local day."""
    tz = ZoneInfo(site.timezone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz) \
        .astimezone(dt.timezone.utc)
    entries = due_today(session, site, end - dt.timedelta(seconds=1), current_definitions(session, site.id))
    submitted = [e for e in entries if e.run is not None and e.run.submission is not None]
    late = [e for e in submitted if e.run.submission.submitted_at > e.slot.deadline]
    fails = session.scalar(select(func.count()).select_from(Answer).join(Run)
                           .where(Run.site_id == site.id, Run.slot_start >= start,
                                  Run.slot_start < end, Answer.outcome == "fail",
                                  ~Answer.id.in_(select(Answer.supersedes_id).where(
                                      Answer.supersedes_id.is_not(None))))) or 0
    alerts = session.execute(select(Alert.kind, func.count()).where(
        Alert.site_id == site.id, Alert.opened_at >= start, Alert.opened_at < end)
        .group_by(Alert.kind)).all()
    still_open = session.scalar(select(func.count()).select_from(AlertState).where(
        AlertState.site_id == site.id, AlertState.status != "resolved")) or 0
    return {"day": day.isoformat(), "slots": len(entries), "submitted": len(submitted),
            "late": len(late), "missed": len(entries) - len(submitted),
            "unverified": sum(1 for e in submitted if e.run.verification is None),
            "failed_answers": fails, "alerts": dict(alerts), "alerts_not_resolved": still_open,
            "audit_head": "{}:{}".format(*anchors.head(session))}


def summary_text(site: Site, figures: dict) -> tuple[str, str]:
    subject = f"[Brigade] {site.name}: summary of {figures['day']}"
    alerts = ", ".join(f"{kind} {n}" for kind, n in sorted(figures["alerts"].items())) or "none"
    lines = [f"{site.name}, {figures['day']} ({site.timezone})", "",
             f"Checklists: {figures['submitted']} of {figures['slots']} submitted "
             f"({figures['late']} late, {figures['missed']} not submitted); "
             f"{figures['unverified']} waiting for your sign-off.",
             f"Failed answers recorded: {figures['failed_answers']}.",
             f"Alerts opened: {alerts}. Not yet resolved now: {figures['alerts_not_resolved']}.",
             "", "Details are in Brigade under Records and Alerts.", "",
             f"Audit chain head now: {figures['audit_head']}",
             "(Keep this email: `flask audit verify --expect` with this value shows whether any "
             "record up to it was rewritten since.)"]
    return subject, "\n".join(lines)


def daily_summary(session, now: dt.datetime) -> str:
    """Job (hourly): once a site's local time is past 06:00, queue yesterday's summary once.

    The emails go into the outbox in the transaction that claims the day, so a summary is
    queued exactly once and the dispatcher sends and retries it like any alert's.
    """
    if not current_app.config.get("BRIGADE_SMTP_HOST"):
        return "no SMTP server configured"
    queued = 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for site in session.execute(select(Site)).scalars().all():
        local = now.astimezone(ZoneInfo(site.timezone))
        if local.time() < SEND_AT:
            continue
        day = local.date() - dt.timedelta(days=1)
        key = (f"daily-summary:site:{site.id}",
               dt.datetime.combine(local.date(), dt.time(), tzinfo=dt.timezone.utc))
        claimed = session.execute(insert(JobRun).values(job_id=key[0], due_at=key[1],
                                                        holder="daily-summary", started_at=now)
                                  .on_conflict_do_nothing().returning(JobRun.job_id)).first()
        if not claimed:
            session.rollback()
            continue
        subject, text = summary_text(site, summarise(session, site, day))
        chefs = session.execute(select(Staff.email).where(
            Staff.site_id == site.id, Staff.role == Role.HEAD_CHEF, Staff.active.is_(True),
            Staff.email.is_not(None))).scalars().all()
        for email in chefs:
            session.add(Notification(channel="email", target=email, next_attempt_at=now,
                                     body={"kind": "daily_summary", "site_id": site.id,
                                           "subject": subject, "text": text}))
        session.commit()
        queued += len(chefs)
    return f"{queued} summaries queued"
