"""The bad-input set, run against every parse(): each is a PayloadError with a reason, never a crash."""

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from sensors import formats
from sensors.formats import (
    PayloadError,
    Reading,
    brigade,
    esphome,
    plain,
    shelly_gen1,
    shelly_gen2,
    tasmota,
    zigbee2mqtt,
)


@dataclass(frozen=True)
class Slot:
    """Where a format carries a temperature: a topic, and how to put a JSON token into a payload."""

    name: str
    parse: Callable[[str, bytes], list[Reading]]
    topic: str
    template: str  # "%s" is replaced by the value's token
    is_json: bool  # whether a string value goes in quoted (JSON) or bare (plain text)

    def payload(self, token: str) -> bytes:
        """The payload carrying ``token`` in the temperature position."""
        return (self.template % token).encode()

    def string(self, value: str) -> bytes:
        """The payload carrying a string value, quoted only where the format is JSON."""
        return self.payload(json.dumps(value) if self.is_json else value)


SLOTS = [
    Slot("brigade", brigade.parse, "brigade/fr1/reading", '{"t": %s}', True),
    Slot("brigade-bare", brigade.parse, "brigade/fr1/reading", "%s", True),
    Slot("plain", plain.parse, "brigade/fr1/temperature", "%s", False),
    Slot(
        "tasmota",
        tasmota.parse,
        "tele/kitchen1/SENSOR",
        '{"DS18B20":{"Temperature":%s},"TempUnit":"C"}',
        True,
    ),
    Slot("zigbee2mqtt", zigbee2mqtt.parse, "zigbee2mqtt/fridge", '{"temperature":%s}', True),
    Slot("shelly-gen1", shelly_gen1.parse, "shellies/shellyht-AB12CD/sensor/temperature", "%s", False),
    Slot("shelly-gen1-addon", shelly_gen1.parse, "shellies/shelly1-A1/ext_temperature/0", "%s", False),
    Slot(
        "shelly-gen2",
        shelly_gen2.parse,
        "shellyhtg3-84fce63ad204/events/rpc",
        '{"method":"NotifyStatus","params":{"ts":1700000000,"temperature:0":{"tC":%s}}}',
        True,
    ),
    Slot("esphome", esphome.parse, "walkin/sensor/temp_probe/state", "%s", False),
]
SLOT_IDS = [slot.name for slot in SLOTS]

# (case id, token in the temperature position, expected reason)
VALUE_CASES = [
    ("NaN", "NaN", "NaN|not a number"),
    ("Infinity", "Infinity", "Infinity|not a number"),
    ("-Infinity", "-Infinity", "Infinity|not a number"),
    ("overflow-to-inf", "1e999", "not finite"),
    ("minus-300", "-300", r"^implausible temperature: -300"),
    ("plus-1000", "1000", r"^implausible temperature: 1000"),
    ("true", "true", "not a number|got boolean"),
    ("array", "[4.2]", "not a number|expected a JSON object"),
    ("nested-garbage", '{"x":[1,{"y":null}]}', "not a number|expected a JSON object|unknown field"),
]

STRING_CASES = [
    ("string-nan", "nan", "not a number|got string"),
    ("string-inf", "inf", "not a number|got string"),
    ("string-words", "cold", "not a number|got string"),
]

# Whole payloads that are wrong whatever the format.
PAYLOAD_CASES = [
    ("not-json", b"{oops", "not JSON|not a number"),
    ("bad-utf8", b"\xff\xfe4.2", r"^not UTF-8: bad byte at offset 0$"),
    ("one-megabyte", b"1" * 1_000_000, r"^payload too large: 1000000 bytes$"),
    ("empty", b"", r"^empty payload$"),
    ("whitespace", b" \n", r"^empty payload$"),
    ("json-list", b"[4.2]", "expected a JSON object|not a number"),
    ("json-string", b'"4.2"', "expected a JSON object|not a number"),
]


