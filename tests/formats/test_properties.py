"""Property tests: for any input, every parse() returns sane Readings or raises PayloadError, nothing else."""

import json
import math
from collections.abc import Callable
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sensors import formats
from sensors.formats import (
    PayloadError,
    Reading,
    base,
    brigade,
    esphome,
    plain,
    shelly_gen1,
    shelly_gen2,
    tasmota,
    zigbee2mqtt,
)

Parse = Callable[[str, bytes], list[Reading]]

# Every topic shape each parser owns: reading, availability and known-but-empty topics.
TOPICS: dict[str, tuple[Parse, list[str]]] = {
    "brigade": (brigade.parse, ["brigade/fr1/reading", "brigade/fr1/status"]),
    "plain": (plain.parse, ["brigade/fr1/temperature"]),
    "tasmota": (tasmota.parse, ["tele/kitchen1/SENSOR", "tele/kitchen1/LWT", "tele/kitchen1/STATE"]),
    "zigbee2mqtt": (
        zigbee2mqtt.parse,
        [
            "zigbee2mqtt/fridge",
            "zigbee2mqtt/kitchen/fridge",
            "zigbee2mqtt/fridge/availability",
            "zigbee2mqtt/bridge/state",
        ],
    ),
    "shelly_gen1": (
        shelly_gen1.parse,
        [
            "shellies/shellyht-AB12CD/sensor/temperature",
            "shellies/shellyht-AB12CD/sensor/battery",
            "shellies/shellyht-AB12CD/online",
            "shellies/shelly1-A1/ext_temperature/0",
        ],
    ),
    "shelly_gen2": (
        shelly_gen2.parse,
        ["shellyhtg3-84fce63ad204/events/rpc", "shellyhtg3-84fce63ad204/online"],
    ),
    "esphome": (
        esphome.parse,
        ["walkin/sensor/temp_probe/state", "walkin/sensor/battery_level/state", "walkin/status"],
    ),
}
ALL_TOPICS = [(name, topic) for name, (_, topics) in TOPICS.items() for topic in topics]

# JSON leaves, including the awkward ones: huge integers, NaN/inf (json.dumps writes them as
# NaN/Infinity), numeric and non-numeric strings.
NUMBERS = (
    st.integers(min_value=-(10**320), max_value=10**320)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-200, max_value=200)
    | st.sampled_from(["4.2", "-18", "nan", "inf", "1e999", " 3 ", "", "true", "39.7"])
)
LEAVES = st.none() | st.booleans() | NUMBERS | st.text(max_size=20)
JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


# Values for the slots a format reads: mostly valid, so success paths are exercised as much as
# the refusals, and sometimes anything at all.
def mostly(
    valid: st.SearchStrategy[object], anything: st.SearchStrategy[object]
) -> st.SearchStrategy[object]:
    """Draw from ``valid`` about four times in five, else from ``anything``."""
    # flatmap, not one_of: one_of flattens nested alternatives, which would dilute ``valid``.
    return st.integers(min_value=0, max_value=4).flatmap(lambda pick: anything if pick == 0 else valid)


PLAUSIBLE = st.floats(min_value=-90, max_value=150) | st.integers(min_value=-90, max_value=150)
TEMPERATURE = mostly(PLAUSIBLE, st.floats(min_value=-400, max_value=1000) | NUMBERS | LEAVES)
BATTERY = mostly(st.integers(min_value=0, max_value=100), st.floats(min_value=-10, max_value=120) | LEAVES)
TIMESTAMP = mostly(
    st.floats(min_value=946684800, max_value=4e9)
    | st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T11:00:00+01:00", "2021-01-02T09:09:44"]),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "soon", "9999-12-31T23:59:59-05:00"])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**14), max_value=10**14)
    | LEAVES,
)
UNIT = mostly(st.sampled_from(["C", "F"]), st.sampled_from(["f", "K", ""]) | LEAVES)


