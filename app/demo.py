"""The demo kitchen: a site, its fridges and its people, for the zero-config run."""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select

from app.models import Role, Site, Staff, utcnow
from app.models.units import PRESETS, Unit
from sensors.models import Sensor
from sensors.simulator import demo_devices

PEOPLE = [
    ("Mei Chen", Role.HEAD_CHEF, "zh", "chef@demo.kitchen"),
    ("Sam Okafor", Role.COOK, "en", None),
    ("Li Wei", Role.COOK, "zh", None),
    ("Ana Costa", Role.COOK, "en", None),
    ("Alex Admin", Role.ADMIN, "en", "admin@demo.kitchen"),
]
UNITS = [("Cold-dish fridge", "fridge"), ("Prep fridge", "fridge"), ("Freezer", "freezer"),
         ("Cold well", "cold_well")]
#: Demo settings: the cold-dish fridge's compressor fails a minute after the start (see
#: sensors.simulator.DEMO_FAIL_AFTER_S) and a critical breach alarms after one minute, so a
#: newcomer sees it go critical within about five minutes of `make run`.
DEMO_UNIT_SETTINGS = {"Cold-dish fridge": {"critical_delay_s": 60, "alert_delay_s": 600}}


def seed(session, timezone: str, now: dt.datetime | None = None,
         history: bool = True) -> list[dict] | None:
    """Create the demo kitchen unless a site exists; return the generated logins.
    ``history``: also its last three days (the benchmarks build their own)."""
    if session.execute(select(Site).limit(1)).scalar_one_or_none() is not None:
        return None
    site = Site(name="Demo Kitchen", timezone=timezone, temp_unit="C")
    session.add(site)
    credentials = []
    used = set()
    for name, role, locale, email in PEOPLE:
        pin = _unique_pin(used)
        person = Staff(site=site, name=name, role=role, locale=locale, email=email)
        person.set_pin(pin)
        entry = {"name": name, "role": role.value, "pin": pin}
        if email:
            password = secrets.token_urlsafe(9)
            person.set_password(password)
            entry.update(email=email, password=password)
        session.add(person)
        credentials.append(entry)
    session.flush()
    units = {}
    for name, kind in UNITS:
        limits = PRESETS[("uk", "freezer" if kind == "freezer" else "fridge")]
        units[name] = Unit(site_id=site.id, name=name, kind=kind, **limits,
                           **DEMO_UNIT_SETTINGS.get(name, {}))
        session.add(units[name])
    session.flush()
    # The simulated devices' sensors, attached to their units, so the demo's fridges have
    # readings (and alerts) from the first minute; the spare probe stays unassigned.
    for device in demo_devices():
        if device.unit in units:
            session.add(Sensor(key=device.sensor_key, name=device.name,
                               unit_id=units[device.unit].id))
    session.flush()
    if history:
        from app.demo_history import seed_history
        seed_history(session, site, units, now or utcnow())
    return credentials


def _unique_pin(used: set[str]) -> str:
    while True:
        pin = f"{secrets.randbelow(10_000):04d}"
        if pin not in used:
            used.add(pin)
            return pin