@pytest.mark.parametrize(("case", "token", "reason"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
@pytest.mark.parametrize("slot", SLOTS, ids=SLOT_IDS)
def test_bad_temperature_values(slot: Slot, case: str, token: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        slot.parse(slot.topic, slot.payload(token))


@pytest.mark.parametrize(("case", "value", "reason"), STRING_CASES, ids=[c[0] for c in STRING_CASES])
@pytest.mark.parametrize("slot", SLOTS, ids=SLOT_IDS)
def test_bad_temperature_strings(slot: Slot, case: str, value: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        slot.parse(slot.topic, slot.string(value))


@pytest.mark.parametrize(("case", "payload", "reason"), PAYLOAD_CASES, ids=[c[0] for c in PAYLOAD_CASES])
@pytest.mark.parametrize("slot", SLOTS, ids=SLOT_IDS)
def test_bad_payloads(slot: Slot, case: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        slot.parse(slot.topic, payload)


AVAILABILITY_TOPICS = [
    (brigade.parse, "brigade/fr1/status"),
    (tasmota.parse, "tele/kitchen1/LWT"),
    (zigbee2mqtt.parse, "zigbee2mqtt/fridge/availability"),
    (shelly_gen1.parse, "shellies/shellyht-AB12CD/online"),
    (shelly_gen2.parse, "shellyhtg3-84fce63ad204/online"),
    (esphome.parse, "walkin/status"),
]


@pytest.mark.parametrize("payload", [b"", b"\xff", b"1" * 1_000_000, b"maybe", b"[1]", b"NaN"])
@pytest.mark.parametrize(("parse", "topic"), AVAILABILITY_TOPICS, ids=[t for _, t in AVAILABILITY_TOPICS])
def test_bad_availability_payloads(
    parse: Callable[[str, bytes], list[Reading]], topic: str, payload: bytes
) -> None:
    with pytest.raises(PayloadError):
        parse(topic, payload)


FOREIGN_TOPICS = ["", "unknown", "foo/bar/baz/qux/quux", "brigade/fr1/reading/extra"]


@pytest.mark.parametrize("topic", FOREIGN_TOPICS)
@pytest.mark.parametrize(
    "parse",
    [
        brigade.parse,
        plain.parse,
        tasmota.parse,
        zigbee2mqtt.parse,
        shelly_gen1.parse,
        shelly_gen2.parse,
        esphome.parse,
    ],
    ids=["brigade", "plain", "tasmota", "zigbee2mqtt", "shelly-gen1", "shelly-gen2", "esphome"],
)
def test_each_parser_refuses_topics_it_does_not_own(
    parse: Callable[[str, bytes], list[Reading]], topic: str
) -> None:
    with pytest.raises(PayloadError, match="^unknown topic: "):
        parse(topic, b"4.2")


@pytest.mark.parametrize(
    "topic",
    ["", "unknown", "a/b/c/d/e", "brigade/fr1/other", "tele/a/b/c", "$SYS/broker/uptime", "x/+/y", 42],
)
def test_routed_parse_refuses_unknown_topics(topic: object) -> None:
    with pytest.raises(PayloadError, match="^unknown topic: "):
        formats.parse(topic, b"4.2")  # type: ignore[arg-type]


@pytest.mark.parametrize(("topic", "payload"), [
    ("brigade/fr1/reading", {"t": 4.2, "battery": 101}),
    ("zigbee2mqtt/fridge", {"temperature": 4.2, "battery": -5}),
    ("shellyhtg3-84fce63ad204/events/rpc", {"method": "NotifyStatus", "params": {"devicepower:0": {"battery": {"percent": 250}}}}),
])  # fmt: skip
def test_battery_out_of_range(topic: str, payload: object) -> None:
    with pytest.raises(PayloadError, match="^battery out of range 0–100"):
        formats.parse(topic, json.dumps(payload).encode())


@pytest.mark.parametrize("topic", ["shellies/shellyht-AB12CD/sensor/battery", "walkin/sensor/battery/state"])
@pytest.mark.parametrize("payload", [b"-1", b"101", b"nan", b"full"])
def test_plain_battery_out_of_range(topic: str, payload: bytes) -> None:
    with pytest.raises(PayloadError, match="^battery "):
        formats.parse(topic, payload)
