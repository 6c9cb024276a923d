"""Role checks enforced on the server."""
from __future__ import annotations

from functools import wraps

from flask import abort, session
from flask_babel import lazy_gettext
from flask_login import current_user

from app.models import Role


def public(view):
    """Mark a view as reachable without a login (every other view needs one)."""
    view.is_public = True
    return view


PASSWORD_NEEDED = lazy_gettext("Settings need your password: sign in with your email and "
                               "password, not with a PIN on the tablet.")


def password_session() -> bool:
    """Whether this session began with a password (a PIN on the shared tablet does not count)."""
    return current_user.is_authenticated and not session.get("via_pin")


def roles_required(*roles: Role, password: bool = False):
    """Refuse (403) anyone whose role is not one of ``roles``; with ``password``, also a
    session that began with a PIN: a PIN typed on a shared tablet gets the tablet's work, not
    what changes settings, people, tokens or units."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated or current_user.role not in roles:
                abort(403)
            if password and not password_session():
                abort(403, description=str(PASSWORD_NEEDED))
            return view(*args, **kwargs)
        wrapper.roles = roles
        return wrapper
    return decorator


#: The head chef's pages (records, alerts, units): also an admin's and an owner's, who see
#: every site; what only a head chef may do (sign-off) is checked by the operation.
chef_only = roles_required(Role.HEAD_CHEF, Role.ADMIN, Role.OWNER)
