"""Hold timers on the tablet: rules 2, 3 and 7 as clocks, not boxes."""
from flask import Blueprint

bp = Blueprint("timers", __name__, url_prefix="/timers")

from app.timers import routes  # noqa: E402,F401
