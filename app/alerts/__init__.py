"""Alerts: raised by the engine from readings and records; seen, acknowledged and resolved here."""
from flask import Blueprint

bp = Blueprint("alerts", __name__, url_prefix="/alerts")

from app.alerts import routes  # noqa: E402,F401
