"""Payload formats: which parser handles an MQTT topic, and which topic filters to subscribe to.

Routing is deterministic: :data:`ROUTES` is tried top to bottom and the first matching MQTT
topic filter wins. Vendor-rooted filters (``brigade/…``, ``tele/…``, ``zigbee2mqtt/#``,
``shellies/#``) come before the generic one-level ones (``+/online``, ``+/status`` …), so
``shellies/online`` or ``zigbee2mqtt/status`` never reach a Gen2 Shelly or ESPHome parser. A route
whose parser is None claims a namespace without understanding it: ``brigade/foo`` is unknown,
not an ESPHome node called "brigade".

Order the routes by specificity when adding one; ``tests/formats/test_routing.py`` pins the table.
"""

from __future__ import annotations

from typing import Protocol

from . import brigade, esphome, plain, shelly_gen1, shelly_gen2, tasmota, zigbee2mqtt
from .base import MAX_PAYLOAD_BYTES, PayloadError, Reading, unknown_topic

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ROUTES",
    "SUBSCRIPTIONS",
    "Format",
    "PayloadError",
    "Reading",
    "matches",
    "parse",
    "route",
]


class Format(Protocol):
    """A payload-format module: a pure parse() that raises only PayloadError."""

    def parse(self, topic: str, payload: bytes) -> list[Reading]: ...


ROUTES: tuple[tuple[str, Format | None], ...] = (
    ("brigade/+/reading", brigade),
    ("brigade/+/status", brigade),
    ("brigade/+/temperature", plain),
    ("brigade/#", None),
    ("tele/+/+", tasmota),  # SENSOR and LWT give readings; STATE, INFO1 ... give []
    ("tele/#", None),
    ("zigbee2mqtt/#", zigbee2mqtt),
    ("shellies/#", shelly_gen1),
    ("+/events/rpc", shelly_gen2),
    ("+/online", shelly_gen2),
    ("+/sensor/+/state", esphome),
    ("+/status", esphome),
)

# What ingest subscribes to (QoS 1). Narrower than ROUTES where a vendor sends much we never
# store (Tasmota STATE every TelePeriod), so that traffic never reaches the broker session.
SUBSCRIPTIONS: list[str] = [
    "brigade/#",
    "tele/+/SENSOR",
    "tele/+/LWT",
    "zigbee2mqtt/#",
    "shellies/#",
    "+/events/rpc",
    "+/online",
    "+/sensor/+/state",
    "+/status",
]


def matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT topic filter (with ``+`` and ``#``) matches a concrete topic name."""
    if topic.startswith("$"):
        return False  # $SYS and friends never match wildcards at the first level (MQTT 4.7.2)
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True  # also matches the parent: "a/#" matches "a"
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def route(topic: str) -> Format | None:
    """The parser for a topic, or None for an unknown topic (ingest dead-letters it)."""
    if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
        return None  # not a publishable topic name
    for topic_filter, parser in ROUTES:
        if matches(topic_filter, topic):
            return parser
    return None


def parse(topic: str, payload: bytes) -> list[Reading]:
    """Route and parse one message; PayloadError("unknown topic: ...") when nothing handles it."""
    parser = route(topic)
    if parser is None:
        raise unknown_topic(topic)
    return parser.parse(topic, payload)
