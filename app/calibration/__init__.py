"""The calibration log: thermometer checks (ice point) for sensors and hand-held probes."""
from flask import Blueprint

bp = Blueprint("calibration", __name__, url_prefix="/calibration")

from app.calibration import routes  # noqa: E402,F401
