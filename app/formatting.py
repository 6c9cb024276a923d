"""Showing stored values to people: site-local times, °C or °F, their language."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask_babel import get_locale, lazy_gettext


def local_time(value: dt.datetime | None, timezone: str, fmt: str = "HH:mm") -> str:
    """A stored UTC time in the site's zone, as a CLDR pattern in the person's language."""
    if value is None:
        return ""
    return format_datetime(value, fmt, tzinfo=ZoneInfo(timezone), locale=str(get_locale() or "en"))


def show_temp(celsius: float | None, unit: str = "C") -> str:
    if celsius is None:
        return "—"
    if unit == "F":
        return f"{celsius * 9 / 5 + 32:.1f} °F"
    return f"{celsius:.1f} °C"


def bilingual(obj, field: str) -> str:
    """``obj.<field>_zh`` for Chinese speakers, ``obj.<field>_en`` otherwise."""
    locale = str(get_locale() or "en")
    suffix = "zh" if locale.startswith("zh") else "en"
    if isinstance(obj, dict):
        return obj.get(suffix) or obj.get("en", "")
    return getattr(obj, f"{field}_{suffix}")


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
