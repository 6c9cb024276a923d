"""Zigbee2MQTT: device state on ``zigbee2mqtt/<friendly_name>``, availability on ``.../availability``.

A device message is the device's whole state as a JSON object, e.g. an Aqara WSDCGQ11LM::

    {"battery":91,"voltage":2985,"temperature":23.5,"humidity":46.08,"pressure":915.5,"linkquality":10}

``temperature`` (°C) and ``battery`` (%) become one Reading for ``z2m/<friendly_name>``; a message
with neither (a plug, a door contact) gives []. If ``advanced.last_seen`` is enabled its value
(ISO 8601 with offset, or epoch ms) is the measured_at, so a cached state Zigbee2MQTT republishes
on restart keeps its real age.

Availability is ``online``/``offline`` (legacy, the default) or ``{"state":"online"}``.
Friendly names may contain ``/``. ``zigbee2mqtt/bridge/...`` and the ``set``/``get`` command
topics are known and carry no readings, so their payloads (bridge/devices is often far over the
size limit) are never read. Only the default base topic ``zigbee2mqtt`` is understood.
"""

from __future__ import annotations

from .base import (
    PayloadError,
    Reading,
    battery,
    json_object,
    kind,
    loads,
    sensor_id,
    show,
    temperature,
    text,
    timestamp,
    unknown_topic,
)

BASE_TOPIC = "zigbee2mqtt"
_COMMANDS = frozenset({"set", "get"})


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Zigbee2MQTT device or availability message; [] for bridge and commands."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) < 2 or parts[0] != BASE_TOPIC:
        raise unknown_topic(topic)
    rest = parts[1:]
    if rest[0] == "bridge" or rest[-1] in _COMMANDS or (len(rest) > 2 and rest[-2] in _COMMANDS):
        return []
    if rest[-1] == "availability" and len(rest) > 1:
        return [Reading(sensor=sensor_id("z2m", "/".join(rest[:-1])), online=_online(payload))]
    sensor = sensor_id("z2m", "/".join(rest))
    state = json_object(payload)
    raw_temperature, raw_battery = state.get("temperature"), state.get("battery")
    if raw_temperature is None and raw_battery is None:
        return []  # not a thermometer, or a message about something else (e.g. only linkquality)
    last_seen = state.get("last_seen")
    return [
        Reading(
            sensor=sensor,
            temperature_c=None if raw_temperature is None else temperature(raw_temperature),
            battery_pct=None if raw_battery is None else battery(raw_battery),
            measured_at=None if last_seen is None else timestamp(last_seen, naive="none"),
        )
    ]


def _online(payload: bytes) -> bool:
    raw = text(payload).strip()
    if raw in ("online", "offline"):  # legacy_availability_payload: true (the default)
        return raw == "online"
    value = loads(raw)
    if not isinstance(value, dict):
        raise PayloadError(f"expected online/offline or a JSON object, got {kind(value)}")
    state = value.get("state")
    if state not in ("online", "offline"):
        raise PayloadError(f"availability state is not online/offline: {show(state)}")
    return bool(state == "online")
