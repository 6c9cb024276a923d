"""All of Brigade's models, imported here so Alembic and the app see one metadata."""
from app.models.alerts import (FOOD_OUTCOMES, Alert, AlertEvent, AlertState, JobRun,
                               Notification, SchedulerLease)
from app.models.audit import AuditHead, AuditRecord
from app.models.base import (UTC, Base, Immutable, ImmutableRecordError, UTCDateTime, db, set_clock,
                             utcnow)
from app.models.checklists import (Answer, ChecklistDefinition, ChecklistItem, Photo, Rule, Run,
                                   Submission, Verification)
from app.models.people import Device, Role, Site, Staff
from app.models.timers import HoldTimer, TimerOutcome

__all__ = [
    "FOOD_OUTCOMES", "Alert", "AlertEvent", "AlertState", "JobRun", "Notification", "SchedulerLease",
    "Answer", "AuditHead", "AuditRecord", "Base", "ChecklistDefinition", "ChecklistItem",
    "Device", "HoldTimer", "Immutable", "ImmutableRecordError", "Photo", "Role", "Rule", "Run",
    "Site", "Staff", "Submission", "TimerOutcome", "UTC", "UTCDateTime", "Verification", "db",
    "set_clock",
    "utcnow",
]
