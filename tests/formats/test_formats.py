"""Format-specific behaviour beyond the samples: units, probes, partial updates, availability."""

import json
from datetime import datetime, timezone

import pytest

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

UTC = timezone.utc


def dumps(value: object) -> bytes:
    """JSON-encode a test payload."""
    return json.dumps(value).encode()


# --- Brigade / plain ---


def test_brigade_bare_number_means_celsius_now() -> None:
    assert brigade.parse("brigade/fr1/reading", b"3.5") == [Reading("brigade/fr1", 3.5)]


def test_brigade_ts_null_and_battery_null_mean_absent() -> None:
    assert brigade.parse("brigade/fr1/reading", dumps({"t": 3.5, "ts": None, "battery": None})) == [
        Reading("brigade/fr1", 3.5)
    ]


@pytest.mark.parametrize(("body", "reason"), [
    ({"t": 4.2, "batery": 80}, "^unknown field\\(s\\): 'batery'$"),
    ({"unit": "C"}, "^missing field: t$"),
    ({"t": 4.2, "ts": "2026-11-27T10:00:00"}, "^timestamp needs a UTC offset"),
    ({"t": 4.2, "unit": "K"}, "^unknown temperature unit"),
    ({"t": 4.2, "battery": 120}, "^battery out of range"),
    ({"t": True}, "^temperature is not a number"),
])  # fmt: skip
def test_brigade_refuses_bad_fields_with_a_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        brigade.parse("brigade/fr1/reading", dumps(body))


@pytest.mark.parametrize(
    "topic", ["brigade/bad id/reading", "brigade/-x/reading", "brigade/" + "x" * 65 + "/reading"]
)
def test_brigade_refuses_odd_sensor_ids(topic: str) -> None:
    with pytest.raises(PayloadError, match="bad Brigade sensor id"):
        brigade.parse(topic, b"4.2")


def test_brigade_status_is_availability() -> None:
    assert brigade.parse("brigade/fr1/status", b"offline") == [Reading("brigade/fr1", online=False)]


def test_plain_takes_only_a_bare_number() -> None:
    assert plain.parse("brigade/fr1/temperature", b" -18.2\r\n") == [Reading("brigade/fr1", -18.2)]
    with pytest.raises(PayloadError, match="not a number"):
        plain.parse("brigade/fr1/temperature", b'{"t": 4.2}')


# --- Tasmota ---


def test_tasmota_fahrenheit_probes_are_converted() -> None:
    payload = b'{"Time":"2024-01-01T00:00:00","DS18B20-1":{"Id":"01","Temperature":39.7},"DS18B20-2":{"Id":"02","Temperature":-0.4},"TempUnit":"F"}'
    assert tasmota.parse("tele/walkin/SENSOR", payload) == [
        Reading("tasmota/walkin/DS18B20/01", 4.28),
        Reading("tasmota/walkin/DS18B20/02", -18.0),
    ]


def test_tasmota_time_with_offset_becomes_measured_at() -> None:
    payload = b'{"Time":"2026-11-27T11:00:00+01:00","AM2301":{"Temperature":4.7},"TempUnit":"C"}'
    assert tasmota.parse("tele/t/SENSOR", payload) == [
        Reading("tasmota/t/AM2301", 4.7, datetime(2026, 11, 27, 10, tzinfo=UTC))
    ]


def test_tasmota_ignores_chip_temperature_and_non_probe_keys() -> None:
    payload = b'{"Time":"2024-01-01T00:00:00","ESP32":{"Temperature":48.3},"ANALOG":{"A0":542},"DS18B20":{"Temperature":3.1},"TempUnit":"C"}'
    assert tasmota.parse("tele/t/SENSOR", payload) == [Reading("tasmota/t/DS18B20", 3.1)]


def test_tasmota_without_tempunit_means_celsius() -> None:
    assert tasmota.parse("tele/t/SENSOR", b'{"DS18B20":{"Temperature":3.1}}') == [
        Reading("tasmota/t/DS18B20", 3.1)
    ]


