"""People and sites: who may change whom, and each change chained with who made it.

A head chef adds and looks after the cooks of their own site; an admin looks after everyone
but owners, in every site, and the sites themselves; an owner looks after everyone. Secrets
are made here (a PIN of the site's length, a password), handed back once to be shown once, and
stored only as hashes. Every change goes into the audit chain as a ``changes`` row with what
it was before and after — never the secret itself. The caller commits.
"""
from __future__ import annotations

import re
import secrets
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import func, select

from app import audit
from app.errors import OperationError
from app.models import GROUP_ROLES, PASSWORD_ROLES, PIN_LENGTHS, Role, Site, Staff

LANGUAGES = {"en": "English", "zh": "简体中文"}
UNITS = ("C", "F")
MIN_PASSWORD = 10
MAX_NAME = 120
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ROLE_LABELS = {
    Role.COOK: lazy_gettext("Cook"), Role.HEAD_CHEF: lazy_gettext("Head chef"),
    Role.ADMIN: lazy_gettext("Admin"), Role.OWNER: lazy_gettext("Owner"),
}


class FormInvalid(OperationError):
    """A form with mistakes; ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(" ".join(errors.values()))


# --- who may do what -------------------------------------------------------------------------

def roles_managed_by(actor: Staff) -> tuple[Role, ...]:
    """The roles ``actor`` may give, take and look after."""
    if actor.role == Role.OWNER:
        return tuple(Role)
    if actor.role == Role.ADMIN:
        return (Role.COOK, Role.HEAD_CHEF, Role.ADMIN)
    if actor.role == Role.HEAD_CHEF:
        return (Role.COOK,)
    return ()


def sites_managed_by(session, actor: Staff) -> list[Site]:
    """The sites where ``actor`` may look after people: every site for a group role."""
    if actor.role in GROUP_ROLES:
        return list(session.execute(select(Site).order_by(Site.name, Site.id)).scalars())
    if actor.role == Role.HEAD_CHEF:
        return [actor.site]
    return []


def can_see(actor: Staff, person: Staff) -> bool:
    """Whether ``actor`` may open ``person``'s page: anyone of their own site for a head chef,
    anyone for a group role, themselves for everyone."""
    if actor.id == person.id or actor.role in GROUP_ROLES:
        return True
    return actor.role == Role.HEAD_CHEF and person.site_id == actor.site_id


def can_manage(actor: Staff, person: Staff) -> bool:
    """Whether ``actor`` may change ``person`` (never themselves: no one locks themselves out
    or promotes themselves)."""
    if actor.id == person.id or person.role not in roles_managed_by(actor):
        return False
    return actor.role in GROUP_ROLES or person.site_id == actor.site_id


def _require(allowed: bool) -> None:
    if not allowed:
        raise OperationError(_("You may not change this person."))


# --- secrets ---------------------------------------------------------------------------------

def new_pin(length: int) -> str:
    """A random PIN of ``length`` digits, never one digit repeated or a straight run."""
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
        if steps not in ({0}, {1}, {-1}):
            return pin


def new_password() -> str:
    """A random password to hand over once (16 characters, no look-alikes)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


# --- validation ------------------------------------------------------------------------------

def clean_name(value: str | None, what: str = "name") -> str:
    name = " ".join((value or "").split())
    if not name or len(name) > MAX_NAME:
        raise OperationError(_("A name is needed (up to %(n)s characters).", n=MAX_NAME))
    return name


