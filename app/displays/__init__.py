"""Wall displays: a read-only board per site behind a revocable display token."""
from flask import Blueprint

bp = Blueprint("displays", __name__)

from app.displays import routes  # noqa: E402,F401
