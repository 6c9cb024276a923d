"""ESPHome's MQTT client: ``<prefix>/sensor/<name>/state`` plain values, ``<prefix>/status``.

A sensor publishes its state as plain text (``4.3``) on ``<prefix>/sensor/<object_id>/state``;
``<prefix>`` is the node name unless ``topic_prefix`` is set. The payload does not carry a unit:
temperatures are taken as °C (ingest may pass ``temp_unit="F"`` for a node configured in °F).
The sensor name decides what the value is:

- contains ``temp``: a temperature;
- contains ``battery`` (but not ``volt``): battery %, for the node ``esphome/<prefix>``;
- an obvious non-temperature (humidity, uptime, wifi signal, voltage, ...): [];
- anything else (``walk_in``, ``probe_2``): a temperature. A misread sensor then shows up at
  ingest (unassigned, or dead-lettered when out of range) instead of a probe being dropped silently.

``<prefix>/status`` is the birth/Last Will message, ``online``/``offline``.
"""

from __future__ import annotations

from .base import Reading, availability, battery, sensor_id, temperature, text, unknown_topic

_NOT_TEMPERATURE = (
    "humid", "uptime", "wifi", "rssi", "signal", "volt", "pressure", "illuminance", "lux", "co2",
)  # fmt: skip


def parse(topic: str, payload: bytes, *, temp_unit: str = "C") -> list[Reading]:
    """Readings from an ESPHome sensor state or node status message."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) >= 2 and parts[-1] == "status":
        node = sensor_id("esphome", *parts[:-1])
        return [Reading(sensor=node, online=availability(payload, "online", "offline"))]
    if len(parts) < 4 or parts[-3] != "sensor" or parts[-1] != "state":
        raise unknown_topic(topic)
    node, name = sensor_id("esphome", *parts[:-3]), parts[-2]
    lowered = name.lower()
    if "temp" not in lowered and "battery" in lowered and "volt" not in lowered:
        return [Reading(sensor=node, battery_pct=battery(text(payload).strip()))]
    if "temp" not in lowered and any(word in lowered for word in _NOT_TEMPERATURE):
        return []
    value = temperature(text(payload).strip(), temp_unit)
    return [Reading(sensor=sensor_id(node, "sensor", name), temperature_c=value)]
