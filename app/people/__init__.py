"""People and sites: staff, their roles, PINs and passwords; the group's sites."""
from flask import Blueprint

bp = Blueprint("people", __name__)

from app.people import routes  # noqa: E402,F401
