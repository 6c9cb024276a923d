"""The unit form: its fields and presets, parsed and checked in the site's °C or °F."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext

from app.errors import OperationError
from app.formatting import show_temp
from app.models.units import PRESETS, Unit
from sensors.temperature import (delta_from_celsius, delta_to_celsius, from_celsius, parse_number,
                                 show_delta, show_number, to_celsius)


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
