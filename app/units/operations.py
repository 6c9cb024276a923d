"""Units, sensor assignment, ingest tokens and the rejected-message summary; the caller commits."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import func, or_, select

from app.errors import OperationError
from app.formatting import show_temp
from app.models import Site
from app.models.ingest import IngestToken
from app.models.units import PRESETS, Unit
from sensors.models import DeadLetter, Sensor
from sensors.temperature import (delta_from_celsius, delta_to_celsius, from_celsius, parse_number,
                                 show_delta, show_number, to_celsius)

logger = logging.getLogger(__name__)

KINDS = {
    "fridge": lazy_gettext("Fridge"), "freezer": lazy_gettext("Freezer"),
    "walk_in": lazy_gettext("Walk-in"), "cold_well": lazy_gettext("Cold well"),
    "display_case": lazy_gettext("Display case"),
}
FROZEN_KINDS = {"freezer"}
PRESET_LABELS = {
    "uk_fridge": lazy_gettext("UK fridge"), "uk_freezer": lazy_gettext("UK freezer"),
    "us_fridge": lazy_gettext("US Food Code fridge"),
    "us_freezer": lazy_gettext("US Food Code freezer"),
}
#: Plausible limits, °C: a chilled unit outside these is a typo (or °F typed into a °C site).
CHILLED_RANGE = (-5.0, 20.0)
FROZEN_RANGE = (-40.0, 0.0)
MIN_RANGE = (-50.0, 15.0)
MAX_HYSTERESIS_C = 5.0
MAX_SECONDS = 86400
MIN_INTERVAL_S = 5
DEFAULTS = {"alert_delay_s": 1800, "hysteresis_c": 0.5, "expected_interval_s": 60}
FIELDS = ("name", "kind", "target_max_c", "critical_max_c", "min_c", "alert_delay_s",
          "hysteresis_c", "expected_interval_s")
_INTEGER = re.compile(r"\+?\d+", re.ASCII)


class FormInvalid(OperationError):
    """The form has mistakes; ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(" ".join(errors.values()))


@dataclass(frozen=True)
class UnitValues:
    """A unit's settings, validated, temperatures in °C."""

    name: str
    kind: str
    target_max_c: float
    critical_max_c: float
    min_c: float | None
    alert_delay_s: int
    hysteresis_c: float
    expected_interval_s: int


def form_values(unit: Unit, temp_unit: str) -> dict[str, str]:
    """A stored unit as the strings its edit form shows, temperatures in the site's unit."""
    delta = delta_from_celsius(unit.hysteresis_c, temp_unit)
    return {
        "name": unit.name, "kind": unit.kind,
        "target_max_c": show_number(from_celsius(unit.target_max_c, temp_unit)),
        "critical_max_c": show_number(from_celsius(unit.critical_max_c, temp_unit)),
        "min_c": "" if unit.min_c is None else show_number(from_celsius(unit.min_c, temp_unit)),
        "alert_delay_s": str(unit.alert_delay_s), "hysteresis_c": show_number(delta),
        "expected_interval_s": str(unit.expected_interval_s),
    }


def new_unit_values(temp_unit: str, preset: str | None = None) -> dict[str, str]:
    """The new-unit form's starting values, with a jurisdiction preset's limits when chosen."""
    delta = delta_from_celsius(DEFAULTS["hysteresis_c"], temp_unit)
    values = {"name": "", "kind": "", "target_max_c": "", "critical_max_c": "", "min_c": "",
              "alert_delay_s": str(DEFAULTS["alert_delay_s"]), "hysteresis_c": show_number(delta),
              "expected_interval_s": str(DEFAULTS["expected_interval_s"])}
    return apply_preset(values, preset, temp_unit)


