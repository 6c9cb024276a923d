"""First start of a real kitchen: its site and its first admin, with nothing of the demo."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select

from app.checklists.definitions import load_all
from app.errors import OperationError
from app.models import Role, Site, Staff

LANGUAGES = ("en", "zh")
UNITS = ("C", "F")
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def first_kitchen(session, *, site_name: str, timezone: str, language: str, temp_unit: str,
                  admin_name: str, admin_email: str, admin_password: str) -> tuple[Site, Staff]:
    """Create the site and its admin on an empty database; the caller commits.

    Refuses (OperationError, nothing written) a database that already has a site, and any
    value a kitchen could not work with, naming it.
    """
    if session.scalar(select(func.count()).select_from(Site)):
        raise OperationError("This database already has a kitchen: add people and sites in the "
                             "app, or start from an empty database.")
    site_name, admin_name = (site_name or "").strip(), (admin_name or "").strip()
    email = (admin_email or "").strip().lower()
    if not site_name or len(site_name) > 120:
        raise OperationError("The kitchen's name is needed (up to 120 characters).")
    if timezone not in available_timezones():
        raise OperationError(f"Unknown time zone {timezone!r}: use a name such as Europe/London "
                             "or Asia/Shanghai.")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OperationError(f"Unknown time zone {timezone!r}.") from exc
    if language not in LANGUAGES:
        raise OperationError(f"Language must be one of {', '.join(LANGUAGES)}.")
    if temp_unit not in UNITS:
        raise OperationError("The temperature unit is C or F.")
    if not admin_name or len(admin_name) > 120:
        raise OperationError("The admin's name is needed (up to 120 characters).")
    if not _EMAIL.match(email) or len(email) > 254:
        raise OperationError(f"{admin_email!r} is not an email address.")
    if len(admin_password or "") < MIN_PASSWORD:
        raise OperationError(f"The password needs at least {MIN_PASSWORD} characters.")
    site = Site(name=site_name, timezone=timezone, temp_unit=temp_unit)
    admin = Staff(site=site, name=admin_name, role=Role.ADMIN, email=email, locale=language)
    admin.set_password(admin_password)
    session.add_all([site, admin])
    load_all(session)  # the checklists the tablet works from
    session.flush()
    return site, admin
