"""Wall displays: a read-only board per site behind a revocable display token."""
from flask import Blueprint, Flask

bp = Blueprint("displays", __name__)


def init_app(app: Flask) -> None:
    """The views, and the fast path that answers most of a screen's questions before Flask."""
    from app.displays.fastpath import LiveFastPath
    app.register_blueprint(bp)
    app.wsgi_app = app.extensions["brigade_live_fastpath"] = LiveFastPath(app.wsgi_app, app)

from app.displays import routes  # noqa: E402,F401
