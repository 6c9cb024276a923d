"""The head chef's compliance report, its charts and exports, and today at a glance."""
from flask import Blueprint

# No prefix: the report lives under /reports, a unit's own page at /units/<id>.
bp = Blueprint("reports", __name__)

from app.reports import routes  # noqa: E402,F401
