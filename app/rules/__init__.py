"""The kitchen's rules: versions, store rules, the yearly review, training and suggestions."""
from flask import Blueprint

bp = Blueprint("rules", __name__, url_prefix="/rules")

from app.rules import routes  # noqa: E402,F401
