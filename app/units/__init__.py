"""Cold-holding units, the sensors attached to them, rejected messages and HTTP ingest."""
from flask import Flask

from app.units.device_api import api
from app.units.routes import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(api)
