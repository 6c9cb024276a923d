"""First start of a real kitchen: its site and its first admin, with nothing of the demo."""
from __future__ import annotations

from sqlalchemy import func, select

from app.checklists.definitions import load_all
from app.errors import OperationError
from app.models import Role, Site, Staff
from app.people.operations import (FormInvalid, add_site, clean_email, clean_name,
                                   clean_password, record_added)


def first_kitchen(session, *, site_name: str, timezone: str, language: str, temp_unit: str,
                  admin_name: str, admin_email: str, admin_password: str) -> tuple[Site, Staff]:
    """Create the site and its admin on an empty database; the caller commits.

    Refuses (OperationError, nothing written) a database that already has a site, and any
    value a kitchen could not work with, naming it. Both are chained changes without an actor.
    """
    if session.scalar(select(func.count()).select_from(Site)):
        raise OperationError("This database already has a kitchen: add people and sites in the "
                             "app, or start from an empty database.")
    try:
        name, email = clean_name(admin_name), clean_email(admin_email)
        clean_password(admin_password)
        site = add_site(session, None, name=site_name, timezone=timezone, language=language,
                        temp_unit=temp_unit)
    except FormInvalid as exc:
        raise OperationError(" ".join(f"{field}: {text}" for field, text in exc.errors.items())
                             ) from exc
    admin = Staff(site=site, name=name, role=Role.ADMIN, email=email, locale=language)
    admin.set_password(admin_password)
    session.add(admin)
    session.flush()
    record_added(session, None, admin)
    load_all(session)  # the checklists the tablet works from
    session.flush()
    return site, admin