def some_of(fields: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[dict[str, object]]:
    """Objects with any subset of a format's real keys (so deep code paths are reached)."""
    return st.fixed_dictionaries({}, optional=fields)


SHELLY_TEMPERATURE = mostly(
    st.fixed_dictionaries({"tC": TEMPERATURE}, optional={"id": LEAVES, "tF": TEMPERATURE}), LEAVES
)
SHELLY_POWER = mostly(
    some_of({"id": LEAVES, "battery": mostly(some_of({"V": LEAVES, "percent": BATTERY}), LEAVES)}), LEAVES
)
TASMOTA_PROBE = mostly(
    st.fixed_dictionaries(
        {"Temperature": TEMPERATURE},
        optional={"Id": mostly(st.text("0123456789ABCDEF", min_size=1, max_size=12), LEAVES)},
    ),
    LEAVES,
)
SHAPES: dict[str, st.SearchStrategy[object]] = {
    "brigade": some_of({"t": TEMPERATURE, "unit": UNIT, "ts": TIMESTAMP, "battery": BATTERY}) | TEMPERATURE,
    "plain": TEMPERATURE,
    "tasmota": st.fixed_dictionaries(
        {"DS18B20-1": TASMOTA_PROBE},
        optional={
            "Time": mostly(st.sampled_from(["2021-01-02T09:09:44", "2026-11-27T11:00:00+01:00"]), TIMESTAMP),
            "TempUnit": UNIT, "DS18B20-2": TASMOTA_PROBE, "AM2301": TASMOTA_PROBE, "ESP32": JSON, "ANALOG": JSON,
        },
    ),
    "zigbee2mqtt": some_of({"temperature": TEMPERATURE, "battery": BATTERY, "last_seen": TIMESTAMP, "linkquality": LEAVES})
    | some_of({"state": st.sampled_from(["online", "offline", "ON"]) | LEAVES}),
    "shelly_gen1": TEMPERATURE | BATTERY,
    "shelly_gen2": st.fixed_dictionaries(
        {
            "method": mostly(st.sampled_from(["NotifyStatus", "NotifyFullStatus", "NotifyEvent"]), LEAVES),
            "params": mostly(
                st.fixed_dictionaries(
                    {"ts": TIMESTAMP, "temperature:0": SHELLY_TEMPERATURE},
                    optional={"temperature:100": SHELLY_TEMPERATURE, "devicepower:0": SHELLY_POWER, "switch:0": JSON},
                ),
                LEAVES,
            ),
        },
        optional={"src": LEAVES, "dst": LEAVES},
    ),
    "esphome": TEMPERATURE | BATTERY,
}  # fmt: skip


def encode(value: object) -> bytes:
    """JSON text of a generated value (NaN/Infinity allowed, as a buggy device might send)."""
    if isinstance(value, str) and not value.startswith(("{", "[")):
        return value.encode()  # plain-text formats publish bare strings
    return json.dumps(value).encode()


def check(readings: object) -> None:
    """The contract every successful parse keeps."""
    assert isinstance(readings, list)
    for reading in readings:
        assert isinstance(reading, Reading)
        assert isinstance(reading.sensor, str) and reading.sensor
        if reading.temperature_c is not None:
            assert math.isfinite(reading.temperature_c)
            assert base.MIN_TEMPERATURE_C <= reading.temperature_c <= base.MAX_TEMPERATURE_C
        if reading.battery_pct is not None:
            assert 0 <= reading.battery_pct <= 100
        if reading.measured_at is not None:
            assert reading.measured_at.utcoffset() == timedelta(0)
            assert reading.measured_at >= base.CLOCK_SET_AFTER
        assert reading.online in (None, True, False)


def outcome(parse: Parse, topic: str, payload: bytes) -> None:
    """Run one parse: either sane readings or a PayloadError with a reason; anything else fails."""
    try:
        readings = parse(topic, payload)
    except PayloadError as error:
        assert str(error)
        return
    check(readings)


@settings(max_examples=300)
@given(st.sampled_from(ALL_TOPICS), st.binary(max_size=300))
def test_arbitrary_bytes(case: tuple[str, str], payload: bytes) -> None:
    name, topic = case
    outcome(TOPICS[name][0], topic, payload)
    outcome(formats.parse, topic, payload)


@settings(max_examples=300)
@given(st.sampled_from(ALL_TOPICS), JSON)
def test_arbitrary_json(case: tuple[str, str], value: object) -> None:
    name, topic = case
    outcome(TOPICS[name][0], topic, encode(value))


@settings(max_examples=300)
@given(st.data())
def test_format_shaped_json(data: st.DataObject) -> None:
    name, topic = data.draw(st.sampled_from(ALL_TOPICS))
    value = data.draw(SHAPES[name])
    outcome(TOPICS[name][0], topic, encode(value))


@given(st.sampled_from(ALL_TOPICS), st.text(max_size=40))
def test_arbitrary_text(case: tuple[str, str], text: str) -> None:
    name, topic = case
    outcome(TOPICS[name][0], topic, text.encode())


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["tele", "shellies", "zigbee2mqtt", "brigade", "sensor", "state", "status", "online",
                                 "events", "rpc", "SENSOR", "LWT", "+", "#", "", "$SYS"]) | st.text(max_size=6),
                max_size=6).map("/".join),
       st.binary(max_size=60))  # fmt: skip
def test_arbitrary_topics_through_the_router(topic: str, payload: bytes) -> None:
    outcome(formats.parse, topic, payload)


@given(st.text(max_size=60))
def test_each_parser_with_arbitrary_topics(topic: str) -> None:
    for parse, _ in TOPICS.values():
        outcome(parse, topic, b"4.2")


@given(
    st.sampled_from(ALL_TOPICS),
    st.integers(min_value=base.MAX_PAYLOAD_BYTES + 1, max_value=base.MAX_PAYLOAD_BYTES * 4),
)
def test_oversized_payloads_are_refused_on_reading_topics(case: tuple[str, str], size: int) -> None:
    name, topic = case
    try:
        readings = TOPICS[name][0](topic, b"4" * size)
    except PayloadError as error:
        assert str(error) == f"payload too large: {size} bytes"
    else:
        assert readings == []  # only known-but-ignored topics (STATE, bridge) skip reading the payload
