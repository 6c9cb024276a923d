"""Role checks enforced on the server."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user

from app.models import Role


def public(view):
    """Mark a view as reachable without a login (every other view needs one)."""
    view.is_public = True
    return view


def roles_required(*roles: Role):
    """Refuse (403) anyone whose role is not one of ``roles``."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated or current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        wrapper.roles = roles
        return wrapper
    return decorator


chef_only = roles_required(Role.HEAD_CHEF, Role.ADMIN)
