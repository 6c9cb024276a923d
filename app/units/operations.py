"""Units and the sensors attached to them; the caller commits."""
from __future__ import annotations

import logging
from dataclasses import asdict

from flask_babel import gettext as _
from sqlalchemy import func, select

from app import audit
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


def _chain_unit(session, unit: Unit, before: dict, action: str, actor_id: int | None,
                reason: str | None) -> None:
    """Chain what changed in the unit's limits and settings, with who and why."""
    after = audit.unit_limits(unit)
    data = {field: [before.get(field), after[field]] for field in audit.UNIT_FIELDS
            if before.get(field) != after[field]}
    if data:
        audit.record_change(session, subject=f"units:{unit.id}", action=action,
                            actor_id=actor_id, data=data, site_id=unit.site_id, reason=reason)


def create_unit(session, site: Site, values: UnitValues, actor_id: int | None = None,
                reason: str | None = None) -> Unit:
    """Add a unit to the site; its limits are chained."""
    _check_name_free(session, site, values.name, None)
    unit = Unit(site_id=site.id, **asdict(values))
    session.add(unit)
    session.flush()
    _chain_unit(session, unit, {}, "unit.added", actor_id, reason)
    logger.info("unit %s created at site %s", unit.id, site.id)
    return unit


def update_unit(session, unit: Unit, site: Site, values: UnitValues, actor_id: int | None = None,
                reason: str | None = None) -> Unit:
    """Change a unit's settings. Units are configuration, but their limits decided what was
    in range: each change is chained with who made it and why (``reason``)."""
    if unit.site_id != site.id:
        raise OperationError(_("That unit belongs to another site."))
    _check_name_free(session, site, values.name, unit.id)
    before = audit.unit_limits(unit)
    for field, value in asdict(values).items():
        setattr(unit, field, value)
    session.flush()
    _chain_unit(session, unit, before, "unit.changed", actor_id, reason)
    logger.info("unit %s updated", unit.id)
    return unit


def sensor_visible(session, sensor: Sensor, site: Site) -> bool:
    """Unassigned sensors are anyone's to attach; assigned ones only their unit's site's."""
    if sensor.unit_id is None:
        return True
    unit = session.get(Unit, sensor.unit_id)
    return unit is not None and unit.site_id == site.id


def _chain_sensor(session, sensor: Sensor, unit_before: int | None, action: str,
                  actor_id: int | None, site_id: int, reason: str | None) -> None:
    """Chain which unit the sensor's readings count for (what an alert or a reading meant)."""
    if unit_before != sensor.unit_id:
        audit.record_change(session, subject=f"sensors:{sensor.id}", action=action,
                            actor_id=actor_id, data={"unit_id": [unit_before, sensor.unit_id]},
                            site_id=site_id, reason=reason)


def attach_sensor(session, sensor: Sensor, unit: Unit, site: Site, name: str | None = None,
                  temp_unit: str = "C", actor_id: int | None = None,
                  reason: str | None = None) -> Sensor:
    """Attach a sensor to a unit of the site (or move it between them), naming it."""
    if unit.site_id != site.id or not sensor_visible(session, sensor, site):
        raise OperationError(_("That unit or sensor belongs to another site."))
    name = (name or "").strip()
    if len(name) > 120:
        raise OperationError(_("A name is at most 120 characters."))
    if temp_unit not in ("C", "F"):
        raise OperationError(_("Choose °C or °F."))
    unit_before = sensor.unit_id
    sensor.unit_id, sensor.name, sensor.temp_unit = unit.id, name or None, temp_unit
    session.flush()
    _chain_sensor(session, sensor, unit_before, "sensor.attached", actor_id, site.id, reason)
    logger.info("sensor %s attached to unit %s", sensor.key, unit.id)
    return sensor


def detach_sensor(session, sensor: Sensor, site: Site, actor_id: int | None = None,
                  reason: str | None = None) -> Sensor:
    """Take a sensor off its unit; it shows as unassigned again (its readings stay)."""
    if sensor.unit_id is None:
        raise OperationError(_("That sensor is not attached to a unit."))
    if not sensor_visible(session, sensor, site):
        raise OperationError(_("That unit or sensor belongs to another site."))
    logger.info("sensor %s detached from unit %s", sensor.key, sensor.unit_id)
    unit_before, sensor.unit_id = sensor.unit_id, None
    session.flush()
    _chain_sensor(session, sensor, unit_before, "sensor.detached", actor_id, site.id, reason)
    return sensor
