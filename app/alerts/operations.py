"""Alert operations: open (once per subject), recover, acknowledge, resolve, escalate.

Every step is an immutable event in the audit chain; ``AlertState`` is the working
projection the jobs and pages read. The caller commits.
"""
from __future__ import annotations

import datetime as dt
import logging

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.errors import OperationError
from app.models import (FOOD_OUTCOMES, Alert, AlertEvent, AlertState, Notification, Role, Staff,
                        utcnow)

logger = logging.getLogger(__name__)

#: Who hears about an alert at each escalation level.
LEVEL_ROLES = {0: (Role.COOK,), 1: (Role.HEAD_CHEF,), 2: (Role.ADMIN, Role.OWNER)}


def open_state(session, subject: str) -> AlertState | None:
    return session.execute(select(AlertState).where(AlertState.open_subject == subject)) \
        .scalar_one_or_none()


def _event(session, alert: Alert, kind: str, at: dt.datetime, actor_id=None, device_id=None,
           **data) -> AlertEvent:
    event = AlertEvent(alert=alert, kind=kind, at=at, actor_id=actor_id, device_id=device_id,
                       data=data)
    audit.append(session, event, f"alert.{kind}", actor_id, device_id)
    return event


def raise_alert(session, *, site_id: int, kind: str, subject: str, tier: str = "alarm",
                unit_id: int | None = None, detail: dict | None = None,
                now: dt.datetime | None = None) -> Alert | None:
    """Open an alert for ``subject`` unless one is open; raise its tier if it got worse.

    Returns the alert when something new was recorded, else None.
    """
    now = now or utcnow()
    state = open_state(session, subject)
    if state is not None:
        if tier == "critical" and state.tier != "critical":
            state.tier = "critical"
            state.recovered_at = None
            state.next_notify_at = now  # a worse alert is news: tell people again now
            _event(session, state.alert, "tier_raised", now, tier=tier, **(detail or {}))
            return state.alert
        if state.recovered_at is not None:
            # Out of range again before anyone resolved it: the same alert goes on.
            state.recovered_at = None
            _event(session, state.alert, "relapsed", now, **(detail or {}))
            return state.alert
        return None
    alert = Alert(site_id=site_id, kind=kind, subject=subject, unit_id=unit_id, tier=tier,
                  opened_at=now, detail=detail or {})
    try:
        with session.begin_nested():
            audit.append(session, alert, "alert.opened", None, None)
            session.add(AlertState(alert=alert, site_id=site_id, status="open", tier=tier,
                                   open_subject=subject, escalation_level=0, next_notify_at=now))
            session.flush()
    except IntegrityError:
        return None  # another worker opened it at the same moment
    logger.warning("alert %s opened: %s %s (%s)", alert.id, kind, subject, tier)
    return alert


def mark_recovered(session, subject: str, now: dt.datetime | None = None, **detail) -> bool:
    """The condition has cleared; the alert stays until a person acknowledges and resolves it."""
    state = open_state(session, subject)
    if state is None or state.recovered_at is not None:
        return False
    now = now or utcnow()
    state.recovered_at = now
    _event(session, state.alert, "recovered", now, **detail)
    return True


def acknowledge(session, alert: Alert, staff: Staff, device_id: str | None, *,
                corrective_action: str, food_outcome: str, note: str | None = None,
                now: dt.datetime | None = None) -> AlertEvent:
    """Someone has it in hand: what they did and what happened to the food."""
    audit.serialize(session)
    session.refresh(alert.state)
    if alert.state.status != "open":
        raise OperationError(_("This alert was already acknowledged."))
    corrective_action = (corrective_action or "").strip()
    if not corrective_action:
        raise OperationError(_("Say what you did about it (the corrective action)."))
    if food_outcome not in FOOD_OUTCOMES:
        raise OperationError(_("Say what happened to the food: kept, moved or discarded."))
    now = now or utcnow()
    event = _event(session, alert, "acknowledged", now, staff.id, device_id,
                   corrective_action=corrective_action[:2000], food_outcome=food_outcome,
                   note=(note or "").strip()[:2000] or None)
    alert.state.status = "acknowledged"
    alert.state.acknowledged_at = now
    alert.state.next_notify_at = None
    return event


def resolve(session, alert: Alert, staff: Staff, device_id: str | None, *, still_out: bool,
            note: str | None = None, now: dt.datetime | None = None) -> AlertEvent:
    """Close an acknowledged alert; refused while its condition still holds."""
    audit.serialize(session)
    session.refresh(alert.state)
    if alert.state.status == "resolved":
        raise OperationError(_("This alert is already resolved."))
    if alert.state.status != "acknowledged":
        raise OperationError(_("Acknowledge the alert (with what was done) before resolving it."))
    if still_out:
        if alert.kind == "temperature":
            raise OperationError(_("It is still out of range: the alert stays open until it recovers."))
        raise OperationError(_("Not back to normal yet: the alert stays open until it recovers."))
    now = now or utcnow()
    event = _event(session, alert, "resolved", now, staff.id, device_id,
                   note=(note or "").strip()[:2000] or None)
    alert.state.status = "resolved"
    alert.state.resolved_at = now
    alert.state.open_subject = None
    alert.state.next_notify_at = None
    return event


