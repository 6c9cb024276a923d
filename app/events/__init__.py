"""Server-sent events: alerts as they open and change (the live feed a screen can listen to)."""
from flask import Blueprint

bp = Blueprint("events", __name__, url_prefix="/events")

from app.events import routes  # noqa: E402,F401
