"""Cold-holding units, the sensors attached to them, rejected messages and HTTP ingest."""
from flask import Blueprint, Flask

bp = Blueprint("units", __name__, url_prefix="/units")
#: The sensor-facing endpoint lives outside /units: devices post to /api/readings.
api = Blueprint("ingest", __name__, url_prefix="/api")

from app.units import routes  # noqa: E402,F401


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(api)
