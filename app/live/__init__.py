"""The one live channel: a per-site change counter every self-updating screen follows.

A screen holds the live socket (app.live.socket: each change pushed as it happens, no thread per
connection) and, whenever it cannot, asks "anything since version N?" with a conditional GET
every half second (the answer a 304 from one indexed read, or the new state; no connection held
between questions). Either way no number of open screens can take waitress's threads (see
README, "The live channel").
"""
from flask import Blueprint, Flask

bp = Blueprint("live", __name__, url_prefix="/live")


def init_app(app: Flask) -> None:
    """The views, and the fast path that answers a signed-in screen's "nothing new" before
    Flask (app.live.fastpath)."""
    from app.live.fastpath import SignedInFastPath
    app.register_blueprint(bp)
    app.wsgi_app = app.extensions["brigade_signed_in_fastpath"] = SignedInFastPath(
        app.wsgi_app, app)

from app.live import changes, routes  # noqa: E402,F401  (changes: its session listeners)
