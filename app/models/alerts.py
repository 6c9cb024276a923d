"""Alerts: an immutable opening record, immutable lifecycle events, and a working projection."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Immutable, UTCDateTime, db, utcnow

#: Alert kinds and what raises them.
KINDS = ("temperature", "offline", "low_battery", "checklist_overdue", "timer_expired",
         "review_due", "calibration")
#: What happened to the food, recorded with an acknowledgement.
FOOD_OUTCOMES = ("kept", "moved", "discarded", "not_applicable")


class Alert(Immutable, db.Model):
    """That something needed attention, and when: written once."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    #: What the alert is about, e.g. "unit:3:temperature"; one open alert per subject.
    subject: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    #: alarm | critical for temperatures; alarm for the other kinds.
    tier: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The facts at opening: value, limit, excursion start, checklist slot, dish...
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

    events: Mapped[list[AlertEvent]] = relationship(back_populates="alert", order_by="AlertEvent.id")
    state: Mapped[AlertState] = relationship(back_populates="alert", uselist=False)

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "kind": self.kind, "subject": self.subject,
                "unit_id": self.unit_id, "tier": self.tier, "opened_at": self.opened_at,
                "detail": self.detail}


class AlertEvent(Immutable, db.Model):
    """One step in an alert's life: tier raised, recovered, acknowledged, escalated, resolved."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    #: opened | tier_raised | recovered | escalated | acknowledged | resolved
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Who acted (None for the system).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    device_id: Mapped[str | None] = mapped_column(String(32))
    #: Acknowledgement: corrective_action, food_outcome, note; escalation: level.
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    alert: Mapped[Alert] = relationship(back_populates="events")
    actor: Mapped["Staff"] = relationship()  # noqa: F821

    def audit_payload(self) -> dict:
        return {"alert_id": self.alert_id, "kind": self.kind, "at": self.at,
                "actor_id": self.actor_id, "device_id": self.device_id, "data": self.data}


class AlertState(db.Model):
    """Where an alert stands now: a projection of its events that the jobs work from."""

    __tablename__ = "alert_states"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: open | acknowledged | resolved
    status: Mapped[str] = mapped_column(String(20), index=True)
    tier: Mapped[str] = mapped_column(String(20))
    #: The subject while unresolved, NULL after: unique, so one open alert per subject.
    open_subject: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: 0 on-duty cooks, 1 head chef, 2 owner/admin.
    escalation_level: Mapped[int] = mapped_column(default=0)
    next_notify_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    recovered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    alert: Mapped[Alert] = relationship(back_populates="state")


class Notification(db.Model):
    """One send to one recipient over one channel: an outbox row with its outcome.

    Mostly an alert's; the daily summary's email goes through the same outbox.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: None for a message that is not about one alert (the head chef's daily summary).
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    #: email | webhook | mqtt
    channel: Mapped[str] = mapped_column(String(20))
    #: An email address, a URL, an MQTT topic.
    target: Mapped[str] = mapped_column(String(300))
    level: Mapped[int] = mapped_column(default=0)
    #: pending | sent | failed (gave up after the last attempt) | cancelled (acknowledged first)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The message as sent (subject/body or JSON), so "who was told what" is on record.
    body: Mapped[dict] = mapped_column(JSON, default=dict)

    alert: Mapped[Alert | None] = relationship()


class SchedulerLease(db.Model):
    """Who runs the scheduled jobs: one holder per deployment, renewed while alive."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class JobRun(db.Model):
    """Each scheduled job execution (id + due time), so each due run happens once."""

    __tablename__ = "job_runs"

    job_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)
