"""Shelly Gen2+ (Plus, Pro, Gen3): JSON-RPC notifications on ``<id>/events/rpc``, ``<id>/online``.

A notification's ``params`` holds ``ts`` (Unix seconds, UTC) and one status object per changed
component. ``NotifyFullStatus`` carries every component; ``NotifyStatus`` only what changed, so a
message may hold just a battery, just a temperature, or neither (then it gives [])::

    {"src":"shellyhtg3-84fce63ad204","dst":"shellyhtg3-84fce63ad204/events","method":"NotifyStatus",
     "params":{"ts":1700000000.12,"temperature:0":{"id":0,"tC":4.3,"tF":39.7}}}

- ``temperature:<n>``: ``tC`` (°C; ``tF`` only if tC is absent); null means no valid value.
- ``devicepower:<n>``: ``battery.percent`` is the device's battery.

``temperature:0`` and the battery belong to ``shelly/<id>``; other probes (the Plus Add-on's
``temperature:100`` ...) to ``shelly/<id>/temperature:<n>``. ``<id>`` is the topic prefix (the
device id unless reconfigured), matching ``<id>/online``. ``NotifyEvent`` and other methods give [].
"""

from __future__ import annotations

import re
from typing import Any

from .base import (
    PayloadError,
    Reading,
    availability,
    battery,
    json_object,
    kind,
    sensor_id,
    show,
    temperature,
    timestamp,
    unknown_topic,
)

_STATUS_METHODS = frozenset({"NotifyStatus", "NotifyFullStatus"})
_COMPONENT_ID = re.compile(r"0|[1-9]\d{0,5}", re.ASCII)


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Shelly Gen2 notification or ``online`` Last Will."""
    match topic.split("/") if isinstance(topic, str) else []:
        case [device, "online"]:
            online = availability(payload, "true", "false")
            return [Reading(sensor=sensor_id("shelly", device), online=online)]
        case [device, "events", "rpc"]:
            return _notification(sensor_id("shelly", device), json_object(payload))
        case _:
            raise unknown_topic(topic)


def _notification(device: str, frame: dict[str, Any]) -> list[Reading]:
    method = frame.get("method")
    if not isinstance(method, str):
        raise PayloadError(f"not a JSON-RPC notification: method is {kind(method)}")
    if method not in _STATUS_METHODS:
        return []  # NotifyEvent (button pushes, config changes, ...) carries no status
    params = frame.get("params")
    if not isinstance(params, dict):
        raise PayloadError(f"params is not an object: {kind(params)}")
    measured_at = None if params.get("ts") is None else timestamp(params["ts"], naive="reject")
    temperatures: dict[int, float] = {}
    battery_pct = None
    for key, status in params.items():
        component, _, index = key.partition(":")
        # Component ids are small integers; a 5000-digit "id" is not one (and int() would refuse it).
        if component == "temperature" and _COMPONENT_ID.fullmatch(index):
            value = _temperature(key, status)
            if value is not None:
                temperatures[int(index)] = value
        elif component == "devicepower":
            battery_pct = _battery(key, status)
    readings = []
    if 0 in temperatures or battery_pct is not None:
        first = temperatures.pop(0, None)
        readings.append(
            Reading(device, temperature_c=first, battery_pct=battery_pct, measured_at=measured_at)
        )
    for index, value in sorted(temperatures.items()):
        readings.append(
            Reading(f"{device}/temperature:{index}", temperature_c=value, measured_at=measured_at)
        )
    return readings


def _component(key: str, status: object) -> dict[str, Any] | None:
    # A component whose status disappeared is notified as null; anything else must be an object.
    if status is None:
        return None
    if not isinstance(status, dict):
        raise PayloadError(f"{show(key)} is not an object: {kind(status)}")
    return status


def _temperature(key: str, status: object) -> float | None:
    component = _component(key, status)
    if component is None:
        return None
    if component.get("tC") is not None:
        return temperature(component["tC"], "C")
    if component.get("tF") is not None:
        return temperature(component["tF"], "F")
    return None  # tC null: the sensor had no valid value this time


def _battery(key: str, status: object) -> float | None:
    component = _component(key, status)
    if component is None or component.get("battery") is None:
        return None
    charge = component["battery"]
    if not isinstance(charge, dict):
        raise PayloadError(f"{show(key)} battery is not an object: {kind(charge)}")
    return None if charge.get("percent") is None else battery(charge["percent"])
