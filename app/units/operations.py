"""Units and the sensors attached to them; the caller commits."""
from __future__ import annotations

import logging
from dataclasses import asdict

from flask_babel import gettext as _
from sqlalchemy import func, select

from app.errors import OperationError
from app.models import Site
from app.models.units import Unit
from app.units.forms import FormInvalid, UnitValues
from sensors.models import Sensor


logger = logging.getLogger(__name__)


def _check_name_free(session, site: Site, name: str, unit_id: int | None) -> None:
    taken = session.execute(select(Unit.id).where(
        Unit.site_id == site.id, func.lower(Unit.name) == name.lower(),
        Unit.id != (unit_id or 0))).first()
    if taken is not None:
        raise FormInvalid({"name": _("Another unit here is already called %(name)s.", name=name)})


def create_unit(session, site: Site, values: UnitValues) -> Unit:
    """Add a unit to the site."""
    _check_name_free(session, site, values.name, None)
    unit = Unit(site_id=site.id, **asdict(values))
    session.add(unit)
    session.flush()
    logger.info("unit %s created at site %s", unit.id, site.id)
    return unit


def update_unit(session, unit: Unit, site: Site, values: UnitValues) -> Unit:
    """Change a unit's settings (units are configuration, not compliance records)."""
    if unit.site_id != site.id:
        raise OperationError(_("That unit belongs to another site."))
    _check_name_free(session, site, values.name, unit.id)
    for field, value in asdict(values).items():
        setattr(unit, field, value)
    session.flush()
    logger.info("unit %s updated", unit.id)
    return unit


def sensor_visible(session, sensor: Sensor, site: Site) -> bool:
    """Unassigned sensors are anyone's to attach; assigned ones only their unit's site's."""
    if sensor.unit_id is None:
        return True
    unit = session.get(Unit, sensor.unit_id)
    return unit is not None and unit.site_id == site.id


def attach_sensor(session, sensor: Sensor, unit: Unit, site: Site, name: str | None = None,
                  temp_unit: str = "C") -> Sensor:
    """Attach a sensor to a unit of the site (or move it between them), naming it."""
    if unit.site_id != site.id or not sensor_visible(session, sensor, site):
        raise OperationError(_("That unit or sensor belongs to another site."))
    name = (name or "").strip()
    if len(name) > 120:
        raise OperationError(_("A name is at most 120 characters."))
    if temp_unit not in ("C", "F"):
        raise OperationError(_("Choose °C or °F."))
    sensor.unit_id, sensor.name, sensor.temp_unit = unit.id, name or None, temp_unit
    session.flush()
    logger.info("sensor %s attached to unit %s", sensor.key, unit.id)
    return sensor


def detach_sensor(session, sensor: Sensor, site: Site) -> Sensor:
    """Take a sensor off its unit; it shows as unassigned again (its readings stay)."""
    if sensor.unit_id is None:
        raise OperationError(_("That sensor is not attached to a unit."))
    if not sensor_visible(session, sensor, site):
        raise OperationError(_("That unit or sensor belongs to another site."))
    logger.info("sensor %s detached from unit %s", sensor.key, sensor.unit_id)
    sensor.unit_id = None
    session.flush()
    return sensor
