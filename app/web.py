"""What every feature's views share: the signed-in person's site and site-scoped look-ups."""
from __future__ import annotations

from flask import abort, g, session
from flask_login import current_user

from app.models import GROUP_ROLES, Site, db
from sensors.models import Sensor

#: Ids are 64-bit at most in every table: a larger number in a URL names nothing.
_MAX_ID = 2**63 - 1


def current_site() -> Site:
    """The site the person signed in works on: their own, or for an admin or owner signed in
    with a password, the one they chose among the group's (``/sites``)."""
    if "current_site" not in g:
        site = None
        chosen = session.get("site_id")
        if chosen and current_user.role in GROUP_ROLES and not session.get("via_pin"):
            site = db.session.get(Site, chosen)
        g.current_site = site or db.session.get(Site, current_user.site_id)
    return g.current_site


def site_row_or_404(model, row_id: int, site: Site | None = None):
    """The ``model`` row with ``row_id`` if it belongs to ``site`` (default: the person's), else 404."""
    if not 0 < row_id <= _MAX_ID:
        abort(404)
    row = db.session.get(model, row_id)
    site_id = (site or current_site()).id
    if row is None or row.site_id != site_id:
        abort(404)
    return row


def sensor_or_404(sensor_id: int, site: Site, *, attached: bool = False) -> Sensor:
    """A sensor this site may see (its units' and the unassigned); ``attached``: on a unit."""
    from app.units.operations import sensor_visible  # (units' views import this module)
    if not 0 < sensor_id <= _MAX_ID:
        abort(404)
    sensor = db.session.get(Sensor, sensor_id)
    if sensor is None or (attached and sensor.unit_id is None) \
            or not sensor_visible(db.session, sensor, site):
        abort(404)
    return sensor
