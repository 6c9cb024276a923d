"""Alerts in people's language: labels for the codes alerts store, headlines, ages.

Registered as template globals by the alert views, so that any page (the tablet banner is on
every page) can show an alert.
"""
from __future__ import annotations

import datetime as dt

from flask import g
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import select

from app.formatting import bilingual, label, slot_label
from app.models import Alert, ChecklistDefinition, Site, db
from app.models.units import Unit

#: People's-language labels for the codes alerts store (kind, tier, status, event, outcome...).
ALERT_LABELS = {
    "temperature": lazy_gettext("Temperature"), "offline": lazy_gettext("Sensor offline"),
    "low_battery": lazy_gettext("Low battery"),
    "checklist_overdue": lazy_gettext("Checklist overdue"),
    "timer_expired": lazy_gettext("Hold timer expired"),
    "review_due": lazy_gettext("Yearly review due"),
    "calibration": lazy_gettext("Thermometer out of tolerance"),
    "alarm": lazy_gettext("Alarm"), "critical": lazy_gettext("Critical"),
    "open": lazy_gettext("Open"), "acknowledged": lazy_gettext("Acknowledged"),
    "resolved": lazy_gettext("Resolved"),
    "opened": lazy_gettext("Alert opened"), "tier_raised": lazy_gettext("Became critical"),
    "recovered": lazy_gettext("Back to normal"), "relapsed": lazy_gettext("Out of range again"),
    "escalated": lazy_gettext("Escalated"),
    "kept": lazy_gettext("Kept"), "moved": lazy_gettext("Moved"),
    "discarded": lazy_gettext("Discarded"), "not_applicable": lazy_gettext("Not applicable"),
    "pending": lazy_gettext("Pending"), "sent": lazy_gettext("Sent"),
    "failed": lazy_gettext("Failed"),
    "email": lazy_gettext("Email"), "webhook": lazy_gettext("Webhook"),
    "mqtt": lazy_gettext("MQTT"),
}
#: Who is told at each escalation level (see operations.LEVEL_ROLES).
LEVELS = {0: lazy_gettext("Cooks"), 1: lazy_gettext("Head chef"), 2: lazy_gettext("Owner")}
#: Quick choices for the corrective action, per alert kind; free text can add to them.
SUGGESTED_ACTIONS = {
    "temperature": (lazy_gettext("Moved the food to another fridge"),
                    lazy_gettext("Closed the door properly"),
                    lazy_gettext("Checked with a probe thermometer"),
                    lazy_gettext("Adjusted the thermostat"), lazy_gettext("Called for a repair")),
    "offline": (lazy_gettext("Checked the sensor and its power"),
                lazy_gettext("Replaced the sensor battery"),
                lazy_gettext("Checked with a probe thermometer")),
    "low_battery": (lazy_gettext("Replaced the sensor battery"),),
    "checklist_overdue": (lazy_gettext("Did the checklist late"),
                          lazy_gettext("Reminded the cook on duty")),
    "timer_expired": (lazy_gettext("Recorded it as served"), lazy_gettext("Discarded the dish")),
    "review_due": (lazy_gettext("Booked a time for the review"),),
    "calibration": (lazy_gettext("Applied the correction to the sensor"),
                    lazy_gettext("Took the thermometer out of use"),
                    lazy_gettext("Ordered a replacement")),
}
#: What a list shows by default: everything unresolved, then what was resolved lately.


def alert_label(code) -> str:
    """The person's-language label for an alert code; falls back to the shared labels."""
    return str(ALERT_LABELS[code]) if code in ALERT_LABELS else label(code)


def escalation_label(level: int) -> str:
    return str(LEVELS[min(level, 2)])


def alert_age(delta: dt.timedelta) -> str:
    """A short duration: "12 min", "3 h 5 min", "2 d 4 h"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)s d %(h)s h", d=days, h=hours)
    if hours:
        return _("%(h)s h %(m)s min", h=hours, m=minutes)
    return _("%(m)s min", m=minutes)


def alert_headline(alert: Alert) -> str:
    """What the alert is about, in the person's language (``detail.title`` is English only)."""
    detail = alert.detail or {}
    unit = detail.get("unit") or (_unit_name(alert.unit_id) if alert.unit_id else "")
    if alert.kind == "temperature":
        if detail.get("direction") == "low":
            return _("%(unit)s too cold", unit=unit)
        return _("%(unit)s too warm", unit=unit)
    if alert.kind == "offline":
        return _("%(unit)s: no readings", unit=unit)
    if alert.kind == "low_battery":
        return _("%(unit)s: sensor battery low", unit=unit)
    if alert.kind == "checklist_overdue":
        title = _checklist_title(detail.get("checklist")) or detail.get("title", "")
        slot = overdue_slot(alert)
        if slot:
            return _("%(checklist)s overdue: %(slot)s", checklist=title, slot=slot)
        return _("%(checklist)s overdue", checklist=title)
    if alert.kind == "timer_expired":
        return _("%(dish)s: served or discarded?", dish=detail.get("dish", ""))
    if alert.kind == "review_due":
        return _("Yearly review of the kitchen rules")
    if alert.kind == "calibration":
        return _("%(thermometer)s: out of tolerance", thermometer=detail.get("title", ""))
    return detail.get("title") or alert_label(alert.kind)


def overdue_slot(alert: Alert) -> str:
    """The slot an overdue-checklist alert is about, by name and time in the person's language.

    The slot's start is in the alert's subject (and, since it was added, its detail); its name
    comes from the checklist's schedules, falling back to the name recorded at opening.
    """
    detail = alert.detail or {}
    key = detail.get("schedule")
    if not key:
        return ""
    start = detail.get("slot_start") or alert.subject.split(":", 5)[-1]
    try:
        start = dt.datetime.fromisoformat(start)
    except ValueError:
        start = None
    site = db.session.get(Site, alert.site_id)
    schedules = _checklist_schedules(detail.get("checklist"))
    if not any(s.get("key") == key for s in schedules) and isinstance(detail.get("slot_name"), dict):
        schedules = [{"key": key, "name": detail["slot_name"]}]
    return slot_label(schedules, key, start, site.timezone if site else "UTC")


def _unit_name(unit_id: int) -> str:
    unit = db.session.get(Unit, unit_id)  # (the session's identity map: once per unit)
    return unit.name if unit else ""


def _checklist_title(key: str | None) -> str | None:
    """A checklist's title in the person's language, looked up once per key and request."""
    definition = _definition(key)
    return bilingual(definition, "title") if definition else None


def _checklist_schedules(key: str | None) -> list[dict]:
    definition = _definition(key)
    return definition.schedules if definition else []


def _definition(key: str | None) -> ChecklistDefinition | None:
    """A checklist's latest definition, looked up once per key and request."""
    definitions = g.setdefault("alert_checklist_definitions", {})
    if key not in definitions:
        definitions[key] = db.session.execute(
            select(ChecklistDefinition).where(ChecklistDefinition.key == key,
                                              ChecklistDefinition.site_id.is_(None))
            .order_by(ChecklistDefinition.id.desc()).limit(1)).scalar_one_or_none()
    return definitions[key]