def apply_preset(values: Mapping[str, str], preset: str | None, temp_unit: str) -> dict[str, str]:
    """Fill the kind and the limits left blank from a preset such as ``uk_fridge``."""
    values = {field: (values.get(field) or "").strip() for field in FIELDS}
    if not preset:
        return values
    jurisdiction, _sep, kind = preset.partition("_")
    limits = PRESETS.get((jurisdiction, kind))
    if limits is None:
        raise FormInvalid({"preset": _("Unknown preset.")})
    values["kind"] = values["kind"] or kind
    for field, celsius in limits.items():
        values[field] = values[field] or show_number(from_celsius(celsius, temp_unit))
    return values


def preset_summary(preset: str, temp_unit: str) -> str:
    limits = PRESETS[tuple(preset.split("_", 1))]
    return _("target %(target)s, critical %(critical)s",
             target=show_temp(limits["target_max_c"], temp_unit),
             critical=show_temp(limits["critical_max_c"], temp_unit))


def parse_unit_form(form: Mapping[str, str], temp_unit: str) -> UnitValues:
    """Validate a unit form entered in the site's unit (°C or °F); raise FormInvalid."""
    values = apply_preset(form, form.get("preset") or None, temp_unit)
    errors: dict[str, str] = {}
    name = values["name"]
    if not name:
        errors["name"] = _("Give the unit a name.")
    elif len(name) > 120:
        errors["name"] = _("A name is at most 120 characters.")
    kind = values["kind"]
    if kind not in KINDS:
        errors["kind"] = _("Choose what kind of unit this is.")

    def temperature(field: str, low_c: float, high_c: float, required: bool = True):
        raw = values[field]
        if not raw:
            if required:
                errors[field] = _("Required.")
            return None
        number = parse_number(raw)
        if number is None:
            errors[field] = _("Enter a number, e.g. %(example)s.",
                              example=show_number(from_celsius(5.0, temp_unit)))
            return None
        celsius = round(to_celsius(number, temp_unit), 2)
        if not low_c <= celsius <= high_c:
            errors[field] = _("Must be between %(low)s and %(high)s.",
                              low=show_temp(low_c, temp_unit), high=show_temp(high_c, temp_unit))
            return None
        return celsius

    def seconds(field: str, low: int) -> int | None:
        raw = values[field].strip()
        number = int(raw) if _INTEGER.fullmatch(raw) else None
        if number is None or not low <= number <= MAX_SECONDS:
            errors[field] = _("Whole seconds, from %(low)s to %(high)s.", low=low, high=MAX_SECONDS)
            return None
        return int(number)

    low_c, high_c = FROZEN_RANGE if kind in FROZEN_KINDS else CHILLED_RANGE
    target = temperature("target_max_c", low_c, high_c)
    critical = temperature("critical_max_c", low_c, high_c)
    minimum = temperature("min_c", *MIN_RANGE, required=False)
    if target is not None and critical is not None and critical <= target:
        errors["critical_max_c"] = _("The critical limit must be above the target limit.")
    if target is not None and minimum is not None and minimum >= target:
        errors["min_c"] = _("The lower limit must be below the target limit.")
    hysteresis = None
    number = parse_number(values["hysteresis_c"])
    delta_c = None if number is None else delta_to_celsius(number, temp_unit)
    if delta_c is None or not 0 <= delta_c <= MAX_HYSTERESIS_C:
        errors["hysteresis_c"] = _("A difference from %(low)s to %(high)s.",
                                   low=show_delta(0, temp_unit),
                                   high=show_delta(MAX_HYSTERESIS_C, temp_unit))
    else:
        hysteresis = round(delta_c, 2)
    delay = seconds("alert_delay_s", 0)
    interval = seconds("expected_interval_s", MIN_INTERVAL_S)
    if errors:
        raise FormInvalid(errors)
    return UnitValues(name=name, kind=kind, target_max_c=target, critical_max_c=critical,
                      min_c=minimum, alert_delay_s=delay, hysteresis_c=hysteresis,
                      expected_interval_s=interval)


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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session, site: Site, name: str) -> tuple[IngestToken, str]:
    """A new ingest token for the site; the plain token is returned once, only its hash kept."""
    name = (name or "").strip()
    if not name:
        raise OperationError(_("Give the token a name, e.g. the device that will use it."))
    if len(name) > 120:
        raise OperationError(_("A name is at most 120 characters."))
    plain = "brg_" + secrets.token_urlsafe(32)
    token = IngestToken(site_id=site.id, name=name, token_hash=hash_token(plain))
    session.add(token)
    session.flush()
    logger.info("ingest token %s (%s) created for site %s", token.id, name, site.id)
    return token, plain


