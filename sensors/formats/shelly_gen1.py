"""Shelly Gen1 (e.g. the original H&T): plain-text values under ``shellies/<device_id>/``.

- ``shellies/<id>/sensor/temperature``: a number "in °C or °F depending on configuration" (Shelly
  Gen1 API). The device does not say which, so ``parse`` assumes °C and ingest passes
  ``temp_unit="F"`` for a device set to °F.
- ``shellies/<id>/sensor/battery``: battery level in %.
- ``shellies/<id>/ext_temperature/<n>``: a DS18B20 on the temperature add-on, always °C
  (the same value in °F goes to ``ext_temperature_f/<n>``, ignored as a duplicate).
- ``shellies/<id>/online``: ``true``/``false``, the device's Last Will.

The sensor is ``shelly/<id>`` (add-on probes: ``shelly/<id>/ext_temperature/<n>``). Every other
``shellies/...`` topic (humidity, relays, announce, ...) is known and carries no readings.
"""

from __future__ import annotations

from .base import Reading, availability, battery, sensor_id, temperature, text, unknown_topic


def parse(topic: str, payload: bytes, *, temp_unit: str = "C") -> list[Reading]:
    """Readings from a Shelly Gen1 message; ``temp_unit`` is the H&T's configured unit."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) < 2 or parts[0] != "shellies":
        raise unknown_topic(topic)
    match parts[1:]:
        case [device, "sensor", "temperature"]:
            value = temperature(text(payload).strip(), temp_unit)
            return [Reading(sensor=sensor_id("shelly", device), temperature_c=value)]
        case [device, "sensor", "battery"]:
            level = battery(text(payload).strip())
            return [Reading(sensor=sensor_id("shelly", device), battery_pct=level)]
        case [device, "ext_temperature", index] if index.isascii() and index.isdigit():
            probe = sensor_id("shelly", device, "ext_temperature", index)
            return [Reading(sensor=probe, temperature_c=temperature(text(payload).strip(), "C"))]
        case [device, "online"]:
            online = availability(payload, "true", "false")
            return [Reading(sensor=sensor_id("shelly", device), online=online)]
        case _:
            return []
