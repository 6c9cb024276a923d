"""Brigade's own format: JSON readings on ``brigade/<sensor_id>/reading``, availability on ``/status``.

``brigade/<sensor_id>/reading`` carries a JSON object; only ``t`` is required::

    {"t": 4.2, "unit": "C", "ts": "2026-11-27T10:00:00Z", "battery": 88}

- ``t``: the temperature, a number.
- ``unit``: ``"C"`` (default) or ``"F"``; Brigade stores °C.
- ``ts``: when it was measured, ISO 8601 *with* a UTC offset, or Unix epoch seconds (or ms).
  Leave it out and ingest uses the receive time. A naive time is refused: we cannot place it.
- ``battery``: percent, 0–100.

Other keys are refused, so a typo such as ``"batery"`` reaches the admin instead of vanishing.
A bare JSON number (``4.2``) is accepted too and means °C, measured now.

``brigade/<sensor_id>/status`` carries ``online`` or ``offline`` (a device's MQTT Last Will).

``sensor_id`` is 1–64 characters of ``A-Z a-z 0-9 . _ -``; the Reading's sensor is
``brigade/<sensor_id>``.
"""

from __future__ import annotations

import re

from .base import (
    PayloadError,
    Reading,
    availability,
    battery,
    json_value,
    kind,
    show,
    temperature,
    timestamp,
    unknown_topic,
)

SENSOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_FIELDS = frozenset({"t", "unit", "ts", "battery"})


def sensor_for(topic: str, leaf: str) -> str:
    """The Reading sensor for ``brigade/<sensor_id>/<leaf>``, or PayloadError."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 3 or parts[0] != "brigade" or parts[2] != leaf:
        raise unknown_topic(topic)
    if not SENSOR_ID.fullmatch(parts[1]):
        raise PayloadError(f"bad Brigade sensor id: {show(parts[1])}")
    return f"brigade/{parts[1]}"


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Brigade ``reading`` or ``status`` message."""
    if isinstance(topic, str) and topic.endswith("/status"):
        sensor = sensor_for(topic, "status")
        return [Reading(sensor=sensor, online=availability(payload, "online", "offline"))]
    sensor = sensor_for(topic, "reading")
    value = json_value(payload)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [Reading(sensor=sensor, temperature_c=temperature(value))]
    if not isinstance(value, dict):
        raise PayloadError(f"expected a JSON object or number, got {kind(value)}")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise PayloadError(f"unknown field(s): {show(', '.join(unknown), 60)}")
    if "t" not in value:
        raise PayloadError("missing field: t")
    return [
        Reading(
            sensor=sensor,
            temperature_c=temperature(value["t"], value.get("unit", "C")),
            measured_at=None if value.get("ts") is None else timestamp(value["ts"], naive="reject"),
            battery_pct=None if value.get("battery") is None else battery(value["battery"]),
        )
    ]