def overdue_subject(site_id: int, checklist_key: str, schedule_key: str,
                    slot_start: dt.datetime) -> str:
    """The subject of the overdue alert of one checklist slot (one open alert per slot)."""
    return f"site:{site_id}:checklist:{checklist_key}:{schedule_key}:{slot_start.isoformat()}"


def resolve_submitted_late(session, subject: str, staff: Staff, device_id: str | None, *,
                           run_id: int, submitted_at: dt.datetime) -> AlertEvent | None:
    """A late run was submitted: its overdue alert is over, by what the cook did.

    Resolved at once by a chained event that says so ("submitted late at ..."), with nobody
    left to acknowledge or resolve it; the lateness stays on the run's record.
    """
    state = open_state(session, subject)
    if state is None:
        return None
    event = _event(session, state.alert, "resolved", submitted_at, staff.id, device_id,
                   submitted_late_at=submitted_at.isoformat(), run_id=run_id)
    state.status = "resolved"
    state.resolved_at = submitted_at
    state.open_subject = None
    state.next_notify_at = None
    logger.info("alert %s resolved: run %s submitted late", state.alert_id, run_id)
    return event


def escalate_now(session, alert: Alert, level: int, now: dt.datetime) -> None:
    """Send an alert straight to ``level`` (an overdue review goes to the owners), chained."""
    if level > alert.state.escalation_level:
        alert.state.escalation_level = level
        _event(session, alert, "escalated", now, level=level)


def resolve_done(session, subject: str, staff: Staff, device_id: str | None,
                 at: dt.datetime, **detail) -> AlertEvent | None:
    """What the alert asked for was done (the yearly review signed off, say): its open alert
    is resolved at once by a chained event that says what, by who did it."""
    state = open_state(session, subject)
    if state is None:
        return None
    event = _event(session, state.alert, "resolved", at, staff.id, device_id, **detail)
    state.status = "resolved"
    state.resolved_at = at
    state.open_subject = None
    state.next_notify_at = None
    return event


# --- escalation and notifications ------------------------------------------------------------

def escalation_level(age: dt.timedelta, thresholds_min: list[int]) -> int:
    """The level an unacknowledged alert has reached after ``age``."""
    level = 0
    for n, minutes in enumerate(thresholds_min):
        if age >= dt.timedelta(minutes=minutes):
            level = n
    return level


def notify_due(session, now: dt.datetime | None = None) -> int:
    """Job: queue notifications for every unacknowledged alert that is due; escalate by age."""
    now = now or utcnow()
    cfg = current_app.config
    thresholds = cfg["BRIGADE_ESCALATION_MINUTES"]
    renotify = dt.timedelta(minutes=cfg["BRIGADE_RENOTIFY_MINUTES"])
    due = session.execute(select(AlertState).where(AlertState.status == "open",
                                                   AlertState.next_notify_at <= now)
                          .with_for_update(skip_locked=True)).scalars().all()
    for state in due:
        alert = state.alert
        level = escalation_level(now - alert.opened_at, thresholds)
        if level > state.escalation_level:
            state.escalation_level = level
            _event(session, alert, "escalated", now, level=level)
        queue_notifications(session, alert, state.escalation_level, now)
        state.next_notify_at = now + renotify
    return len(due)


def recipients(session, site_id: int, level: int) -> list[Staff]:
    """On-duty cooks first; each level adds the next role up (cook → head chef → the site's
    admin and the group's owners, who see every site)."""
    roles = {role for lvl in range(min(level, 2) + 1) for role in LEVEL_ROLES[lvl]}
    of_the_site = (Staff.site_id == site_id) | (Staff.role == Role.OWNER)
    return list(session.execute(select(Staff).where(of_the_site, Staff.active.is_(True),
                                                    Staff.role.in_(roles))
                                .order_by(Staff.id)).scalars())


def alert_message(alert: Alert, level: int) -> dict:
    """The channel-neutral content of a notification."""
    detail = alert.detail or {}
    title = f"[Brigade] {alert.state.tier.upper()}: {detail.get('title') or alert.kind}"
    return {"alert_id": alert.id, "kind": alert.kind, "tier": alert.state.tier,
            "subject": alert.subject, "site_id": alert.site_id, "unit_id": alert.unit_id,
            "opened_at": alert.opened_at.isoformat(), "level": level, "title": title,
            "detail": detail}


def queue_notifications(session, alert: Alert, level: int, now: dt.datetime) -> list[Notification]:
    """Outbox rows for every configured channel; the dispatcher sends them, off the ingest path."""
    cfg = current_app.config
    body = alert_message(alert, level)
    rows = []
    if cfg.get("BRIGADE_SMTP_HOST"):
        for person in recipients(session, alert.site_id, level):
            if person.email:
                rows.append(Notification(alert=alert, channel="email", target=person.email,
                                         level=level, next_attempt_at=now, body=body))
    if cfg.get("BRIGADE_ALERT_WEBHOOK_URL"):
        rows.append(Notification(alert=alert, channel="webhook", level=level, next_attempt_at=now,
                                 target=cfg["BRIGADE_ALERT_WEBHOOK_URL"], body=body))
    if cfg.get("BRIGADE_ALERT_MQTT_TOPIC"):
        rows.append(Notification(alert=alert, channel="mqtt", level=level, next_attempt_at=now,
                                 target=f"{cfg['BRIGADE_ALERT_MQTT_TOPIC']}/{alert.site_id}",
                                 body=body))
    session.add_all(rows)
    return rows