def revoke_token(session, token: IngestToken, now: dt.datetime) -> IngestToken:
    """Refuse this token from now on (kept, for the record)."""
    if token.revoked_at is None:
        token.revoked_at = now
        session.flush()
        logger.info("ingest token %s revoked", token.id)
    return token


def token_from_header(session, authorization: str | None) -> IngestToken | None:
    """The live token an ``Authorization: Bearer …`` header carries, or None."""
    scheme, _sep, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    digest = hash_token(value)
    found = None
    # Compare against every live token in constant time rather than look the hash up.
    for token in session.execute(select(IngestToken).where(IngestToken.revoked_at.is_(None))).scalars():
        if hmac.compare_digest(token.token_hash, digest):
            found = token
    return found


def preview(payload: bytes | memoryview | None, limit: int = 160) -> str:
    """A payload as one line of text for the admin: invalid UTF-8 replaced, cut short."""
    text = bytes(payload or b"").decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else ("\u2423" if c in "\r\n\t" else "\ufffd") for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def reason_kind(reason: str) -> str:
    """The kind of a rejection ("not JSON", "unknown topic" …) without its details."""
    return reason.split(":", 1)[0].strip() or reason


@dataclass
class ReasonCount:
    kind: str
    total: int
    last_day: int
    latest: dt.datetime


def _seen_at(site: Site):
    """The rejected messages a site's admin sees: its own HTTP tokens' and every MQTT one."""
    return or_(DeadLetter.site_id.is_(None), DeadLetter.site_id == site.id)


def dead_letter_summary(session, site: Site, now: dt.datetime, top: int = 15) -> dict:
    """Counts of rejected messages, overall and in the last 24 h, by kind of reason."""
    since = now - dt.timedelta(hours=24)
    seen = _seen_at(site)
    total = session.scalar(select(func.count()).select_from(DeadLetter).where(seen))
    last_day = session.scalar(select(func.count()).select_from(DeadLetter)
                              .where(seen, DeadLetter.received_at >= since))
    by_kind: dict[str, ReasonCount] = {}
    # Group exact reasons in SQL, fold their details away here (portable across databases).
    rows = session.execute(select(DeadLetter.reason, func.count(), func.max(DeadLetter.received_at))
                           .where(seen).group_by(DeadLetter.reason)
                           .order_by(func.count().desc()).limit(2000))
    for reason, count, latest in rows:
        entry = by_kind.setdefault(reason_kind(reason), ReasonCount(reason_kind(reason), 0, 0, latest))
        entry.total += count
        entry.latest = max(entry.latest, latest)
    recent = session.execute(select(DeadLetter.reason, func.count())
                             .where(seen, DeadLetter.received_at >= since)
                             .group_by(DeadLetter.reason).limit(2000))
    for reason, count in recent:
        if reason_kind(reason) in by_kind:
            by_kind[reason_kind(reason)].last_day += count
    reasons = sorted(by_kind.values(), key=lambda r: (-r.last_day, -r.total, r.kind))[:top]
    return {"total": total, "last_day": last_day, "reasons": reasons}


def latest_dead_letters(session, site: Site, limit: int = 200) -> list[DeadLetter]:
    return session.execute(select(DeadLetter).where(_seen_at(site))
                           .order_by(DeadLetter.received_at.desc(), DeadLetter.id.desc())
                           .limit(limit)).scalars().all()