@pytest.mark.parametrize("message", ["STATE", "INFO1", "RESULT", "HASS_STATE"])
def test_tasmota_other_telemetry_is_known_and_empty(message: str) -> None:
    assert tasmota.parse(f"tele/t/{message}", b"not even json") == []


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"DS18B20":{"Temperature":3.1},"TempUnit":"K"}', "unknown temperature unit"),
    (b'{"DS18B20":{"Id":7,"Temperature":3.1}}', "Id is not a string"),
    (b'{"Time":12,"DS18B20":{"Temperature":3.1}}', "Time is not a string"),
    (b'{"DS18B20":{"Temperature":"warm"}}', "temperature is not a number"),
])  # fmt: skip
def test_tasmota_refuses_bad_fields(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        tasmota.parse("tele/t/SENSOR", payload)


def test_tasmota_lwt_refuses_other_words() -> None:
    with pytest.raises(PayloadError, match="expected 'Online' or 'Offline'"):
        tasmota.parse("tele/t/LWT", b"gone")


# --- Zigbee2MQTT ---


def test_z2m_battery_only_message() -> None:
    assert zigbee2mqtt.parse("zigbee2mqtt/door", b'{"battery":45,"contact":true}') == [
        Reading("z2m/door", battery_pct=45.0)
    ]


def test_z2m_message_without_temperature_or_battery_is_empty() -> None:
    assert zigbee2mqtt.parse("zigbee2mqtt/fridge", b'{"linkquality":87,"humidity":60}') == []


@pytest.mark.parametrize(("last_seen", "moment"), [
    ("2026-11-27T10:00:00.000Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
    ("2026-11-27T11:00:00+01:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
    (1795773600000, datetime(2026, 11, 27, 10, tzinfo=UTC)),
])  # fmt: skip
def test_z2m_last_seen_is_measured_at(last_seen: object, moment: datetime) -> None:
    payload = dumps({"temperature": 3.2, "last_seen": last_seen})
    assert zigbee2mqtt.parse("zigbee2mqtt/fridge", payload) == [Reading("z2m/fridge", 3.2, moment)]


@pytest.mark.parametrize("topic", [
    "zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/logging",
    "zigbee2mqtt/fridge/set", "zigbee2mqtt/fridge/get", "zigbee2mqtt/fridge/set/state",
])  # fmt: skip
def test_z2m_bridge_and_commands_are_not_read(topic: str) -> None:
    # bridge/devices is routinely larger than the payload limit; it must not be dead-lettered.
    assert zigbee2mqtt.parse(topic, b"x" * 1_000_000) == []


@pytest.mark.parametrize("payload", [b"maybe", b'{"state":"sleeping"}', b"[1]"])
def test_z2m_availability_refuses_other_values(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        zigbee2mqtt.parse("zigbee2mqtt/fridge/availability", payload)


# --- Shelly Gen1 ---


def test_shelly_gen1_fahrenheit_device() -> None:
    assert shelly_gen1.parse("shellies/shellyht-AB12CD/sensor/temperature", b"39.7", temp_unit="F") == [
        Reading("shelly/shellyht-AB12CD", 4.28)
    ]


@pytest.mark.parametrize("topic", [
    "shellies/announce", "shellies/shellyht-AB12CD/sensor/humidity", "shellies/shellyht-AB12CD/sensor/error",
    "shellies/shelly1-A1B2C3/relay/0", "shellies/shelly1-A1B2C3/ext_temperature_f/1", "shellies/shelly1-A1B2C3/temperature",
])  # fmt: skip
def test_shelly_gen1_other_topics_are_known_and_empty(topic: str) -> None:
    assert shelly_gen1.parse(topic, b"whatever") == []


# --- Shelly Gen2 ---


def notification(method: str = "NotifyStatus", **params: object) -> bytes:
    """A Gen2 notification frame with the given params."""
    return dumps({"src": "shellyhtg3-84fce63ad204", "dst": "x/events", "method": method, "params": params})


def test_shelly_gen2_partial_status_with_both_temperature_and_battery_is_one_reading() -> None:
    payload = notification(
        ts=1700000000, **{"temperature:0": {"tC": 4.3}, "devicepower:0": {"battery": {"percent": 61}}}
    )
    assert shelly_gen2.parse("shellyhtg3-84fce63ad204/events/rpc", payload) == [
        Reading("shelly/shellyhtg3-84fce63ad204", 4.3, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), 61.0)
    ]


def test_shelly_gen2_uses_tf_only_without_tc() -> None:
    payload = notification(**{"temperature:0": {"tF": 39.7}})
    assert shelly_gen2.parse("h/events/rpc", payload) == [Reading("shelly/h", 4.28)]


@pytest.mark.parametrize(
    "status", [None, {"id": 0, "tC": None, "tF": None, "errors": ["out_of_range"]}, {"id": 0}]
)
def test_shelly_gen2_null_temperature_means_no_value(status: object) -> None:
    assert shelly_gen2.parse("h/events/rpc", notification(**{"temperature:0": status})) == []


@pytest.mark.parametrize("key", ["temperature:" + "1" * 5000, "temperature:007", "temperature:-1", "temperature:"])
def test_shelly_gen2_ignores_keys_that_are_not_component_ids(key: str) -> None:
    assert shelly_gen2.parse("h/events/rpc", notification(**{key: {"tC": 4.0}})) == []


def test_shelly_gen2_ignores_component_temperatures_like_the_switch_chip() -> None:
    payload = notification(**{"switch:0": {"temperature": {"tC": 48.4}}, "temperature:x": {"tC": 5}})
    assert shelly_gen2.parse("h/events/rpc", payload) == []


@pytest.mark.parametrize(("frame", "reason"), [
    ({"params": {}}, "method is null"),
    ({"method": "NotifyStatus", "params": [1]}, "params is not an object"),
    ({"method": "NotifyStatus", "params": {"temperature:0": [4.3]}}, "is not an object"),
    ({"method": "NotifyStatus", "params": {"devicepower:0": {"battery": 80}}}, "battery is not an object"),
    ({"method": "NotifyStatus", "params": {"ts": "soon", "temperature:0": {"tC": 4}}}, "bad timestamp"),
    ({"method": "NotifyStatus", "params": {"temperature:0": {"tC": 1000}}}, "implausible temperature"),
])  # fmt: skip
def test_shelly_gen2_refuses_bad_frames(frame: dict[str, object], reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        shelly_gen2.parse("h/events/rpc", dumps(frame))


# --- ESPHome ---


@pytest.mark.parametrize(("name", "payload", "expected"), [
    ("walk_in", b"3.9", [Reading("esphome/node/sensor/walk_in", 3.9)]),
    ("fridge_temp", b"4", [Reading("esphome/node/sensor/fridge_temp", 4.0)]),
    ("battery_level", b"76", [Reading("esphome/node", battery_pct=76.0)]),
    ("battery_voltage", b"3.71", []),
    ("wifi_signal", b"-61", []),
    ("uptime", b"123456", []),
])  # fmt: skip
def test_esphome_sensor_name_decides_the_meaning(name: str, payload: bytes, expected: list[Reading]) -> None:
    assert esphome.parse(f"node/sensor/{name}/state", payload) == expected


def test_esphome_fahrenheit_node() -> None:
    assert esphome.parse("node/sensor/probe/state", b"0", temp_unit="F") == [
        Reading("esphome/node/sensor/probe", -17.78)
    ]


def test_esphome_unavailable_sensor_publishes_nan_which_is_refused() -> None:
    with pytest.raises(PayloadError, match="not a number: 'nan'"):
        esphome.parse("node/sensor/probe/state", b"nan")
