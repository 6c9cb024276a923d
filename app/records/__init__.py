"""The head chef's records: submitted runs to verify, full history, corrections."""
from flask import Blueprint

bp = Blueprint("records", __name__, url_prefix="/records")

from app.records import routes  # noqa: E402,F401
