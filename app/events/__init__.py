"""Server-sent events: alerts as they open and change, for tablets and the wall display."""
from flask import Blueprint

bp = Blueprint("events", __name__, url_prefix="/events")

from app.events import routes  # noqa: E402,F401
