"""The one live channel: a per-site change counter every self-updating screen asks about.

Screens (wall displays, the tablet's alert banner, any page that must update by itself) ask
"anything since version N?" with a conditional GET every half second; the answer is a 304 from
one indexed read, or the new state. No connection is held between questions, so no number of
open screens can take waitress's threads (see README, "The live channel").
"""
from flask import Blueprint

bp = Blueprint("live", __name__, url_prefix="/live")

from app.live import changes, routes  # noqa: E402,F401  (changes: its session listeners)
