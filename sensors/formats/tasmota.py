"""Tasmota telemetry: ``tele/<topic>/SENSOR`` JSON and the ``tele/<topic>/LWT`` Last Will.

A SENSOR message holds one object per attached sensor, each with a ``Temperature``, in the
unit named by ``TempUnit``::

    {"Time":"2021-01-02T09:09:44","DS18B20-1":{"Id":"00000566CC39","Temperature":13.3},
     "DS18B20-2":{"Id":"0000059352D4","Temperature":1.2},"TempUnit":"C"}

Every such object becomes one Reading. Its sensor is ``tasmota/<topic>/<key>``, or, when the
probe reports its 1-Wire ``Id``, ``tasmota/<topic>/<family>/<Id>``: Tasmota numbers DS18x20
probes by sorted Id, so adding a probe renumbers ``DS18B20-2`` but never changes an Id.

``Time`` is the device's local time without an offset unless ``SetOption52`` adds one; a naive
``Time`` cannot be placed in UTC, so measured_at is None and ingest uses the receive time.

Other ``tele/<topic>/...`` messages (STATE, INFO1, ...) are known and carry no readings. Only the
default FullTopic ``%prefix%/%topic%/`` is understood.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .base import (
    PayloadError,
    Reading,
    availability,
    json_object,
    sensor_id,
    show,
    temperature,
    timestamp,
    unknown_topic,
)

# The chip's own temperature sensor: it measures the ESP, never the fridge.
_NOT_PROBES = frozenset({"ESP32"})
_PROBE_INDEX = re.compile(r"-\d+$")


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Tasmota SENSOR or LWT message; [] for its other telemetry."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 3 or parts[0] != "tele":
        raise unknown_topic(topic)
    device, message = parts[1], parts[2]
    if message == "LWT":
        online = availability(payload, "Online", "Offline")
        return [Reading(sensor=sensor_id("tasmota", device), online=online)]
    if message != "SENSOR":
        return []  # STATE, INFO1, RESULT, ...: known, nothing to store
    data = json_object(payload)
    unit = data.get("TempUnit", "C")
    measured_at = _measured_at(data.get("Time"))
    readings = []
    for key, probe in data.items():
        if key in _NOT_PROBES or not isinstance(probe, dict) or "Temperature" not in probe:
            continue
        if probe["Temperature"] is None:
            continue  # Tasmota writes null when a probe failed this read; nothing measured
        readings.append(
            Reading(
                sensor=_probe_sensor(device, key, probe),
                temperature_c=temperature(probe["Temperature"], unit),
                measured_at=measured_at,
            )
        )
    return readings


def _measured_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"Time is not a string: {show(value)}")
    return timestamp(value, naive="none")


def _probe_sensor(device: str, key: str, probe: dict[str, Any]) -> str:
    probe_id = probe.get("Id")
    if probe_id is None:
        return sensor_id("tasmota", device, key)
    if not isinstance(probe_id, str) or not probe_id:
        raise PayloadError(f"{show(key)} Id is not a string: {show(probe_id)}")
    return sensor_id("tasmota", device, _PROBE_INDEX.sub("", key), probe_id)