def clean_email(value: str | None) -> str:
    email = (value or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise OperationError(_("%(value)s is not an email address.", value=repr(value or "")))
    return email


def clean_timezone(value: str | None) -> str:
    if value not in available_timezones():
        raise OperationError(_("Unknown time zone %(value)s: use a name such as Europe/London "
                               "or Asia/Shanghai.", value=repr(value or "")))
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OperationError(_("Unknown time zone %(value)s.", value=repr(value))) from exc
    return value


def clean_language(value: str | None) -> str:
    if value not in LANGUAGES:
        raise OperationError(_("The language is English (en) or Chinese (zh)."))
    return value


def clean_unit(value: str | None) -> str:
    if value not in UNITS:
        raise OperationError(_("The temperature unit is C or F."))
    return value


def clean_pin_length(value) -> int:
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or int(text) not in PIN_LENGTHS:
        raise OperationError(_("A PIN has %(low)s to %(high)s digits.",
                               low=PIN_LENGTHS[0], high=PIN_LENGTHS[-1]))
    return int(text)


def clean_password(value: str | None) -> str:
    if len(value or "") < MIN_PASSWORD:
        raise OperationError(_("The password needs at least %(n)s characters.", n=MIN_PASSWORD))
    return value


def _fields(checks: dict) -> dict:
    """Run each field's check; every mistake at once (FormInvalid), else the clean values."""
    values, errors = {}, {}
    for field, check in checks.items():
        try:
            values[field] = check()
        except OperationError as exc:
            errors[field] = str(exc)
    if errors:
        raise FormInvalid(errors)
    return values


def _email_free(session, email: str, person: Staff | None = None) -> None:
    other = session.execute(select(Staff).where(Staff.email == email)).scalar_one_or_none()
    if other is not None and other is not person:
        raise FormInvalid({"email": _("Someone else already signs in with this email.")})


def _name_free(session, site_id: int, name: str, person: Staff | None = None) -> None:
    """Names are unique among a site's active people: the PIN pad is a list of names."""
    other = session.execute(select(Staff).where(
        Staff.site_id == site_id, Staff.active.is_(True),
        func.lower(Staff.name) == name.lower())).scalars().first()
    if other is not None and other is not person:
        raise FormInvalid({"name": _("%(name)s already works at this site: add a surname or "
                                     "an initial.", name=name)})


def _chain(session, actor: Staff | None, subject, action: str, data: dict,
           device_id: str | None, site_id: int | None) -> None:
    audit.record_change(session, subject=f"{subject.__tablename__}:{subject.id}", action=action,
                        actor_id=actor.id if actor else None, data=data, site_id=site_id,
                        device_id=device_id)


# --- people ----------------------------------------------------------------------------------

def add_person(session, actor: Staff, *, site: Site, name: str, role: str, language: str,
               email: str | None = None, device_id: str | None = None
               ) -> tuple[Staff, str, str | None]:
    """Add a person with a fresh PIN (and, for a role that uses a laptop, a password).

    Returns the person, the PIN and the password, to be shown once.
    """
    allowed_sites = {s.id for s in sites_managed_by(session, actor)}
    values = _fields({
        "name": lambda: clean_name(name),
        "role": lambda: _role(actor, role),
        "language": lambda: clean_language(language),
    })
    if site.id not in allowed_sites:
        raise OperationError(_("You may not add people to this site."))
    if values["role"] in PASSWORD_ROLES:
        values.update(_fields({"email": lambda: clean_email(email)}))
        _email_free(session, values["email"])
    _name_free(session, site.id, values["name"])
    person = Staff(site=site, name=values["name"], role=values["role"],
                   locale=values["language"], email=values.get("email"), active=True)
    pin = new_pin(site.pin_length or 6)
    person.set_pin(pin)
    password = None
    if person.role in PASSWORD_ROLES:
        password = new_password()
        person.set_password(password)
    session.add(person)
    session.flush()
    record_added(session, actor, person, device_id)
    return person, pin, password


def record_added(session, actor: Staff | None, person: Staff,
                 device_id: str | None = None) -> None:
    """Chain a new person (``actor`` None: the first admin, from ``flask setup``)."""
    _chain(session, actor, person, "staff.added",
           {"name": [None, person.name], "role": [None, person.role.value],
            "site_id": [None, person.site_id], "email": [None, person.email]}, device_id,
           person.site_id)


def _role(actor: Staff, value: str | None) -> Role:
    try:
        role = Role(value)
    except ValueError:
        raise OperationError(_("Choose a role.")) from None
    if role not in roles_managed_by(actor):
        raise OperationError(_("You may not give this role."))
    return role


def update_person(session, actor: Staff, person: Staff, *, name: str, role: str, language: str,
                  email: str | None, site: Site, device_id: str | None = None) -> dict:
    """Rename, change role, language, email or site; returns what changed ({} for nothing)."""
    _require(can_manage(actor, person))
    allowed_sites = {s.id for s in sites_managed_by(session, actor)}
    values = _fields({
        "name": lambda: clean_name(name),
        "role": lambda: _role(actor, role),
        "language": lambda: clean_language(language),
    })
    if site.id not in allowed_sites:
        raise FormInvalid({"site": _("You may not move people to this site.")})
    values["email"] = None
    if values["role"] in PASSWORD_ROLES:
        values.update(_fields({"email": lambda: clean_email(email)}))
        _email_free(session, values["email"], person)
    if person.active:
        _name_free(session, site.id, values["name"], person)
    if person.role in GROUP_ROLES and values["role"] not in GROUP_ROLES:
        _not_the_last_admin(session, person)
    before = {"name": person.name, "role": person.role.value, "locale": person.locale,
              "email": person.email, "site_id": person.site_id}
    person.name, person.role, person.locale = values["name"], values["role"], values["language"]
    person.email, person.site = values["email"], site
    after = {"name": person.name, "role": person.role.value, "locale": person.locale,
             "email": person.email, "site_id": site.id}
    changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
    if not changed:
        return {}
    if {"role", "site_id", "email"} & changed.keys():
        person.end_sessions()  # what a session may do was decided when it began
    if person.role not in PASSWORD_ROLES and person.password_hash:
        person.password_hash = None  # a cook has no laptop login
    session.flush()
    # The language is the person's own to switch (on every screen), not what records are read
    # against: it is not chained, so verify does not hold it to the last chained value.
    chained = {k: v for k, v in changed.items() if k != "locale"}
    if chained:
        _chain(session, actor, person, "staff.updated", chained, device_id, site.id)
    return changed


def reset_pin(session, actor: Staff, person: Staff, device_id: str | None = None) -> str:
    """A new PIN of the site's length, to be shown once; the old one and every session of
    the person stop working."""
    _require(can_manage(actor, person))
    pin = new_pin(person.site.pin_length or 6)
    person.set_pin(pin)
    _chain(session, actor, person, "staff.pin_reset", {"pin": ["…", "…"]}, device_id,
           person.site_id)
    return pin


def reset_password(session, actor: Staff, person: Staff, device_id: str | None = None) -> str:
    """A new password, to be shown once; the old one and every session stop working."""
    _require(can_manage(actor, person))
    if person.role not in PASSWORD_ROLES:
        raise OperationError(_("Cooks sign in with a PIN only."))
    password = new_password()
    person.set_password(password)
    _chain(session, actor, person, "staff.password_reset", {"password": ["…", "…"]}, device_id,
           person.site_id)
    return password


def change_own_password(session, person: Staff, current: str, new: str,
                        device_id: str | None = None) -> None:
    """A person replaces their password (handed over once) with their own."""
    if not person.check_password(current or ""):
        raise FormInvalid({"current": _("That is not your current password.")})
    values = _fields({"new": lambda: clean_password(new)})
    person.set_password(values["new"])
    _chain(session, person, person, "staff.password_changed", {"password": ["…", "…"]},
           device_id, person.site_id)


def _not_the_last_admin(session, person: Staff) -> None:
    """The group keeps someone who can look after it."""
    others = session.scalar(select(func.count()).select_from(Staff).where(
        Staff.role.in_(GROUP_ROLES), Staff.active.is_(True), Staff.id != person.id))
    if not others:
        raise OperationError(_("%(name)s is the last active admin: make someone else admin "
                               "first.", name=person.name))


def deactivate(session, actor: Staff, person: Staff, device_id: str | None = None) -> None:
    """Someone who left: their PIN, password and every session stop at once; their records
    keep their name."""
    _require(can_manage(actor, person))
    if not person.active:
        return
    if person.role in GROUP_ROLES:
        _not_the_last_admin(session, person)
    person.active = False
    person.end_sessions()
    _chain(session, actor, person, "staff.deactivated", {"active": [True, False]}, device_id,
           person.site_id)


def reactivate(session, actor: Staff, person: Staff, device_id: str | None = None) -> None:
    """Someone back at work; their PIN works again (reset it if it may have been shared)."""
    _require(can_manage(actor, person))
    if person.active:
        return
    _name_free(session, person.site_id, person.name, person)
    person.active = True
    _chain(session, actor, person, "staff.reactivated", {"active": [False, True]}, device_id,
           person.site_id)


# --- sites -----------------------------------------------------------------------------------

def _site_values(name, timezone, language, temp_unit, pin_length) -> dict:
    return _fields({
        "name": lambda: clean_name(name),
        "timezone": lambda: clean_timezone(timezone),
        "language": lambda: clean_language(language),
        "temp_unit": lambda: clean_unit(temp_unit),
        "pin_length": lambda: clean_pin_length(pin_length),
    })


def _site_name_free(session, name: str, site: Site | None = None) -> None:
    other = session.execute(select(Site).where(func.lower(Site.name) == name.lower())) \
        .scalars().first()
    if other is not None and other is not site:
        raise FormInvalid({"name": _("There is already a site called %(name)s.", name=name)})


def add_site(session, actor: Staff | None, *, name: str, timezone: str, language: str,
             temp_unit: str, pin_length=6, device_id: str | None = None) -> Site:
    """A new site of the group (``actor`` None: the first, from ``flask setup``)."""
    if actor is not None and actor.role not in GROUP_ROLES:
        raise OperationError(_("Only an admin adds sites."))
    values = _site_values(name, timezone, language, temp_unit, pin_length)
    _site_name_free(session, values["name"])
    site = Site(**values)
    session.add(site)
    session.flush()
    _chain(session, actor, site, "site.added", {k: [None, v] for k, v in values.items()},
           device_id, site.id)
    return site


def update_site(session, actor: Staff, site: Site, *, name: str, timezone: str, language: str,
                temp_unit: str, pin_length, device_id: str | None = None) -> dict:
    """Rename a site or change its time zone, language, temperature unit or PIN length."""
    if actor.role not in GROUP_ROLES:
        raise OperationError(_("Only an admin changes a site."))
    values = _site_values(name, timezone, language, temp_unit, pin_length)
    _site_name_free(session, values["name"], site)
    changed = {k: [getattr(site, k), v] for k, v in values.items() if getattr(site, k) != v}
    for field, (_before, after) in changed.items():
        setattr(site, field, after)
    if changed:
        session.flush()
        _chain(session, actor, site, "site.updated", changed, device_id, site.id)
    return changed
