"""What many tests build: an app on a given database, a kitchen, a fridge fed with readings.

Fixtures that hand these out live in ``conftest.py``; tests import the builders from here.
"""
from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import text

from app import create_app
from app.checklists.definitions import load_all
from app.models import Device, Role, Site, Staff, db

UTC = dt.timezone.utc
#: Services a CI run must have: a missing one fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("BRIGADE_REQUIRE_SERVICES", "") == "1"


def unavailable(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


_pg_schema_ready = set()


def make_app(database_url: str, instance_path, **extra):
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
              "SECRET_KEY": "test-secret", "BRIGADE_AUDIT_KEY": "test-audit-key",
              "WTF_CSRF_ENABLED": False, "SERVER_NAME": None,
              # No live socket unless a test starts one (pages then ask over HTTP only).
              "BRIGADE_LIVE_PORT": 0}
    config.update(extra)
    os.environ["BRIGADE_INSTANCE_PATH"] = str(instance_path)
    try:
        return create_app(config)
    finally:
        del os.environ["BRIGADE_INSTANCE_PATH"]


def reset_schema(app) -> None:
    """Empty every table: fresh per test on SQLite, truncated on PostgreSQL."""
    with app.app_context():
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        if url.startswith("postgresql") and url in _pg_schema_ready:
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        db.drop_all()
        db.create_all()
        if url.startswith("postgresql"):
            _pg_schema_ready.add(url)


class Kitchen:
    """A site with a head chef, two cooks and an admin, and the default checklists."""

    PINS = {"chef": "1357", "cook": "2468", "cook2": "1122", "admin": "9090"}

    def __init__(self, timezone: str = "Europe/London"):
        # Open since the start of 2026: slots of the tests' past days were due there (a slot
        # that ended before its site existed is not counted as missed).
        self.site = Site(name="Test Kitchen", timezone=timezone, temp_unit="C",
                         created_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
        db.session.add(self.site)
        self.chef = self._person("Chef Mei", Role.HEAD_CHEF, "chef", "chef@test.kitchen")
        self.cook = self._person("Cook Sam", Role.COOK, "cook")
        self.cook2 = self._person("Cook Li", Role.COOK, "cook2", locale="zh")
        self.admin = self._person("Admin Alex", Role.ADMIN, "admin", "admin@test.kitchen")
        db.session.add(Device(id="dev1", user_agent="test tablet"))
        load_all(db.session)
        db.session.commit()

    def _person(self, name, role, key, email=None, locale="en"):
        person = Staff(site=self.site, name=name, role=role, email=email, locale=locale)
        # Hashing is deliberately slow; hash each test PIN once per session.
        if key not in _HASHES:
            person.set_pin(self.PINS[key])
            person.set_password(f"{key}-password")
            _HASHES[key] = (person.pin_hash, person.password_hash)
        person.pin_hash = _HASHES[key][0]
        person.password_hash = _HASHES[key][1] if email else None
        db.session.add(person)
        return person


_HASHES: dict[str, tuple[str, str]] = {}


def other_site(app, name: str = "Other Kitchen") -> int:
    """A second site of the group (an admin or owner may work on it); its id."""
    with app.app_context():
        other = Site(name=name, timezone="Europe/London", temp_unit="C")
        db.session.add(other)
        db.session.commit()
        return other.id


def at_local(day: dt.date, hhmm: str, tz: str = "Europe/London") -> dt.datetime:
    from zoneinfo import ZoneInfo
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def login_pin(client, staff_id: int, pin: str):
    return client.post(f"/pin/{staff_id}", data={"pin": pin})


def login_password(client, email: str, password: str):
    return client.post("/login", data={"email": email, "password": password})


SALAD_T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)


def salad_fridge(site_id: int, at: dt.datetime = SALAD_T0):
    """A fridge (5 °C target, 8 °C critical, 10-minute delay) with one sensor attached.

    Needs an app context; the sensor appears through ingest, as a real one would.
    """
    from app.models.units import Unit
    from sensors.models import Sensor
    from sensors.store import Message, store_batch
    unit = Unit(site_id=site_id, name="Salad fridge", kind="fridge", target_max_c=5.0,
                critical_max_c=8.0, alert_delay_s=600, critical_delay_s=120, hysteresis_c=0.5,
                expected_interval_s=60, offline_after=5)
    db.session.add(unit)
    db.session.commit()
    store_batch(db.session, [Message("brigade/salad/temperature", b"4.0", at)])
    db.session.execute(db.select(Sensor)).scalar_one().unit_id = unit.id
    db.session.commit()
    return unit


def feed_salad(values, start: dt.datetime, step: int = 60) -> dt.datetime:
    """Store one reading per ``step`` seconds for the salad fridge; returns the last time."""
    import json
    from sensors.store import Message, store_batch
    for i, value in enumerate(values):
        at = start + dt.timedelta(seconds=i * step)
        store_batch(db.session, [Message("brigade/salad/reading",
                                         json.dumps({"t": value, "ts": at.isoformat()}).encode(), at)])
    db.session.commit()
    return start + dt.timedelta(seconds=(len(values) - 1) * step)
