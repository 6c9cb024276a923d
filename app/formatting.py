"""Showing stored values to people: site-local times, °C or °F, their language."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_skeleton
from flask_babel import get_locale, gettext, lazy_gettext

from sensors import temperature


def site_locale(timezone: str) -> str:
    """The person's language in the order of the site's region: English dates day first at a
    site in Europe ("27 Nov"), month first elsewhere ("Nov 27"); Chinese as it is."""
    locale = str(get_locale() or "en")
    if locale == "en" and timezone.startswith("Europe/"):
        return "en_GB"
    return locale


def local_time(value: dt.datetime | None, timezone: str, fmt: str = "HH:mm") -> str:
    """A stored UTC time in the site's zone, as a CLDR pattern in the person's language."""
    if value is None:
        return ""
    locale = site_locale(timezone)
    parts = _SKELETONS.get(fmt)
    if parts is None:
        return format_datetime(value, fmt, tzinfo=ZoneInfo(timezone), locale=locale)
    # The same fields in the order and words of the person's language ("11月27日 12:18").
    return " ".join(format_skeleton(p, value, tzinfo=ZoneInfo(timezone), locale=locale)
                    for p in parts if p)


#: English-order patterns used in templates, and the CLDR skeletons (date, time) each means.
_SKELETONS = {"HH:mm": (None, "Hm"), "HH:mm:ss": (None, "Hms"), "d MMM HH:mm": ("MMMd", "Hm"),
              "d MMM HH:mm:ss": ("MMMd", "Hms"), "d MMM y HH:mm": ("yMMMd", "Hm"),
              "EEE d MMM HH:mm": ("MMMEd", "Hm"), "EEE d MMM y HH:mm": ("yMMMEd", "Hm")}


def show_temp(celsius: float | None, unit: str = "C") -> str:
    """A stored °C value in the site's unit (see :func:`sensors.temperature.show`)."""
    return temperature.show(celsius, unit)


def bilingual(obj, field: str) -> str:
    """``obj.<field>_zh`` for Chinese speakers, ``obj.<field>_en`` otherwise."""
    locale = str(get_locale() or "en")
    suffix = "zh" if locale.startswith("zh") else "en"
    if isinstance(obj, dict):
        return obj.get(suffix) or obj.get("en", "")
    return getattr(obj, f"{field}_{suffix}")


def slot_label(schedules: list[dict] | None, schedule_key: str, start: dt.datetime | None,
               timezone: str) -> str:
    """A checklist slot as people say it: its schedule's name in their language and its start
    time ("Before lunch service, 11:00"), never the schedule's key."""
    name = next((s.get("name") for s in schedules or () if s.get("key") == schedule_key), None)
    shown = bilingual(name, "name") if isinstance(name, dict) else schedule_key
    if start is None:
        return shown
    return gettext("%(slot)s, %(time)s", slot=shown, time=local_time(start, timezone))


def reading_age(age: dt.timedelta) -> str:
    """How old a reading is, as a cook reads it at a glance: "40 s", "3 min", "1 h 5 min"."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 60:
        return gettext("%(s)s s", s=seconds)
    if seconds < 3600:
        return gettext("%(m)s min", m=seconds // 60)
    return gettext("%(h)s h %(m)s min", h=seconds // 3600, m=seconds % 3600 // 60)


LABELS = {
    "cook": lazy_gettext("Cook"), "head_chef": lazy_gettext("Head chef"),
    "admin": lazy_gettext("Admin"),
    "overdue": lazy_gettext("Overdue"), "due": lazy_gettext("Due now"),
    "in_progress": lazy_gettext("In progress"), "upcoming": lazy_gettext("Later today"),
    "submitted": lazy_gettext("Submitted"), "verified": lazy_gettext("Verified"),
    "running": lazy_gettext("Running"), "expired": lazy_gettext("Time is up"),
    "served": lazy_gettext("Served"), "discarded": lazy_gettext("Discarded"),
    "pass": lazy_gettext("Pass"), "fail": lazy_gettext("Fail"), "na": lazy_gettext("N/A"),
    "recorded": lazy_gettext("Recorded"),
    "unanswered": lazy_gettext("not answered yet"),
    "needs a corrective action": lazy_gettext("failed and needs a corrective action"),
}


def label(key) -> str:
    """The person's-language label for a stored code (role, status, outcome)."""
    key = getattr(key, "value", key)
    return str(LABELS.get(key, key))
