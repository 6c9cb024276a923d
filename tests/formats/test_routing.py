"""The routing table: topic filters, their order, and what ingest subscribes to."""

import pytest

from sensors import formats
from sensors.formats import brigade, esphome, plain, shelly_gen1, shelly_gen2, tasmota, zigbee2mqtt


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), [
    ("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/+/c", "a/b/c/d", False),
    ("a/#", "a", True), ("a/#", "a/b/c", True), ("a/#", "b/a", False),
    ("+/online", "x/online", True), ("+/online", "/online", True), ("+/online", "shellies/x/online", False),
    ("+/status", "$SYS/status", False), ("#", "$SYS/x", False),
])  # fmt: skip
def test_matches_follows_mqtt_filter_rules(topic_filter: str, topic: str, expected: bool) -> None:
    assert formats.matches(topic_filter, topic) is expected


@pytest.mark.parametrize(("topic", "parser"), [
    ("brigade/fr1/reading", brigade),
    ("brigade/fr1/status", brigade),
    ("brigade/fr1/temperature", plain),
    ("tele/kitchen1/SENSOR", tasmota),
    ("tele/kitchen1/LWT", tasmota),
    ("tele/kitchen1/STATE", tasmota),
    ("zigbee2mqtt/fridge", zigbee2mqtt),
    ("zigbee2mqtt/kitchen/fridge/availability", zigbee2mqtt),
    ("zigbee2mqtt/bridge/state", zigbee2mqtt),
    ("zigbee2mqtt/status", zigbee2mqtt),  # not an ESPHome node called zigbee2mqtt
    ("shellies/shellyht-AB12CD/sensor/temperature", shelly_gen1),
    ("shellies/shellyht-AB12CD/online", shelly_gen1),  # not the Gen2 "<id>/online"
    ("shellies/online", shelly_gen1),
    ("shellyhtg3-84fce63ad204/events/rpc", shelly_gen2),
    ("shellyhtg3-84fce63ad204/online", shelly_gen2),
    ("walkin/sensor/temp_probe/state", esphome),
    ("walkin/status", esphome),
    ("tele/events/rpc", tasmota),  # vendor-rooted filters win over generic ones
])  # fmt: skip
def test_route(topic: str, parser: object) -> None:
    assert formats.route(topic) is parser


@pytest.mark.parametrize("topic", [
    "brigade/status", "brigade/fr1/other", "brigade/a/b/c",  # brigade/ is claimed, nothing else in it known
    "tele/a/b/c", "home/living/sensor/t/state", "a/b", "unknown", "", "$SYS/broker/uptime", "x/+/y", "x/#",
])  # fmt: skip
def test_unknown_topics_route_to_none(topic: str) -> None:
    assert formats.route(topic) is None


def test_route_is_first_match_in_table_order() -> None:
    filters = [topic_filter for topic_filter, _ in formats.ROUTES]
    assert filters.index("brigade/#") < filters.index("+/status")
    assert filters.index("shellies/#") < filters.index("+/online")
    assert filters.index("zigbee2mqtt/#") < filters.index("+/status")
    assert filters.index("tele/+/+") < filters.index("+/events/rpc")


# One concrete topic per subscription filter, with "+" filled in.
@pytest.mark.parametrize("topic_filter", formats.SUBSCRIPTIONS)
def test_every_subscription_reaches_a_route(topic_filter: str) -> None:
    example = topic_filter.replace("+", "dev1").replace("#", "dev1/reading")
    assert formats.route(example) is not None


def test_subscriptions_are_unique_filters() -> None:
    assert len(set(formats.SUBSCRIPTIONS)) == len(formats.SUBSCRIPTIONS)
    for topic_filter in formats.SUBSCRIPTIONS:
        levels = topic_filter.split("/")
        assert "#" not in levels[:-1] and all(level in ("+", "#") or "+" not in level for level in levels)


def test_every_routed_topic_of_a_subscription_is_subscribed() -> None:
    """A route that can produce readings is only useful if ingest subscribes to its topics."""
    for topic in ["brigade/fr1/reading", "tele/t/SENSOR", "tele/t/LWT", "zigbee2mqtt/fridge", "shellies/x/online",
                  "x/events/rpc", "x/online", "x/sensor/probe/state", "x/status"]:  # fmt: skip
        assert any(formats.matches(f, topic) for f in formats.SUBSCRIPTIONS), topic
