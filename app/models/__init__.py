"""All of Brigade's models, imported here so Alembic and the app see one metadata."""
from app.models.alerts import (FOOD_OUTCOMES, Alert, AlertEvent, AlertState, JobRun,
                               Notification, SchedulerLease)
from app.models.audit import AuditHead, AuditRecord, Change
from app.models.base import (UTC, Base, Immutable, ImmutableRecordError, UTCDateTime, db, set_clock,
                             utcnow)
from app.models.calibration import Calibration
from app.models.displays import DisplayToken, LiveVersion
from app.models.checklists import (Answer, ChecklistDefinition, ChecklistItem, Photo, Rule, Run,
                                   Submission, Verification)
from app.models.ingest import IdempotencyKey, IngestToken
from app.models.people import (GROUP_ROLES, PASSWORD_ROLES, PIN_LENGTHS, Device, Role,
                               SignInBudget, SignInGuard, Site, Staff)
from app.models.rules import (RuleAcknowledgement, RuleReview, RuleSetVersion,
                               RuleSuggestion, SuggestionAnswer)
from app.models.timers import HoldTimer, TimerOutcome
from app.models.units import PRESETS, Unit
# The device path's tables, on the same base: one metadata for Alembic.
from sensors.models import DeadLetter, Delivery, DeviceState, Reading, Rollup, Sensor

__all__ = [
    "Alert", "AlertEvent", "AlertState", "Answer", "AuditHead", "AuditRecord", "Base",
    "Calibration", "Change", "ChecklistDefinition", "ChecklistItem", "DeadLetter", "Delivery",
    "Device", "DeviceState", "DisplayToken", "FOOD_OUTCOMES", "GROUP_ROLES", "HoldTimer",
    "IdempotencyKey", "Immutable", "ImmutableRecordError", "IngestToken", "JobRun", "LiveVersion",
    "Notification", "PASSWORD_ROLES", "PIN_LENGTHS", "PRESETS", "Photo", "Reading", "Role",
    "Rollup", "Rule", "RuleAcknowledgement", "RuleReview", "RuleSetVersion", "RuleSuggestion",
    "Run", "SchedulerLease", "Sensor", "SignInBudget", "SignInGuard", "Site", "Staff",
    "Submission", "SuggestionAnswer", "TimerOutcome", "UTC", "UTCDateTime", "Unit", "Verification",
    "db", "set_clock", "utcnow",
]
