"""What every feature's views share: the signed-in person's site and site-scoped look-ups."""
from __future__ import annotations

from flask import abort
from flask_login import current_user

from app.models import Site, db
from sensors.models import Sensor

#: Ids are 64-bit at most in every table: a larger number in a URL names nothing.
_MAX_ID = 2**63 - 1


def current_site() -> Site:
    """The site of the person signed in."""
    return db.session.get(Site, current_user.site_id)


def site_row_or_404(model, row_id: int, site: Site | None = None):
    """The ``model`` row with ``row_id`` if it belongs to ``site`` (default: the person's), else 404."""
    if not 0 < row_id <= _MAX_ID:
        abort(404)
    row = db.session.get(model, row_id)
    site_id = site.id if site is not None else current_user.site_id
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
