"""Every real sample payload under samples/ becomes exactly the expected Readings."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from sensors import formats
from sensors.formats import Reading

SAMPLES = Path(__file__).parent / "samples"
UTC = timezone.utc


def sample(name: str) -> bytes:
    """The bytes of one sample payload file."""
    return (SAMPLES / name).read_bytes()


CASES = [
    # --- Brigade ---
    (
        "brigade/walkin-1/reading",
        "brigade_reading.json",
        [Reading("brigade/walkin-1", 4.2, datetime(2026, 11, 27, 10, tzinfo=UTC), 88.0)],
    ),
    (
        "brigade/walkin-1/reading",
        "brigade_reading_fahrenheit.json",
        [Reading("brigade/walkin-1", 4.28, datetime(2026, 11, 27, 10, tzinfo=UTC))],
    ),
    ("brigade/walkin-1/temperature", "plain_temperature.txt", [Reading("brigade/walkin-1", 4.2)]),
    # --- Tasmota ---
    (
        "tele/kitchen1/SENSOR",
        "tasmota_ds18b20_single.json",
        [Reading("tasmota/kitchen1/DS18B20/000003287EF1", 24.7)],
    ),
    (
        "tele/kitchen1/SENSOR",
        "tasmota_ds18b20_multi.json",
        [
            Reading("tasmota/kitchen1/DS18B20/00000566CC39", 13.3),
            Reading("tasmota/kitchen1/DS18B20/0000059352D4", 1.2),
            Reading("tasmota/kitchen1/DS18B20/000005937C90", 22.5),
        ],
    ),
    ("tele/kitchen1/SENSOR", "tasmota_ds18b20_no_id.json", [Reading("tasmota/kitchen1/DS18B20", 49.7)]),
    ("tele/cellar/SENSOR", "tasmota_am2301.json", [Reading("tasmota/cellar/AM2301", 4.7)]),
    ("tele/bar/SENSOR", "tasmota_si7021_fahrenheit.json", [Reading("tasmota/bar/SI7021", 20.56)]),
    (
        "tele/prep/SENSOR",
        "tasmota_mixed_failed_probe.json",
        [Reading("tasmota/prep/DS18B20", 21.5), Reading("tasmota/prep/BME280", 21.1)],
    ),
    (
        "tele/badkamer/SENSOR",
        "tasmota_ds18s20_am2301.json",
        [Reading("tasmota/badkamer/DS18S20/000802E7DE83", 4.8), Reading("tasmota/badkamer/AM2301", 25.9)],
    ),
    ("tele/kitchen1/LWT", "tasmota_lwt_online.txt", [Reading("tasmota/kitchen1", online=True)]),
    ("tele/kitchen1/LWT", "tasmota_lwt_offline.txt", [Reading("tasmota/kitchen1", online=False)]),
    # --- Zigbee2MQTT ---
    ("zigbee2mqtt/fridge_door", "zigbee2mqtt_wsdcgq01lm.json", [Reading("z2m/fridge_door", 27.34)]),
    (
        "zigbee2mqtt/kitchen/freezer",
        "zigbee2mqtt_wsdcgq11lm.json",
        [Reading("z2m/kitchen/freezer", 23.5, battery_pct=91.0)],
    ),
    ("zigbee2mqtt/power_plug", "zigbee2mqtt_plug.json", []),
    (
        "zigbee2mqtt/fridge_door/availability",
        "zigbee2mqtt_availability_legacy.txt",
        [Reading("z2m/fridge_door", online=True)],
    ),
    (
        "zigbee2mqtt/kitchen/freezer/availability",
        "zigbee2mqtt_availability_json.json",
        [Reading("z2m/kitchen/freezer", online=False)],
    ),
    # --- Shelly Gen1 ---
    (
        "shellies/shellyht-AB12CD/sensor/temperature",
        "shelly_gen1_ht_temperature.txt",
        [Reading("shelly/shellyht-AB12CD", 22.5)],
    ),
    (
        "shellies/shellyht-AB12CD/sensor/battery",
        "shelly_gen1_ht_battery.txt",
        [Reading("shelly/shellyht-AB12CD", battery_pct=87.0)],
    ),
    (
        "shellies/shelly1-A1B2C3/ext_temperature/1",
        "shelly_gen1_ext_temperature.txt",
        [Reading("shelly/shelly1-A1B2C3/ext_temperature/1", 35.75)],
    ),
    (
        "shellies/shellyht-AB12CD/online",
        "shelly_gen1_online.txt",
        [Reading("shelly/shellyht-AB12CD", online=False)],
    ),
    # --- Shelly Gen2+ ---
    (
        "shellyplusht-08b61fce63c4/events/rpc",
        "shelly_gen2_plusht_fullstatus.json",
        [
            Reading(
                "shelly/shellyplusht-08b61fce63c4",
                19.9,
                datetime(2023, 1, 23, 11, 28, 24, 120000, tzinfo=UTC),
                100.0,
            )
        ],
    ),
    ("shellyplus1-08b61fd141e8/events/rpc", "shelly_gen2_plus1_fullstatus.json", []),
    (
        "shellyplussmoke-80646fd09ed4/events/rpc",
        "shelly_gen2_plussmoke_fullstatus_clock_unset.json",
        [Reading("shelly/shellyplussmoke-80646fd09ed4", battery_pct=97.0)],
    ),
    (
        "shellyhtg3-84fce63ad204/events/rpc",
        "shelly_gen2_htg3_notifystatus_temperature.json",
        [
            Reading(
                "shelly/shellyhtg3-84fce63ad204", 4.3, datetime(2023, 11, 14, 22, 13, 20, 120000, tzinfo=UTC)
            )
        ],
    ),
    (
        "shellyhtg3-84fce63ad204/events/rpc",
        "shelly_gen2_htg3_notifystatus_battery.json",
        [
            Reading(
                "shelly/shellyhtg3-84fce63ad204",
                measured_at=datetime(2023, 11, 14, 22, 23, 20, 50000, tzinfo=UTC),
                battery_pct=73.0,
            )
        ],
    ),
    ("shellypro4pm-f008d1d8b8b8/events/rpc", "shelly_gen2_pro4pm_notifystatus_cloud.json", []),
    ("shellypro4pm-f008d1d8b8b8/events/rpc", "shelly_gen2_pro4pm_notifyevent.json", []),
    (
        "shellyplus1-a8032ab12cd3/events/rpc",
        "shelly_gen2_plus1_addon_two_probes.json",
        [
            Reading(
                "shelly/shellyplus1-a8032ab12cd3/temperature:100",
                3.9,
                datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            ),
            Reading(
                "shelly/shellyplus1-a8032ab12cd3/temperature:101",
                -18.2,
                datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
            ),
        ],
    ),
    (
        "shellyhtg3-84fce63ad204/online",
        "shelly_gen2_online.txt",
        [Reading("shelly/shellyhtg3-84fce63ad204", online=True)],
    ),
    # --- ESPHome ---
    (
        "esp32-dht22/sensor/temperature/state",
        "esphome_temperature_state.txt",
        [Reading("esphome/esp32-dht22/sensor/temperature", 23.5)],
    ),
    ("esp32-dht22/sensor/humidity/state", "esphome_humidity_state.txt", []),
    ("esp32-dht22/status", "esphome_status_online.txt", [Reading("esphome/esp32-dht22", online=True)]),
]


@pytest.mark.parametrize(
    ("topic", "name", "expected"), CASES, ids=[f"{name}@{topic}" for topic, name, _ in CASES]
)
def test_sample_gives_exact_readings(topic: str, name: str, expected: list[Reading]) -> None:
    assert formats.parse(topic, sample(name)) == expected


def test_every_sample_file_is_used() -> None:
    used = {name for _, name, _ in CASES}
    on_disk = {path.name for path in SAMPLES.iterdir() if path.name != "README.md"}
    assert on_disk == used


def test_every_sample_is_listed_in_the_readme() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    missing = [
        path.name for path in SAMPLES.iterdir() if path.name != "README.md" and path.name not in readme
    ]
    assert missing == []
