"""Temperatures in one place: °C/°F, numbers as people type them, display, and limits.

Brigade stores °C. A site may work in °F: what a person types is converted here on the way
in, and every value shown goes out through here. Whether a value is beyond a unit's limit,
and when it is back inside by the hysteresis, is decided here too — the breach state
machine (:mod:`app.alerts.breach`) and every page that colours a reading use the same rules.

It lives in ``sensors`` because the device path needs the conversion (a Shelly reports °F)
and ``sensors`` imports nothing from the web app; the web app imports it from here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

UNITS = ("C", "F")
#: Digits with an optional sign and a decimal point or comma; no "nan", "inf", "1e9" or "1_0".
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)", re.ASCII)
#: A unit written after a typed temperature: "4 °C", "39.2F", "39,2 °f".
_SUFFIX = re.compile(r"\s*°?\s*([CcFf])?\s*$")


def to_celsius(value: float, unit: str) -> float:
    """A temperature in ``unit`` ("C" or "F") in °C."""
    return (value - 32.0) * 5.0 / 9.0 if unit == "F" else value


def from_celsius(celsius: float, unit: str) -> float:
    """A °C temperature in ``unit``."""
    return celsius * 9.0 / 5.0 + 32.0 if unit == "F" else celsius


def delta_to_celsius(delta: float, unit: str) -> float:
    """A temperature difference (hysteresis, tolerance, error) in ``unit`` in °C: no 32° offset."""
    return to_celsius(delta, unit) - to_celsius(0.0, unit)


def delta_from_celsius(delta_c: float, unit: str) -> float:
    """A difference in °C expressed in ``unit``."""
    return from_celsius(delta_c, unit) - from_celsius(0.0, unit)


def parse_number(raw: str | None) -> float | None:
    """A number as typed on a form (sign, decimal point or comma), or None if it is not one."""
    text = (raw or "").strip().replace("\u2212", "-")  # a typographic minus, as the pages show it
    if not _NUMBER.fullmatch(text):
        return None
    return float(text.replace(",", "."))


def parse_temperature(raw: str | None, unit: str) -> float | None:
    """A typed temperature in °C, or None: "4,5" in the site's ``unit``; "39.2 °F" says its own."""
    text = (raw or "").strip()
    suffix = _SUFFIX.search(text)
    written = suffix.group(1).upper() if suffix and suffix.group(1) else None
    number = parse_number(text[:suffix.start()] if suffix else text)
    if number is None:
        return None
    return to_celsius(number, written or unit)


def show_number(value: float | None) -> str:
    """A number as a person would type it: 41, 44.6, -18 (one decimal at most)."""
    if value is None:
        return ""
    return f"{round(value, 1) + 0.0:g}"


def show(celsius: float | None, unit: str = "C") -> str:
    """A stored °C value in the site's unit: "4.0 °C", "39.2 °F"; "—" for none."""
    if celsius is None:
        return "—"
    return f"{from_celsius(celsius, unit):.1f} °{unit}"


def show_delta(delta_c: float | None, unit: str = "C", *, signed: bool = False) -> str:
    """A difference in the site's unit: "0.9 °F" (or "+0.9 °F" when ``signed``)."""
    if delta_c is None:
        return "—"
    value = delta_from_celsius(delta_c, unit)
    return f"{value:+.1f} °{unit}" if signed else f"{value:.1f} °{unit}"


# --- limits --------------------------------------------------------------------------------------

OK, OUT, CRITICAL = "ok", "out", "critical"


@dataclass(frozen=True)
class Limits:
    """A unit's limits, °C: beyond one opens an excursion; back inside by the hysteresis ends it."""

    target_max_c: float
    critical_max_c: float
    min_c: float | None = None
    hysteresis_c: float = 0.5

    @classmethod
    def of(cls, unit) -> Limits:
        """The limits of anything with the four columns (a Unit, breach Settings)."""
        return cls(unit.target_max_c, unit.critical_max_c, unit.min_c, unit.hysteresis_c)

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tiers this unit has: "critical" and "high", and "low" with a lower limit."""
        return ("critical", "high", "low") if self.min_c is not None else ("critical", "high")

    def beyond(self, tier: str, value: float) -> bool:
        """Strictly past the tier's limit: an excursion starts."""
        if tier == "critical":
            return value > self.critical_max_c
        if tier == "high":
            return value > self.target_max_c
        return self.min_c is not None and value < self.min_c

    def recovered(self, tier: str, value: float) -> bool:
        """Back inside the tier's limit by the hysteresis: its excursion ends."""
        h = self.hysteresis_c
        if tier == "critical":
            return value <= self.critical_max_c - h
        if tier == "high":
            return value <= self.target_max_c - h
        return self.min_c is None or value >= self.min_c + h

    def step(self, open_tiers: frozenset[str], value: float) -> frozenset[str]:
        """The tiers with an excursion open after ``value``, given those open before it."""
        now_open = set()
        for tier in self.tiers:
            if tier in open_tiers:
                if not self.recovered(tier, value):
                    now_open.add(tier)
            elif self.beyond(tier, value):
                now_open.add(tier)
        return frozenset(now_open)


def band(open_tiers: frozenset[str]) -> str:
    """How a reading is shown: critical, out (of target or below the minimum) or ok."""
    if "critical" in open_tiers:
        return CRITICAL
    return OUT if open_tiers else OK


def classify(limits: Limits, values: Iterable[float],
             open_tiers: frozenset[str] = frozenset()) -> list[str]:
    """Each value's band in a series, in time order, with the hysteresis the breach rules use."""
    bands = []
    for value in values:
        open_tiers = limits.step(open_tiers, value)
        bands.append(band(open_tiers))
    return bands
