"""A bare number in °C (e.g. ``4.2``) on ``brigade/<sensor_id>/temperature``, for the simplest devices."""

from __future__ import annotations

from .base import Reading, temperature, text
from .brigade import sensor_for


def parse(topic: str, payload: bytes) -> list[Reading]:
    """One temperature reading, measured now, from a decimal number in °C."""
    sensor = sensor_for(topic, "temperature")
    return [Reading(sensor=sensor, temperature_c=temperature(text(payload).strip()))]
