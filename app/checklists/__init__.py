"""The tablet: what is due, checklist runs, answers and submission."""
from flask import Blueprint

bp = Blueprint("checklists", __name__)

from app.checklists import routes  # noqa: E402,F401
